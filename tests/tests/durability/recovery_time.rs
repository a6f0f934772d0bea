//! Recovery time of a data directory holding a million queued persistent
//! messages (a benchmark, so `#[ignore]`d; `scripts/bench-recovery.sh`
//! runs it in release mode):
//!
//!     cargo test --release -p warren-tests --test durability -- \
//!         --ignored recovery_time --nocapture
//!
//! Environment: `WARREN_RECOVERY_MESSAGES` (default 1,000,000),
//! `WARREN_RECOVERY_SIZE` (body bytes, default 16), `WARREN_RECOVERY_DIR`
//! (where the data directory is left for the binary to be timed on; default
//! a temporary one, removed), `WARREN_RECOVERY_RABBIT_URL` (also fill a
//! durable queue `recovery` of that broker with the same messages, for a
//! restart comparison).

use std::time::{Duration, Instant};

use bytes::Bytes;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren::embed::{BasicProperties, QueueDeclareOptions as EmbedDeclare};
use warren::{Broker, BrokerConfig};

use super::temp_dir;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    config
}

async fn fill_warren(dir: &std::path::Path, n: usize, size: usize) {
    let broker = Broker::open(config(dir)).unwrap();
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.confirm_select().await.unwrap();
    let durable = EmbedDeclare {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("recovery", durable, Default::default())
        .await
        .unwrap();
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let started = Instant::now();
    let mut window = std::collections::VecDeque::new();
    for i in 0..n {
        let mut body = format!("{i:012}").into_bytes();
        body.resize(size.max(12), b'.');
        let c = ch
            .basic_publish(
                "",
                "recovery",
                Default::default(),
                props.clone(),
                Bytes::from(body),
            )
            .await
            .unwrap();
        window.push_back(c);
        if window.len() >= 1000 {
            window.pop_front().unwrap().await.unwrap();
        }
    }
    for c in window {
        c.await.unwrap();
    }
    eprintln!(
        "recovery_time: filled Warren with {n} messages of {size} B in {:.1} s; {:?}",
        started.elapsed().as_secs_f64(),
        broker.storage_stats()
    );
    conn.close().await;
    broker.shutdown().await;
}

async fn fill_rabbit(url: &str, n: usize, size: usize) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("recovery".into(), durable, FieldTable::default())
        .await
        .unwrap();
    let already = q.message_count() as usize;
    let props = lapin::BasicProperties::default().with_delivery_mode(2);
    let started = Instant::now();
    let mut window = std::collections::VecDeque::new();
    for i in already..n {
        let mut body = format!("{i:012}").into_bytes();
        body.resize(size.max(12), b'.');
        let c = ch
            .basic_publish(
                "".into(),
                "recovery".into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await
            .unwrap();
        window.push_back(c);
        if window.len() >= 1000 {
            assert!(window.pop_front().unwrap().await.unwrap().is_ack());
        }
    }
    for c in window {
        assert!(c.await.unwrap().is_ack());
    }
    eprintln!(
        "recovery_time: filled {url} with {} messages in {:.1} s",
        n - already.min(n),
        started.elapsed().as_secs_f64()
    );
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: a million messages; run in release mode"]
async fn recovery_time_of_a_million_messages() {
    let n = env("WARREN_RECOVERY_MESSAGES", 1_000_000);
    let size = env("WARREN_RECOVERY_SIZE", 16);
    let kept = std::env::var_os("WARREN_RECOVERY_DIR").map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| temp_dir("recovery-time"));
    let _ = std::fs::remove_dir_all(&dir);
    fill_warren(&dir, n, size).await;
    let disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let broker = Broker::open(config(&dir)).unwrap();
        let opened = started.elapsed();
        let conn = broker.connect().await.unwrap();
        let ch = conn.open_channel().await.unwrap();
        let passive = EmbedDeclare {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare("recovery", passive, Default::default())
            .await
            .unwrap();
        assert_eq!(q.message_count as usize, n);
        times.push(opened);
        conn.close().await;
        broker.shutdown().await;
    }
    times.sort();
    eprintln!(
        "recovery_time: Warren, {n} messages of {size} B, {} MiB of log: Broker::open took {:?} (median of {:?})",
        disk >> 20,
        times[1],
        times
    );
    if let Ok(url) = std::env::var("WARREN_RECOVERY_RABBIT_URL") {
        fill_rabbit(&url, n, size).await;
    }
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(times[1] < Duration::from_secs(120));
}
