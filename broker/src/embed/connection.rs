//! An in-process connection.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use warren_protocol::{Frame, Method, ReplyCode};

use super::channel::Channel;
use super::router::{self, ChannelRoutes, Routes};
use crate::broker::Broker;
use crate::core::link::ConnectionLink;
use crate::core::outbox::Outbox;
use crate::core::session::{Session, SessionCtx};
use crate::error::AmqpError;

pub(crate) struct ConnInner {
    /// `None` once the connection is closed.
    pub session: Mutex<Option<Session>>,
    pub link: Arc<ConnectionLink>,
    pub routes: Arc<Mutex<Routes>>,
    next_channel: AtomicU16,
}

impl ConnInner {
    /// Feeds one frame to the core. A connection-level error closes the
    /// connection; a channel error is returned and the channel released.
    pub fn feed(&self, channel: u16, frame: Frame) -> Result<(), AmqpError> {
        let mut guard = self.session.lock();
        let Some(session) = guard.as_mut() else {
            return Err(self.closed_error());
        };
        if let Err(e) = session.handle_frame(frame) {
            session.close();
            *guard = None;
            self.link.outbox.close();
            self.routes.lock().close_all(e.clone());
            return Err(e);
        }
        if let Some(e) = session.take_channel_error(channel) {
            // Finish the close handshake on the client's behalf.
            let _ = session.handle_frame(Frame::Method {
                channel,
                method: Method::ChannelCloseOk,
            });
            if let Some(ch) = self.routes.lock().channels.get_mut(&channel) {
                ch.close(e.clone());
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn closed_error(&self) -> AmqpError {
        self.routes
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| AmqpError::new(ReplyCode::ConnectionForced, "connection closed"))
    }

    fn close(&self) {
        if let Some(mut session) = self.session.lock().take() {
            session.close();
        }
        self.link.outbox.close();
    }
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        self.close();
    }
}

/// A connection to a broker in the same process. Dropping the last handle
/// (including its channels and deliveries) closes it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
}

impl Broker {
    /// Opens an in-process connection to the vhost `/`.
    pub async fn connect(&self) -> Result<Connection, AmqpError> {
        self.connect_vhost("/").await
    }

    /// Opens an in-process connection to a vhost.
    pub async fn connect_vhost(&self, vhost: &str) -> Result<Connection, AmqpError> {
        if *self.shared.shutdown.borrow() {
            return Err(AmqpError::new(
                ReplyCode::ConnectionForced,
                "broker shutdown",
            ));
        }
        let Some(vh) = self.shared.vhosts.get(vhost).cloned() else {
            return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
        };
        let link = Arc::new(ConnectionLink {
            id: self.shared.next_connection_id(),
            outbox: Outbox::new(self.shared.config.limits.outbox_high_water),
            consumer_cancel_notify: AtomicBool::new(true),
        });
        let ctx = SessionCtx {
            vhost: vh,
            link: link.clone(),
            exclusive_queues: Vec::new(),
            max_message_size: self.shared.config.limits.max_message_size,
            user: None,
        };
        let session = Session::new(ctx, self.shared.config.limits.channel_max);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let inner = Arc::new(ConnInner {
            session: Mutex::new(Some(session)),
            link: link.clone(),
            routes: routes.clone(),
            next_channel: AtomicU16::new(1),
        });
        tokio::spawn(router::run(link, routes, Arc::downgrade(&inner)));
        // Broker shutdown closes in-process connections too.
        let weak = Arc::downgrade(&inner);
        let mut shutdown = self.shared.shutdown.subscribe();
        let guard = self.shared.task_guard();
        tokio::spawn(async move {
            let _guard = guard;
            let _ = shutdown.wait_for(|s| *s).await;
            if let Some(inner) = weak.upgrade() {
                inner.routes.lock().close_all(AmqpError::new(
                    ReplyCode::ConnectionForced,
                    "broker shutdown",
                ));
                inner.close();
            }
        });
        Ok(Connection { inner })
    }
}

impl Connection {
    /// Opens a new channel.
    pub async fn open_channel(&self) -> Result<Channel, AmqpError> {
        let id = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            return Err(AmqpError::not_allowed("no free channel numbers"));
        }
        self.inner
            .routes
            .lock()
            .channels
            .insert(id, ChannelRoutes::default());
        let ch = Channel::new(self.inner.clone(), id);
        ch.call(Method::ChannelOpen).await?;
        Ok(ch)
    }

    /// Closes the connection: unacked messages go back to their queues and
    /// exclusive queues are deleted.
    pub async fn close(self) {
        self.inner.close();
    }

    pub fn is_open(&self) -> bool {
        self.inner.session.lock().is_some()
    }
}
