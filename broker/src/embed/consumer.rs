//! What an in-process channel hands out: deliveries, consumer streams,
//! publisher confirms and returned messages.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use warren_protocol::{BasicAck, BasicNack, BasicProperties, BasicReject, Method, ShortStr};

use super::channel::Channel;
use super::connection::ConnInner;
use crate::core::message::{Message, MessageProperties, NO_PROPERTIES};
use crate::error::AmqpError;

/// A message delivered to a [`Consumer`] or fetched with
/// [`Channel::basic_get`].
///
/// It shares the published message: [`Delivery::body`] is the publisher's
/// `Bytes`, not a copy, and the properties of an in-process publisher are
/// not cloned either.
#[derive(Debug)]
pub struct Delivery {
    msg: Arc<Message>,
    /// The properties of a message that came over TCP, decoded from the
    /// received bytes the first time they are asked for.
    decoded: OnceLock<Box<BasicProperties>>,
    delivery_tag: u64,
    redelivered: bool,
    consumer_tag: Option<ShortStr>,
    conn: Weak<ConnInner>,
    channel: u16,
}

impl Delivery {
    pub(crate) fn new(
        msg: Arc<Message>,
        delivery_tag: u64,
        redelivered: bool,
        consumer_tag: Option<ShortStr>,
        conn: Weak<ConnInner>,
        channel: u16,
    ) -> Delivery {
        Delivery {
            msg,
            decoded: OnceLock::new(),
            delivery_tag,
            redelivered,
            consumer_tag,
            conn,
            channel,
        }
    }

    /// The channel-scoped tag to acknowledge this message with.
    pub fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    /// True when the message was delivered before and went back to its
    /// queue (nack or reject with requeue, or a channel that closed with
    /// it unacknowledged).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The consumer it was delivered to; `None` for [`Channel::basic_get`].
    pub fn consumer_tag(&self) -> Option<&ShortStr> {
        self.consumer_tag.as_ref()
    }

    /// The exchange it was published to (empty for the default exchange).
    pub fn exchange(&self) -> &ShortStr {
        &self.msg.exchange
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &ShortStr {
        &self.msg.routing_key
    }

    /// Its properties as published. Those of a message published over
    /// TCP are decoded (strings sliced, not copied) on the first call.
    pub fn properties(&self) -> &BasicProperties {
        match &self.msg.properties {
            MessageProperties::Built(p) => p,
            MessageProperties::Wire(p) if p.is_empty() => &NO_PROPERTIES,
            MessageProperties::Wire(p) => self
                .decoded
                .get_or_init(|| Box::new(p.to_basic_properties())),
        }
    }

    /// Its body: the very bytes the publisher passed (cloning a `Bytes` is
    /// a reference count, not a copy).
    pub fn body(&self) -> &Bytes {
        &self.msg.body
    }

    fn feed(&self, method: Method) -> Result<(), AmqpError> {
        let conn = self.conn.upgrade().ok_or_else(|| {
            AmqpError::new(
                warren_protocol::ReplyCode::ConnectionForced,
                "connection closed",
            )
        })?;
        conn.feed(self.channel, method)
    }

    /// basic.ack for this message alone. Acknowledging a message twice, or
    /// one delivered to a no-ack consumer, is a channel error (406
    /// PRECONDITION_FAILED, unknown delivery tag) as over TCP.
    pub async fn ack(&self) -> Result<(), AmqpError> {
        self.feed(Method::BasicAck(BasicAck {
            delivery_tag: self.delivery_tag,
            multiple: false,
        }))
    }

    /// basic.nack for this message alone: with `requeue` it goes back to
    /// its original position in its queue, marked redelivered; without,
    /// it is dropped.
    pub async fn nack(&self, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicNack(BasicNack {
            delivery_tag: self.delivery_tag,
            multiple: false,
            requeue,
        }))
    }

    /// basic.reject: the same as [`Delivery::nack`] for one message.
    pub async fn reject(&self, requeue: bool) -> Result<(), AmqpError> {
        self.feed(Method::BasicReject(BasicReject {
            delivery_tag: self.delivery_tag,
            requeue,
        }))
    }
}

#[derive(Default)]
struct ConsumerBuf {
    items: VecDeque<Delivery>,
    /// Outbox budget carried by `items`, released when the stream takes them.
    bytes: usize,
    ended: bool,
    waker: Option<Waker>,
}

/// The buffer between the router and a [`Consumer`] stream.
#[derive(Default)]
pub(crate) struct ConsumerShared {
    buf: Mutex<ConsumerBuf>,
}

impl ConsumerShared {
    /// Moves `items` to the buffer (leaving `items` empty, its allocation
    /// recycled). False, leaving `items` as they are, once the stream ended.
    pub fn push_batch(&self, items: &mut VecDeque<Delivery>, bytes: usize) -> bool {
        let waker = {
            let mut b = self.buf.lock();
            if b.ended {
                return false;
            }
            if b.items.is_empty() {
                std::mem::swap(&mut b.items, items);
            } else {
                b.items.append(items);
            }
            b.bytes += bytes;
            b.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// No more deliveries: the stream ends once it yielded what it holds.
    pub fn end(&self) {
        let waker = {
            let mut b = self.buf.lock();
            b.ended = true;
            b.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ends the stream and drops what it holds; returns whether it had
    /// ended already and the outbox budget the dropped deliveries held.
    fn discard(&self) -> (bool, usize) {
        let mut b = self.buf.lock();
        let was_ended = b.ended;
        b.ended = true;
        b.items.clear();
        (was_ended, std::mem::take(&mut b.bytes))
    }
}

/// The deliveries of one consumer, as a [`futures::Stream`].
///
/// The stream ends after the consumer is cancelled — by
/// [`Channel::basic_cancel`], or by the broker because its queue was
/// deleted — or its channel or connection closes; deliveries that arrived
/// before that are still yielded. Dropping the stream cancels the consumer.
///
/// Deliveries are taken from the broker in batches: the stream keeps a
/// local buffer and takes the next batch with one lock. A stream that is
/// not read holds its queue back once the connection's outbox budget
/// (`LimitsConfig::outbox_high_water`) is used up, as a TCP client that
/// stops reading does; the messages stay in the queue meanwhile.
pub struct Consumer {
    tag: ShortStr,
    shared: Arc<ConsumerShared>,
    local: VecDeque<Delivery>,
    channel: Channel,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tag", &self.tag)
            .field("channel", &self.channel.id())
            .finish()
    }
}

impl Consumer {
    pub(crate) fn new(tag: ShortStr, shared: Arc<ConsumerShared>, channel: Channel) -> Consumer {
        Consumer {
            tag,
            shared,
            local: VecDeque::new(),
            channel,
        }
    }

    /// The consumer tag (generated as `amq.ctag-…` when none was given).
    pub fn tag(&self) -> &str {
        std::str::from_utf8(self.tag.as_bytes()).unwrap_or_default()
    }

    /// The channel the consumer runs on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

impl futures::Stream for Consumer {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        if let Some(d) = this.local.pop_front() {
            return Poll::Ready(Some(d));
        }
        let bytes = {
            let mut b = this.shared.buf.lock();
            if b.items.is_empty() {
                if b.ended {
                    return Poll::Ready(None);
                }
                match &b.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => b.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            std::mem::swap(&mut b.items, &mut this.local);
            std::mem::take(&mut b.bytes)
        };
        this.channel.outbox().written(bytes);
        Poll::Ready(this.local.pop_front())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let (was_ended, bytes) = self.shared.discard();
        if !was_ended {
            self.channel.cancel_on_drop(&self.tag);
        }
        self.channel.outbox().written(bytes);
    }
}

/// Outcome of one publish on a channel in confirm mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmOutcome {
    /// basic.ack (true) or basic.nack (false) from the broker.
    pub ack: bool,
    /// The message, when it was published mandatory and routed nowhere:
    /// the broker returns it (312 NO_ROUTE) before it confirms it.
    pub returned: Option<Returned>,
}

/// Resolves once the broker confirms a publish: at once when the channel
/// is not in confirm mode, otherwise when the broker has routed the message
/// (and, for persistent messages to durable queues, logged it).
///
/// Awaiting it gives `Ok(true)` for an ack and `Ok(false)` for a nack; it
/// fails if the channel closes before the confirm arrives.
#[derive(Debug)]
pub struct Confirmation {
    rx: Option<oneshot::Receiver<ConfirmOutcome>>,
    conn: Weak<ConnInner>,
    channel: u16,
}

impl Confirmation {
    pub(crate) fn new(
        rx: Option<oneshot::Receiver<ConfirmOutcome>>,
        conn: Weak<ConnInner>,
        channel: u16,
    ) -> Confirmation {
        Confirmation { rx, conn, channel }
    }

    fn lost(&self) -> AmqpError {
        match self.conn.upgrade() {
            Some(c) => c.channel_error(self.channel),
            None => AmqpError::channel_error("channel closed before the confirm"),
        }
    }

    /// Waits for the confirm and for the basic.return that came before it,
    /// if any.
    pub async fn outcome(mut self) -> Result<ConfirmOutcome, AmqpError> {
        match self.rx.take() {
            None => Ok(ConfirmOutcome {
                ack: true,
                returned: None,
            }),
            Some(rx) => rx.await.map_err(|_| self.lost()),
        }
    }
}

impl Future for Confirmation {
    type Output = Result<bool, AmqpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(Ok(true));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(o)) => Poll::Ready(Ok(o.ack)),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.lost())),
        }
    }
}

/// A message the broker returned to its publisher as unroutable (a
/// mandatory publish that reached no queue).
#[derive(Debug, Clone, PartialEq)]
pub struct Returned {
    /// 312 (NO_ROUTE).
    pub reply_code: u16,
    /// `NO_ROUTE`.
    pub reply_text: String,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Its properties as published.
    pub properties: BasicProperties,
    /// Its body, shared with the publisher's.
    pub body: Bytes,
}

impl Eq for Returned {}
