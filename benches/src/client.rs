//! A minimal raw AMQP 0-9-1 client for load generation: just enough of the
//! protocol to publish and consume as fast as the socket allows, with none of
//! a full client's bookkeeping in the way.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use warren_protocol::{
    decode_frame, encode_method_frame, encode_protocol_header, ConnectionClose, ConnectionOpen,
    ConnectionStartOk, ConnectionTuneOk, FieldTable, Frame, LongStr, Method, ShortStr,
};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct Conn {
    pub reader: OwnedReadHalf,
    pub writer: OwnedWriteHalf,
    pub rbuf: BytesMut,
    pub frame_max: u32,
}

impl Conn {
    /// Connects and runs the handshake as guest/guest on vhost "/".
    pub async fn open(addr: &str) -> Result<Conn> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let (reader, writer) = socket.into_split();
        let mut c = Conn {
            reader,
            writer,
            // Grown on demand by the read loops; small so that thousands of
            // idle connections stay cheap.
            rbuf: BytesMut::with_capacity(4 * 1024),
            frame_max: 131_072,
        };
        let mut out = BytesMut::new();
        encode_protocol_header(&mut out);
        c.writer.write_all(&out).await?;
        let Method::ConnectionStart(_) = c.recv_method().await? else {
            return Err("expected start".into());
        };
        c.send(
            0,
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: FieldTable::default(),
                mechanism: ShortStr::from_static("PLAIN"),
                response: LongStr::from_static("\0guest\0guest"),
                locale: ShortStr::from_static("en_US"),
            }),
        )
        .await?;
        let Method::ConnectionTune(tune) = c.recv_method().await? else {
            return Err("expected tune".into());
        };
        c.frame_max = tune.frame_max;
        c.send(
            0,
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            }),
        )
        .await?;
        c.send(
            0,
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: ShortStr::from_static("/"),
            }),
        )
        .await?;
        let Method::ConnectionOpenOk = c.recv_method().await? else {
            return Err("expected open-ok".into());
        };
        c.send(1, Method::ChannelOpen).await?;
        let Method::ChannelOpenOk = c.recv_method().await? else {
            return Err("expected channel open-ok".into());
        };
        Ok(c)
    }

    pub async fn send(&mut self, channel: u16, method: Method) -> Result<()> {
        let mut out = BytesMut::new();
        encode_method_frame(&mut out, channel, &method);
        self.writer.write_all(&out).await?;
        Ok(())
    }

    pub async fn recv_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = decode_frame(&mut self.rbuf, 0)? {
                return Ok(f);
            }
            self.rbuf.reserve(4 * 1024);
            if self.reader.read_buf(&mut self.rbuf).await? == 0 {
                return Err("connection closed by broker".into());
            }
        }
    }

    /// Sends a method and returns the reply (the next method frame).
    pub async fn call(&mut self, channel: u16, method: Method) -> Result<Method> {
        self.send(channel, method).await?;
        self.recv_method().await
    }

    /// connection.close, then waits for close-ok.
    pub async fn close(mut self) -> Result<()> {
        let close = Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("bye"),
            class_id: 0,
            method_id: 0,
        });
        match self.call(0, close).await? {
            Method::ConnectionCloseOk => Ok(()),
            m => Err(format!("expected close-ok, got {m:?}").into()),
        }
    }

    /// The next method frame, skipping heartbeats; a close is an error.
    pub async fn recv_method(&mut self) -> Result<Method> {
        loop {
            match self.recv_frame().await? {
                Frame::Method {
                    method: Method::ConnectionClose(c),
                    ..
                } => {
                    return Err(
                        format!("connection closed: {} {}", c.reply_code, c.reply_text).into(),
                    )
                }
                Frame::Method {
                    method: Method::ChannelClose(c),
                    ..
                } => {
                    return Err(format!("channel closed: {} {}", c.reply_code, c.reply_text).into())
                }
                Frame::Method { method, .. } => return Ok(method),
                _ => continue,
            }
        }
    }
}
