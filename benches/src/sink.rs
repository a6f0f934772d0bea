//! `warren-load sink`: a do-nothing AMQP 0-9-1 server, to measure the load
//! generator's own ceiling on a machine.
//!
//! It answers the handshake (any credentials, any vhost), channel open and
//! close, exchange/queue declare, bind, delete and purge, basic.qos,
//! basic.consume/cancel and confirm.select. Publishes are discarded (and
//! confirmed, one `multiple` ack per read batch, under confirms). Every
//! consumer is flooded with deliveries of `--size` bytes as fast as its
//! prefetch and acks allow (no-ack consumers: as fast as the socket
//! drains). A broker can't do less work per message than this, so what
//! `warren-load` reaches against the sink bounds what it can measure.
//!
//! With `--relay` the sink instead behaves like a broker that costs
//! nothing: it delivers (to any consumer) only as many messages as were
//! published (to anything; a queue.delete or purge drops what is left),
//! and stops reading from publishing connections while more than 20,000
//! are waiting, until they are down to 10,000 (as Warren's flow control
//! does). Then publisher and consumer run at the same
//! rate, as they do against a broker, instead of the publisher taking the
//! cores while the consumer is flooded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use warren_protocol::{
    decode_frame, encode_body_frames, encode_header_frame, encode_method_frame, BasicAck,
    BasicCancelOk, BasicConsumeOk, BasicDeliver, BasicProperties, ConnectionStart, ConnectionTune,
    FieldTable, FieldValue, Frame, LongStr, Method, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk,
    ShortStr, FRAME_BODY, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT, FRAME_METHOD,
    PROTOCOL_HEADER,
};

use crate::client::Result;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "warren-load sink",
    about = "A do-nothing AMQP server: discards publishes, floods consumers"
)]
pub struct SinkArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:5699")]
    listen: String,
    /// Body size of the deliveries sent to consumers.
    #[arg(short = 's', long, default_value_t = 16)]
    size: usize,
    /// Exit after this many seconds.
    #[arg(short = 'z', long, default_value_t = 3600)]
    duration: u64,
    /// Deliver only what was published, holding publishers back while
    /// 20,000 messages wait (a zero-cost broker) instead of flooding.
    #[arg(long)]
    relay: bool,
}

/// Messages published and not yet delivered, across the sink (`--relay`).
struct Relay {
    ready: AtomicI64,
    /// Signalled when messages are published.
    more: Notify,
    /// Signalled when the backlog falls to `RELAY_LOW`.
    room: Notify,
}

const RELAY_HIGH: i64 = 20_000;
const RELAY_LOW: i64 = 10_000;

impl Relay {
    /// Takes up to `want` messages to deliver.
    fn take(&self, want: usize) -> usize {
        let mut ready = self.ready.load(Ordering::Acquire);
        loop {
            let n = (want as i64).min(ready);
            if n <= 0 {
                return 0;
            }
            match self.ready.compare_exchange_weak(
                ready,
                ready - n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if ready > RELAY_LOW && ready - n <= RELAY_LOW {
                        self.room.notify_waiters();
                    }
                    return n as usize;
                }
                Err(now) => ready = now,
            }
        }
    }
}

const FRAME_MAX: u32 = 131_072;
/// Deliveries are queued for the socket until this many bytes are pending.
const OUT_HIGH: usize = 256 * 1024;

pub async fn run(args: SinkArgs) -> Result<()> {
    let listener = TcpListener::bind(&args.listen).await?;
    eprintln!("warren-load sink listening on {}", args.listen);
    let relay = args.relay.then(|| {
        Arc::new(Relay {
            ready: AtomicI64::new(0),
            more: Notify::new(),
            room: Notify::new(),
        })
    });
    let serve = async {
        loop {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let size = args.size;
            let relay = relay.clone();
            tokio::spawn(async move {
                // A client going away mid-frame is normal here.
                let _ = serve_connection(socket, size, relay).await;
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    match tokio::time::timeout(Duration::from_secs(args.duration), serve).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

struct Consumer {
    /// A delivery's frames with a zero delivery tag, patched per message.
    template: Vec<u8>,
    tag_offset: usize,
    no_ack: bool,
    tag: ShortStr,
}

#[derive(Default)]
struct Channel {
    open: bool,
    confirm: bool,
    published: u64,
    confirmed: u64,
    prefetch: u16,
    next_tag: u64,
    /// Delivery tags sent and not yet acked, in order.
    unacked: VecDeque<u64>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
}

impl Channel {
    fn credit(&self) -> usize {
        if self.consumers.is_empty() {
            0
        } else if self.prefetch == 0 || self.consumers.iter().all(|c| c.no_ack) {
            usize::MAX
        } else {
            (self.prefetch as usize).saturating_sub(self.unacked.len())
        }
    }

    fn ack(&mut self, tag: u64, multiple: bool) {
        if multiple {
            while self.unacked.front().is_some_and(|&t| t <= tag) {
                self.unacked.pop_front();
            }
        } else if self.unacked.front() == Some(&tag) {
            self.unacked.pop_front();
        } else if let Ok(i) = self.unacked.binary_search(&tag) {
            self.unacked.remove(i);
        }
    }
}

async fn serve_connection(socket: TcpStream, size: usize, relay: Option<Arc<Relay>>) -> Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(OUT_HIGH * 2);
    while rbuf.len() < PROTOCOL_HEADER.len() {
        if reader.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
    }
    if &rbuf[..PROTOCOL_HEADER.len()] != PROTOCOL_HEADER {
        writer.write_all(PROTOCOL_HEADER).await?;
        return Ok(());
    }
    rbuf.advance(PROTOCOL_HEADER.len());
    let capabilities = FieldTable::from_entries(
        [
            "publisher_confirms",
            "basic.nack",
            "consumer_cancel_notify",
            "exchange_exchange_bindings",
            "per_consumer_qos",
        ]
        .into_iter()
        .map(|k| (ShortStr::from_static(k), FieldValue::Bool(true))),
    );
    let server_properties = FieldTable::from_entries([
        (
            ShortStr::from_static("product"),
            FieldValue::LongStr(LongStr::from_static("warren-load sink")),
        ),
        (
            ShortStr::from_static("capabilities"),
            FieldValue::Table(capabilities),
        ),
    ]);
    encode_method_frame(
        &mut out,
        0,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties,
            mechanisms: LongStr::from_static("PLAIN AMQPLAIN"),
            locales: LongStr::from_static("en_US"),
        }),
    );
    writer.write_all(&out).await?;
    out.clear();

    let mut channels: Vec<Channel> = Vec::new();
    let mut closing = false;
    // Publishes read since the relay was last told.
    let mut new_publishes: i64 = 0;
    let mut publishes_here = false;
    let mut held = false;
    loop {
        // Every complete frame in the buffer.
        loop {
            if rbuf.len() < FRAME_HEADER_SIZE {
                break;
            }
            let kind = rbuf[0];
            let channel = u16::from_be_bytes([rbuf[1], rbuf[2]]);
            let len = u32::from_be_bytes([rbuf[3], rbuf[4], rbuf[5], rbuf[6]]) as usize;
            let total = FRAME_HEADER_SIZE + len + 1;
            if rbuf.len() < total {
                rbuf.reserve(total - rbuf.len());
                break;
            }
            // The hot path: a publish, its header and body are only counted.
            if kind == FRAME_HEADER || kind == FRAME_BODY || kind == FRAME_HEARTBEAT {
                rbuf.advance(total);
                continue;
            }
            if kind == FRAME_METHOD && len >= 4 && rbuf[7..11] == [0, 60, 0, 40] {
                if let Some(ch) = channels.get_mut(channel as usize) {
                    ch.published += 1;
                }
                new_publishes += 1;
                rbuf.advance(total);
                continue;
            }
            let Some(frame) = decode_frame(&mut rbuf, 0)? else {
                break;
            };
            let Frame::Method { channel, method } = frame else {
                continue;
            };
            let idx = channel as usize;
            if idx >= channels.len() && idx <= 2047 {
                channels.resize_with(idx + 1, Channel::default);
            }
            let reply = match method {
                Method::ConnectionStartOk(_) => Some(Method::ConnectionTune(ConnectionTune {
                    channel_max: 2047,
                    frame_max: FRAME_MAX,
                    heartbeat: 0,
                })),
                Method::ConnectionTuneOk(_) => None,
                Method::ConnectionOpen(_) => Some(Method::ConnectionOpenOk),
                Method::ConnectionClose(_) => {
                    closing = true;
                    Some(Method::ConnectionCloseOk)
                }
                Method::ConnectionCloseOk => return Ok(()),
                Method::ChannelOpen => {
                    if let Some(ch) = channels.get_mut(idx) {
                        *ch = Channel {
                            open: true,
                            ..Channel::default()
                        };
                    }
                    Some(Method::ChannelOpenOk)
                }
                Method::ChannelClose(_) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        *ch = Channel::default();
                    }
                    Some(Method::ChannelCloseOk)
                }
                Method::ChannelCloseOk => None,
                Method::ChannelFlow(f) => {
                    Some(Method::ChannelFlowOk(warren_protocol::ChannelFlowOk {
                        active: f.active,
                    }))
                }
                Method::ExchangeDeclare(m) => (!m.no_wait).then_some(Method::ExchangeDeclareOk),
                Method::ExchangeDelete(m) => (!m.no_wait).then_some(Method::ExchangeDeleteOk),
                Method::ExchangeBind(m) => (!m.no_wait).then_some(Method::ExchangeBindOk),
                Method::ExchangeUnbind(m) => (!m.no_wait).then_some(Method::ExchangeUnbindOk),
                Method::QueueDeclare(m) => {
                    let queue = if m.queue.is_empty() {
                        ShortStr::try_from(format!("amq.gen-sink-{channel}"))?
                    } else {
                        m.queue
                    };
                    (!m.no_wait).then_some(Method::QueueDeclareOk(QueueDeclareOk {
                        queue,
                        message_count: 0,
                        consumer_count: 0,
                    }))
                }
                Method::QueueBind(m) => (!m.no_wait).then_some(Method::QueueBindOk),
                Method::QueueUnbind(_) => Some(Method::QueueUnbindOk),
                Method::QueuePurge(m) => {
                    // A run's leftovers are not delivered in the next run.
                    if let Some(relay) = &relay {
                        relay.ready.store(0, Ordering::Release);
                    }
                    (!m.no_wait).then_some(Method::QueuePurgeOk(QueuePurgeOk { message_count: 0 }))
                }
                Method::QueueDelete(m) => {
                    if let Some(relay) = &relay {
                        relay.ready.store(0, Ordering::Release);
                    }
                    (!m.no_wait)
                        .then_some(Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 }))
                }
                Method::BasicQos(q) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.prefetch = q.prefetch_count;
                    }
                    Some(Method::BasicQosOk)
                }
                Method::ConfirmSelect(m) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.confirm = true;
                    }
                    (!m.no_wait).then_some(Method::ConfirmSelectOk)
                }
                Method::BasicConsume(m) => {
                    let Some(ch) = channels.get_mut(idx) else {
                        continue;
                    };
                    let tag = if m.consumer_tag.is_empty() {
                        ShortStr::try_from(format!("sink-{channel}-{}", ch.consumers.len()))?
                    } else {
                        m.consumer_tag
                    };
                    ch.consumers
                        .push(consumer(channel, tag.clone(), m.queue, m.no_ack, size));
                    (!m.no_wait)
                        .then_some(Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }))
                }
                Method::BasicCancel(m) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.consumers.retain(|c| c.tag != m.consumer_tag);
                    }
                    (!m.no_wait).then_some(Method::BasicCancelOk(BasicCancelOk {
                        consumer_tag: m.consumer_tag,
                    }))
                }
                Method::BasicAck(a) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.ack(a.delivery_tag, a.multiple);
                    }
                    None
                }
                Method::BasicNack(a) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.ack(a.delivery_tag, a.multiple);
                    }
                    None
                }
                Method::BasicReject(a) => {
                    if let Some(ch) = channels.get_mut(idx) {
                        ch.ack(a.delivery_tag, false);
                    }
                    None
                }
                Method::BasicRecover(_) => Some(Method::BasicRecoverOk),
                Method::TxSelect => Some(Method::TxSelectOk),
                Method::TxCommit => Some(Method::TxCommitOk),
                Method::TxRollback => Some(Method::TxRollbackOk),
                _ => None,
            };
            if let Some(reply) = reply {
                encode_method_frame(&mut out, channel, &reply);
            }
        }
        if closing {
            writer.write_all(&out).await?;
            return Ok(());
        }
        // Confirm what was published, one multiple ack per channel.
        for (i, ch) in channels.iter_mut().enumerate() {
            if ch.confirm && ch.published > ch.confirmed {
                ch.confirmed = ch.published;
                let ack = Method::BasicAck(BasicAck {
                    delivery_tag: ch.published,
                    multiple: true,
                });
                encode_method_frame(&mut out, i as u16, &ack);
            }
        }
        if let Some(relay) = &relay {
            if new_publishes > 0 {
                publishes_here = true;
                relay.ready.fetch_add(new_publishes, Ordering::AcqRel);
                relay.more.notify_waiters();
                new_publishes = 0;
            }
        }
        // Flood consumers up to their credit.
        let mut starved = false;
        for ch in channels.iter_mut().filter(|c| c.open) {
            let mut credit = ch.credit();
            if let Some(relay) = &relay {
                // Bytes are bounded below as well; take what fits.
                let fits = (OUT_HIGH.saturating_sub(out.len()) / 64).max(1);
                let want = credit.min(fits);
                credit = relay.take(want);
                starved |= want > 0 && credit == 0;
            }
            while credit > 0 && out.len() < OUT_HIGH {
                let n = ch.consumers.len();
                let c = &ch.consumers[ch.next_consumer % n];
                ch.next_consumer = ch.next_consumer.wrapping_add(1);
                ch.next_tag += 1;
                let at = out.len();
                out.put_slice(&c.template);
                out[at + c.tag_offset..at + c.tag_offset + 8]
                    .copy_from_slice(&ch.next_tag.to_be_bytes());
                if !c.no_ack {
                    ch.unacked.push_back(ch.next_tag);
                }
                credit -= 1;
            }
            if let (Some(relay), true) = (&relay, credit > 0) {
                // Taken but not sent (the buffer filled): give them back.
                relay.ready.fetch_add(credit as i64, Ordering::AcqRel);
            }
        }
        rbuf.reserve(64 * 1024);
        if let Some(relay) = &relay {
            // A publisher waits (not reading) while the backlog is high.
            let ready = relay.ready.load(Ordering::Acquire);
            held = publishes_here && ready > if held { RELAY_LOW } else { RELAY_HIGH };
            let hold = held;
            let pause = Duration::from_millis(1);
            tokio::select! {
                r = reader.read_buf(&mut rbuf), if !hold => {
                    if r? == 0 {
                        return Ok(());
                    }
                }
                w = writer.write(&out), if !out.is_empty() => {
                    let n = w?;
                    out.advance(n);
                    if out.is_empty() {
                        out.clear();
                    }
                }
                _ = relay.more.notified(), if starved => {}
                _ = relay.room.notified(), if hold => {}
                // Against a lost wakeup.
                _ = tokio::time::sleep(pause), if starved || hold => {}
            }
            continue;
        }
        if out.is_empty() {
            if reader.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
        } else {
            tokio::select! {
                r = reader.read_buf(&mut rbuf) => {
                    if r? == 0 {
                        return Ok(());
                    }
                }
                w = writer.write(&out) => {
                    let n = w?;
                    out.advance(n);
                    if out.is_empty() {
                        out.clear();
                    }
                }
            }
        }
    }
}

fn consumer(channel: u16, tag: ShortStr, queue: ShortStr, no_ack: bool, size: usize) -> Consumer {
    let mut buf = BytesMut::new();
    let tag_offset = FRAME_HEADER_SIZE + 4 + 1 + tag.len();
    encode_method_frame(
        &mut buf,
        channel,
        &Method::BasicDeliver(BasicDeliver {
            consumer_tag: tag.clone(),
            delivery_tag: 0,
            redelivered: false,
            exchange: ShortStr::default(),
            routing_key: queue,
        }),
    );
    let props = BasicProperties {
        delivery_mode: Some(1),
        ..Default::default()
    };
    encode_header_frame(&mut buf, channel, 60, size as u64, &props);
    // Zero bodies: warren-load reads a zero timestamp as "no latency sample".
    encode_body_frames(&mut buf, channel, &vec![0u8; size], FRAME_MAX);
    Consumer {
        template: buf.to_vec(),
        tag_offset,
        no_ack,
        tag,
    }
}
