//! warren-load: a PerfTest-style load generator for AMQP 0-9-1 brokers.
//!
//! Publishers and consumers on one queue, fixed message size, optional
//! confirms and prefetch, for a bounded duration. Prints rates, latency
//! percentiles and (given the broker's pid) the broker's CPU time and RSS.

mod client;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use warren_protocol::{
    encode_body_frames, encode_header_frame, encode_method_frame, BasicAck, BasicConsume,
    BasicProperties, BasicPublish, BasicQos, ConfirmSelect, FieldTable, Frame, Method,
    QueueDeclare, QueueDelete, ShortStr,
};

use client::{Conn, Result};

#[derive(Parser, Debug, Clone)]
#[command(about = "AMQP 0-9-1 load generator (PerfTest-like)")]
struct Args {
    /// Broker address host:port.
    #[arg(long, default_value = "127.0.0.1:5672")]
    uri: String,
    /// Number of publishing connections.
    #[arg(short = 'x', long, default_value_t = 1)]
    producers: usize,
    /// Number of consuming connections.
    #[arg(short = 'y', long, default_value_t = 1)]
    consumers: usize,
    /// Message body size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', long, default_value_t = 16)]
    size: usize,
    /// Consumer prefetch (basic.qos); 0 = unlimited.
    #[arg(short = 'q', long, default_value_t = 100)]
    prefetch: u16,
    /// Publisher confirms: most unconfirmed messages in flight per publisher (0 = no confirms).
    #[arg(short = 'c', long, default_value_t = 0)]
    confirm: u64,
    /// Consumers use no-ack (auto-ack) mode.
    #[arg(short = 'a', long)]
    autoack: bool,
    /// Persistent messages (delivery-mode 2) on a durable queue.
    #[arg(long)]
    persistent: bool,
    /// Total publish rate limit in msgs/s (0 = as fast as possible).
    #[arg(short = 'r', long, default_value_t = 0)]
    rate: u64,
    /// Run time in seconds.
    #[arg(short = 'z', long, default_value_t = 10)]
    duration: u64,
    /// Queue name (default: a fresh one, deleted at the end).
    #[arg(short = 'u', long)]
    queue: Option<String>,
    /// The broker's pid, to report its CPU time and RSS over the run.
    #[arg(long)]
    pid: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Label for the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

struct Shared {
    epoch: Instant,
    stop: AtomicBool,
    published: AtomicU64,
    confirmed: AtomicU64,
    consumed: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("warren-load: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("warren-load-{}", std::process::id()));
    let queue = ShortStr::try_from(queue.as_str())?;
    let mut setup = Conn::open(&args.uri).await?;
    setup
        .send(
            1,
            Method::QueueDeclare(QueueDeclare {
                queue: queue.clone(),
                passive: false,
                durable: args.persistent,
                exclusive: false,
                auto_delete: false,
                no_wait: false,
                arguments: FieldTable::default(),
            }),
        )
        .await?;
    setup.recv_method().await?;

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        published: AtomicU64::new(0),
        confirmed: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
    });
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        let c = Conn::open(&args.uri).await?;
        consumers.push(tokio::spawn(consume(
            c,
            args.clone(),
            queue.clone(),
            shared.clone(),
        )));
    }
    let cpu_before = args.pid.and_then(proc_cpu_ticks);
    let start = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..args.producers {
        let c = Conn::open(&args.uri).await?;
        producers.push(tokio::spawn(publish(
            c,
            args.clone(),
            queue.clone(),
            shared.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let published = shared.published.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let cpu_after = args.pid.and_then(proc_cpu_ticks);
    let rss_kb = args.pid.and_then(proc_rss_kb);

    let mut latencies: Vec<u64> = Vec::new();
    for c in consumers {
        match tokio::time::timeout(Duration::from_secs(5), c).await {
            Ok(Ok(Ok(mut l))) => latencies.append(&mut l),
            Ok(Ok(Err(e))) => eprintln!("consumer failed: {e}"),
            _ => eprintln!("consumer did not stop"),
        }
    }
    for p in producers {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i]
    };
    let _ = setup
        .send(
            1,
            Method::QueueDelete(QueueDelete {
                queue,
                if_unused: false,
                if_empty: false,
                no_wait: false,
            }),
        )
        .await;

    let cpu_secs = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0),
        _ => None,
    };
    let handled = published.max(consumed).max(1);
    let cpu_us_per_msg = cpu_secs.map(|s| s * 1e6 / handled as f64);
    let pub_rate = published as f64 / elapsed;
    let con_rate = consumed as f64 / elapsed;
    if args.json {
        println!(
            "{{\"label\":\"{}\",\"published_per_s\":{:.0},\"consumed_per_s\":{:.0},\"latency_us\":{{\"p50\":{},\"p95\":{},\"p99\":{}}},\"broker_cpu_s\":{},\"broker_cpu_us_per_msg\":{},\"broker_rss_kb\":{}}}",
            args.label,
            pub_rate,
            con_rate,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            cpu_secs.map_or("null".into(), |v| format!("{v:.2}")),
            cpu_us_per_msg.map_or("null".into(), |v| format!("{v:.3}")),
            rss_kb.map_or("null".into(), |v| v.to_string()),
        );
    } else {
        println!(
            "published: {pub_rate:.0} msg/s   consumed: {con_rate:.0} msg/s   ({elapsed:.1} s)"
        );
        println!(
            "latency µs: p50 {}  p75 {}  p95 {}  p99 {}",
            pct(0.5),
            pct(0.75),
            pct(0.95),
            pct(0.99)
        );
        if let Some(s) = cpu_secs {
            println!(
                "broker cpu: {s:.2} s  ({:.3} µs/msg)  rss: {} KiB",
                cpu_us_per_msg.unwrap_or(0.0),
                rss_kb.unwrap_or(0)
            );
        }
    }
    Ok(())
}

async fn publish(mut c: Conn, args: Args, queue: ShortStr, shared: Arc<Shared>) -> Result<()> {
    let confirms = args.confirm > 0;
    if confirms {
        c.send(1, Method::ConfirmSelect(ConfirmSelect { no_wait: false }))
            .await?;
        c.recv_method().await?;
    }
    let props = BasicProperties {
        delivery_mode: Some(if args.persistent { 2 } else { 1 }),
        ..Default::default()
    };
    let method = Method::BasicPublish(BasicPublish {
        exchange: ShortStr::default(),
        routing_key: queue,
        mandatory: false,
        immediate: false,
    });
    let size = args.size.max(8);
    let mut body = vec![0u8; size];
    // Confirms come back on the read half; count them there.
    let confirmed = shared.clone();
    let mut reader_conn = (c.reader, c.rbuf);
    let confirm_task = tokio::spawn(async move {
        let (reader, rbuf) = (&mut reader_conn.0, &mut reader_conn.1);
        loop {
            let frame = loop {
                match warren_protocol::decode_frame(rbuf, 0) {
                    Ok(Some(f)) => break Some(f),
                    Ok(None) => {}
                    Err(_) => break None,
                }
                rbuf.reserve(64 * 1024);
                match tokio::io::AsyncReadExt::read_buf(reader, rbuf).await {
                    Ok(0) | Err(_) => break None,
                    Ok(_) => {}
                }
            };
            match frame {
                Some(Frame::Method {
                    method: Method::BasicAck(a),
                    ..
                }) => {
                    confirmed.confirmed.store(a.delivery_tag, Ordering::Release);
                }
                Some(_) => {}
                None => return,
            }
        }
    });
    let per_producer_rate = args.rate / args.producers.max(1) as u64;
    let batch = if per_producer_rate > 0 { 1 } else { 64 };
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut sent: u64 = 0;
    let started = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if confirms {
            while sent - shared.confirmed.load(Ordering::Acquire) >= args.confirm {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if per_producer_rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / per_producer_rate as f64);
            let now = started.elapsed();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        for _ in 0..batch {
            let ts = shared.epoch.elapsed().as_nanos() as u64;
            body[..8].copy_from_slice(&ts.to_le_bytes());
            encode_method_frame(&mut out, 1, &method);
            encode_header_frame(&mut out, 1, 60, size as u64, &props);
            encode_body_frames(&mut out, 1, &body, c.frame_max);
            sent += 1;
        }
        c.writer.write_all(&out).await?;
        out.clear();
        shared.published.fetch_add(batch, Ordering::Relaxed);
    }
    confirm_task.abort();
    Ok(())
}

async fn consume(
    mut c: Conn,
    args: Args,
    queue: ShortStr,
    shared: Arc<Shared>,
) -> Result<Vec<u64>> {
    c.send(
        1,
        Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count: args.prefetch,
            global: false,
        }),
    )
    .await?;
    c.recv_method().await?;
    c.send(
        1,
        Method::BasicConsume(BasicConsume {
            queue,
            consumer_tag: ShortStr::default(),
            no_local: false,
            no_ack: args.autoack,
            exclusive: false,
            no_wait: false,
            arguments: FieldTable::default(),
        }),
    )
    .await?;
    c.recv_method().await?;
    let mut latencies = Vec::new();
    let mut acks = BytesMut::with_capacity(16 * 1024);
    let mut pending_tag = None;
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        // Handle every frame already read, then send their acks in one write.
        while let Some(frame) = warren_protocol::decode_frame(&mut c.rbuf, 0)? {
            match frame {
                Frame::Method {
                    method: Method::BasicDeliver(d),
                    ..
                } => pending_tag = Some(d.delivery_tag),
                Frame::Body { payload, .. } => {
                    if payload.len() >= 8 {
                        n += 1;
                        // Sample one in 16 to keep memory bounded on long runs.
                        if n % 16 == 0 {
                            let mut ts = [0u8; 8];
                            ts.copy_from_slice(&payload[..8]);
                            let sent = u64::from_le_bytes(ts);
                            let now = shared.epoch.elapsed().as_nanos() as u64;
                            latencies.push(now.saturating_sub(sent) / 1000);
                        }
                        shared.consumed.fetch_add(1, Ordering::Relaxed);
                    }
                    if let (Some(tag), false) = (pending_tag.take(), args.autoack) {
                        let ack = Method::BasicAck(BasicAck {
                            delivery_tag: tag,
                            multiple: false,
                        });
                        encode_method_frame(&mut acks, 1, &ack);
                    }
                }
                Frame::Method {
                    method: Method::ChannelClose(c),
                    ..
                } => {
                    return Err(format!(
                        "channel closed by broker: {} {}",
                        c.reply_code, c.reply_text
                    )
                    .into());
                }
                Frame::Method {
                    method: Method::ConnectionClose(c),
                    ..
                } => {
                    return Err(format!(
                        "connection closed by broker: {} {}",
                        c.reply_code, c.reply_text
                    )
                    .into());
                }
                _ => {}
            }
        }
        if !acks.is_empty() {
            c.writer.write_all(&acks).await?;
            acks.clear();
        }
        c.rbuf.reserve(64 * 1024);
        match tokio::time::timeout(Duration::from_millis(200), c.reader.read_buf(&mut c.rbuf)).await
        {
            Ok(Ok(0)) => return Err("connection closed by broker".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => continue,
        }
    }
    Ok(latencies)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
