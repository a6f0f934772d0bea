//! An in-process connection: the core `Session` behind a lock, and the
//! routes the router task uses to hand back what the core sends.

use crate::alarm::MemoryAlarm;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;
use warren_protocol::{Frame, Method, ReplyCode};

use super::channel::Channel;
use super::router::{self, ChannelRoutes, Pending, Routes};
use crate::broker::Broker;
use crate::core::link::ConnectionLink;
use crate::core::outbox::Outbox;
use crate::core::queue::Queue;
use crate::core::session::{Session, SessionCtx};
use crate::error::AmqpError;

/// Lock order: `session`, then `routes`, then a consumer's buffer. The
/// router task takes only `routes` and consumer buffers, never `session`.
pub(crate) struct ConnInner {
    /// `None` once the connection is closed.
    session: Mutex<Option<Session>>,
    pub link: Arc<ConnectionLink>,
    pub routes: Arc<Mutex<Routes>>,
    channel_max: u16,
    /// The broker's memory alarm: publishers wait while it is on.
    pub alarm: Arc<MemoryAlarm>,
}

impl ConnInner {
    /// Runs `op` on the session. An `Err` from `op` is a connection-level
    /// exception and closes the connection. A channel-level exception on
    /// `channel` closes that channel (the close handshake is finished on the
    /// caller's behalf) and is returned.
    pub fn exec<R>(
        &self,
        channel: u16,
        op: impl FnOnce(&mut Session, &Mutex<Routes>) -> Result<R, AmqpError>,
    ) -> Result<R, AmqpError> {
        self.exec_flow(channel, op).map(|(value, _)| value)
    }

    /// [`ConnInner::exec`] for a publish: also returns the queues that are
    /// far behind their consumers on another connection (flow control), for
    /// the publisher to wait on as a TCP publisher's reader does.
    pub fn exec_flow<R>(
        &self,
        channel: u16,
        op: impl FnOnce(&mut Session, &Mutex<Routes>) -> Result<R, AmqpError>,
    ) -> Result<(R, Vec<Arc<Queue>>), AmqpError> {
        let mut guard = self.session.lock();
        let Some(session) = guard.as_mut() else {
            return Err(self.closed_error());
        };
        let result = op(session, &self.routes);
        session.flush();
        let congested = std::mem::take(&mut session.ctx.congested);
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                session.close();
                *guard = None;
                self.routes.lock().close_all(e.clone());
                self.link.outbox.close();
                return Err(e);
            }
        };
        if let Some(e) = session.take_channel_error(channel) {
            // The core queued channel.close and waits for close-ok.
            let _ = session.handle_frame(Frame::Method {
                channel,
                method: Method::ChannelCloseOk,
            });
            if let Some(ch) = self.routes.lock().channels.get_mut(&channel) {
                ch.close(e.clone());
            }
            return Err(e);
        }
        Ok((value, congested))
    }

    /// Feeds one method on a channel, expecting no reply.
    pub fn feed(&self, channel: u16, method: Method) -> Result<(), AmqpError> {
        self.exec(channel, |s, _| {
            s.handle_frame(Frame::Method { channel, method }).map(drop)
        })
    }

    /// Why the connection is closed (or a generic error if it is not).
    pub fn closed_error(&self) -> AmqpError {
        self.routes
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| AmqpError::new(ReplyCode::ConnectionForced, "connection closed"))
    }

    /// The error that closed `channel`, or the connection's.
    pub fn channel_error(&self, channel: u16) -> AmqpError {
        let routes = self.routes.lock();
        if let Some(e) = routes.channels.get(&channel).and_then(|c| c.closed.clone()) {
            return e;
        }
        routes
            .closed
            .clone()
            .unwrap_or_else(|| AmqpError::channel_error("channel closed"))
    }

    pub fn is_open(&self) -> bool {
        self.session.lock().is_some()
    }

    /// Closes the session: unacked messages go back, exclusive queues go.
    pub fn close(&self, reason: AmqpError) {
        let session = self.session.lock().take();
        if let Some(mut session) = session {
            self.routes.lock().close_all(reason);
            session.close();
        }
        self.link.outbox.close();
    }
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        self.close(AmqpError::new(
            ReplyCode::ConnectionForced,
            "connection closed",
        ));
    }
}

/// A connection to a broker in the same process: no socket, no handshake,
/// no encoding. Cheap to clone; all clones are the same connection.
///
/// It closes when [`Connection::close`] is called, when its broker shuts
/// down, or when the last handle to it — the `Connection` clones, its
/// [`Channel`]s and their [`super::Consumer`]s — is dropped. Closing puts
/// unacknowledged messages back in their queues and deletes the exclusive
/// queues the connection declared, as a TCP disconnect does.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.link.id.0)
            .field("open", &self.inner.is_open())
            .finish()
    }
}

impl Broker {
    /// Opens an in-process connection to the vhost `/`.
    ///
    /// Fails with 320 CONNECTION_FORCED once [`Broker::shutdown`] started.
    pub async fn connect(&self) -> Result<Connection, AmqpError> {
        self.connect_vhost("/").await
    }

    /// Opens an in-process connection to a vhost of the broker's
    /// configuration (530 NOT_ALLOWED if there is no such vhost).
    ///
    /// Must be called within a tokio runtime: each connection runs a small
    /// task that hands replies and deliveries to their callers.
    pub async fn connect_vhost(&self, vhost: &str) -> Result<Connection, AmqpError> {
        let shutdown_error = || AmqpError::new(ReplyCode::ConnectionForced, "broker shutdown");
        if *self.shared.shutdown.borrow() {
            return Err(shutdown_error());
        }
        let Some(guard) = self.shared.task_guard() else {
            return Err(shutdown_error());
        };
        let Some(vh) = self.shared.vhosts.get(vhost).cloned() else {
            return Err(AmqpError::not_allowed(format!("vhost '{vhost}' not found")));
        };
        let limits = &self.shared.config.limits;
        let link = Arc::new(ConnectionLink {
            id: self.shared.next_connection_id(),
            outbox: Outbox::new(limits.outbox_high_water),
            consumer_cancel_notify: AtomicBool::new(true),
        });
        let ctx = SessionCtx {
            vhost: vh,
            link: link.clone(),
            exclusive_queues: Vec::new(),
            max_message_size: limits.max_message_size,
            user: None,
            congested: Vec::new(),
            redispatch: Default::default(),
        };
        let session = Session::new(ctx, limits.channel_max);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let inner = Arc::new(ConnInner {
            session: Mutex::new(Some(session)),
            link: link.clone(),
            routes: routes.clone(),
            channel_max: limits.channel_max,
            alarm: self.shared.alarm.clone(),
        });
        let shutdown = self.shared.shutdown.subscribe();
        tokio::spawn(router::run(
            link,
            routes,
            Arc::downgrade(&inner),
            shutdown,
            guard,
        ));
        Ok(Connection { inner })
    }
}

impl Connection {
    /// Opens a new channel (the lowest free channel number in turn, up to
    /// the configured `channel_max`; 530 NOT_ALLOWED when all are in use).
    pub async fn open_channel(&self) -> Result<Channel, AmqpError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let routes = ChannelRoutes::new();
        let closed = routes.closed_flag();
        let id = {
            let mut r = self.inner.routes.lock();
            if let Some(e) = &r.closed {
                return Err(e.clone());
            }
            let id = r
                .free_channel(self.inner.channel_max)
                .ok_or_else(|| AmqpError::not_allowed("no free channel numbers"))?;
            r.channels.insert(id, routes);
            id
        };
        let ch = Channel::new(self.inner.clone(), id, closed);
        self.inner.exec(id, |s, routes| {
            if let Some(c) = routes.lock().channels.get_mut(&id) {
                c.pending.push_back(Pending::Reply(tx));
            }
            s.handle_frame(Frame::Method {
                channel: id,
                method: Method::ChannelOpen,
            })
            .map(drop)
        })?;
        match rx.await {
            Ok(Ok(_)) => Ok(ch),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.inner.closed_error()),
        }
    }

    /// Closes the connection: consumers stop, unacknowledged messages go
    /// back to their queues and exclusive queues are deleted. Every later
    /// call on its channels fails with 320 CONNECTION_FORCED.
    pub async fn close(&self) {
        self.inner.close(AmqpError::new(
            ReplyCode::ConnectionForced,
            "connection closed by the application",
        ));
    }

    /// False once the connection was closed (by the application, by a
    /// connection-level error or by broker shutdown).
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }
}
