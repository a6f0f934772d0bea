//! One AMQP channel: the methods a client calls on it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_protocol::{
    BasicConsumeOk, BasicPublish, ContentHeader, ExchangeBind, ExchangeDeclare, FieldTable,
    FieldValue, Method, QueueDeclare, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk, ShortStr,
};

use super::exchange::{Destination, ExchangeKind, ExchangeOptions, RouteScratch};
use super::link::{ChannelLink, Consumer, Unacked};
use super::message::Message;
use super::names;
use super::outbox::Outbound;
use super::queue::{Entry, PushOutcome, Queue, QueueOptions};
use super::queue_args::{DeclareFlags, QueueArgs};
use super::session::SessionCtx;
use crate::error::{q, AmqpError};
use crate::store::records;
use crate::store::{Persisted, Persistence, SharedBody};
use warren_persistence::{NewRecord, RecordId};

/// A publish whose content is still arriving.
struct PendingPublish {
    method: BasicPublish,
    header: Option<ContentHeader>,
    body: BytesMut,
    /// The body when it came in one frame: kept as a slice, not copied.
    single: Option<Bytes>,
    received: u64,
}

/// What a transaction holds until commit.
#[derive(Default)]
struct TxBuffer {
    publishes: Vec<(BasicPublish, Arc<Message>)>,
    acks: Vec<AckOp>,
}

#[derive(Clone, Copy)]
enum AckOp {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Reject {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
}

pub enum ChannelMode {
    Plain,
    Confirm { next_seq: u64 },
    Tx,
}

pub struct Channel {
    pub link: Arc<ChannelLink>,
    pending: Option<PendingPublish>,
    mode: ChannelMode,
    tx: TxBuffer,
    /// basic.qos global=false: prefetch given to consumers created from now on.
    consumer_prefetch: u32,
    /// The queue most recently declared here, for methods that name no queue.
    last_queue: Option<ShortStr>,
    scratch: RouteScratch,
    store: Option<Arc<Persistence>>,
    /// The log's last record id when the current method began.
    op_start: u64,
    /// The name replies to `amq.rabbitmq.reply-to` reach this channel by.
    reply_to: Option<ShortStr>,
    cache: LookupCache,
    /// Reused for the entries an ack takes, so acking allocates nothing.
    acked: Vec<Unacked>,
}

/// The exchange and queue this channel last published to.
#[derive(Default)]
struct LookupCache {
    exchange: Option<Arc<super::exchange::Exchange>>,
    queue: Option<Arc<Queue>>,
}

/// The pseudo-queue of RabbitMQ's direct reply-to.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

impl Channel {
    /// A basic.publish whose header or body frames are still to come.
    pub fn receiving_content(&self) -> bool {
        self.pending.is_some()
    }

    pub fn new(link: Arc<ChannelLink>) -> Channel {
        Channel {
            link,
            pending: None,
            mode: ChannelMode::Plain,
            tx: TxBuffer::default(),
            consumer_prefetch: 0,
            last_queue: None,
            scratch: RouteScratch::default(),
            store: None,
            op_start: 0,
            reply_to: None,
            acked: Vec::new(),
            cache: LookupCache::default(),
        }
    }

    fn id(&self) -> u16 {
        self.link.id
    }

    fn reply(&self, method: Method) {
        self.link
            .conn
            .outbox
            .push(Outbound::method(self.id(), method));
    }

    /// Resolves an empty queue name to the last queue declared on the channel.
    fn queue_name(&self, name: &ShortStr) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    fn queue(&self, ctx: &SessionCtx, name: &ShortStr) -> Result<Arc<Queue>, AmqpError> {
        let name = self.queue_name(name)?;
        let queue = ctx.vhost.queue(&name)?;
        queue.check_access(ctx.link.id)?;
        Ok(queue)
    }

    /// Handles one method (not channel.open/close, which the session handles).
    pub fn handle(&mut self, ctx: &mut SessionCtx, method: Method) -> Result<(), AmqpError> {
        self.store.clone_from(&ctx.vhost.store);
        self.op_start = self.store.as_ref().map_or(0, |s| s.appended());
        if self.pending.is_some() {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got non content header frame instead ({})",
                method.name()
            )));
        }
        match method {
            Method::ChannelFlow(f) => {
                if !f.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                self.reply(Method::ChannelFlowOk(warren_protocol::ChannelFlowOk {
                    active: true,
                }));
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::ExchangeDeclare(m) => self.exchange_declare(ctx, m),
            Method::ExchangeDelete(m) => {
                ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
                self.reply_unless(m.no_wait, Method::ExchangeDeleteOk);
                Ok(())
            }
            Method::ExchangeBind(m) => {
                let no_wait = m.no_wait;
                self.exchange_bind(ctx, m, true)?;
                self.reply_unless(no_wait, Method::ExchangeBindOk);
                Ok(())
            }
            Method::ExchangeUnbind(m) => {
                let no_wait = m.no_wait;
                let m = ExchangeBind {
                    destination: m.destination,
                    source: m.source,
                    routing_key: m.routing_key,
                    no_wait: m.no_wait,
                    arguments: m.arguments,
                };
                self.exchange_bind(ctx, m, false)?;
                self.reply_unless(no_wait, Method::ExchangeUnbindOk);
                Ok(())
            }
            Method::QueueDeclare(m) => self.queue_declare(ctx, m),
            Method::QueueBind(m) => {
                let queue = self.queue(ctx, &m.queue)?;
                let x = self.bindable_exchange(ctx, &m.exchange)?;
                if x.kind() == ExchangeKind::Headers {
                    super::headers::validate_binding(&m.arguments)?;
                }
                ctx.vhost
                    .bind(&x, Destination::Queue(queue), m.routing_key, m.arguments)?;
                self.reply_unless(m.no_wait, Method::QueueBindOk);
                Ok(())
            }
            Method::QueueUnbind(m) => {
                let queue = self.queue(ctx, &m.queue)?;
                let x = self.bindable_exchange(ctx, &m.exchange)?;
                ctx.vhost
                    .unbind(&x, &Destination::Queue(queue), &m.routing_key, &m.arguments);
                self.reply_durable(Method::QueueUnbindOk);
                Ok(())
            }
            Method::QueuePurge(m) => {
                let queue = self.queue(ctx, &m.queue)?;
                let message_count = queue.purge();
                self.reply_unless(
                    m.no_wait,
                    Method::QueuePurgeOk(QueuePurgeOk { message_count }),
                );
                Ok(())
            }
            Method::QueueDelete(m) => {
                let name = self.queue_name(&m.queue)?;
                let message_count = match ctx.vhost.find_queue(&name) {
                    None => 0,
                    Some(queue) => {
                        queue.check_access(ctx.link.id)?;
                        queue.check_delete(m.if_unused, m.if_empty)?;
                        ctx.vhost.delete_queue(&queue)
                    }
                };
                self.reply_unless(
                    m.no_wait,
                    Method::QueueDeleteOk(QueueDeleteOk { message_count }),
                );
                Ok(())
            }
            Method::BasicQos(m) => {
                if m.prefetch_size != 0 {
                    return Err(AmqpError::not_implemented(format!(
                        "prefetch_size!=0 ({})",
                        m.prefetch_size
                    )));
                }
                let count = u32::from(m.prefetch_count);
                if m.global {
                    self.link.global_prefetch.store(count, Ordering::Relaxed);
                    // A larger limit may let waiting messages flow.
                    for c in self.link.consumers() {
                        c.queue.dispatch();
                    }
                } else {
                    self.consumer_prefetch = count;
                }
                self.reply(Method::BasicQosOk);
                Ok(())
            }
            Method::BasicConsume(m) => self.basic_consume(ctx, m),
            Method::BasicCancel(m) => {
                if let Some(c) = self.link.remove_consumer(&m.consumer_tag) {
                    if self.reply_to.as_ref() == Some(&c.queue.name) {
                        self.reply_to = None;
                    }
                    if c.queue.remove_consumer(&c) {
                        ctx.vhost.delete_queue(&c.queue);
                    }
                }
                if !m.no_wait {
                    self.reply(Method::BasicCancelOk(warren_protocol::BasicCancelOk {
                        consumer_tag: m.consumer_tag,
                    }));
                }
                Ok(())
            }
            Method::BasicGet(m) => {
                let queue = self.queue(ctx, &m.queue)?;
                if !queue.get(&self.link, m.no_ack) {
                    self.reply(Method::BasicGetEmpty);
                }
                Ok(())
            }
            Method::BasicPublish(m) => {
                if m.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.pending = Some(PendingPublish {
                    method: m,
                    header: None,
                    body: BytesMut::new(),
                    single: None,
                    received: 0,
                });
                Ok(())
            }
            Method::BasicAck(m) => self.ack_op(
                ctx,
                AckOp::Ack {
                    tag: m.delivery_tag,
                    multiple: m.multiple,
                },
            ),
            Method::BasicReject(m) => self.ack_op(
                ctx,
                AckOp::Reject {
                    tag: m.delivery_tag,
                    multiple: false,
                    requeue: m.requeue,
                },
            ),
            Method::BasicNack(m) => self.ack_op(
                ctx,
                AckOp::Reject {
                    tag: m.delivery_tag,
                    multiple: m.multiple,
                    requeue: m.requeue,
                },
            ),
            Method::BasicRecover(m) => {
                if !m.requeue {
                    return Err(AmqpError::not_implemented("requeue=false"));
                }
                // recover-ok before the redeliveries: clients drop buffered
                // deliveries when it arrives.
                self.reply(Method::BasicRecoverOk);
                self.recover(m.requeue)
            }
            Method::BasicRecoverAsync(m) => self.recover(m.requeue),
            Method::ConfirmSelect(m) => {
                match self.mode {
                    ChannelMode::Tx => {
                        return Err(AmqpError::precondition(
                            "cannot switch from tx to confirm mode",
                        ));
                    }
                    ChannelMode::Plain => self.mode = ChannelMode::Confirm { next_seq: 1 },
                    ChannelMode::Confirm { .. } => {}
                }
                self.reply_unless(m.no_wait, Method::ConfirmSelectOk);
                Ok(())
            }
            Method::TxSelect => {
                if let ChannelMode::Confirm { .. } = self.mode {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.mode = ChannelMode::Tx;
                self.reply(Method::TxSelectOk);
                Ok(())
            }
            Method::TxCommit => {
                self.require_tx()?;
                let tx = std::mem::take(&mut self.tx);
                for (publish, msg) in tx.publishes {
                    self.route_and_enqueue(ctx, &publish, msg)?;
                }
                for op in tx.acks {
                    self.apply_ack(ctx, op)?;
                }
                self.reply_durable(Method::TxCommitOk);
                Ok(())
            }
            Method::TxRollback => {
                self.require_tx()?;
                self.tx = TxBuffer::default();
                self.reply(Method::TxRollbackOk);
                Ok(())
            }
            other => Err(AmqpError::command_invalid(format!(
                "unexpected method {} on a channel",
                other.name()
            ))),
        }
    }

    /// Replies to a method that may have written to the log (a declare,
    /// bind, delete, purge or commit): the reply promises durability, so it
    /// waits until what the method appended is durable.
    fn reply_unless(&self, no_wait: bool, method: Method) {
        if !no_wait {
            self.reply_durable(method);
        }
    }

    fn reply_durable(&self, method: Method) {
        match &self.store {
            Some(store) if store.appended() > self.op_start => {
                let item = Outbound::method(self.id(), method);
                self.link.send_after(store.appended(), item, Some(store));
            }
            _ => self.reply(method),
        }
    }

    fn require_tx(&self) -> Result<(), AmqpError> {
        match self.mode {
            ChannelMode::Tx => Ok(()),
            _ => Err(AmqpError::precondition("channel is not transactional")),
        }
    }

    fn exchange_declare(
        &mut self,
        ctx: &mut SessionCtx,
        m: ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        if m.passive {
            if m.exchange.is_empty() {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            ctx.vhost.exchange(&m.exchange)?;
        } else {
            let kind = ExchangeKind::parse(&m.kind)?;
            let opts = ExchangeOptions {
                kind,
                durable: m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments: m.arguments,
            };
            ctx.vhost.declare_exchange(m.exchange, opts)?;
        }
        self.reply_unless(m.no_wait, Method::ExchangeDeclareOk);
        Ok(())
    }

    /// An exchange that bindings may use: not the default one.
    fn bindable_exchange(
        &self,
        ctx: &SessionCtx,
        name: &ShortStr,
    ) -> Result<Arc<super::exchange::Exchange>, AmqpError> {
        let x = ctx.vhost.exchange(name)?;
        if x.kind() == ExchangeKind::Default {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        Ok(x)
    }

    fn exchange_bind(
        &mut self,
        ctx: &mut SessionCtx,
        m: ExchangeBind,
        bind: bool,
    ) -> Result<(), AmqpError> {
        let source = self.bindable_exchange(ctx, &m.source)?;
        let destination = self.bindable_exchange(ctx, &m.destination)?;
        let dest = Destination::Exchange(destination);
        if bind {
            ctx.vhost.bind(&source, dest, m.routing_key, m.arguments)?;
        } else {
            ctx.vhost
                .unbind(&source, &dest, &m.routing_key, &m.arguments);
        }
        Ok(())
    }

    fn queue_declare(&mut self, ctx: &mut SessionCtx, m: QueueDeclare) -> Result<(), AmqpError> {
        let queue = if m.passive {
            let queue = self.queue(ctx, &m.queue)?;
            queue.touch();
            queue
        } else {
            let name = if m.queue.is_empty() {
                names::generate("amq.gen-")
            } else if m.queue.as_bytes().starts_with(b"amq.") {
                return Err(AmqpError::access_refused(format!(
                    "queue name {} contains reserved prefix 'amq.*'",
                    q(&m.queue)
                )));
            } else {
                m.queue.clone()
            };
            let what = format!("queue {} in vhost '{}'", q(&name), ctx.vhost.name);
            let flags = DeclareFlags {
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
            };
            let args = QueueArgs::parse(&m.arguments, &what, flags)?;
            let opts = QueueOptions {
                // Exclusive queues are never durable, whatever the flag says.
                durable: m.durable && !m.exclusive,
                exclusive_owner: m.exclusive.then_some(ctx.link.id),
                auto_delete: m.auto_delete,
                arguments: m.arguments,
            };
            let (queue, created) = ctx.vhost.declare_queue(name, opts, args, ctx.link.id)?;
            if created && queue.is_exclusive() {
                ctx.exclusive_queues.push(queue.clone());
            }
            queue
        };
        self.last_queue = Some(queue.name.clone());
        if !m.no_wait {
            self.reply_durable(Method::QueueDeclareOk(QueueDeclareOk {
                queue: queue.name.clone(),
                message_count: queue.message_count(),
                consumer_count: queue.consumer_count(),
            }));
        }
        Ok(())
    }

    fn basic_consume(
        &mut self,
        ctx: &mut SessionCtx,
        m: warren_protocol::BasicConsume,
    ) -> Result<(), AmqpError> {
        let queue = if m.queue.as_bytes() == REPLY_TO.as_bytes() {
            self.reply_to_queue(ctx, m.no_ack)?
        } else {
            self.queue(ctx, &m.queue)?
        };
        let tag = if m.consumer_tag.is_empty() {
            names::generate("amq.ctag-")
        } else {
            m.consumer_tag.clone()
        };
        if self.link.find_consumer(&tag).is_some() {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag {}",
                q(&tag)
            )));
        }
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => match v.as_i64().and_then(|p| i32::try_from(p).ok()) {
                Some(p) => p,
                None => {
                    return Err(AmqpError::precondition(format!(
                        "invalid arg 'x-priority' for {}: \"expected integer, got {}\"",
                        queue.describe(),
                        super::queue_args::type_name(&v)
                    )))
                }
            },
        };
        let consumer = Arc::new(Consumer::new(
            tag.clone(),
            self.link.clone(),
            queue.clone(),
            m.no_ack,
            m.exclusive,
            self.consumer_prefetch,
            priority,
        ));
        // consume-ok must reach the client before the first delivery, so it
        // is queued by the queue once it has accepted the consumer.
        let link = self.link.clone();
        let no_wait = m.no_wait;
        queue.add_consumer(consumer.clone(), || {
            link.add_consumer(consumer.clone());
            if !no_wait {
                link.conn.outbox.push(Outbound::method(
                    link.id,
                    Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }),
                ));
            }
        })
    }

    fn ack_op(&mut self, ctx: &mut SessionCtx, op: AckOp) -> Result<(), AmqpError> {
        if let ChannelMode::Tx = self.mode {
            self.tx.acks.push(op);
            return Ok(());
        }
        self.apply_ack(ctx, op)
    }

    /// Settles acked or rejected deliveries. The credit they give back is
    /// used at the end of the batch of frames ([`SessionCtx::dispatch_later`]).
    fn apply_ack(&mut self, ctx: &mut SessionCtx, op: AckOp) -> Result<(), AmqpError> {
        let (tag, multiple, requeue) = match op {
            AckOp::Ack { tag, multiple } => (tag, multiple, None),
            AckOp::Reject {
                tag,
                multiple,
                requeue,
            } => (tag, multiple, Some(requeue)),
        };
        let mut taken = std::mem::take(&mut self.acked);
        if !self.link.take_unacked_into(tag, multiple, &mut taken) {
            self.acked = taken;
            return Err(AmqpError::precondition(format!(
                "unknown delivery tag {tag}"
            )));
        }
        match requeue {
            Some(true) => requeue_all(taken),
            // Rejected without requeue: dead-lettered (or dropped).
            Some(false) => {
                for (queue, entries) in group_by_queue(taken) {
                    queue.settled(&entries);
                    queue.reject(entries);
                    ctx.dispatch_later(&queue);
                }
            }
            None => {
                // Acked: gone for good, and credit is back, so queues may
                // deliver more.
                if let [u] = taken.as_slice() {
                    u.queue().settled([&u.entry]);
                    u.queue().discard([&u.entry]);
                    ctx.dispatch_later(u.queue());
                    taken.clear();
                    self.acked = taken;
                } else {
                    for (queue, entries) in group_by_queue(taken) {
                        queue.settled(&entries);
                        queue.discard(&entries);
                        ctx.dispatch_later(&queue);
                    }
                }
            }
        }
        Ok(())
    }

    fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        requeue_all(self.link.take_all_unacked());
        Ok(())
    }

    /// A content header frame arrived.
    pub fn on_header(
        &mut self,
        ctx: &mut SessionCtx,
        header: ContentHeader,
    ) -> Result<(), AmqpError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "unexpected content header frame",
            ));
        };
        if p.header.is_some() {
            return Err(AmqpError::unexpected_frame(
                "expected content body, got content header",
            ));
        }
        if header.class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "content header for class {} does not match method class 60",
                header.class_id
            )));
        }
        if header.body_size > ctx.max_message_size {
            self.pending = None;
            return Err(AmqpError::precondition(format!(
                "message size {} is larger than configured max size {}",
                header.body_size, ctx.max_message_size
            )));
        }
        let done = header.body_size == 0;
        p.header = Some(header);
        if done {
            self.finish_publish(ctx)?;
        }
        Ok(())
    }

    /// A content body frame arrived.
    pub fn on_body(&mut self, ctx: &mut SessionCtx, payload: Bytes) -> Result<(), AmqpError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame("unexpected content body frame"));
        };
        let Some(header) = &p.header else {
            return Err(AmqpError::unexpected_frame(
                "expected content header, got content body",
            ));
        };
        let total = header.body_size;
        p.received += payload.len() as u64;
        if p.received > total {
            return Err(AmqpError::frame_error(format!(
                "content body exceeds the size announced in the header ({} > {total})",
                p.received
            )));
        }
        if p.single.is_none() && p.body.is_empty() && p.received == total {
            p.single = Some(payload);
        } else {
            if let Some(first) = p.single.take() {
                p.body.extend_from_slice(&first);
            }
            if p.body.is_empty() {
                p.body.reserve(usize::try_from(total).unwrap_or(0));
            }
            p.body.extend_from_slice(&payload);
        }
        if p.received == total {
            self.finish_publish(ctx)?;
        }
        Ok(())
    }

    fn finish_publish(&mut self, ctx: &mut SessionCtx) -> Result<(), AmqpError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let Some(header) = p.header else {
            return Ok(());
        };
        let body = p.single.unwrap_or_else(|| p.body.freeze());
        let msg = Arc::new(Message {
            exchange: p.method.exchange.clone(),
            routing_key: p.method.routing_key.clone(),
            properties: header.properties.into(),
            body,
        });
        self.publish_message(ctx, p.method, msg)
    }

    /// A complete message from a publisher — assembled from its frames, or
    /// handed over whole by an in-process publisher: checks its properties,
    /// then routes it (or keeps it for tx.commit). `msg` must not be shared
    /// yet (a direct reply-to rewrites its properties).
    pub fn publish_message(
        &mut self,
        ctx: &mut SessionCtx,
        method: BasicPublish,
        mut msg: Arc<Message>,
    ) -> Result<(), AmqpError> {
        self.check_message(ctx, &mut msg)?;
        if let ChannelMode::Tx = self.mode {
            // Check the exchange now so the error comes with the publish.
            self.publish_exchange(ctx, &method.exchange)?;
            self.tx.publishes.push((method, msg));
            return Ok(());
        }
        self.route_and_enqueue(ctx, &method, msg)
    }

    /// Messages handed over whole by an in-process publisher, all to the
    /// same exchange and routing key and with the same properties (`msgs`
    /// is left empty). Each is checked and published as by
    /// [`Channel::publish_message`]; in the common case — no transaction,
    /// no confirms, transient messages, no CC/BCC — the route (the same
    /// for all, headers included) is looked up once and each queue takes
    /// the run with one lock and one dispatch.
    pub fn publish_batch(
        &mut self,
        ctx: &mut SessionCtx,
        method: &BasicPublish,
        msgs: &mut Vec<Arc<Message>>,
    ) -> Result<(), AmqpError> {
        let mut simple = matches!(self.mode, ChannelMode::Plain);
        for msg in msgs.iter_mut() {
            self.check_message(ctx, msg)?;
            simple = simple
                && !(ctx.vhost.store.is_some() && msg.is_persistent())
                && !msg
                    .properties
                    .headers()
                    .is_some_and(|h| h.contains_key("CC") || h.contains_key("BCC"));
        }
        let exchange = self.publish_exchange(ctx, &method.exchange)?;
        if !simple {
            for msg in msgs.drain(..) {
                if let ChannelMode::Tx = self.mode {
                    self.tx.publishes.push((method.clone(), msg));
                } else {
                    self.route_and_enqueue(ctx, method, msg)?;
                }
            }
            return Ok(());
        }
        let table = msgs.first().and_then(|m| m.properties.headers());
        self.route_to_scratch(ctx, &exchange, &method.routing_key, table.as_deref());
        drop(table);
        let mut routed = false;
        for q in &self.scratch.queues {
            if q.is_congested_for(ctx.link.id) && !ctx.congested.iter().any(|c| Arc::ptr_eq(c, q)) {
                ctx.congested.push(q.clone());
            }
            routed |= q.push_batch(msgs) != PushOutcome::Gone;
        }
        self.scratch.queues.clear();
        if !routed && method.mandatory {
            for msg in msgs.iter() {
                self.link.conn.outbox.push(Outbound::Return {
                    channel: self.id(),
                    reply_code: 312,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    msg: msg.clone(),
                });
            }
        }
        msgs.clear();
        Ok(())
    }

    /// The checks of a publish's properties; a direct reply-to is pointed at
    /// this channel's reply queue. `msg` must not be shared yet.
    fn check_message(&self, ctx: &SessionCtx, msg: &mut Arc<Message>) -> Result<(), AmqpError> {
        let properties = &msg.properties;
        if let (Some(user), Some(claimed)) = (&ctx.user, properties.user_id()) {
            if claimed != user.as_bytes() {
                return Err(AmqpError::precondition(format!(
                    "user_id property set to '{}' but authenticated user was '{user}'",
                    String::from_utf8_lossy(claimed)
                )));
            }
        }
        if let Some(exp) = properties.expiration() {
            check_expiration(exp)?;
        }
        if let Some(headers) = properties.headers() {
            for name in ["CC", "BCC"] {
                match headers.get(name) {
                    None | Some(FieldValue::Array(_)) => {}
                    Some(other) => {
                        return Err(AmqpError::precondition(format!(
                            "invalid message: {{unacceptable_type_in_header,\"{name}\",{}}}",
                            super::queue_args::type_name(&other)
                        )))
                    }
                }
            }
        }
        if properties
            .reply_to()
            .is_some_and(|r| r == REPLY_TO.as_bytes())
        {
            // Direct reply-to: the reply goes straight to this channel's reply consumer.
            let Some(own) = &self.reply_to else {
                return Err(AmqpError::precondition(
                    "fast reply consumer does not exist",
                ));
            };
            let Some(m) = Arc::get_mut(msg) else {
                return Err(AmqpError::internal("published message already shared"));
            };
            m.properties.modify(|p| p.reply_to = Some(own.clone()));
        }
        Ok(())
    }

    fn publish_exchange(
        &mut self,
        ctx: &SessionCtx,
        name: &ShortStr,
    ) -> Result<Arc<super::exchange::Exchange>, AmqpError> {
        // Publishers nearly always use one exchange: keep it, so the hot
        // path takes no vhost-wide lock.
        let x = match &self.cache.exchange {
            Some(x) if &x.name == name && !x.is_deleted() => x.clone(),
            _ => {
                let x = ctx.vhost.exchange(name)?;
                self.cache.exchange = Some(x.clone());
                x
            }
        };
        if x.options.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange {} in vhost '{}'",
                q(name),
                ctx.vhost.name
            )));
        }
        Ok(x)
    }

    /// Routes a complete message and puts it in its queues; confirms and
    /// returns follow.
    fn route_and_enqueue(
        &mut self,
        ctx: &mut SessionCtx,
        publish: &BasicPublish,
        msg: Arc<Message>,
    ) -> Result<(), AmqpError> {
        let confirm_seq = match &mut self.mode {
            ChannelMode::Confirm { next_seq } => {
                let s = *next_seq;
                *next_seq += 1;
                Some(s)
            }
            _ => None,
        };
        let exchange = self.publish_exchange(ctx, &publish.exchange)?;
        let table = msg.properties.headers();
        let headers = table.as_deref();
        self.route_to_scratch(ctx, &exchange, &publish.routing_key, headers);
        // CC and BCC headers name more routing keys (sender-selected distribution).
        let cc_bcc = headers.is_some_and(|h| h.contains_key("CC") || h.contains_key("BCC"));
        drop(table);
        let msg = if cc_bcc {
            self.route_cc_bcc(ctx, &exchange, msg)
        } else {
            msg
        };
        let queues = &self.scratch.queues;
        for q in queues {
            if q.is_congested_for(ctx.link.id) && !ctx.congested.iter().any(|c| Arc::ptr_eq(c, q)) {
                ctx.congested.push(q.clone());
            }
        }
        let done = match &ctx.vhost.store {
            Some(store) if msg.is_persistent() => persist_and_push(store, &msg, queues)?,
            _ => push_all_later(&msg, queues, ctx),
        };
        self.scratch.queues.clear();
        let (lsn, routed) = (done.lsn, done.routed);
        if !routed && publish.mandatory {
            self.link.conn.outbox.push(Outbound::Return {
                channel: self.id(),
                reply_code: 312,
                reply_text: ShortStr::from_static("NO_ROUTE"),
                msg,
            });
        }
        if let Some(seq) = confirm_seq {
            let confirm = Outbound::Confirm {
                channel: self.id(),
                delivery_tag: seq,
                ack: !done.rejected,
            };
            self.link
                .send_after(lsn, confirm, ctx.vhost.store.as_deref());
        }
        Ok(())
    }

    /// Puts the queues a publish routes to in `self.scratch.queues`.
    fn route_to_scratch(
        &mut self,
        ctx: &SessionCtx,
        exchange: &Arc<super::exchange::Exchange>,
        routing_key: &ShortStr,
        headers: Option<&FieldTable>,
    ) {
        self.scratch.queues.clear();
        match &self.cache.queue {
            // Default exchange to the same queue as last time: no lookup.
            Some(q)
                if exchange.kind() == super::exchange::ExchangeKind::Default
                    && q.name == *routing_key
                    && !q.is_gone() =>
            {
                self.scratch.queues.push(q.clone());
            }
            _ => {
                ctx.vhost
                    .route(exchange, routing_key, headers, &mut self.scratch);
                if exchange.kind() == super::exchange::ExchangeKind::Default {
                    self.cache.queue = self.scratch.queues.first().cloned();
                }
            }
        }
    }

    /// The pseudo-queue behind `amq.rabbitmq.reply-to` for this channel: a
    /// private, auto-deleted queue whose name replies are routed to.
    fn reply_to_queue(
        &mut self,
        ctx: &mut SessionCtx,
        no_ack: bool,
    ) -> Result<Arc<Queue>, AmqpError> {
        if !no_ack {
            return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
        }
        if self.reply_to.is_some() {
            return Err(AmqpError::precondition("reply consumer already set"));
        }
        let name = names::generate("amq.rabbitmq.reply-to.");
        let opts = QueueOptions {
            durable: false,
            exclusive_owner: Some(ctx.link.id),
            auto_delete: true,
            arguments: Default::default(),
        };
        let (queue, _) =
            ctx.vhost
                .declare_queue(name.clone(), opts, QueueArgs::default(), ctx.link.id)?;
        ctx.exclusive_queues.push(queue.clone());
        self.reply_to = Some(name);
        Ok(queue)
    }

    /// Adds the queues for the keys in the `CC` and `BCC` headers; returns
    /// the message without its `BCC` header, which no consumer may see.
    fn route_cc_bcc(
        &mut self,
        ctx: &SessionCtx,
        exchange: &Arc<super::exchange::Exchange>,
        msg: Arc<Message>,
    ) -> Arc<Message> {
        let Some(headers) = msg.properties.headers() else {
            return msg;
        };
        for name in ["CC", "BCC"] {
            if let Some(FieldValue::Array(keys)) = headers.get(name) {
                for key in keys
                    .iter()
                    .filter_map(|k| k.as_str().and_then(|s| ShortStr::try_from(s).ok()))
                {
                    ctx.vhost
                        .route(exchange, &key, Some(&headers), &mut self.scratch);
                }
            }
        }
        let bcc = headers.contains_key("BCC");
        drop(headers);
        if !bcc {
            return msg;
        }
        let mut without_bcc = (*msg).clone();
        without_bcc.properties.modify(|p| {
            if let Some(h) = p.headers.as_mut() {
                h.remove("BCC");
            }
        });
        Arc::new(without_bcc)
    }

    /// Releases everything the channel holds: consumers leave their queues
    /// and unacked messages go back, in order, marked redelivered.
    pub fn release(&mut self, ctx: &mut SessionCtx) {
        for c in self.link.close() {
            if c.queue.remove_consumer(&c) {
                ctx.vhost.delete_queue(&c.queue);
            }
        }
        requeue_all(self.link.take_all_unacked());
        self.pending = None;
    }
}

/// Puts unacked messages back in their queues (grouped, order kept).
fn requeue_all(unacked: Vec<Unacked>) {
    for (queue, entries) in group_by_queue(unacked) {
        queue.requeue(entries);
    }
}

fn group_by_queue(unacked: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<Entry>)> {
    let mut groups: Vec<(Arc<Queue>, Vec<Entry>)> = Vec::new();
    for u in unacked {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, u.queue())) {
            Some((_, v)) => v.push(u.entry),
            None => groups.push((u.queue().clone(), vec![u.entry])),
        }
    }
    groups
}

/// What enqueueing a routed message came to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enqueued {
    /// The log record the publisher's confirm waits for (0: none).
    pub lsn: u64,
    /// Some queue took the message.
    pub routed: bool,
    /// Some queue refused it (x-overflow reject-publish): nack the publisher.
    pub rejected: bool,
}

impl Enqueued {
    fn note(&mut self, outcome: PushOutcome) {
        match outcome {
            PushOutcome::Queued => self.routed = true,
            PushOutcome::Rejected => {
                self.routed = true;
                self.rejected = true;
            }
            PushOutcome::Gone => {}
        }
    }
}

/// Puts a transient message (or one for a broker without a log) in `queues`.
pub(crate) fn push_all(msg: &Arc<Message>, queues: &[Arc<Queue>]) -> Enqueued {
    let mut out = Enqueued::default();
    for q in queues {
        out.note(q.push(msg.clone(), None));
    }
    out
}

/// [`push_all`] for a publish read off a connection: the queues that left
/// their deliveries for the end of the batch of frames dispatch at the
/// next [`Session::flush`](super::session::Session::flush)
/// ([`Queue::push_deferred`]).
fn push_all_later(msg: &Arc<Message>, queues: &[Arc<Queue>], ctx: &mut SessionCtx) -> Enqueued {
    let mut out = Enqueued::default();
    for q in queues {
        let (outcome, later) = q.push_deferred(msg.clone());
        out.note(outcome);
        if later {
            ctx.dispatch_later(q);
        }
    }
    out
}

/// Writes a persistent message to the log for the durable queues among
/// `queues`, then puts it in every queue.
pub(crate) fn persist_and_push(
    store: &Persistence,
    msg: &Arc<Message>,
    queues: &[Arc<Queue>],
) -> Result<Enqueued, AmqpError> {
    let durable = queues.iter().filter(|q| q.persists()).count();
    let failed = |e: warren_persistence::StoreError| {
        tracing::error!(error = %e, "cannot write to the log");
        AmqpError::internal("cannot write to the message store")
    };
    let content = || records::MessageContent {
        exchange: msg.exchange.clone(),
        routing_key: msg.routing_key.clone(),
        raw_properties: msg.properties.raw_or_encoded(),
        body: msg.body.clone(),
    };
    let mut out = Enqueued::default();
    match durable {
        0 => {}
        1 => {
            if let Some((queue, qrec)) = queues.iter().find_map(|q| q.record.map(|r| (q, r))) {
                let id = store
                    .append(records::MESSAGE, content().encode_message(qrec))
                    .map_err(failed)?;
                out.lsn = id.0;
                let p = Persisted {
                    record: id,
                    body: None,
                    marker: None,
                    returns: 0,
                };
                out.note(queue.push(msg.clone(), Some(p)));
            }
        }
        n => {
            // Fan-out: the body once, then one small entry per queue, in one
            // batch so a crash keeps all or none. An entry names its body by
            // how many records back it is, since ids are given at append.
            let durable: Vec<(&Arc<Queue>, RecordId)> = queues
                .iter()
                .filter_map(|q| q.record.map(|r| (q, r)))
                .collect();
            let mut batch = Vec::with_capacity(n + 1);
            batch.push(NewRecord::new(records::BODY, content().encode_body()));
            for (i, (_, qrec)) in durable.iter().enumerate() {
                let back = i as u64 + 1;
                batch.push(NewRecord::new(
                    records::ENTRY,
                    records::encode_entry(*qrec, back),
                ));
            }
            let body_id = store.append_batch(&batch).map_err(failed)?;
            let body = SharedBody::new(body_id, durable.len());
            for (id, (q, _)) in (body_id.0 + 1..).zip(durable) {
                let p = Persisted {
                    record: RecordId(id),
                    body: Some(body.clone()),
                    marker: None,
                    returns: 0,
                };
                out.note(q.push(msg.clone(), Some(p)));
                out.lsn = id;
            }
        }
    }
    for q in queues.iter().filter(|q| !q.persists()) {
        out.note(q.push(msg.clone(), None));
    }
    Ok(out)
}

/// The `expiration` property must be a non-negative integer of milliseconds;
/// the texts are RabbitMQ's.
fn check_expiration(exp: &[u8]) -> Result<(), AmqpError> {
    let text = std::str::from_utf8(exp).unwrap_or_default();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let detail = if end == 0 {
        "no_integer".to_string()
    } else if end < digits.len() {
        format!("{{leftover_string,\"{}\"}}", &digits[end..])
    } else if text.starts_with('-') {
        format!("{{value_negative,{text}}}")
    } else if text.parse::<u64>().is_err() {
        format!("{{value_too_large,{text}}}")
    } else {
        return Ok(());
    };
    Err(AmqpError::precondition(format!(
        "invalid expiration '{}': {detail}",
        String::from_utf8_lossy(exp)
    )))
}
