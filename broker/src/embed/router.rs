//! Hands what the core queued for an in-process connection to whoever waits
//! for it: RPC replies, consumer streams, publisher confirms.
//!
//! One task per connection drains the connection's outbox in batches, as
//! the TCP writer does, and takes the routes lock once per batch. Runs of
//! deliveries to one consumer are handed over with one lock of the
//! consumer's buffer. The outbox budget for a delivery is released only
//! when the consumer's stream takes it, so a consumer that stops reading
//! holds its queue back exactly as a TCP client that stops reading does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot, watch};
use warren_protocol::{Method, ReplyCode, ShortStr};

use super::connection::ConnInner;
use super::consumer::{ConfirmOutcome, ConsumerShared, Delivery, Returned};
use crate::core::link::ConnectionLink;
use crate::core::outbox::Outbound;
use crate::error::AmqpError;

/// What an RPC gets back.
pub(crate) enum Reply {
    Method(Method),
    Get(Option<Delivery>),
}

pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, AmqpError>>;

/// A caller waiting for a reply on a channel; replies come in call order.
pub(crate) enum Pending {
    Reply(ReplyTx),
    /// basic.consume: the stream's buffer is registered under the tag the
    /// broker answers with, before any delivery for it is routed.
    Consume(Arc<ConsumerShared>, ReplyTx),
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

/// The routes of one channel.
pub(crate) struct ChannelRoutes {
    pub pending: VecDeque<Pending>,
    /// Few per channel: a linear search beats hashing the tag.
    pub consumers: Vec<(ShortStr, Arc<ConsumerShared>)>,
    /// Publish sequence numbers waiting for their confirm, in order.
    pub confirms: VecDeque<(u64, oneshot::Sender<ConfirmOutcome>)>,
    /// Next publish sequence number once in confirm mode.
    pub next_confirm: Option<u64>,
    /// A basic.return waiting for the confirm of the same publish.
    pub last_return: Option<Returned>,
    /// Every basic.return not yet taken by the application.
    pub returns: Vec<Returned>,
    /// Why the channel closed; `None` while open.
    pub closed: Option<AmqpError>,
    /// Mirrors `closed.is_some()` for the channel handle's fast path.
    closed_flag: Arc<AtomicBool>,
    /// The handle was dropped while open: remove once close-ok comes.
    pub orphaned: bool,
}

impl ChannelRoutes {
    pub fn new() -> ChannelRoutes {
        ChannelRoutes {
            pending: VecDeque::new(),
            consumers: Vec::new(),
            confirms: VecDeque::new(),
            next_confirm: None,
            last_return: None,
            returns: Vec::new(),
            closed: None,
            closed_flag: Arc::new(AtomicBool::new(false)),
            orphaned: false,
        }
    }

    pub fn closed_flag(&self) -> Arc<AtomicBool> {
        self.closed_flag.clone()
    }

    /// Fails every waiting caller, ends every consumer stream and drops
    /// unconfirmed publishes (their [`super::Confirmation`]s then fail).
    /// The first reason given is kept.
    pub fn close(&mut self, e: AmqpError) {
        for p in self.pending.drain(..) {
            p.fail(e.clone());
        }
        for (_, c) in self.consumers.drain(..) {
            c.end();
        }
        self.confirms.clear();
        self.closed_flag.store(true, Ordering::Release);
        if self.closed.is_none() {
            self.closed = Some(e);
        }
    }

    fn remove_consumer(&mut self, tag: &ShortStr) {
        if let Some(i) = self.consumers.iter().position(|(t, _)| t == tag) {
            let (_, c) = self.consumers.swap_remove(i);
            c.end();
        }
    }
}

#[derive(Default)]
pub(crate) struct Routes {
    pub channels: FxHashMap<u16, ChannelRoutes>,
    /// Why the connection closed; `None` while open.
    pub closed: Option<AmqpError>,
    /// Where the search for a free channel number starts: numbers are
    /// handed out in turn so a late reply for a closed channel cannot reach
    /// a new channel with the same number.
    next_channel: u16,
}

impl Routes {
    pub fn close_all(&mut self, e: AmqpError) {
        for ch in self.channels.values_mut() {
            ch.close(e.clone());
        }
        if self.closed.is_none() {
            self.closed = Some(e);
        }
    }

    /// The next channel number not in use, in `1..=max`.
    pub fn free_channel(&mut self, max: u16) -> Option<u16> {
        let max = max.max(1);
        for _ in 0..max {
            self.next_channel = if self.next_channel >= max {
                1
            } else {
                self.next_channel + 1
            };
            if !self.channels.contains_key(&self.next_channel) {
                return Some(self.next_channel);
            }
        }
        None
    }
}

/// Runs until the connection's outbox is closed and drained. Holds a task
/// guard of the broker, so [`crate::Broker::shutdown`] waits for it; on
/// shutdown it closes the connection with 320 CONNECTION_FORCED.
pub(crate) async fn run(
    link: Arc<ConnectionLink>,
    routes: Arc<Mutex<Routes>>,
    conn: Weak<ConnInner>,
    mut shutdown: watch::Receiver<bool>,
    _guard: mpsc::Sender<()>,
) {
    let mut batch = VecDeque::new();
    let mut staging = Staging::default();
    let mut shutting_down = false;
    let mut just_routed = false;
    loop {
        let total = link.outbox.drain_into(&mut batch);
        if batch.is_empty() {
            if link.outbox.is_closed() {
                break;
            }
            if std::mem::take(&mut just_routed) {
                // Let the publisher add more before going to sleep: a wake-up
                // from another thread costs more than one more poll.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = link.outbox.notified() => {}
                _ = shutdown.wait_for(|s| *s), if !shutting_down => {
                    shutting_down = true;
                    let reason = AmqpError::new(ReplyCode::ConnectionForced, "broker shutdown");
                    match conn.upgrade() {
                        Some(c) => c.close(reason),
                        None => {
                            routes.lock().close_all(reason);
                            link.outbox.close();
                        }
                    }
                }
            }
            continue;
        }
        just_routed = true;
        let handed = route_batch(&mut batch, &routes, &conn, &mut staging);
        link.outbox.written(total.saturating_sub(handed));
    }
    routes.lock().close_all(AmqpError::new(
        ReplyCode::ConnectionForced,
        "connection closed",
    ));
}

/// Deliveries collected for one consumer, handed over in one go.
#[derive(Default)]
struct Staging {
    items: VecDeque<Delivery>,
    bytes: usize,
    target: Option<(u16, ShortStr, Arc<ConsumerShared>)>,
}

impl Staging {
    /// Hands the staged deliveries to their consumer; returns the outbox
    /// budget they carry if the consumer took them.
    fn flush(&mut self) -> usize {
        let bytes = std::mem::take(&mut self.bytes);
        if self.items.is_empty() {
            return 0;
        }
        match &self.target {
            Some((_, _, c)) if c.push_batch(&mut self.items, bytes) => bytes,
            _ => {
                self.items.clear();
                0
            }
        }
    }
}

/// Routes one drained batch; returns the outbox budget now held by
/// consumer buffers.
fn route_batch(
    batch: &mut VecDeque<Outbound>,
    routes: &Mutex<Routes>,
    conn: &Weak<ConnInner>,
    staging: &mut Staging,
) -> usize {
    let mut handed = 0;
    let mut r = routes.lock();
    for item in batch.drain(..) {
        match item {
            Outbound::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                msg,
            } => {
                // The tag is a clone of the one the consumer was registered
                // with: the same bytes, so the pointer usually settles it.
                let same = matches!(&staging.target,
                    Some((c, t, _)) if *c == channel
                        && (std::ptr::eq(t.as_bytes(), consumer_tag.as_bytes())
                            || *t == consumer_tag));
                if !same {
                    handed += staging.flush();
                    staging.target = r.channels.get(&channel).and_then(|ch| {
                        ch.consumers
                            .iter()
                            .find(|(t, _)| *t == consumer_tag)
                            .map(|(t, c)| (channel, t.clone(), c.clone()))
                    });
                }
                if staging.target.is_none() {
                    // The consumer is gone (cancelled, its stream dropped).
                    continue;
                }
                staging.bytes += msg.wire_size();
                staging.items.push_back(Delivery::new(
                    msg,
                    delivery_tag,
                    redelivered,
                    Some(consumer_tag),
                    conn.clone(),
                    channel,
                ));
            }
            other => {
                handed += staging.flush();
                staging.target = None;
                route_other(other, &mut r, conn);
            }
        }
    }
    handed += staging.flush();
    staging.target = None;
    handed
}

fn route_other(item: Outbound, r: &mut Routes, conn: &Weak<ConnInner>) {
    match item {
        Outbound::Method { channel, method } => {
            let method = *method;
            if let (0, Method::ConnectionClose(c)) = (channel, &method) {
                let code = ReplyCode::from_u16(c.reply_code).unwrap_or(ReplyCode::ConnectionForced);
                r.close_all(AmqpError::new(code, c.reply_text.to_string_lossy()));
                return;
            }
            if let Method::ChannelCloseOk = method {
                if r.channels.get(&channel).is_some_and(|c| c.orphaned) {
                    r.channels.remove(&channel);
                    return;
                }
            }
            if let Some(ch) = r.channels.get_mut(&channel) {
                route_method(ch, method);
            }
        }
        Outbound::Deliver { .. } => {}
        Outbound::GetOk {
            channel,
            delivery_tag,
            redelivered,
            msg,
            ..
        } => {
            let d = Delivery::new(msg, delivery_tag, redelivered, None, conn.clone(), channel);
            if let Some(Pending::Reply(tx)) = r
                .channels
                .get_mut(&channel)
                .and_then(|ch| ch.pending.pop_front())
            {
                let _ = tx.send(Ok(Reply::Get(Some(d))));
            }
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
                    reply_text: reply_text.to_string_lossy().into_owned(),
                    exchange: msg.exchange.to_string_lossy().into_owned(),
                    routing_key: msg.routing_key.to_string_lossy().into_owned(),
                    properties: msg.properties.to_basic(),
                    body: msg.body.clone(),
                };
                ch.returns.push(ret.clone());
                ch.last_return = Some(ret);
            }
        }
        Outbound::Confirm {
            channel,
            delivery_tag,
            ack,
        } => {
            if let Some(ch) = r.channels.get_mut(&channel) {
                let returned = ch.last_return.take();
                while ch.confirms.front().is_some_and(|(s, _)| *s <= delivery_tag) {
                    if let Some((seq, tx)) = ch.confirms.pop_front() {
                        let returned = if seq == delivery_tag {
                            returned.clone()
                        } else {
                            None
                        };
                        let _ = tx.send(ConfirmOutcome { ack, returned });
                    }
                }
            }
        }
        Outbound::Heartbeat => {}
    }
}

fn route_method(ch: &mut ChannelRoutes, method: Method) {
    match method {
        Method::ChannelClose(c) => {
            let code = ReplyCode::from_u16(c.reply_code).unwrap_or(ReplyCode::InternalError);
            ch.close(AmqpError::new(code, c.reply_text.to_string_lossy()));
        }
        // The server cancelled a consumer (its queue was deleted).
        Method::BasicCancel(c) => ch.remove_consumer(&c.consumer_tag),
        Method::BasicConsumeOk(ok) => {
            if let Some(Pending::Consume(c, reply)) = ch.pending.pop_front() {
                ch.consumers.push((ok.consumer_tag.clone(), c));
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
                ch.remove_consumer(&c.consumer_tag);
            }
            if let Some(p) = ch.pending.pop_front() {
                match p {
                    Pending::Reply(tx) | Pending::Consume(_, tx) => {
                        let _ = tx.send(Ok(Reply::Method(other)));
                    }
                }
            }
        }
    }
}
