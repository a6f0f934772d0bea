//! One TCP connection: handshake, then frames in, outbox out.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use warren_protocol::{decode_frame, ConnectionBlocked, ConnectionClose, Frame, Method, ShortStr};

use super::handshake::{self, HandshakeError};
use super::writer;
use crate::broker::BrokerShared;
use crate::core::link::ConnectionLink;
use crate::core::outbox::{Outbound, Outbox};
use crate::core::session::{Session, SessionCtx, SessionStatus};
use crate::error::AmqpError;

/// How long a client gets to finish the handshake, and to answer our close.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a publisher is held back at once before congestion is re-checked.
const FLOW_WAIT: Duration = Duration::from_millis(500);
/// Acks handled before the deliveries they made room for go out. A client
/// acking a whole prefetch window in one write then gets its next messages
/// while the rest of its acks are still being read: a pipeline instead of
/// ping-pong: about a quarter more rate on the end-to-end ack rows, for
/// about a quarter more CPU per message (smaller reads and writes); 16 did
/// worse, 64 gained little (BENCHMARKS.md, "Acks in slices").
const ACKS_PER_SLICE: usize = 32;

/// How far one pass over the read buffer got.
enum Step {
    /// Every complete frame is handled.
    Drained,
    /// [`ACKS_PER_SLICE`] acks were handled; more frames may wait.
    Slice,
    End(Ending),
}

pub async fn serve(shared: Arc<BrokerShared>, mut socket: TcpStream, peer: SocketAddr) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let negotiated = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::negotiate(&shared, &mut socket, &mut buf),
    )
    .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(HandshakeError::Amqp(e))) => {
            tracing::info!(%peer, error = %e, "handshake refused");
            handshake::send_close(&mut socket, &e).await;
            return;
        }
        Ok(Err(HandshakeError::Io(e))) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Ok(Err(HandshakeError::Silent)) | Err(_) => return,
    };
    let Some(vhost) = shared.vhosts.get(&negotiated.vhost).cloned() else {
        return;
    };
    tracing::info!(%peer, user = %negotiated.user, vhost = %negotiated.vhost, "connection open");

    let link = Arc::new(ConnectionLink {
        id: shared.next_connection_id(),
        outbox: Outbox::new(shared.config.limits.outbox_high_water),
        consumer_cancel_notify: AtomicBool::new(negotiated.consumer_cancel_notify),
    });
    let ctx = SessionCtx {
        vhost,
        link: link.clone(),
        exclusive_queues: Vec::new(),
        max_message_size: shared.config.limits.max_message_size,
        user: Some(negotiated.user.clone()),
        congested: Vec::new(),
        redispatch: Default::default(),
    };
    let mut session = Session::new(ctx, negotiated.channel_max);

    let (mut reader, write_half) = socket.into_split();
    // The writer sends a heartbeat when idle for half the interval, so the
    // peer hears from us well within its own timeout.
    let writer = tokio::spawn(writer::run(
        link.clone(),
        write_half,
        negotiated.frame_max,
        negotiated.heartbeat.map(|h| h / 2),
    ));
    // A peer silent for two heartbeat intervals is gone.
    let read_timeout = negotiated.heartbeat.map(|h| h * 2);
    let mut shutdown = shared.shutdown.subscribe();

    // A publish was read since the memory alarm last let this connection go.
    let mut published = false;
    let ending = loop {
        // Handle every complete frame already read before reading again.
        let mut acks = 0;
        let step = loop {
            match decode_frame(&mut buf, negotiated.frame_max) {
                Ok(Some(frame)) => {
                    let (is_publish, is_ack) = match &frame {
                        Frame::Method {
                            method: Method::BasicPublish(_),
                            ..
                        } => (true, false),
                        Frame::Method {
                            method: Method::BasicAck(_),
                            ..
                        } => (false, true),
                        Frame::Method { .. } => {
                            // Deliveries that publishes earlier in the batch
                            // left for later go out before any other method
                            // can look at their queues (a purge, a delete,
                            // a get), as if the frames had come one by one.
                            session.flush();
                            (false, false)
                        }
                        _ => (false, false),
                    };
                    published |= is_publish;
                    acks += usize::from(is_ack);
                    match session.handle_frame(frame) {
                        Ok(SessionStatus::Running) if acks == ACKS_PER_SLICE => break Step::Slice,
                        Ok(SessionStatus::Running) => continue,
                        Ok(_) => break Step::End(Ending::ClientClosed),
                        Err(e) => break Step::End(Ending::Error(e)),
                    }
                }
                Ok(None) => break Step::Drained,
                Err(e) => {
                    break Step::End(Ending::Error(AmqpError::new(e.reply_code(), e.to_string())))
                }
            }
        };
        session.flush();
        let sliced = match step {
            Step::End(end) => break end,
            Step::Slice => true,
            Step::Drained => false,
        };
        // Flow control: stop reading while a queue we fed is far behind.
        for queue in std::mem::take(&mut session.ctx.congested) {
            queue.wait_uncongested(FLOW_WAIT).await;
        }
        // The memory alarm: a connection that publishes is not read from
        // until memory is back under the limit (consumers go on). It stops
        // between messages, not halfway through one.
        if published && shared.alarm.is_on() {
            if !session.receiving_content() {
                blocked(&shared, &link, negotiated.blocked_notify, &mut shutdown).await;
                published = false;
            }
        } else {
            published = false;
        }
        if *shutdown.borrow() {
            break Ending::Error(AmqpError::new(
                warren_protocol::ReplyCode::ConnectionForced,
                "broker shutdown",
            ));
        }
        if sliced {
            // Let the writer send what those acks made room for before
            // handling the rest of them.
            tokio::task::yield_now().await;
            continue;
        }
        // Keep room for a full read: frames split off the front leave less.
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let read = async {
            match read_timeout {
                Some(t) => tokio::time::timeout(t, reader.read_buf(&mut buf))
                    .await
                    .ok(),
                None => Some(reader.read_buf(&mut buf).await),
            }
        };
        tokio::select! {
            r = read => match r {
                Some(Ok(0)) | Some(Err(_)) => break Ending::Gone,
                Some(Ok(_)) => {}
                None => {
                    tracing::warn!(%peer, "missed heartbeats from client; closing");
                    break Ending::Gone;
                }
            },
            _ = shutdown.changed() => {}
        }
    };

    match ending {
        Ending::ClientClosed | Ending::Gone => link.outbox.close(),
        Ending::Error(e) => {
            tracing::info!(%peer, error = %e, "closing connection");
            // Consumers go and unacked messages return before the client
            // hears of the close: once it has, the queues must not deliver
            // to this connection any more (RabbitMQ behaves the same).
            session.close();
            link.outbox.push(Outbound::method(
                0,
                Method::ConnectionClose(ConnectionClose {
                    reply_code: e.code.code(),
                    reply_text: ShortStr::try_from(e.reply_text()).unwrap_or_default(),
                    class_id: e.class_id,
                    method_id: e.method_id,
                }),
            ));
            link.outbox.close();
            // Wait briefly for close-ok, dropping anything else the client sends.
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                await_close_ok(&mut reader, &mut buf, negotiated.frame_max),
            )
            .await;
        }
    }
    // Requeue, cancel, delete exclusive queues before the socket goes
    // (done already after an error; doing it again changes nothing).
    session.close();
    link.outbox.close();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
    tracing::info!(%peer, "connection closed");
}

/// Waits out the memory alarm (or shutdown), telling the client with
/// connection.blocked / unblocked when it asked to be told.
async fn blocked(
    shared: &BrokerShared,
    link: &ConnectionLink,
    notify: bool,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    if notify {
        link.outbox.push(Outbound::method(
            0,
            Method::ConnectionBlocked(ConnectionBlocked {
                reason: ShortStr::from_static("low on memory"),
            }),
        ));
    }
    tokio::select! {
        _ = shared.alarm.cleared() => {}
        _ = shutdown.wait_for(|down| *down) => {}
    }
    if notify {
        link.outbox
            .push(Outbound::method(0, Method::ConnectionUnblocked));
    }
}

enum Ending {
    ClientClosed,
    Gone,
    Error(AmqpError),
}

async fn await_close_ok(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    frame_max: u32,
) {
    loop {
        loop {
            match decode_frame(buf, frame_max) {
                Ok(Some(Frame::Method {
                    method: Method::ConnectionCloseOk | Method::ConnectionClose(_),
                    ..
                })) => return,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
