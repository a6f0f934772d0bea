//! Hands what the core queued for an in-process connection to whoever waits
//! for it: RPC replies, consumer streams, publisher confirms.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use warren_protocol::{Method, ReplyCode, ShortStr};

use super::channel::{Delivery, Returned};
use super::connection::ConnInner;
use crate::core::link::ConnectionLink;
use crate::core::message::Message;
use crate::core::outbox::Outbound;
use crate::error::AmqpError;

/// What an RPC gets back.
pub(crate) enum Reply {
    Method(Method),
    Get(Option<Delivery>),
}

pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, AmqpError>>;

pub(crate) enum Pending {
    Reply(ReplyTx),
    /// basic.consume: the stream's sender is registered under the tag the
    /// broker answers with, before any delivery for it is routed.
    Consume(mpsc::Sender<Delivery>, ReplyTx),
}

impl Pending {
    fn fail(self, e: AmqpError) {
        match self {
            Pending::Reply(tx) | Pending::Consume(_, tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

/// Outcome of one publish on a confirm channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmOutcome {
    pub ack: bool,
    /// Set when the message was returned as unroutable (mandatory).
    pub returned: Option<Returned>,
}

#[derive(Default)]
pub(crate) struct ChannelRoutes {
    pub pending: VecDeque<Pending>,
    pub consumers: HashMap<ShortStr, mpsc::Sender<Delivery>>,
    pub confirms: VecDeque<(u64, oneshot::Sender<ConfirmOutcome>)>,
    /// A return waiting for the confirm that follows it.
    pub last_return: Option<Returned>,
    pub returns: Vec<Returned>,
    pub closed: Option<AmqpError>,
}

impl ChannelRoutes {
    pub fn close(&mut self, e: AmqpError) {
        for p in self.pending.drain(..) {
            p.fail(e.clone());
        }
        self.consumers.clear();
        self.confirms.clear();
        self.closed = Some(e);
    }
}

#[derive(Default)]
pub(crate) struct Routes {
    pub channels: HashMap<u16, ChannelRoutes>,
    pub closed: Option<AmqpError>,
}

impl Routes {
    pub fn close_all(&mut self, e: AmqpError) {
        for ch in self.channels.values_mut() {
            ch.close(e.clone());
        }
        self.closed = Some(e);
    }
}

fn delivery(
    conn: &Weak<ConnInner>,
    channel: u16,
    consumer_tag: Option<ShortStr>,
    delivery_tag: u64,
    redelivered: bool,
    msg: &Message,
) -> Delivery {
    Delivery {
        delivery_tag,
        redelivered,
        consumer_tag,
        exchange: msg.exchange.clone(),
        routing_key: msg.routing_key.clone(),
        properties: msg.properties.clone(),
        body: msg.body.clone(),
        conn: conn.clone(),
        channel,
    }
}

/// Runs until the connection's outbox is closed and drained.
pub(crate) async fn run(
    link: Arc<ConnectionLink>,
    routes: Arc<Mutex<Routes>>,
    conn: Weak<ConnInner>,
) {
    let mut batch = VecDeque::new();
    loop {
        link.outbox.drain_into(&mut batch);
        if batch.is_empty() {
            if link.outbox.is_closed() {
                break;
            }
            link.outbox.notified().await;
            continue;
        }
        let cost = crate::core::outbox::Outbox::cost_of(&batch);
        while let Some(item) = batch.pop_front() {
            route_one(item, &routes, &conn).await;
        }
        link.outbox.written(cost);
    }
    routes.lock().close_all(AmqpError::new(
        ReplyCode::ConnectionForced,
        "connection closed",
    ));
}

async fn route_one(item: Outbound, routes: &Mutex<Routes>, conn: &Weak<ConnInner>) {
    let sender = {
        let mut r = routes.lock();
        match item {
            Outbound::Method {
                channel: 0,
                method: Method::ConnectionClose(c),
            } => {
                let code = ReplyCode::from_u16(c.reply_code).unwrap_or(ReplyCode::ConnectionForced);
                r.close_all(AmqpError::new(code, c.reply_text.to_string_lossy()));
                return;
            }
            Outbound::Method { channel, method } => {
                let Some(ch) = r.channels.get_mut(&channel) else {
                    return;
                };
                match method {
                    Method::ChannelClose(c) => {
                        let code =
                            ReplyCode::from_u16(c.reply_code).unwrap_or(ReplyCode::InternalError);
                        ch.close(AmqpError::new(code, c.reply_text.to_string_lossy()));
                    }
                    // The server cancelled a consumer (its queue was deleted).
                    Method::BasicCancel(c) => {
                        ch.consumers.remove(&c.consumer_tag);
                    }
                    Method::BasicConsumeOk(ok) => {
                        if let Some(Pending::Consume(tx, reply)) = ch.pending.pop_front() {
                            ch.consumers.insert(ok.consumer_tag.clone(), tx);
                            let _ = reply.send(Ok(Reply::Method(Method::BasicConsumeOk(ok))));
                        }
                    }
                    Method::BasicGetEmpty => {
                        if let Some(Pending::Reply(tx)) = ch.pending.pop_front() {
                            let _ = tx.send(Ok(Reply::Get(None)));
                        }
                    }
                    other => {
                        if let Method::BasicCancelOk(c) = &other {
                            ch.consumers.remove(&c.consumer_tag);
                        }
                        if let Some(Pending::Reply(tx)) = ch.pending.pop_front() {
                            let _ = tx.send(Ok(Reply::Method(other)));
                        }
                    }
                }
                return;
            }
            Outbound::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                msg,
            } => {
                let Some(ch) = r.channels.get_mut(&channel) else {
                    return;
                };
                let Some(tx) = ch.consumers.get(&consumer_tag).cloned() else {
                    return;
                };
                (
                    tx,
                    delivery(
                        conn,
                        channel,
                        Some(consumer_tag),
                        delivery_tag,
                        redelivered,
                        &msg,
                    ),
                )
            }
            Outbound::GetOk {
                channel,
                delivery_tag,
                redelivered,
                msg,
                ..
            } => {
                let d = delivery(conn, channel, None, delivery_tag, redelivered, &msg);
                if let Some(Pending::Reply(tx)) = r
                    .channels
                    .get_mut(&channel)
                    .and_then(|ch| ch.pending.pop_front())
                {
                    let _ = tx.send(Ok(Reply::Get(Some(d))));
                }
                return;
            }
            Outbound::Return {
                channel,
                reply_code,
                reply_text,
                msg,
            } => {
                if let Some(ch) = r.channels.get_mut(&channel) {
                    let ret = Returned {
                        reply_code,
                        reply_text: reply_text.to_string(),
                        exchange: msg.exchange.to_string(),
                        routing_key: msg.routing_key.to_string(),
                        properties: msg.properties.clone(),
                        body: msg.body.clone(),
                    };
                    ch.returns.push(ret.clone());
                    ch.last_return = Some(ret);
                }
                return;
            }
            Outbound::Confirm {
                channel,
                delivery_tag,
                ack,
            } => {
                if let Some(ch) = r.channels.get_mut(&channel) {
                    let returned = ch.last_return.take();
                    while let Some((seq, _)) = ch.confirms.front() {
                        if *seq > delivery_tag {
                            break;
                        }
                        if let Some((seq, tx)) = ch.confirms.pop_front() {
                            let outcome = ConfirmOutcome {
                                ack,
                                returned: if seq == delivery_tag {
                                    returned.clone()
                                } else {
                                    None
                                },
                            };
                            let _ = tx.send(outcome);
                        }
                    }
                }
                return;
            }
            Outbound::Heartbeat => return,
        }
    };
    // Waiting for a slow consumer holds back this connection's other items,
    // as a socket would; the outbox budget then stops further deliveries.
    let (tx, d) = sender;
    let _ = tx.send(d).await;
}
