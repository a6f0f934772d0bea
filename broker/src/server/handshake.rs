//! Connection negotiation: protocol header, start/start-ok (SASL), tune and open.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren_protocol::{
    check_protocol_header, decode_frame, encode_method_frame, ConnectionClose, ConnectionStart,
    ConnectionTune, FieldTable, FieldValue, Frame, LongStr, Method, ProtocolHeaderCheck, ShortStr,
    PROTOCOL_HEADER,
};

use crate::broker::BrokerShared;
use crate::error::AmqpError;

/// What the handshake settled.
pub struct Negotiated {
    pub vhost: String,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: Option<Duration>,
    pub consumer_cancel_notify: bool,
    /// The client understands connection.blocked and connection.unblocked.
    pub blocked_notify: bool,
    pub user: String,
}

pub enum HandshakeError {
    /// The peer went away or spoke something else; just drop the socket.
    Io(std::io::Error),
    /// Tell the peer why with connection.close, then drop it.
    Amqp(AmqpError),
    Silent,
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

impl From<AmqpError> for HandshakeError {
    fn from(e: AmqpError) -> Self {
        HandshakeError::Amqp(e)
    }
}

fn server_properties() -> FieldTable {
    let caps: FieldTable = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ]
    .into_iter()
    .map(|c| (ShortStr::from_static(c), FieldValue::Bool(true)))
    .collect();
    let text = |s: &'static str| FieldValue::LongStr(LongStr::from_static(s));
    [
        ("product", text("Warren")),
        ("version", text(env!("CARGO_PKG_VERSION"))),
        ("platform", text("Rust")),
        ("information", text("An embeddable AMQP 0-9-1 broker")),
        ("capabilities", FieldValue::Table(caps)),
    ]
    .into_iter()
    .map(|(k, v)| (ShortStr::from_static(k), v))
    .collect()
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, method: Method) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    encode_method_frame(&mut buf, 0, &method);
    w.write_all(&buf).await
}

/// Reads the next method on channel 0 (heartbeats are skipped).
async fn recv<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Method, HandshakeError> {
    loop {
        match decode_frame(buf, frame_max) {
            Ok(Some(Frame::Method { channel: 0, method })) => return Ok(method),
            Ok(Some(Frame::Heartbeat { .. })) => continue,
            Ok(Some(_)) => {
                return Err(AmqpError::unexpected_frame(
                    "expected a connection method during the handshake",
                )
                .into())
            }
            Ok(None) => {}
            Err(e) => return Err(AmqpError::new(e.reply_code(), e.to_string()).into()),
        }
        if r.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Silent);
        }
    }
}

fn check_credentials(
    shared: &BrokerShared,
    mechanism: &ShortStr,
    response: &LongStr,
) -> Result<String, AmqpError> {
    let (user, pass) = match mechanism.as_bytes() {
        b"PLAIN" => {
            // authzid NUL authcid NUL password
            let mut parts = response.as_bytes().split(|&b| b == 0);
            let _authzid = parts.next();
            match (parts.next(), parts.next()) {
                (Some(u), Some(p)) => (u.to_vec(), p.to_vec()),
                _ => return Err(AmqpError::access_refused("malformed PLAIN response")),
            }
        }
        b"AMQPLAIN" => {
            let table = FieldTable::decode_entries(Bytes::copy_from_slice(response.as_bytes()))
                .map_err(|_| AmqpError::access_refused("malformed AMQPLAIN response"))?;
            let field = |k: &str| match table.get(k) {
                Some(FieldValue::LongStr(s)) => Some(s.as_bytes().to_vec()),
                _ => None,
            };
            match (field("LOGIN"), field("PASSWORD")) {
                (Some(u), Some(p)) => (u, p),
                _ => return Err(AmqpError::access_refused("malformed AMQPLAIN response")),
            }
        }
        _ => {
            return Err(AmqpError::access_refused(format!(
                "unsupported authentication mechanism {}",
                crate::error::q(mechanism)
            )))
        }
    };
    let ok = shared
        .config
        .users
        .iter()
        .any(|u| u.name.as_bytes() == user && u.password.as_bytes() == pass);
    if ok {
        Ok(String::from_utf8_lossy(&user).into_owned())
    } else {
        Err(AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {}. For details see the broker logfile.",
            mechanism.to_string_lossy()
        )))
    }
}

/// Runs the handshake up to connection.open-ok.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &BrokerShared,
    socket: &mut S,
    buf: &mut BytesMut,
) -> Result<Negotiated, HandshakeError> {
    let limits = &shared.config.limits;
    loop {
        match check_protocol_header(buf) {
            ProtocolHeaderCheck::Ok => break,
            ProtocolHeaderCheck::Unsupported => {
                socket.write_all(PROTOCOL_HEADER).await?;
                return Err(HandshakeError::Silent);
            }
            ProtocolHeaderCheck::Incomplete => {
                if socket.read_buf(buf).await? == 0 {
                    return Err(HandshakeError::Silent);
                }
            }
        }
    }
    let _ = buf.split_to(8);

    send(
        socket,
        Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongStr::from_static("PLAIN AMQPLAIN"),
            locales: LongStr::from_static("en_US"),
        }),
    )
    .await?;

    let frame_max = limits.frame_max;
    let Method::ConnectionStartOk(start_ok) = recv(socket, buf, frame_max).await? else {
        return Err(AmqpError::command_invalid("expected connection.start-ok").into());
    };
    let caps = start_ok.client_properties.get("capabilities");
    let cap = |name: &str| {
        caps.as_ref()
            .and_then(FieldValue::as_table)
            .and_then(|t| t.get(name))
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    let user = match check_credentials(shared, &start_ok.mechanism, &start_ok.response) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "login refused");
            // Only clients that asked for it are told; others see the socket close.
            return Err(if cap("authentication_failure_close") {
                e.into()
            } else {
                HandshakeError::Silent
            });
        }
    };
    let consumer_cancel_notify = cap("consumer_cancel_notify");
    let blocked_notify = cap("connection.blocked");

    let heartbeat_secs = u16::try_from(limits.heartbeat.as_secs()).unwrap_or(u16::MAX);
    send(
        socket,
        Method::ConnectionTune(ConnectionTune {
            channel_max: limits.channel_max,
            frame_max,
            heartbeat: heartbeat_secs,
        }),
    )
    .await?;
    let Method::ConnectionTuneOk(tune) = recv(socket, buf, frame_max).await? else {
        return Err(AmqpError::command_invalid("expected connection.tune-ok").into());
    };
    if tune.channel_max > limits.channel_max {
        return Err(AmqpError::not_allowed(format!(
            "negotiated channel_max = {} is higher than the maximum allowed value ({})",
            tune.channel_max, limits.channel_max
        ))
        .into());
    }
    if tune.frame_max > frame_max {
        return Err(AmqpError::not_allowed(format!(
            "negotiated frame_max = {} is higher than the maximum allowed value ({frame_max})",
            tune.frame_max
        ))
        .into());
    }
    if tune.frame_max != 0 && tune.frame_max < warren_protocol::FRAME_MIN_SIZE {
        return Err(AmqpError::not_allowed(format!(
            "frame_max={} < {} min size",
            tune.frame_max,
            warren_protocol::FRAME_MIN_SIZE
        ))
        .into());
    }
    let channel_max = if tune.channel_max == 0 {
        limits.channel_max
    } else {
        tune.channel_max
    };
    let frame_max = if tune.frame_max == 0 {
        frame_max
    } else {
        tune.frame_max
    };
    let heartbeat = (tune.heartbeat != 0).then(|| Duration::from_secs(u64::from(tune.heartbeat)));

    let Method::ConnectionOpen(open) = recv(socket, buf, frame_max).await? else {
        return Err(AmqpError::command_invalid("expected connection.open").into());
    };
    let vhost = open.virtual_host.to_string();
    if !shared.vhosts.contains_key(&vhost) {
        return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")).into());
    }
    send(socket, Method::ConnectionOpenOk).await?;
    Ok(Negotiated {
        vhost,
        channel_max,
        frame_max,
        heartbeat,
        consumer_cancel_notify,
        blocked_notify,
        user,
    })
}

/// Tells the peer why the connection ends; best effort.
pub async fn send_close<W: AsyncWrite + Unpin>(w: &mut W, err: &AmqpError) {
    let close = Method::ConnectionClose(ConnectionClose {
        reply_code: err.code.code(),
        reply_text: ShortStr::try_from(err.reply_text()).unwrap_or_default(),
        class_id: err.class_id,
        method_id: err.method_id,
    });
    let _ = send(w, close).await;
    let _ = w.flush().await;
}
