//! Encodes what the core queued for a connection and writes it in batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use warren_protocol::{
    encode_body_frames, encode_deliver_frame, encode_header_frame, encode_header_frame_raw,
    encode_heartbeat, encode_method_frame, BasicAck, BasicGetOk, BasicNack, BasicReturn, Method,
};

use crate::core::link::ConnectionLink;
use crate::core::message::{Message, MessageProperties};
use crate::core::outbox::Outbound;

/// Writes everything pushed to the connection's outbox until it is closed
/// and drained. Sends a heartbeat when nothing else went out for `heartbeat`.
/// Hands the socket back, still open, so the connection decides when to
/// close it (after the peer's close-ok).
pub async fn run<W: AsyncWrite + Unpin>(
    link: Arc<ConnectionLink>,
    mut socket: W,
    frame_max: u32,
    heartbeat: Option<Duration>,
) -> std::io::Result<W> {
    let mut batch = VecDeque::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let cost = link.outbox.drain_into(&mut batch);
        if batch.is_empty() {
            if link.outbox.is_closed() {
                break;
            }
            match heartbeat {
                Some(hb) => {
                    if tokio::time::timeout(hb, link.outbox.notified())
                        .await
                        .is_err()
                    {
                        batch.push_back(Outbound::Heartbeat);
                    }
                }
                None => link.outbox.notified().await,
            }
            continue;
        }
        encode_batch(&mut batch, &mut buf, frame_max);
        socket.write_all(&buf).await?;
        buf.clear();
        // Don't keep a huge buffer around after one large message.
        if buf.capacity() > 4 * 1024 * 1024 {
            buf = BytesMut::with_capacity(64 * 1024);
        }
        link.outbox.written(cost);
    }
    socket.flush().await?;
    Ok(socket)
}

fn encode_batch(batch: &mut VecDeque<Outbound>, buf: &mut BytesMut, frame_max: u32) {
    while let Some(item) = batch.pop_front() {
        match item {
            Outbound::Method { channel, method } => encode_method_frame(buf, channel, &method),
            Outbound::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                msg,
            } => {
                encode_deliver_frame(
                    buf,
                    channel,
                    &consumer_tag,
                    delivery_tag,
                    redelivered,
                    &msg.exchange,
                    &msg.routing_key,
                );
                encode_content_frames(buf, channel, &msg, frame_max);
            }
            Outbound::GetOk {
                channel,
                delivery_tag,
                redelivered,
                message_count,
                msg,
            } => {
                let m = Method::BasicGetOk(BasicGetOk {
                    delivery_tag,
                    redelivered,
                    exchange: msg.exchange.clone(),
                    routing_key: msg.routing_key.clone(),
                    message_count,
                });
                encode_content(buf, channel, &m, &msg, frame_max);
            }
            Outbound::Return {
                channel,
                reply_code,
                reply_text,
                msg,
            } => {
                let m = Method::BasicReturn(BasicReturn {
                    reply_code,
                    reply_text,
                    exchange: msg.exchange.clone(),
                    routing_key: msg.routing_key.clone(),
                });
                encode_content(buf, channel, &m, &msg, frame_max);
            }
            Outbound::Confirm {
                channel,
                mut delivery_tag,
                ack,
            } => {
                // Confirms on a channel go out in order, so a run of them
                // can be one `multiple` frame covering the highest tag.
                let mut multiple = false;
                while let Some(Outbound::Confirm {
                    channel: c,
                    delivery_tag: t,
                    ack: a,
                }) = batch.front()
                {
                    if *c != channel || *a != ack {
                        break;
                    }
                    delivery_tag = *t;
                    multiple = true;
                    batch.pop_front();
                }
                let m = if ack {
                    Method::BasicAck(BasicAck {
                        delivery_tag,
                        multiple,
                    })
                } else {
                    Method::BasicNack(BasicNack {
                        delivery_tag,
                        multiple,
                        requeue: false,
                    })
                };
                encode_method_frame(buf, channel, &m);
            }
            Outbound::Heartbeat => encode_heartbeat(buf),
        }
    }
}

fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    method: &Method,
    msg: &Message,
    frame_max: u32,
) {
    encode_method_frame(buf, channel, method);
    encode_content_frames(buf, channel, msg, frame_max);
}

/// The header and body frames of a message.
fn encode_content_frames(buf: &mut BytesMut, channel: u16, msg: &Message, frame_max: u32) {
    let size = msg.body.len() as u64;
    match &msg.properties {
        MessageProperties::Wire(p) => encode_header_frame_raw(buf, channel, 60, size, p.raw()),
        MessageProperties::Built(p) => encode_header_frame(buf, channel, 60, size, p),
    }
    encode_body_frames(buf, channel, &msg.body, frame_max);
}
