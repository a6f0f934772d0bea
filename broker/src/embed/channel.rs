//! An in-process channel: the methods of an AMQP channel as calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use warren_protocol::{
    BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties, BasicPublish,
    BasicQos, BasicReject, ChannelClose, ConfirmSelect, ExchangeBind, ExchangeDeclare,
    ExchangeDelete, ExchangeUnbind, FieldTable, Frame, Method, QueueBind, QueueDeclare,
    QueueDelete, QueuePurge, QueueUnbind, ShortStr,
};

use super::connection::ConnInner;
use super::consumer::{Confirmation, Consumer, ConsumerShared, Returned};
use super::router::{Pending, Reply, ReplyTx};
use super::short;
use crate::alarm::MemoryAlarm;
use crate::core::message::{Message, MessageProperties};
use crate::core::outbox::Outbox;
use crate::core::queue::Queue;
use crate::error::AmqpError;

/// Options of exchange.declare.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeDeclareOptions {
    /// Only check that the exchange exists (404 NOT_FOUND if not).
    pub passive: bool,
    /// Survives a broker restart (once the broker has a data directory).
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Publishers cannot publish to it; only exchange-to-exchange bindings feed it.
    pub internal: bool,
}

/// Options of queue.declare.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDeclareOptions {
    /// Only check that the queue exists (404 NOT_FOUND if not).
    pub passive: bool,
    /// Survives a broker restart (once the broker has a data directory).
    pub durable: bool,
    /// Belongs to this connection: other connections get 405
    /// RESOURCE_LOCKED, and it is deleted when this connection closes.
    pub exclusive: bool,
    /// Deleted when its last consumer is cancelled.
    pub auto_delete: bool,
}

/// Options of queue.delete.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDeleteOptions {
    /// Refuse (406) if the queue has consumers.
    pub if_unused: bool,
    /// Refuse (406) if the queue holds ready messages.
    pub if_empty: bool,
}

/// Options of basic.publish.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    /// Return the message (see [`Channel::take_returned`] and
    /// [`super::ConfirmOutcome::returned`]) if it reaches no queue.
    pub mandatory: bool,
}

/// Options of basic.consume.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// The consumer tag; empty to let the broker generate one (`amq.ctag-…`).
    pub consumer_tag: String,
    /// Deliveries need no acknowledgement (auto-ack).
    pub no_ack: bool,
    /// No other consumer may consume from the queue meanwhile (403).
    pub exclusive: bool,
    /// Consumer arguments, e.g. `x-priority`.
    pub arguments: FieldTable,
}

/// What queue.declare answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue's name (generated as `amq.gen-…` when declared with "").
    pub name: String,
    /// Ready messages in the queue.
    pub message_count: u32,
    /// Consumers attached to the queue.
    pub consumer_count: u32,
}

/// How many publishes on a channel between two cooperative yields.
const YIELD_EVERY: u32 = 128;

/// How long a publisher waits for a congested queue before it goes on
/// (and may be held again by its next publish), as over TCP.
const FLOW_WAIT: Duration = Duration::from_millis(500);

/// What a publish future does before it gives its result: wait while a
/// queue it fed is far behind its consumers (flow control) or while the
/// memory alarm is on (as a TCP publisher's connection is blocked), and
/// now and then yield to the runtime so consumers on the same thread get
/// to run.
struct Pacing {
    flow: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    yield_first: bool,
}

impl Pacing {
    fn new(congested: Vec<Arc<Queue>>, alarm: &Arc<MemoryAlarm>, yield_first: bool) -> Pacing {
        let alarm = alarm.is_on().then(|| alarm.clone());
        let flow = (!congested.is_empty() || alarm.is_some()).then(|| {
            Box::pin(async move {
                if let Some(alarm) = alarm {
                    alarm.cleared().await;
                }
                for q in congested {
                    q.wait_uncongested(FLOW_WAIT).await;
                }
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        });
        Pacing { flow, yield_first }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(flow) = &mut self.flow {
            if flow.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.flow = None;
            // Waiting was the yield.
            self.yield_first = false;
        }
        if self.yield_first {
            self.yield_first = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacing")
            .field("held_by_flow_control", &self.flow.is_some())
            .field("yield_first", &self.yield_first)
            .finish()
    }
}

/// What a batch publish did.
struct BatchDone {
    confirmations: Vec<Confirmation>,
    published: usize,
    /// Queues to wait for (flow control).
    congested: Vec<Arc<Queue>>,
}

/// The outcome of [`Channel::basic_publish`]. The message was published
/// already; awaiting this gives the result — after waiting, like a TCP
/// publisher, while a queue it reached is far behind its consumers on
/// other connections, and now and then after a yield to the runtime.
#[derive(Debug)]
#[must_use = "the message is published already; await this to see whether it was refused"]
pub struct Publish {
    result: Option<Result<Confirmation, AmqpError>>,
    pacing: Pacing,
}

impl Future for Publish {
    type Output = Result<Confirmation, AmqpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pacing.poll(cx).is_pending() {
            return Poll::Pending;
        }
        match self.result.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Ready(Err(AmqpError::internal("publish polled after completion"))),
        }
    }
}

/// The outcome of [`Channel::basic_publish_batch`]. The messages were
/// published already; awaiting this gives the result, paced as
/// [`Publish`] is.
#[derive(Debug)]
#[must_use = "the messages are published already; await this to see whether they were refused"]
pub struct PublishBatch {
    result: Option<Result<Vec<Confirmation>, AmqpError>>,
    pacing: Pacing,
}

impl Future for PublishBatch {
    type Output = Result<Vec<Confirmation>, AmqpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pacing.poll(cx).is_pending() {
            return Poll::Pending;
        }
        match self.result.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Ready(Err(AmqpError::internal("publish polled after completion"))),
        }
    }
}

struct ChannelInner {
    conn: Arc<ConnInner>,
    id: u16,
    /// Set (by the router or a failing call) once the channel is closed.
    closed: Arc<AtomicBool>,
    /// Set once confirm.select succeeded.
    confirming: AtomicBool,
    /// The names of the last publish: publishing again to the same exchange
    /// and routing key reuses them instead of copying the strings.
    names: Mutex<(ShortStr, ShortStr)>,
    /// The messages of a batch publish, kept between batches so that a
    /// batch costs no allocation of its own.
    batch: Mutex<Vec<Arc<Message>>>,
    /// Publishes so far, for the cooperative yield of [`Publish`].
    publishes: AtomicU32,
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        let id = self.id;
        let closing = self.conn.exec(id, |s, routes| {
            let mut r = routes.lock();
            match r.channels.get_mut(&id) {
                Some(ch) if ch.closed.is_none() => {
                    // Close it in the core; the router forgets it on close-ok.
                    ch.orphaned = true;
                    ch.close(AmqpError::channel_error("channel dropped"));
                    drop(r);
                    s.handle_frame(Frame::Method {
                        channel: id,
                        method: Method::ChannelClose(ChannelClose {
                            reply_code: 200,
                            reply_text: ShortStr::from_static("Goodbye"),
                            class_id: 0,
                            method_id: 0,
                        }),
                    })
                    .map(|_| true)
                }
                _ => Ok(false),
            }
        });
        if !matches!(closing, Ok(true)) {
            self.conn.routes.lock().channels.remove(&id);
        }
    }
}

/// An in-process AMQP channel. Cheap to clone; all clones are the same
/// channel, which closes when [`Channel::close`] is called or when the
/// last clone (and the last [`Consumer`] on it) is dropped.
///
/// Every method does what the AMQP method of the same name does over TCP,
/// with the same errors. A call that fails with a channel-level error
/// closes the channel: the connection goes on, but every later call on
/// this channel returns that same error; open another channel.
///
/// The `async` methods that expect a reply (declare, bind, consume, get,
/// qos, tx, close, …) wait for it; the others (publish, ack, nack, reject)
/// complete without waiting.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id)
            .field("open", &!self.inner.closed.load(Ordering::Acquire))
            .finish()
    }
}

impl Channel {
    pub(crate) fn new(conn: Arc<ConnInner>, id: u16, closed: Arc<AtomicBool>) -> Channel {
        Channel {
            inner: Arc::new(ChannelInner {
                conn,
                id,
                closed,
                confirming: AtomicBool::new(false),
                names: Mutex::new((ShortStr::default(), ShortStr::default())),
                batch: Mutex::new(Vec::new()),
                publishes: AtomicU32::new(0),
            }),
        }
    }

    /// The channel number.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// False once the channel was closed, by [`Channel::close`], by an
    /// error, or with its connection.
    pub fn is_open(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.conn.link.outbox
    }

    fn check_open(&self) -> Result<(), AmqpError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(self.inner.conn.channel_error(self.inner.id));
        }
        Ok(())
    }

    fn feed(&self, method: Method) -> Result<(), AmqpError> {
        self.check_open()?;
        self.inner.conn.feed(self.inner.id, method)
    }

    /// Sends `method` and waits for its reply. The waiter is registered
    /// under the session lock, so replies match calls even when several
    /// tasks share the channel.
    async fn rpc(
        &self,
        method: Method,
        pending: impl FnOnce(ReplyTx) -> Pending,
    ) -> Result<Reply, AmqpError> {
        self.check_open()?;
        let id = self.inner.id;
        let (tx, rx) = oneshot::channel();
        self.inner.conn.exec(id, |s, routes| {
            if let Some(ch) = routes.lock().channels.get_mut(&id) {
                ch.pending.push_back(pending(tx));
            }
            s.handle_frame(Frame::Method {
                channel: id,
                method,
            })
            .map(drop)
        })?;
        match rx.await {
            Ok(reply) => reply,
            Err(_) => Err(self.inner.conn.channel_error(id)),
        }
    }

    async fn call(&self, method: Method) -> Result<Method, AmqpError> {
        match self.rpc(method, Pending::Reply).await? {
            Reply::Method(m) => Ok(m),
            Reply::Get(_) => Err(AmqpError::internal("unexpected reply")),
        }
    }

    /// exchange.declare: creates an exchange of `kind` (`direct`, `fanout`,
    /// `topic` or `headers`), or checks that an existing one is declared
    /// the same way (406 PRECONDITION_FAILED, inequivalent arg, if not).
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

    /// exchange.delete; with `if_unused`, refuses (406) while it has bindings.
    pub async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        self.call(Method::ExchangeDelete(ExchangeDelete {
            exchange: short(name)?,
            if_unused,
            no_wait: false,
        }))
        .await
        .map(drop)
    }

    /// exchange.bind: messages routed by `source` with `routing_key` (or
    /// matching `arguments`, for headers exchanges) go on to `destination`.
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

    /// exchange.unbind: removes a binding made by [`Channel::exchange_bind`].
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

    /// queue.declare: creates a queue (named by the broker if `name` is
    /// empty), or checks an existing one (406 if declared differently, 405
    /// if it is exclusive to another connection).
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
                name: ok.queue.to_string_lossy().into_owned(),
                message_count: ok.message_count,
                consumer_count: ok.consumer_count,
            }),
            _ => Err(AmqpError::internal("unexpected reply to queue.declare")),
        }
    }

    /// queue.bind: messages that `exchange` routes with `routing_key` (or
    /// that match `arguments`, for headers exchanges) go to `queue`.
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

    /// queue.unbind: removes a binding made by [`Channel::queue_bind`].
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

    /// queue.purge: removes every ready message; returns how many.
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

    /// queue.delete: deletes a queue and returns how many messages it held.
    /// Its consumers are cancelled (their streams end).
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

    /// basic.qos: at most `prefetch_count` unacknowledged deliveries (0: no
    /// limit). With `global` the limit applies to the whole channel,
    /// otherwise to each consumer created afterwards, as RabbitMQ does it.
    pub async fn basic_qos(&self, prefetch_count: u16, global: bool) -> Result<(), AmqpError> {
        self.call(Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global,
        }))
        .await
        .map(drop)
    }

    /// confirm.select: from now on every publish is confirmed; the
    /// [`Confirmation`] that [`Channel::basic_publish`] returns resolves
    /// with the broker's ack.
    pub async fn confirm_select(&self) -> Result<(), AmqpError> {
        self.call(Method::ConfirmSelect(ConfirmSelect { no_wait: false }))
            .await?;
        let id = self.inner.id;
        if let Some(ch) = self.inner.conn.routes.lock().channels.get_mut(&id) {
            ch.next_confirm.get_or_insert(1);
        }
        self.inner.confirming.store(true, Ordering::Release);
        Ok(())
    }

    /// basic.publish: routes a message through `exchange` ("" is the
    /// default exchange, which routes to the queue named `routing_key`).
    ///
    /// The message is published when `basic_publish` is called — it is in
    /// its queues, or refused, before the returned [`Publish`] is awaited.
    /// Awaiting gives the outcome and, every so often, lets the other tasks
    /// of the runtime (consumers, for one) run, as tokio's own channels do:
    /// a publisher in a loop does not starve its consumers. On a channel in
    /// confirm mode, the [`Confirmation`] resolves with the broker's
    /// confirm; otherwise it resolves at once and may be dropped.
    ///
    /// The body is shared with the consumers, never copied; the message
    /// costs one allocation. Publishing again to the same exchange and
    /// routing key reuses their names instead of copying them.
    ///
    /// Publishing to a missing exchange fails with 404 NOT_FOUND and
    /// closes the channel, as over TCP.
    pub fn basic_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        properties: BasicProperties,
        body: Bytes,
    ) -> Publish {
        let mut congested = Vec::new();
        let result = self.publish_now(
            exchange,
            routing_key,
            options,
            properties,
            body,
            &mut congested,
        );
        let n = self.inner.publishes.fetch_add(1, Ordering::Relaxed);
        Publish {
            result: Some(result),
            pacing: Pacing::new(
                congested,
                &self.inner.conn.alarm,
                n % YIELD_EVERY == YIELD_EVERY - 1,
            ),
        }
    }

    fn publish_now(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        properties: BasicProperties,
        body: Bytes,
        congested: &mut Vec<Arc<Queue>>,
    ) -> Result<Confirmation, AmqpError> {
        self.check_open()?;
        let (exchange, routing_key) = self.names(exchange, routing_key)?;
        // The one allocation of a publish: the message, shared by every
        // queue it reaches and every delivery of it.
        let msg = Arc::new(Message {
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
            properties: properties.into(),
            body,
        });
        let method = BasicPublish {
            exchange,
            routing_key,
            mandatory: options.mandatory,
            immediate: false,
        };
        let id = self.inner.id;
        let conn = &self.inner.conn;
        if !self.inner.confirming.load(Ordering::Acquire) {
            ((), *congested) = conn.exec_flow(id, |s, _| s.publish(id, method, msg))?;
            return Ok(Confirmation::new(None, Weak::new(), id));
        }
        let weak = Arc::downgrade(conn);
        let (tx, rx) = oneshot::channel();
        ((), *congested) = conn.exec_flow(id, |s, routes| {
            if let Some(ch) = routes.lock().channels.get_mut(&id) {
                let seq = ch.next_confirm.get_or_insert(1);
                ch.confirms.push_back((*seq, tx));
                *seq += 1;
            }
            s.publish(id, method, msg)
        })?;
        Ok(Confirmation::new(Some(rx), weak, id))
    }

    /// Publishes several messages with the same exchange, routing key and
    /// properties, one per body: the same as calling
    /// [`Channel::basic_publish`] for each body, in order, for less work per
    /// message — the channel, the route and each queue are looked up and
    /// locked once per batch rather than once per message, consumers are
    /// handed the run at once, and the messages share one copy of the
    /// properties.
    ///
    /// Every message is checked (size, properties) before any is routed:
    /// if one is refused, the channel closes with that error and none of
    /// the batch is published. In confirm mode, the result holds one
    /// [`Confirmation`] per message, in order; otherwise it is empty.
    ///
    /// ```no_run
    /// # async fn demo(ch: warren::embed::Channel) -> Result<(), warren::AmqpError> {
    /// use bytes::Bytes;
    /// use warren::embed::{BasicProperties, PublishOptions};
    ///
    /// let bodies = (0..100).map(|i| Bytes::from(format!("job {i}")));
    /// ch.basic_publish_batch(
    ///     "",
    ///     "jobs",
    ///     PublishOptions::default(),
    ///     BasicProperties::default(),
    ///     bodies,
    /// )
    /// .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn basic_publish_batch<I>(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        properties: BasicProperties,
        bodies: I,
    ) -> PublishBatch
    where
        I: IntoIterator<Item = Bytes>,
    {
        let mut batch = std::mem::take(&mut *self.inner.batch.lock());
        let result = self.publish_batch_now(
            exchange,
            routing_key,
            options,
            properties,
            bodies,
            &mut batch,
        );
        batch.clear();
        *self.inner.batch.lock() = batch;
        let (result, published, congested) = match result {
            Ok(done) => (
                Ok(done.confirmations),
                done.published as u32,
                done.congested,
            ),
            Err(e) => (Err(e), 0, Vec::new()),
        };
        let before = self.inner.publishes.fetch_add(published, Ordering::Relaxed);
        PublishBatch {
            result: Some(result),
            pacing: Pacing::new(
                congested,
                &self.inner.conn.alarm,
                before / YIELD_EVERY != before.wrapping_add(published) / YIELD_EVERY,
            ),
        }
    }

    fn publish_batch_now<I>(
        &self,
        exchange: &str,
        routing_key: &str,
        options: PublishOptions,
        properties: BasicProperties,
        bodies: I,
        batch: &mut Vec<Arc<Message>>,
    ) -> Result<BatchDone, AmqpError>
    where
        I: IntoIterator<Item = Bytes>,
    {
        self.check_open()?;
        let (exchange, routing_key) = self.names(exchange, routing_key)?;
        let properties = MessageProperties::from(properties);
        batch.extend(bodies.into_iter().map(|body| {
            Arc::new(Message {
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
                properties: properties.clone(),
                body,
            })
        }));
        let count = batch.len();
        let method = BasicPublish {
            exchange,
            routing_key,
            mandatory: options.mandatory,
            immediate: false,
        };
        let id = self.inner.id;
        let conn = &self.inner.conn;
        if !self.inner.confirming.load(Ordering::Acquire) {
            let ((), congested) = conn.exec_flow(id, |s, _| s.publish_batch(id, &method, batch))?;
            return Ok(BatchDone {
                confirmations: Vec::new(),
                published: count,
                congested,
            });
        }
        let weak = Arc::downgrade(conn);
        let mut confirmations = Vec::with_capacity(count);
        let ((), congested) = conn.exec_flow(id, |s, routes| {
            if let Some(ch) = routes.lock().channels.get_mut(&id) {
                let seq = ch.next_confirm.get_or_insert(1);
                for _ in 0..count {
                    let (tx, rx) = oneshot::channel();
                    ch.confirms.push_back((*seq, tx));
                    *seq += 1;
                    confirmations.push(Confirmation::new(Some(rx), weak.clone(), id));
                }
            }
            s.publish_batch(id, &method, batch)
        })?;
        Ok(BatchDone {
            confirmations,
            published: count,
            congested,
        })
    }

    /// The names of a publish, reusing the last ones when they are equal.
    fn names(&self, exchange: &str, routing_key: &str) -> Result<(ShortStr, ShortStr), AmqpError> {
        let mut names = self.inner.names.lock();
        if names.0 != exchange {
            names.0 = short(exchange)?;
        }
        if names.1 != routing_key {
            names.1 = short(routing_key)?;
        }
        Ok((names.0.clone(), names.1.clone()))
    }

    /// basic.consume: starts a consumer on `queue`; its deliveries come as
    /// a [`Consumer`] stream.
    pub async fn basic_consume(
        &self,
        queue: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, AmqpError> {
        let shared = Arc::new(ConsumerShared::default());
        let m = Method::BasicConsume(BasicConsume {
            queue: short(queue)?,
            consumer_tag: short(&options.consumer_tag)?,
            no_local: false,
            no_ack: options.no_ack,
            exclusive: options.exclusive,
            no_wait: false,
            arguments: options.arguments,
        });
        let buffer = shared.clone();
        match self
            .rpc(m, move |reply| Pending::Consume(buffer, reply))
            .await?
        {
            Reply::Method(Method::BasicConsumeOk(ok)) => {
                Ok(Consumer::new(ok.consumer_tag, shared, self.clone()))
            }
            _ => Err(AmqpError::internal("unexpected reply to basic.consume")),
        }
    }

    /// basic.cancel: stops a consumer. Its stream yields what was delivered
    /// before and then ends; unacknowledged deliveries stay unacknowledged.
    pub async fn basic_cancel(&self, consumer_tag: &str) -> Result<(), AmqpError> {
        self.call(Method::BasicCancel(BasicCancel {
            consumer_tag: short(consumer_tag)?,
            no_wait: false,
        }))
        .await
        .map(drop)
    }

    /// A dropped [`Consumer`] cancels itself (no reply awaited).
    pub(crate) fn cancel_on_drop(&self, tag: &ShortStr) {
        if self.check_open().is_err() {
            return;
        }
        let id = self.inner.id;
        let _ = self.inner.conn.exec(id, |s, routes| {
            if let Some(ch) = routes.lock().channels.get_mut(&id) {
                ch.consumers.retain(|(t, _)| t != tag);
            }
            s.handle_frame(Frame::Method {
                channel: id,
                method: Method::BasicCancel(BasicCancel {
                    consumer_tag: tag.clone(),
                    no_wait: true,
                }),
            })
            .map(drop)
        });
    }

    /// basic.get: fetches the message at the head of `queue`, or `None`
    /// when it is empty. Unless `no_ack`, it must be acknowledged.
    pub async fn basic_get(
        &self,
        queue: &str,
        no_ack: bool,
    ) -> Result<Option<super::Delivery>, AmqpError> {
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

    /// basic.ack: acknowledges `delivery_tag`, or with `multiple` every
    /// outstanding tag up to it. An unknown tag is a channel error (406).
    pub async fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicAck(BasicAck {
            delivery_tag,
            multiple,
        }))
    }

    /// basic.nack: rejects `delivery_tag` (or every tag up to it with
    /// `multiple`); with `requeue` the messages go back to their original
    /// positions, marked redelivered, otherwise they are dropped.
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

    /// basic.reject: [`Channel::basic_nack`] for one message.
    pub async fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicReject(BasicReject {
            delivery_tag,
            requeue,
        }))
    }

    /// Messages returned as unroutable (mandatory publishes) and not taken
    /// yet, oldest first.
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

    /// tx.select: publishes and acks on this channel wait for
    /// [`Channel::tx_commit`].
    pub async fn tx_select(&self) -> Result<(), AmqpError> {
        self.call(Method::TxSelect).await.map(drop)
    }

    /// tx.commit: applies the publishes and acks made since the last
    /// commit or rollback.
    pub async fn tx_commit(&self) -> Result<(), AmqpError> {
        self.call(Method::TxCommit).await.map(drop)
    }

    /// tx.rollback: forgets the publishes and acks made since the last
    /// commit or rollback.
    pub async fn tx_rollback(&self) -> Result<(), AmqpError> {
        self.call(Method::TxRollback).await.map(drop)
    }

    /// channel.close: consumers stop (their streams end) and unacknowledged
    /// messages go back to their queues. Closing a channel that is closed
    /// already does nothing.
    pub async fn close(&self) -> Result<(), AmqpError> {
        if !self.is_open() {
            return Ok(());
        }
        let close = Method::ChannelClose(ChannelClose {
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
            ch.close(AmqpError::channel_error(
                "channel closed by the application",
            ));
        }
        r
    }
}
