//! warren-load: a PerfTest-style load generator for AMQP 0-9-1 brokers.
//!
//! Publishers and consumers on one or more queues (optionally behind an
//! exchange, e.g. fan-out), fixed message size, optional confirms, prefetch
//! and rate limit, for a bounded duration. Prints rates, latency
//! percentiles and (given the broker's pid) the broker's CPU time and RSS.
//!
//! Other modes: `--idle --connections N` (broker RSS per idle connection),
//! `--churn` (connections opened and closed per second),
//! `warren-load sink` (a do-nothing AMQP server: the generator's own
//! ceiling) and `warren-load startup -- CMD` (time until a broker accepts
//! connections).

mod client;
mod conns;
mod report;
mod sink;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use warren_protocol::{
    encode_body_frames, encode_header_frame, encode_method_frame, BasicAck, BasicConsume,
    BasicProperties, BasicPublish, BasicQos, ConfirmSelect, ExchangeDeclare, ExchangeDelete,
    FieldTable, FieldValue, Frame, LongStr, Method, QueueBind, QueueDeclare, QueueDelete, ShortStr,
};

use client::{Conn, Result};
use report::Json;

#[derive(Parser, Debug, Clone)]
#[command(about = "AMQP 0-9-1 load generator (PerfTest-like)")]
struct Args {
    /// Broker address host:port.
    #[arg(long, default_value = "127.0.0.1:5672")]
    uri: String,
    /// Number of publishing connections.
    #[arg(short = 'x', long, default_value_t = 1)]
    producers: usize,
    /// Number of consuming connections (per queue; 0 = publish only).
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
    /// Number of queues (QUEUE-0..QUEUE-<N-1> when more than one), with -y
    /// consumers each. Publishers take them round-robin, unless
    /// --exchange routes to all of them.
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Publish to a fresh exchange of this type (fanout, direct, topic),
    /// bound to every queue with the queue's name as key, instead of to the
    /// default exchange.
    #[arg(short = 't', long)]
    exchange: Option<String>,
    /// Stop each publisher after this many messages (0 = no limit); the run
    /// then ends once they are all consumed (or at -z).
    #[arg(short = 'C', long, default_value_t = 0)]
    pmessages: u64,
    /// Leave the queues and exchange in place at the end.
    #[arg(long)]
    keep: bool,
    /// queue.declare arguments, e.g. 'x-queue-type=fifo,x-max-length=1000'
    /// (integers, true/false, else strings).
    #[arg(long, default_value = "")]
    queue_args: String,
    /// Put messages in N message groups (x-group-id g0..g<N-1>, round-robin).
    #[arg(long, default_value_t = 0)]
    groups: usize,
    /// Give every message a distinct message-id (for FIFO deduplication).
    #[arg(long)]
    message_ids: bool,
    /// Spread messages over priorities 0..N-1 (the `priority` property,
    /// round-robin); pair with --queue-args x-max-priority=N.
    #[arg(long, default_value_t = 0)]
    priorities: u8,
    /// Open --connections connections with a channel each, hold them idle
    /// for -z seconds and report the broker's RSS per connection.
    #[arg(long)]
    idle: bool,
    /// How many connections --idle opens (-x of them at a time, 16 to 256).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Connection churn: -x loops of connect, channel.open, queue.declare,
    /// connection.close, for -z seconds; reports connections per second.
    #[arg(long)]
    churn: bool,
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
    /// Messages confirmed (acked) by the broker, all publishers together.
    confirmed: AtomicU64,
    consumed: AtomicU64,
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1);
    let result = match mode.as_deref() {
        Some("sink") => sink::run(sink::SinkArgs::parse_from(std::env::args().skip(1))).await,
        Some("startup") => {
            conns::startup(conns::StartupArgs::parse_from(std::env::args().skip(1))).await
        }
        _ => run(Args::parse()).await,
    };
    if let Err(e) = result {
        eprintln!("warren-load: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    if args.idle {
        if args.connections == 0 {
            return Err("--idle needs --connections N".into());
        }
        return conns::idle(&args).await;
    }
    if args.churn {
        return conns::churn(&args).await;
    }
    let base = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("warren-load-{}", std::process::id()));
    let queues: Vec<ShortStr> = if args.queues <= 1 {
        vec![ShortStr::try_from(base.as_str())?]
    } else {
        (0..args.queues)
            .map(|i| ShortStr::try_from(format!("{base}-{i}")))
            .collect::<std::result::Result<_, _>>()?
    };
    let queue_args = parse_table(&args.queue_args)?;
    let mut setup = Conn::open(&args.uri).await?;
    for queue in &queues {
        setup
            .call(
                1,
                Method::QueueDeclare(QueueDeclare {
                    queue: queue.clone(),
                    passive: false,
                    durable: args.persistent,
                    exclusive: false,
                    auto_delete: false,
                    no_wait: false,
                    arguments: queue_args.clone(),
                }),
            )
            .await?;
    }
    let exchange = match &args.exchange {
        None => ShortStr::default(),
        Some(kind) => {
            let name = ShortStr::try_from(format!("{base}-{kind}"))?;
            setup
                .call(
                    1,
                    Method::ExchangeDeclare(ExchangeDeclare {
                        exchange: name.clone(),
                        kind: ShortStr::try_from(kind.as_str())?,
                        passive: false,
                        durable: args.persistent,
                        auto_delete: false,
                        internal: false,
                        no_wait: false,
                        arguments: FieldTable::default(),
                    }),
                )
                .await?;
            for queue in &queues {
                setup
                    .call(
                        1,
                        Method::QueueBind(QueueBind {
                            queue: queue.clone(),
                            exchange: name.clone(),
                            routing_key: queue.clone(),
                            no_wait: false,
                            arguments: FieldTable::default(),
                        }),
                    )
                    .await?;
            }
            name
        }
    };
    // Deliveries per published message, when every queue has consumers.
    let fan_out = if args.exchange.as_deref() == Some("fanout") {
        queues.len() as u64
    } else {
        1
    };

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        published: AtomicU64::new(0),
        confirmed: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
    });
    let mut consumers = Vec::new();
    for queue in &queues {
        for _ in 0..args.consumers {
            let c = Conn::open(&args.uri).await?;
            consumers.push(tokio::spawn(consume(
                c,
                args.clone(),
                queue.clone(),
                shared.clone(),
            )));
        }
    }
    let rss_start = args.pid.and_then(proc_rss_kb);
    let cpu_before = args.pid.and_then(proc_cpu_ticks);
    let start = Instant::now();
    let mut producers = Vec::new();
    for i in 0..args.producers {
        let c = Conn::open(&args.uri).await?;
        producers.push(tokio::spawn(publish(
            c,
            args.clone(),
            i,
            exchange.clone(),
            queues[i % queues.len()].clone(),
            shared.clone(),
        )));
    }
    let deadline = start + Duration::from_secs(args.duration);
    if args.pmessages == 0 {
        tokio::time::sleep_until(deadline.into()).await;
    } else {
        // Until every message is published and (with consumers) consumed.
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let published = shared.published.load(Ordering::Relaxed);
            let consumed = shared.consumed.load(Ordering::Relaxed);
            if producers.iter().all(|p| p.is_finished())
                && (args.consumers == 0 || consumed >= published * fan_out)
            {
                break;
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let published = shared.published.load(Ordering::Relaxed);
    let confirmed = shared.confirmed.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let cpu_after = args.pid.and_then(proc_cpu_ticks);
    let rss_kb = args.pid.and_then(proc_rss_kb);
    // Messages left in the queues (a passive declare each).
    let mut queued: Option<u64> = Some(0);
    for queue in &queues {
        let passive = Method::QueueDeclare(QueueDeclare {
            queue: queue.clone(),
            passive: true,
            durable: args.persistent,
            exclusive: false,
            auto_delete: false,
            no_wait: false,
            arguments: FieldTable::default(),
        });
        match tokio::time::timeout(Duration::from_secs(10), setup.call(1, passive)).await {
            Ok(Ok(Method::QueueDeclareOk(ok))) => {
                queued = queued.map(|q| q + ok.message_count as u64)
            }
            _ => queued = None,
        }
    }

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
    if !args.keep {
        // Bounded: a broker may take a while to drop a long queue.
        let cleanup = async {
            for queue in &queues {
                let delete = Method::QueueDelete(QueueDelete {
                    queue: queue.clone(),
                    if_unused: false,
                    if_empty: false,
                    no_wait: false,
                });
                setup.call(1, delete).await?;
            }
            if !exchange.is_empty() {
                let delete = Method::ExchangeDelete(ExchangeDelete {
                    exchange: exchange.clone(),
                    if_unused: false,
                    no_wait: false,
                });
                setup.call(1, delete).await?;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(Duration::from_secs(60), cleanup).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warren-load: cleanup failed: {e}"),
            Err(_) => eprintln!("warren-load: cleanup timed out"),
        }
    }

    let cpu_secs = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0),
        _ => None,
    };
    let handled = published.max(consumed).max(1);
    let cpu_us_per_msg = cpu_secs.map(|s| s * 1e6 / handled as f64);
    let pub_rate = published as f64 / elapsed;
    let confirm_rate = confirmed as f64 / elapsed;
    let con_rate = consumed as f64 / elapsed;
    if args.json {
        // Keys as before (scripts read them), then the additions.
        let mut j = Json::new(&args.label, "traffic");
        j.num("published_per_s", pub_rate, 0);
        j.num("confirmed_per_s", confirm_rate, 0);
        j.num("confirmed", confirmed as f64, 0);
        j.num("consumed_per_s", con_rate, 0);
        j.raw(
            "latency_us",
            format!(
                "{{\"p50\":{},\"p95\":{},\"p99\":{},\"p999\":{},\"max\":{},\"samples\":{}}}",
                pct(0.5),
                pct(0.95),
                pct(0.99),
                pct(0.999),
                pct(1.0),
                latencies.len()
            ),
        );
        j.opt("broker_cpu_s", cpu_secs, 2);
        j.opt("broker_cpu_us_per_msg", cpu_us_per_msg, 3);
        j.opt("broker_rss_kb", rss_kb.map(|v| v as f64), 0);
        j.num("elapsed_s", elapsed, 2);
        j.num("queues", queues.len() as f64, 0);
        j.num("published", published as f64, 0);
        j.num("consumed", consumed as f64, 0);
        j.opt("queued", queued.map(|v| v as f64), 0);
        j.opt(
            "broker_cpu_us_per_published",
            cpu_secs.map(|s| s * 1e6 / published.max(1) as f64),
            3,
        );
        j.opt(
            "broker_cpu_us_per_delivered",
            cpu_secs
                .filter(|_| consumed > 0)
                .map(|s| s * 1e6 / consumed as f64),
            3,
        );
        j.opt("broker_rss_start_kb", rss_start.map(|v| v as f64), 0);
        // RSS growth over the run per message left queued (publish-only runs).
        let per_queued = match (rss_start, rss_kb, queued) {
            (Some(a), Some(b), Some(q)) if q > 0 => Some((b as f64 - a as f64) * 1024.0 / q as f64),
            _ => None,
        };
        j.opt("broker_rss_growth_b_per_queued", per_queued, 1);
        j.print(true);
    } else {
        println!(
            "published: {pub_rate:.0} msg/s   consumed: {con_rate:.0} msg/s   ({elapsed:.1} s)"
        );
        if confirmed > 0 {
            println!("confirmed: {confirm_rate:.0} msg/s   ({confirmed} messages)");
        }
        if let Some(q) = queued.filter(|&q| q > 0) {
            println!("left queued: {q} messages in {} queue(s)", queues.len());
        }
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

async fn publish(
    mut c: Conn,
    args: Args,
    producer: usize,
    exchange: ShortStr,
    queue: ShortStr,
    shared: Arc<Shared>,
) -> Result<()> {
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
    // One set of properties per message group (x-group-id), used in turn.
    let props: Vec<BasicProperties> = if args.groups == 0 {
        vec![props]
    } else {
        (0..args.groups)
            .map(|g| {
                let group = FieldValue::LongStr(LongStr::from(format!("g{g}").as_str()));
                let headers = [(ShortStr::from_static("x-group-id"), group)];
                BasicProperties {
                    headers: Some(headers.into_iter().collect()),
                    ..props.clone()
                }
            })
            .collect()
    };
    // Every (priority, group) combination, used in turn.
    let props: Vec<BasicProperties> = if args.priorities == 0 {
        props
    } else {
        (0..args.priorities)
            .flat_map(|p| {
                props.iter().map(move |base| BasicProperties {
                    priority: Some(p),
                    ..base.clone()
                })
            })
            .collect()
    };
    let method = Method::BasicPublish(BasicPublish {
        exchange,
        routing_key: queue,
        mandatory: false,
        immediate: false,
    });
    let size = args.size.max(8);
    let mut body = vec![0u8; size];
    // Confirms come back on the read half; count them there. The window is
    // per publisher (delivery tags are per channel).
    let acked = Arc::new(AtomicU64::new(0));
    // Wakes the publisher when confirms open its window again; waiting on it
    // instead of spinning keeps the load generator's CPU off the broker's
    // cores.
    let window_opened = Arc::new(tokio::sync::Notify::new());
    let (confirmed, acked_by_reader) = (shared.clone(), acked.clone());
    let opened_by_reader = window_opened.clone();
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
                    let before = acked_by_reader.fetch_max(a.delivery_tag, Ordering::AcqRel);
                    if a.delivery_tag > before {
                        confirmed
                            .confirmed
                            .fetch_add(a.delivery_tag - before, Ordering::Relaxed);
                        opened_by_reader.notify_one();
                    }
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
    let limit = if args.pmessages > 0 {
        args.pmessages
    } else {
        u64::MAX
    };
    while !shared.stop.load(Ordering::Relaxed) && sent < limit {
        if confirms {
            while sent - acked.load(Ordering::Acquire) >= args.confirm {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                // The timeout only bounds how late the stop flag is seen.
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), window_opened.notified()).await;
            }
        }
        if per_producer_rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / per_producer_rate as f64);
            let now = started.elapsed();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let batch = batch.min(limit - sent);
        for _ in 0..batch {
            let ts = shared.epoch.elapsed().as_nanos() as u64;
            body[..8].copy_from_slice(&ts.to_le_bytes());
            encode_method_frame(&mut out, 1, &method);
            let p = &props[(sent % props.len() as u64) as usize];
            if args.message_ids {
                let id = ShortStr::try_from(format!("{producer}-{sent}"))?;
                let p = BasicProperties {
                    message_id: Some(id),
                    ..p.clone()
                };
                encode_header_frame(&mut out, 1, 60, size as u64, &p);
            } else {
                encode_header_frame(&mut out, 1, 60, size as u64, p);
            }
            encode_body_frames(&mut out, 1, &body, c.frame_max);
            sent += 1;
        }
        c.writer.write_all(&out).await?;
        out.clear();
        shared.published.fetch_add(batch, Ordering::Relaxed);
    }
    // With -C, wait (until the run stops) for the last confirms.
    while confirms && sent < u64::MAX && acked.load(Ordering::Acquire) < sent {
        if shared.stop.load(Ordering::Relaxed) || args.pmessages == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
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
    // Every message at a fixed rate (latency runs); else one in 16, to keep
    // memory bounded on long runs.
    let sample_every: u32 = if args.rate > 0 { 1 } else { 16 };
    let mut sample_in = sample_every;
    while !shared.stop.load(Ordering::Relaxed) {
        // Handle every frame already read, then send their acks in one write.
        let mut got = 0;
        while let Some(frame) = warren_protocol::decode_frame(&mut c.rbuf, 0)? {
            match frame {
                Frame::Method {
                    method: Method::BasicDeliver(d),
                    ..
                } => pending_tag = Some(d.delivery_tag),
                Frame::Body { payload, .. } => {
                    if payload.len() >= 8 {
                        got += 1;
                        sample_in -= 1;
                        if sample_in == 0 {
                            sample_in = sample_every;
                            let mut ts = [0u8; 8];
                            ts.copy_from_slice(&payload[..8]);
                            let sent = u64::from_le_bytes(ts);
                            let now = shared.epoch.elapsed().as_nanos() as u64;
                            // A zero stamp (the sink's deliveries) is no sample.
                            if sent != 0 && sent <= now {
                                latencies.push((now - sent) / 1000);
                            }
                        }
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
        shared.consumed.fetch_add(got, Ordering::Relaxed);
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

/// `k=v,k=v` as a field table: integers as signed 64-bit, true/false as
/// booleans, anything else as a string.
fn parse_table(spec: &str) -> Result<FieldTable> {
    let mut t = FieldTable::default();
    for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected key=value in {pair:?}"))?;
        let v = v.trim();
        let value = match (v.parse::<i64>(), v) {
            (Ok(n), _) => FieldValue::I64(n),
            (_, "true") => FieldValue::Bool(true),
            (_, "false") => FieldValue::Bool(false),
            _ => FieldValue::LongStr(LongStr::from(v)),
        };
        t.insert(ShortStr::try_from(k.trim())?, value);
    }
    Ok(t)
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
