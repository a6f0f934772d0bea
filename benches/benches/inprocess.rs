//! The in-process path (`warren::embed`): one publisher, one consumer, one
//! queue, 16-byte bodies, no socket.
//!
//! - `auto-ack/{mt,ct}`: the consumer is no-ack.
//! - `manual-ack/{mt,ct}`: the consumer acks every delivery with
//!   `Delivery::ack`.
//! - `auto-ack-batch/…`, `manual-ack-batch/…`: the same, publishing with
//!   `Channel::basic_publish_batch`, 100 messages a call.
//!
//! `mt` runs on a multi-threaded tokio runtime with two workers (publisher
//! and consumer may run in parallel), `ct` on a current-thread runtime
//! (everything on one core). Each sample publishes a round of messages
//! and ends when the consumer has received the last one; the throughput
//! criterion prints is messages per second.
//!
//! After the criterion runs, the bench counts heap allocations on the
//! publish → deliver path with a counting global allocator (every
//! `alloc`/`realloc` in the process during a run of 1M messages, broker,
//! router, publisher and consumer together) and prints allocations per
//! message, and the CPU time the run took (all threads, from
//! `/proc/self/task/*/schedstat`): on a shared machine, messages per CPU
//! second are steadier than messages per wall-clock second.
//!
//! `cargo bench -p warren-benches --bench inprocess`
// A global allocator is an `unsafe impl`; it only forwards to `System`.
#![allow(unsafe_code)]
// Setup failures in a benchmark are bugs to see at once.
#![allow(clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use warren::embed::{
    BasicProperties, Channel, ConsumeOptions, Consumer, FieldTable, PublishOptions,
    QueueDeclareOptions,
};
use warren::{Broker, BrokerConfig};

/// Counts every allocation (and reallocation) in the process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Messages per criterion sample.
const ROUND: u64 = 200_000;
/// Messages in the allocation count.
const COUNTED: u64 = 1_000_000;
const BODY: &[u8; 16] = b"0123456789abcdef";
/// Messages per `basic_publish_batch` call in the `-batch` configurations.
const BATCH: u64 = 100;

#[derive(Clone, Copy)]
enum Ack {
    Auto,
    Manual,
}

/// A broker with one queue, a publishing channel and a consumer task that
/// reports each time it has received a given number of messages.
struct Setup {
    broker: Broker,
    publisher: Channel,
    /// Tells the consumer how many messages the next round has.
    rounds: mpsc::UnboundedSender<u64>,
    done: mpsc::UnboundedReceiver<()>,
}

async fn setup(ack: Ack) -> Setup {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.expect("connect");
    let publisher = conn.open_channel().await.expect("channel");
    publisher
        .queue_declare(
            "bench",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    let consumer_conn = broker.connect().await.expect("connect");
    let consumer_ch = consumer_conn.open_channel().await.expect("channel");
    let opts = ConsumeOptions {
        no_ack: matches!(ack, Ack::Auto),
        ..Default::default()
    };
    let consumer = consumer_ch
        .basic_consume("bench", opts)
        .await
        .expect("consume");
    let (rounds, rounds_rx) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    tokio::spawn(consume(consumer, ack, rounds_rx, done_tx));
    Setup {
        broker,
        publisher,
        rounds,
        done,
    }
}

async fn consume(
    mut consumer: Consumer,
    ack: Ack,
    mut rounds: mpsc::UnboundedReceiver<u64>,
    done: mpsc::UnboundedSender<()>,
) {
    while let Some(n) = rounds.recv().await {
        for _ in 0..n {
            let Some(d) = consumer.next().await else {
                return;
            };
            if let Ack::Manual = ack {
                if d.ack().await.is_err() {
                    return;
                }
            }
        }
        if done.send(()).is_err() {
            return;
        }
    }
}

/// Publishes `n` messages (one at a time, or in batches of `batch`) and
/// waits until the consumer has them all.
async fn round(s: &mut Setup, n: u64, batch: u64) -> Duration {
    let body = Bytes::from_static(BODY);
    let start = Instant::now();
    s.rounds.send(n).expect("consumer running");
    if batch <= 1 {
        for _ in 0..n {
            s.publisher
                .basic_publish(
                    "",
                    "bench",
                    PublishOptions::default(),
                    BasicProperties::default(),
                    body.clone(),
                )
                .await
                .expect("publish");
        }
    } else {
        let mut left = n;
        while left > 0 {
            let k = left.min(batch);
            left -= k;
            s.publisher
                .basic_publish_batch(
                    "",
                    "bench",
                    PublishOptions::default(),
                    BasicProperties::default(),
                    (0..k).map(|_| body.clone()),
                )
                .await
                .expect("publish");
        }
    }
    s.done.recv().await.expect("consumer done");
    start.elapsed()
}

/// CPU time of every thread of the process so far (Linux; zero elsewhere).
/// On a machine shared with other work, messages per CPU second says more
/// than messages per wall-clock second.
fn cpu_time() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn runtime(multi_thread: bool) -> Runtime {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("runtime")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("inprocess");
    group.throughput(Throughput::Elements(ROUND));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    // INPROCESS_ONLY=auto-ack/ct runs one configuration (for profiling).
    let only = std::env::var("INPROCESS_ONLY").ok();
    let configs = [
        (Ack::Auto, "auto-ack", 1),
        (Ack::Manual, "manual-ack", 1),
        (Ack::Auto, "auto-ack-batch", BATCH),
        (Ack::Manual, "manual-ack-batch", BATCH),
    ];
    for (ack, ack_name, batch) in configs {
        for (mt, rt_name) in [(true, "mt"), (false, "ct")] {
            if only
                .as_ref()
                .is_some_and(|o| *o != format!("{ack_name}/{rt_name}"))
            {
                continue;
            }
            let rt = runtime(mt);
            let mut s = rt.block_on(setup(ack));
            // Warm the buffers up before measuring.
            rt.block_on(round(&mut s, ROUND, batch));
            group.bench_function(format!("{ack_name}/{rt_name}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += round(&mut s, ROUND, batch).await;
                        }
                        total
                    })
                })
            });
            let (allocs, took, cpu) = rt.block_on(async {
                round(&mut s, COUNTED, batch).await;
                let allocs = ALLOCS.load(Ordering::Relaxed);
                let cpu = cpu_time();
                let took = round(&mut s, COUNTED, batch).await;
                (
                    ALLOCS.load(Ordering::Relaxed) - allocs,
                    took,
                    cpu_time().saturating_sub(cpu),
                )
            });
            eprintln!(
                "inprocess/{ack_name}/{rt_name}: {:.3} allocations/message; {:.2} M msg/s wall clock, \
                 {:.0} ns CPU/message ({:.2} M msg/s per CPU second) over {COUNTED} messages",
                allocs as f64 / COUNTED as f64,
                COUNTED as f64 / took.as_secs_f64() / 1e6,
                cpu.as_nanos() as f64 / COUNTED as f64,
                COUNTED as f64 / cpu.as_secs_f64().max(1e-9) / 1e6,
            );
            rt.block_on(s.broker.shutdown());
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
