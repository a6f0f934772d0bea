//! Append throughput of the persistence log (`warren-persistence`).
//!
//! - `never/*`: one appender, fsync policy `never`: the cost of framing,
//!   CRC, the channel and write(2).
//! - `always-8-free/*`: eight appenders that do not wait, policy `always`:
//!   group commit at its best.
//! - `always-8-confirm/*`: eight appenders that each wait for durability
//!   after every append, as a publisher waiting for its confirm does.
//!
//! Each sample starts from an empty data directory; the time includes the
//! final flush. Records per fsync are printed after each benchmark.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren_persistence::{FileLog, FsyncPolicy, Store, StoreConfig};

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "warren-bench-log-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Totals {
    records: u64,
    fsyncs: u64,
}

impl Totals {
    fn report(&self, name: &str) {
        if self.fsyncs > 0 {
            eprintln!(
                "{name}: {:.1} records/fsync ({} records, {} fsyncs)",
                self.records as f64 / self.fsyncs as f64,
                self.records,
                self.fsyncs
            );
        }
    }
}

/// Appends `iters` records from `threads` threads and flushes; returns the
/// elapsed time.
fn run(
    policy: FsyncPolicy,
    threads: u64,
    confirm: bool,
    payload: &Bytes,
    iters: u64,
    totals: &mut Totals,
) -> Duration {
    let dir = Scratch::new();
    let config = StoreConfig::default()
        .with_fsync(policy)
        .with_segment_size(64 << 20);
    let (log, _) = FileLog::open(&dir.0, config).unwrap_or_else(|e| panic!("open: {e}"));
    let per = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let log = &log;
            s.spawn(move || {
                for _ in 0..per {
                    let id = log
                        .append(1, payload.clone(), None)
                        .unwrap_or_else(|e| panic!("append: {e}"));
                    if confirm {
                        log.wait_durable(id).unwrap_or_else(|e| panic!("wait: {e}"));
                    }
                }
            });
        }
    });
    log.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    let elapsed = start.elapsed();
    let stats = log.stats();
    totals.records += stats.appended;
    totals.fsyncs += stats.fsyncs;
    elapsed
}

fn append(c: &mut Criterion) {
    let cases: [(&str, FsyncPolicy, u64, bool); 3] = [
        ("never", FsyncPolicy::Never, 1, false),
        ("always-8-free", FsyncPolicy::Always, 8, false),
        ("always-8-confirm", FsyncPolicy::Always, 8, true),
    ];
    let mut group = c.benchmark_group("log-append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for size in [16usize, 1024] {
        let payload = Bytes::from(vec![0xA5u8; size]);
        for (name, policy, threads, confirm) in cases {
            let mut totals = Totals::default();
            group.bench_with_input(BenchmarkId::new(name, size), &payload, |b, payload| {
                b.iter_custom(|iters| run(policy, threads, confirm, payload, iters, &mut totals))
            });
            totals.report(&format!("log-append/{name}/{size}"));
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
