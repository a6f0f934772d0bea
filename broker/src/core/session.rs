//! The core side of one connection after the handshake: its channels and
//! the frames it receives. No sockets here: the TCP connection feeds frames
//! in, and everything for the client comes out through the outbox.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use warren_protocol::{BasicPublish, ChannelClose, Frame, Method};

use super::channel::Channel;
use super::link::{ChannelLink, ConnectionLink};
use super::message::Message;
use super::outbox::Outbound;
use super::queue::Queue;
use super::vhost::VHost;
use crate::error::AmqpError;

/// What the channels of a connection share.
pub struct SessionCtx {
    pub vhost: Arc<VHost>,
    pub link: Arc<ConnectionLink>,
    /// Exclusive queues this connection declared; deleted when it closes.
    pub exclusive_queues: Vec<Arc<Queue>>,
    pub max_message_size: u64,
    /// The authenticated user; publishes may not claim another `user_id`.
    pub user: Option<String>,
    /// Queues this connection published to that are falling behind their
    /// consumers; the connection stops reading until they catch up.
    pub congested: Vec<Arc<Queue>>,
    /// Queues that got messages, or whose consumers got credit back (acks,
    /// rejects), since the last [`Session::flush`]: each delivers once for a
    /// whole batch of frames instead of once per publish or ack.
    pub redispatch: Redispatch,
}

impl SessionCtx {
    /// Has `queue` deliver at the next [`Session::flush`].
    pub fn dispatch_later(&mut self, queue: &Arc<Queue>) {
        self.redispatch.add(queue);
    }
}

/// The queues to dispatch at the next flush, each once.
#[derive(Default)]
pub struct Redispatch {
    queues: Vec<Arc<Queue>>,
    /// The addresses of `queues` once there are too many to scan: a publish
    /// fanned out to many queues adds each of them for every message.
    seen: FxHashSet<usize>,
}

impl Redispatch {
    /// Up to this many, a scan costs less than hashing.
    const SCAN: usize = 64;

    #[inline]
    fn add(&mut self, queue: &Arc<Queue>) {
        // The usual case: the queue the last publish or ack went to.
        if self.queues.last().is_some_and(|q| Arc::ptr_eq(q, queue)) {
            return;
        }
        self.add_new(queue);
    }

    fn add_new(&mut self, queue: &Arc<Queue>) {
        let addr = |q: &Arc<Queue>| Arc::as_ptr(q) as usize;
        if self.queues.len() < Self::SCAN {
            if self.queues.iter().any(|q| Arc::ptr_eq(q, queue)) {
                return;
            }
        } else {
            if self.seen.is_empty() {
                self.seen.extend(self.queues.iter().map(addr));
            }
            if !self.seen.insert(addr(queue)) {
                return;
            }
        }
        self.queues.push(queue.clone());
    }
}

enum ChannelSlot {
    Open(Box<Channel>),
    /// The server closed the channel and waits for close-ok; frames for it
    /// are dropped until then.
    Closing,
}

/// What the connection should do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionStatus {
    Running,
    /// The client sent connection.close; close-ok is queued.
    ClientClosed,
    /// The client answered our connection.close.
    CloseAcknowledged,
}

pub struct Session {
    pub ctx: SessionCtx,
    /// Keyed by channel number with a fast hash: looked up for every frame.
    channels: FxHashMap<u16, ChannelSlot>,
    channel_max: u16,
    /// The error that closed a channel, for in-process callers that want it
    /// returned from the call rather than read from the outbox.
    channel_errors: FxHashMap<u16, AmqpError>,
}

impl Session {
    pub fn new(ctx: SessionCtx, channel_max: u16) -> Session {
        Session {
            ctx,
            channels: FxHashMap::default(),
            channel_max,
            channel_errors: FxHashMap::default(),
        }
    }

    fn push(&self, channel: u16, method: Method) {
        self.ctx.link.outbox.push(Outbound::method(channel, method));
    }

    /// Whether a channel is in the middle of receiving a message's content
    /// (the memory alarm blocks a publisher only between messages).
    pub fn receiving_content(&self) -> bool {
        self.channels.values().any(|slot| match slot {
            ChannelSlot::Open(ch) => ch.receiving_content(),
            ChannelSlot::Closing => false,
        })
    }

    /// Runs what the frames handled since the last call left for later
    /// (deliveries after acks). Callers call it after each batch of frames,
    /// before waiting for more.
    pub fn flush(&mut self) {
        // Drained rather than taken, so the list keeps its buffer: an
        // in-process ack is a batch of its own.
        let mut queues = std::mem::take(&mut self.ctx.redispatch.queues);
        self.ctx.redispatch.seen.clear();
        for queue in queues.drain(..) {
            queue.dispatch();
        }
        self.ctx.redispatch.queues = queues;
    }

    /// Handles one frame. An `Err` is a connection-level exception: the
    /// caller sends connection.close with it and stops reading. What it
    /// leaves for later runs at the next [`Session::flush`].
    pub fn handle_frame(&mut self, frame: Frame) -> Result<SessionStatus, AmqpError> {
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(SessionStatus::Running),
            Frame::Heartbeat { .. } => Err(AmqpError::frame_error(
                "heartbeat frame on a non-zero channel",
            )),
            Frame::Method { channel: 0, method } => self.connection_method(method),
            Frame::Method { channel, method } => {
                let (class_id, method_id) = (method.class_id(), method.method_id());
                self.channel_method(channel, method)
                    .map_err(|e| e.caused_by(class_id, method_id))?;
                Ok(SessionStatus::Running)
            }
            Frame::Header { channel, header } => {
                self.with_channel(channel, |ch, ctx| ch.on_header(ctx, header))?;
                Ok(SessionStatus::Running)
            }
            Frame::Body { channel, payload } => {
                self.with_channel(channel, |ch, ctx| ch.on_body(ctx, payload))?;
                Ok(SessionStatus::Running)
            }
        }
    }

    /// A whole basic.publish at once, for in-process publishers: the
    /// message is built by the caller (one allocation, nothing encoded) and
    /// goes through the same checks, routing and confirms as one assembled
    /// from method, header and body frames.
    pub fn publish(
        &mut self,
        channel: u16,
        method: BasicPublish,
        msg: Arc<Message>,
    ) -> Result<(), AmqpError> {
        let max = self.ctx.max_message_size;
        self.with_channel(channel, |ch, ctx| {
            if method.immediate {
                return Err(AmqpError::not_implemented("immediate=true"));
            }
            if msg.body.len() as u64 > max {
                return Err(AmqpError::precondition(format!(
                    "message size {} is larger than configured max size {max}",
                    msg.body.len()
                )));
            }
            ch.publish_message(ctx, method, msg)
        })
    }

    /// Messages handed over whole by an in-process publisher, all with the
    /// same publish method; `msgs` is left empty. They are all checked
    /// before any is routed, so a refused batch publishes nothing.
    pub fn publish_batch(
        &mut self,
        channel: u16,
        method: &BasicPublish,
        msgs: &mut Vec<Arc<Message>>,
    ) -> Result<(), AmqpError> {
        let max = self.ctx.max_message_size;
        let result = self.with_channel(channel, |ch, ctx| {
            if method.immediate {
                return Err(AmqpError::not_implemented("immediate=true"));
            }
            if let Some(big) = msgs.iter().find(|m| m.body.len() as u64 > max) {
                return Err(AmqpError::precondition(format!(
                    "message size {} is larger than configured max size {max}",
                    big.body.len()
                )));
            }
            ch.publish_batch(ctx, method, msgs)
        });
        msgs.clear();
        result
    }

    fn connection_method(&mut self, method: Method) -> Result<SessionStatus, AmqpError> {
        match method {
            Method::ConnectionClose(_) => {
                self.push(0, Method::ConnectionCloseOk);
                Ok(SessionStatus::ClientClosed)
            }
            Method::ConnectionCloseOk => Ok(SessionStatus::CloseAcknowledged),
            Method::ConnectionUpdateSecret(_) => {
                self.push(0, Method::ConnectionUpdateSecretOk);
                Ok(SessionStatus::Running)
            }
            // Blocking notifications from a client mean nothing to us.
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked => {
                Ok(SessionStatus::Running)
            }
            other => Err(AmqpError::command_invalid(format!(
                "unexpected method {} on channel 0",
                other.name()
            ))
            .caused_by(other.class_id(), other.method_id())),
        }
    }

    fn channel_method(&mut self, id: u16, method: Method) -> Result<(), AmqpError> {
        match (self.channels.get_mut(&id), method) {
            (None, Method::ChannelOpen) => {
                if id > self.channel_max {
                    return Err(AmqpError::not_allowed(format!(
                        "channel number {id} is above the negotiated channel_max {}",
                        self.channel_max
                    )));
                }
                let link = Arc::new(ChannelLink::new(id, self.ctx.link.clone()));
                self.channels
                    .insert(id, ChannelSlot::Open(Box::new(Channel::new(link))));
                self.push(id, Method::ChannelOpenOk);
                Ok(())
            }
            (None, m) => Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {id}, got {}",
                m.name()
            ))),
            (Some(ChannelSlot::Open(_)), Method::ChannelOpen) => Err(AmqpError::channel_error(
                format!("second 'channel.open' seen on channel {id}"),
            )),
            (Some(ChannelSlot::Closing), Method::ChannelCloseOk | Method::ChannelClose(_)) => {
                self.channels.remove(&id);
                self.channel_errors.remove(&id);
                Ok(())
            }
            (Some(ChannelSlot::Closing), _) => Ok(()),
            (Some(ChannelSlot::Open(_)), Method::ChannelClose(_)) => {
                if let Some(ChannelSlot::Open(mut ch)) = self.channels.remove(&id) {
                    ch.release(&mut self.ctx);
                }
                self.push(id, Method::ChannelCloseOk);
                Ok(())
            }
            (Some(ChannelSlot::Open(ch)), m) => {
                let (class_id, method_id) = (m.class_id(), m.method_id());
                let result = ch.handle(&mut self.ctx, m);
                self.on_channel_result(id, result.map_err(|e| e.caused_by(class_id, method_id)))
            }
        }
    }

    fn with_channel(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut Channel, &mut SessionCtx) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        match self.channels.get_mut(&id) {
            Some(ChannelSlot::Open(ch)) => {
                let result = f(ch, &mut self.ctx).map_err(|e| e.caused_by(60, 40));
                self.on_channel_result(id, result)
            }
            Some(ChannelSlot::Closing) => Ok(()),
            None => Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {id}"
            ))),
        }
    }

    /// A soft error closes just the channel; a hard one goes up.
    fn on_channel_result(
        &mut self,
        id: u16,
        result: Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let err = match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_connection_level() => return Err(e),
            Err(e) => e,
        };
        if let Some(ChannelSlot::Open(mut ch)) = self.channels.insert(id, ChannelSlot::Closing) {
            ch.release(&mut self.ctx);
        }
        self.channel_errors.insert(id, err.clone());
        self.push(
            id,
            Method::ChannelClose(ChannelClose {
                reply_code: err.code.code(),
                reply_text: warren_protocol::ShortStr::try_from(err.reply_text())
                    .unwrap_or_default(),
                class_id: err.class_id,
                method_id: err.method_id,
            }),
        );
        Ok(())
    }

    /// The error that closed channel `id`, if the server closed it.
    pub fn take_channel_error(&mut self, id: u16) -> Option<AmqpError> {
        if self.channel_errors.is_empty() {
            return None;
        }
        self.channel_errors.remove(&id)
    }

    /// The connection is going away: release every channel and delete the
    /// connection's exclusive queues.
    pub fn close(&mut self) {
        self.flush();
        for (_, slot) in self.channels.drain() {
            if let ChannelSlot::Open(mut ch) = slot {
                ch.release(&mut self.ctx);
            }
        }
        for queue in std::mem::take(&mut self.ctx.exclusive_queues) {
            self.ctx.vhost.delete_queue(&queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;

    use warren_protocol::{FieldTable, ShortStr};

    use super::*;
    use crate::core::queue::QueueOptions;
    use crate::core::queue_args::QueueArgs;

    fn queue() -> Arc<Queue> {
        Queue::new(
            ShortStr::from_static("q"),
            "/".to_string(),
            QueueOptions {
                durable: false,
                exclusive_owner: None,
                auto_delete: false,
                arguments: FieldTable::new(),
            },
            QueueArgs::default(),
            None,
            None,
            Weak::new(),
        )
    }

    #[test]
    fn a_queue_is_dispatched_once_however_often_it_is_added() {
        let queues: Vec<_> = (0..3 * Redispatch::SCAN).map(|_| queue()).collect();
        let mut later = Redispatch::default();
        // As a publish fanned out to all of them, three times over.
        for _ in 0..3 {
            for q in &queues {
                later.add(q);
            }
        }
        assert_eq!(later.queues.len(), queues.len());
        for (added, q) in later.queues.iter().zip(&queues) {
            assert!(Arc::ptr_eq(added, q));
        }
    }
}
