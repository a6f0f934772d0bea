//! An in-process channel and what it hands out: consumers, deliveries, confirms.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use warren_protocol::{
    BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties, BasicPublish,
    BasicQos, BasicReject, ConfirmSelect, ContentHeader, ExchangeBind, ExchangeDeclare,
    ExchangeDelete, ExchangeUnbind, FieldTable, Frame, Method, QueueBind, QueueDeclare,
    QueueDelete, QueuePurge, QueueUnbind, ShortStr,
};

use super::connection::ConnInner;
use super::router::{ConfirmOutcome, Pending, Reply};
use super::short;
use crate::error::AmqpError;

/// Options of exchange.declare.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeDeclareOptions {
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
}

/// Options of queue.declare.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDeclareOptions {
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

/// Options of queue.delete.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDeleteOptions {
    pub if_unused: bool,
    pub if_empty: bool,
}

/// Options of basic.publish.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    pub mandatory: bool,
}

/// Options of basic.consume.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// Empty: the broker generates one (`amq.ctag-…`).
    pub consumer_tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    pub arguments: FieldTable,
}

/// What queue.declare answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// A message the broker returned as unroutable.
#[derive(Debug, Clone, PartialEq)]
pub struct Returned {
    pub reply_code: u16,
    pub reply_text: String,
    pub exchange: String,
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Bytes,
}

impl Eq for Returned {}

/// A message delivered to a consumer or fetched with basic.get.
#[derive(Debug)]
pub struct Delivery {
    pub delivery_tag: u64,
    pub redelivered: bool,
    /// `None` for basic.get.
    pub consumer_tag: Option<ShortStr>,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: BasicProperties,
    /// The body as published: the same bytes, not a copy.
    pub body: Bytes,
    pub(crate) conn: Weak<ConnInner>,
    pub(crate) channel: u16,
}

impl Delivery {
    fn feed(&self, method: Method) -> Result<(), AmqpError> {
        let conn = self
            .conn
            .upgrade()
            .ok_or_else(|| AmqpError::channel_error("connection closed"))?;
        conn.feed(
            self.channel,
            Frame::Method {
                channel: self.channel,
                method,
            },
        )
    }

    /// Acknowledges this message.
    pub async fn ack(&self) -> Result<(), AmqpError> {
        self.feed(Method::BasicAck(BasicAck {
            delivery_tag: self.delivery_tag,
            multiple: false,
        }))
    }

    /// Rejects this message, putting it back in its queue if `requeue`.
    pub async fn nack(&self, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicNack(BasicNack {
            delivery_tag: self.delivery_tag,
            multiple: false,
            requeue,
        }))
    }

    /// basic.reject: like [`Delivery::nack`] for one message.
    pub async fn reject(&self, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicReject(BasicReject {
            delivery_tag: self.delivery_tag,
            requeue,
        }))
    }
}

/// A stream of deliveries for one consumer; ends when the consumer is
/// cancelled (by the client or because its queue was deleted) or the
/// channel closes.
pub struct Consumer {
    tag: String,
    rx: mpsc::Receiver<Delivery>,
}

impl Consumer {
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl futures::Stream for Consumer {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.rx.poll_recv(cx)
    }
}

/// Resolves once the broker confirms a publish (immediately when the
/// channel is not in confirm mode).
pub struct Confirmation {
    rx: Option<oneshot::Receiver<ConfirmOutcome>>,
}

impl Confirmation {
    /// Waits for the confirm: `Ok(true)` for an ack, `Ok(false)` for a nack.
    pub async fn wait(self) -> Result<bool, AmqpError> {
        Ok(self.outcome().await?.ack)
    }

    /// Waits for the confirm and any basic.return that came before it.
    pub async fn outcome(self) -> Result<ConfirmOutcome, AmqpError> {
        match self.rx {
            None => Ok(ConfirmOutcome {
                ack: true,
                returned: None,
            }),
            Some(rx) => rx
                .await
                .map_err(|_| AmqpError::channel_error("channel closed before the confirm")),
        }
    }
}

impl Future for Confirmation {
    type Output = Result<bool, AmqpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.rx.as_mut() {
            None => Poll::Ready(Ok(true)),
            Some(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.map(|o| o.ack)
                    .map_err(|_| AmqpError::channel_error("channel closed before the confirm"))
            }),
        }
    }
}

struct ChannelInner {
    conn: Arc<ConnInner>,
    id: u16,
    /// Next publish sequence number once in confirm mode.
    confirm_seq: parking_lot::Mutex<Option<u64>>,
}

/// An in-process AMQP channel. Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl Channel {
    pub(crate) fn new(conn: Arc<ConnInner>, id: u16) -> Channel {
        Channel {
            inner: Arc::new(ChannelInner {
                conn,
                id,
                confirm_seq: parking_lot::Mutex::new(None),
            }),
        }
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }

    fn feed(&self, method: Method) -> Result<(), AmqpError> {
        self.check_open()?;
        self.inner.conn.feed(
            self.inner.id,
            Frame::Method {
                channel: self.inner.id,
                method,
            },
        )
    }

    fn check_open(&self) -> Result<(), AmqpError> {
        let routes = self.inner.conn.routes.lock();
        if let Some(e) = &routes.closed {
            return Err(e.clone());
        }
        match routes.channels.get(&self.inner.id) {
            Some(ch) => ch.closed.clone().map_or(Ok(()), Err),
            None => Err(AmqpError::channel_error("channel closed")),
        }
    }

    async fn rpc(
        &self,
        method: Method,
        pending: impl FnOnce(super::router::ReplyTx) -> Pending,
    ) -> Result<Reply, AmqpError> {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        if let Some(ch) = self
            .inner
            .conn
            .routes
            .lock()
            .channels
            .get_mut(&self.inner.id)
        {
            ch.pending.push_back(pending(tx));
        }
        self.inner.conn.feed(
            self.inner.id,
            Frame::Method {
                channel: self.inner.id,
                method,
            },
        )?;
        rx.await
            .map_err(|_| AmqpError::channel_error("channel closed"))?
    }

    pub(crate) async fn call(&self, method: Method) -> Result<Method, AmqpError> {
        match self.rpc(method, Pending::Reply).await? {
            Reply::Method(m) => Ok(m),
            Reply::Get(_) => Err(AmqpError::internal("unexpected reply")),
        }
    }

    pub async fn exchange_declare(
        &self,
        name: &str,
        kind: &str,
        options: ExchangeDeclareOptions,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        self.call(Method::ExchangeDeclare(ExchangeDeclare {
            exchange: short(name)?,
            kind: short(kind)?,
            passive: options.passive,
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            no_wait: false,
            arguments,
        }))
        .await
        .map(drop)
    }

    pub async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        self.call(Method::ExchangeDelete(ExchangeDelete {
            exchange: short(name)?,
            if_unused,
            no_wait: false,
        }))
        .await
        .map(drop)
    }

    pub async fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        self.call(Method::ExchangeBind(ExchangeBind {
            destination: short(destination)?,
            source: short(source)?,
            routing_key: short(routing_key)?,
            no_wait: false,
            arguments,
        }))
        .await
        .map(drop)
    }

    pub async fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        self.call(Method::ExchangeUnbind(ExchangeUnbind {
            destination: short(destination)?,
            source: short(source)?,
            routing_key: short(routing_key)?,
            no_wait: false,
            arguments,
        }))
        .await
        .map(drop)
    }

    pub async fn queue_declare(
        &self,
        name: &str,
        options: QueueDeclareOptions,
        arguments: FieldTable,
    ) -> Result<QueueInfo, AmqpError> {
        let reply = self
            .call(Method::QueueDeclare(QueueDeclare {
                queue: short(name)?,
                passive: options.passive,
                durable: options.durable,
                exclusive: options.exclusive,
                auto_delete: options.auto_delete,
                no_wait: false,
                arguments,
            }))
            .await?;
        match reply {
            Method::QueueDeclareOk(ok) => Ok(QueueInfo {
                name: ok.queue.to_string(),
                message_count: ok.message_count,
                consumer_count: ok.consumer_count,
            }),
            _ => Err(AmqpError::internal("unexpected reply to queue.declare")),
        }
    }

    pub async fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        self.call(Method::QueueBind(QueueBind {
            queue: short(queue)?,
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            no_wait: false,
            arguments,
        }))
        .await
        .map(drop)
    }

    pub async fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        self.call(Method::QueueUnbind(QueueUnbind {
            queue: short(queue)?,
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            arguments,
        }))
        .await
        .map(drop)
    }

    /// Removes every ready message; returns how many.
    pub async fn queue_purge(&self, queue: &str) -> Result<u32, AmqpError> {
        match self
            .call(Method::QueuePurge(QueuePurge {
                queue: short(queue)?,
                no_wait: false,
            }))
            .await?
        {
            Method::QueuePurgeOk(ok) => Ok(ok.message_count),
            _ => Err(AmqpError::internal("unexpected reply to queue.purge")),
        }
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn queue_delete(
        &self,
        queue: &str,
        options: QueueDeleteOptions,
    ) -> Result<u32, AmqpError> {
        let m = Method::QueueDelete(QueueDelete {
            queue: short(queue)?,
            if_unused: options.if_unused,
            if_empty: options.if_empty,
            no_wait: false,
        });
        match self.call(m).await? {
            Method::QueueDeleteOk(ok) => Ok(ok.message_count),
            _ => Err(AmqpError::internal("unexpected reply to queue.delete")),
        }
    }

    /// basic.qos: `global` applies the limit to the whole channel, otherwise
    /// to each consumer created afterwards (as RabbitMQ does).
    pub async fn basic_qos(&self, prefetch_count: u16, global: bool) -> Result<(), AmqpError> {
        self.call(Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global,
        }))
        .await
        .map(drop)
    }

    /// Puts the channel in confirm mode.
    pub async fn confirm_select(&self) -> Result<(), AmqpError> {
        self.call(Method::ConfirmSelect(ConfirmSelect { no_wait: false }))
            .await?;
        let mut seq = self.inner.confirm_seq.lock();
        if seq.is_none() {
            *seq = Some(1);
        }
        Ok(())
    }

    /// Publishes a message. The body is shared, never copied. On a confirm
    /// channel, the returned [`Confirmation`] resolves with the broker's ack.
    pub async fn basic_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        properties: BasicProperties,
        body: Bytes,
    ) -> Result<Confirmation, AmqpError> {
        let publish = BasicPublish {
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            mandatory: options.mandatory,
            immediate: false,
        };
        self.publish_raw(publish, properties, body)
    }

    fn publish_raw(
        &self,
        publish: BasicPublish,
        properties: BasicProperties,
        body: Bytes,
    ) -> Result<Confirmation, AmqpError> {
        self.check_open()?;
        let id = self.inner.id;
        let rx = {
            let mut seq = self.inner.confirm_seq.lock();
            match seq.as_mut() {
                None => None,
                Some(s) => {
                    let (tx, rx) = oneshot::channel();
                    if let Some(ch) = self.inner.conn.routes.lock().channels.get_mut(&id) {
                        ch.confirms.push_back((*s, tx));
                    }
                    *s += 1;
                    Some(rx)
                }
            }
        };
        let size = body.len() as u64;
        let conn = &self.inner.conn;
        conn.feed(
            id,
            Frame::Method {
                channel: id,
                method: Method::BasicPublish(publish),
            },
        )?;
        let header = ContentHeader {
            class_id: 60,
            body_size: size,
            properties,
            raw_properties: Bytes::new(),
        };
        conn.feed(
            id,
            Frame::Header {
                channel: id,
                header,
            },
        )?;
        if size > 0 {
            conn.feed(
                id,
                Frame::Body {
                    channel: id,
                    payload: body,
                },
            )?;
        }
        Ok(Confirmation { rx })
    }

    /// Starts a consumer; its deliveries come as a stream.
    pub async fn basic_consume(
        &self,
        queue: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, AmqpError> {
        let (tx, rx) = mpsc::channel(1024);
        let m = Method::BasicConsume(BasicConsume {
            queue: short(queue)?,
            consumer_tag: short(&options.consumer_tag)?,
            no_local: false,
            no_ack: options.no_ack,
            exclusive: options.exclusive,
            no_wait: false,
            arguments: options.arguments,
        });
        match self.rpc(m, |reply| Pending::Consume(tx, reply)).await? {
            Reply::Method(Method::BasicConsumeOk(ok)) => Ok(Consumer {
                tag: ok.consumer_tag.to_string(),
                rx,
            }),
            _ => Err(AmqpError::internal("unexpected reply to basic.consume")),
        }
    }

    /// Cancels a consumer; its stream ends.
    pub async fn basic_cancel(&self, consumer_tag: &str) -> Result<(), AmqpError> {
        self.call(Method::BasicCancel(BasicCancel {
            consumer_tag: short(consumer_tag)?,
            no_wait: false,
        }))
        .await
        .map(drop)
    }

    /// Fetches one message, or `None` when the queue is empty.
    pub async fn basic_get(
        &self,
        queue: &str,
        no_ack: bool,
    ) -> Result<Option<Delivery>, AmqpError> {
        match self
            .rpc(
                Method::BasicGet(BasicGet {
                    queue: short(queue)?,
                    no_ack,
                }),
                Pending::Reply,
            )
            .await?
        {
            Reply::Get(d) => Ok(d),
            Reply::Method(_) => Err(AmqpError::internal("unexpected reply to basic.get")),
        }
    }

    pub async fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicAck(BasicAck {
            delivery_tag,
            multiple,
        }))
    }

    pub async fn basic_nack(
        &self,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        self.feed(Method::BasicNack(BasicNack {
            delivery_tag,
            multiple,
            requeue,
        }))
    }

    pub async fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicReject(BasicReject {
            delivery_tag,
            requeue,
        }))
    }

    /// Messages returned as unroutable so far (mandatory publishes), oldest first.
    pub fn take_returned(&self) -> Vec<Returned> {
        self.inner
            .conn
            .routes
            .lock()
            .channels
            .get_mut(&self.inner.id)
            .map(|ch| std::mem::take(&mut ch.returns))
            .unwrap_or_default()
    }

    pub async fn tx_select(&self) -> Result<(), AmqpError> {
        self.call(Method::TxSelect).await.map(drop)
    }

    pub async fn tx_commit(&self) -> Result<(), AmqpError> {
        self.call(Method::TxCommit).await.map(drop)
    }

    pub async fn tx_rollback(&self) -> Result<(), AmqpError> {
        self.call(Method::TxRollback).await.map(drop)
    }

    /// Closes the channel: its consumers stop and unacked messages go back.
    pub async fn close(&self) -> Result<(), AmqpError> {
        let close = Method::ChannelClose(warren_protocol::ChannelClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("Goodbye"),
            class_id: 0,
            method_id: 0,
        });
        let r = self.call(close).await.map(drop);
        if let Some(ch) = self
            .inner
            .conn
            .routes
            .lock()
            .channels
            .get_mut(&self.inner.id)
        {
            ch.close(AmqpError::channel_error("channel closed"));
        }
        r
    }
}
