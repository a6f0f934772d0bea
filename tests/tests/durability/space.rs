//! Space: publishing and acking ten times more data than is ever live
//! through the broker keeps the data directory below twice the live data
//! plus one segment, and a restart gives back exactly the live messages.

use std::path::Path;

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use warren::{Broker, BrokerConfig};

use super::{persistent, temp_dir, WAIT};

const SEGMENT: u64 = 64 << 10;
const BODY: usize = 1024;
/// Messages live at any time.
const WINDOW: u64 = 200;
/// Messages acked (and published) per round once the window is full.
const STEP: u64 = 25;

/// Bytes in segment files: what the data directory costs on disk.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wlog"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn body(i: u64) -> Vec<u8> {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(BODY, b'.');
    b
}

async fn publish(ch: &Channel, range: std::ops::Range<u64>, props: &BasicProperties) {
    let mut confirms = Vec::new();
    for i in range {
        confirms.push(
            ch.basic_publish(
                "".into(),
                "space".into(),
                BasicPublishOptions::default(),
                &body(i),
                props.clone(),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

async fn open(dir: &Path) -> (Broker, Connection) {
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    config.storage.segment_size = SEGMENT;
    let broker = Broker::open(config).unwrap();
    let addr = broker.listen("127.0.0.1:0").await.unwrap();
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    (broker, conn)
}

#[tokio::test]
async fn disk_use_follows_live_data() {
    let dir = temp_dir("space");
    let (broker, conn) = open(&dir).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("space".into(), durable, FieldTable::default())
        .await
        .unwrap();
    let props = persistent();
    publish(&ch, 0..WINDOW, &props).await;
    let total = 12 * WINDOW;
    let mut next = WINDOW;
    let mut oldest = 0;
    let mut worst: f64 = 0.0;
    let mut rounds = 0;
    while next < total {
        // Take and ack the oldest STEP messages, then publish STEP more: the
        // confirms also make the acks durable.
        for _ in 0..STEP {
            let m = ch
                .basic_get("space".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("a message");
            assert_eq!(m.delivery.data, body(oldest));
            oldest += 1;
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        publish(&ch, next..next + STEP, &props).await;
        next += STEP;
        rounds += 1;
        let stats = broker.storage_stats().expect("a broker with a log");
        let disk = disk_bytes(&dir);
        let bound = 2 * stats.live_bytes + SEGMENT;
        worst = worst.max(disk as f64 / stats.live_bytes as f64);
        assert!(
            stats.live_bytes >= WINDOW * BODY as u64,
            "live bytes {} cover the window",
            stats.live_bytes
        );
        assert!(
            disk <= bound,
            "round {rounds}: {disk} bytes on disk, {} live, bound {bound}: {stats:?}",
            stats.live_bytes
        );
    }
    let stats = broker.storage_stats().unwrap();
    assert!(
        stats.bytes_written >= 10 * stats.live_bytes,
        "ten times the live data went through the log: {stats:?}"
    );
    assert!(stats.segments_deleted > 0, "{stats:?}");
    eprintln!(
        "space: {rounds} rounds, worst disk/live {worst:.2}, {} KiB written for {} KiB live, {stats:?}",
        stats.bytes_written >> 10,
        stats.live_bytes >> 10
    );
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;

    // A restart gives back exactly the live window, in order.
    let (broker, conn) = open(&dir).await;
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("space".into(), passive, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(u64::from(q.message_count()), WINDOW);
    let mut consumer = ch
        .basic_consume(
            "space".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in oldest..next {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("delivery in time")
            .unwrap()
            .unwrap();
        assert_eq!(d.data, body(i));
    }
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
