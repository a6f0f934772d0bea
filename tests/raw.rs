//! A raw AMQP client for tests that must send what real clients never
//! would: malformed frames, wrong frame orders, silence.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_protocol::{
    decode_frame, encode_method_frame, encode_protocol_header, ConnectionOpen, ConnectionStartOk,
    ConnectionTuneOk, FieldTable, FieldValue, Frame, LongStr, Method, ShortStr,
};

/// How long any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct RawClient {
    pub socket: TcpStream,
    pub buf: BytesMut,
    pub tune: Option<warren_protocol::ConnectionTune>,
}

/// What the client tells the server in tune-ok.
#[derive(Clone, Copy, Default)]
pub struct Tune {
    pub channel_max: Option<u16>,
    pub frame_max: Option<u32>,
    pub heartbeat: u16,
}

pub fn client_properties(auth_failure_close: bool) -> FieldTable {
    let caps: FieldTable = [
        (
            "authentication_failure_close",
            FieldValue::Bool(auth_failure_close),
        ),
        ("consumer_cancel_notify", FieldValue::Bool(true)),
    ]
    .into_iter()
    .map(|(k, v)| (ShortStr::from_static(k), v))
    .collect();
    [(
        ShortStr::from_static("capabilities"),
        FieldValue::Table(caps),
    )]
    .into_iter()
    .collect()
}

impl RawClient {
    /// A TCP connection that has sent nothing yet.
    pub async fn connect_tcp(addr: std::net::SocketAddr) -> RawClient {
        let socket = TcpStream::connect(addr).await.expect("tcp connect");
        RawClient {
            socket,
            buf: BytesMut::with_capacity(64 * 1024),
            tune: None,
        }
    }

    /// A connection through connection.open-ok, as guest/guest on `/`.
    pub async fn open(addr: std::net::SocketAddr) -> RawClient {
        Self::open_with(addr, Tune::default()).await
    }

    pub async fn open_with(addr: std::net::SocketAddr, tune: Tune) -> RawClient {
        let mut c = Self::connect_tcp(addr).await;
        c.start("PLAIN", "\0guest\0guest", true).await;
        let Method::ConnectionTune(t) = c.method().await else {
            panic!("expected connection.tune")
        };
        c.send(
            0,
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: tune.channel_max.unwrap_or(t.channel_max),
                frame_max: tune.frame_max.unwrap_or(t.frame_max),
                heartbeat: tune.heartbeat,
            }),
        )
        .await;
        c.tune = Some(t);
        c.send(
            0,
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: ShortStr::from_static("/"),
            }),
        )
        .await;
        let m = c.method().await;
        assert!(
            matches!(m, Method::ConnectionOpenOk),
            "expected open-ok, got {m:?}"
        );
        c
    }

    /// Sends the protocol header, waits for start, answers start-ok.
    pub async fn start(
        &mut self,
        mechanism: &'static str,
        response: &'static str,
        auth_failure_close: bool,
    ) {
        let mut out = BytesMut::new();
        encode_protocol_header(&mut out);
        self.write(&out).await;
        let Method::ConnectionStart(_) = self.method().await else {
            panic!("expected connection.start")
        };
        self.send(
            0,
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: client_properties(auth_failure_close),
                mechanism: ShortStr::from_static(mechanism),
                response: LongStr::from_static(response),
                locale: ShortStr::from_static("en_US"),
            }),
        )
        .await;
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, channel: u16, method: Method) {
        let mut out = BytesMut::new();
        encode_method_frame(&mut out, channel, &method);
        self.write(&out).await;
    }

    /// Opens channel `id`.
    pub async fn open_channel(&mut self, id: u16) {
        self.send(id, Method::ChannelOpen).await;
        let m = self.method().await;
        assert!(
            matches!(m, Method::ChannelOpenOk),
            "expected channel.open-ok, got {m:?}"
        );
    }

    /// The next frame, or `None` when the server closed the socket.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            match decode_frame(&mut self.buf, 0) {
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            let n = tokio::time::timeout(WAIT, self.socket.read_buf(&mut self.buf))
                .await
                .expect("server said nothing in time");
            match n {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next method frame (heartbeats and content skipped).
    pub async fn method(&mut self) -> Method {
        loop {
            match self.frame().await {
                Some(Frame::Method { method, .. }) => return method,
                Some(_) => continue,
                None => panic!("server closed the connection while a method was expected"),
            }
        }
    }

    /// Expects connection.close with `code`, answers close-ok, returns the text.
    pub async fn expect_connection_close(&mut self, code: u16) -> String {
        loop {
            match self.method().await {
                Method::ConnectionClose(c) => {
                    assert_eq!(
                        c.reply_code, code,
                        "connection closed with {} {}",
                        c.reply_code, c.reply_text
                    );
                    let _ = self.socket.write_all(&close_ok_bytes()).await;
                    return c.reply_text.to_string();
                }
                Method::ChannelClose(c) => {
                    panic!(
                        "expected connection.close {code}, got channel.close {} {}",
                        c.reply_code, c.reply_text
                    )
                }
                _ => continue,
            }
        }
    }

    /// Expects channel.close with `code` on `channel`, answers close-ok, returns the text.
    pub async fn expect_channel_close(&mut self, channel: u16, code: u16) -> String {
        loop {
            match self.frame().await {
                Some(Frame::Method {
                    channel: ch,
                    method: Method::ChannelClose(c),
                }) => {
                    assert_eq!(ch, channel);
                    assert_eq!(
                        c.reply_code, code,
                        "channel closed with {} {}",
                        c.reply_code, c.reply_text
                    );
                    self.send(channel, Method::ChannelCloseOk).await;
                    return c.reply_text.to_string();
                }
                Some(Frame::Method {
                    method: Method::ConnectionClose(c),
                    ..
                }) => {
                    panic!(
                        "expected channel.close {code}, got connection.close {} {}",
                        c.reply_code, c.reply_text
                    )
                }
                Some(_) => continue,
                None => panic!("socket closed; expected channel.close {code}"),
            }
        }
    }

    /// True once the server has closed the socket (reads return EOF).
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            let r = tokio::time::timeout(WAIT, self.socket.read_buf(&mut self.buf)).await;
            match r {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn close_ok_bytes() -> BytesMut {
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 0, &Method::ConnectionCloseOk);
    out
}
