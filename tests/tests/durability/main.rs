//! Durable state across restarts of an in-process broker on one data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod damage;
mod dead;
mod paging;
mod recovery_time;
mod space;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use warren::{Broker, BrokerConfig};

const WAIT: Duration = Duration::from_secs(10);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A default configuration on the data directory `dir`.
fn dir_config(dir: &Path) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    config
}

async fn start(dir: &Path) -> (Broker, String) {
    listen_with(dir_config(dir)).await
}

/// A broker on `config`, listening; and its URL.
async fn listen_with(config: BrokerConfig) -> (Broker, String) {
    let broker = Broker::open(config).expect("open data dir");
    let addr = broker.listen("127.0.0.1:0").await.expect("listen");
    (broker, format!("amqp://guest:guest@{addr}/%2f"))
}

/// A broker on `config`, with a lapin connection and a channel in confirm
/// mode.
async fn open_with(config: BrokerConfig) -> (Broker, Connection, lapin::Channel) {
    let (broker, url) = listen_with(config).await;
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (broker, conn, ch)
}

/// A broker on the data directory `dir`, with a lapin connection and a
/// channel in confirm mode.
async fn open(dir: &Path) -> (Broker, Connection, lapin::Channel) {
    open_with(dir_config(dir)).await
}

/// Declares a durable queue.
async fn declare(ch: &lapin::Channel, name: &str, args: FieldTable) {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), durable, args).await.unwrap();
}

async fn close(broker: Broker, conn: Connection) {
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test]
async fn durable_things_and_persistent_messages_survive_a_restart() {
    let dir = temp_dir("restart");
    let (broker, conn, ch) = open(&dir).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "scratch".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare("kept".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(
        "lost".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "kept".into(),
        "orders".into(),
        "order.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..10u8 {
        let c = ch
            .basic_publish(
                "orders".into(),
                "order.new".into(),
                BasicPublishOptions::default(),
                &[i],
                persistent(),
            )
            .await
            .unwrap();
        assert!(c.await.unwrap().is_ack());
    }
    // Transient messages and messages in non-durable queues do not survive.
    ch.basic_publish(
        "".into(),
        "kept".into(),
        BasicPublishOptions::default(),
        b"transient",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "lost".into(),
        BasicPublishOptions::default(),
        b"p",
        persistent(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Ack the first three; deliver the fourth without acking it.
    for expected in 0..4u8 {
        let msg = ch
            .basic_get("kept".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(msg.delivery.data, vec![expected]);
        if expected < 3 {
            msg.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    // A later confirmed publish makes the acks durable (the contract).
    ch.basic_publish(
        "".into(),
        "kept".into(),
        BasicPublishOptions::default(),
        &[10],
        persistent(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    drop(ch);
    close(broker, conn).await;

    let (broker, url) = start(&dir).await;
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "kept".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        q.message_count(),
        8,
        "7 unacked persistent messages plus the last one"
    );
    let err = ch
        .exchange_declare(
            "scratch".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(err.is_err(), "non-durable exchange came back");
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "lost".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(err.is_err(), "non-durable queue came back");
    let ch = conn.create_channel().await.unwrap();
    // The binding came back: routing through the durable exchange still works.
    ch.basic_publish(
        "orders".into(),
        "order.late".into(),
        BasicPublishOptions::default(),
        &[11],
        persistent(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            "kept".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 9 {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("delivery in time")
            .unwrap()
            .unwrap();
        // Only the message that had been delivered before is marked redelivered.
        assert_eq!(
            d.redelivered,
            d.data == vec![3],
            "redelivered flag of {:?}",
            d.data
        );
        got.push(d.data[0]);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(got, vec![3, 4, 5, 6, 7, 8, 9, 10, 11]);
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_broker_cannot_use_the_same_directory() {
    let dir = temp_dir("lock");
    let (broker, _) = start(&dir).await;
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.clone());
    assert!(Broker::open(config).is_err());
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replies that promise durability (declare-ok, bind-ok, commit-ok…) wait
/// for the log: with a log that cannot write (its first segment's name is
/// taken by a directory), a durable queue's declare-ok never comes, while a
/// transient queue's, which needs no log, comes at once.
#[tokio::test]
async fn declare_ok_waits_for_the_log() {
    let dir = temp_dir("declare-waits");
    std::fs::create_dir_all(dir.join("00000000000000000001.wlog")).unwrap();
    let (broker, url) = start(&dir).await;
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let declared = tokio::time::timeout(
        Duration::from_millis(500),
        ch.queue_declare("never-durable".into(), durable, FieldTable::default()),
    )
    .await;
    assert!(
        declared.is_err(),
        "declare-ok sent although the queue is not in the log: {declared:?}"
    );
    let ch2 = conn.create_channel().await.unwrap();
    tokio::time::timeout(
        WAIT,
        ch2.queue_declare(
            "transient".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("a transient declare needs no log")
    .unwrap();
    let _ = tokio::time::timeout(WAIT, conn.close(200, "bye".into())).await;
    tokio::time::timeout(WAIT, broker.shutdown())
        .await
        .expect("shutdown with a failed log");
    let _ = std::fs::remove_dir_all(&dir);
}
