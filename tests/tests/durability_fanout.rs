//! A persistent message fanned out to several durable queues is stored once
//! and survives restarts until every queue is done with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use warren::{Broker, BrokerConfig};

async fn start(dir: &std::path::Path) -> (Broker, Connection) {
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    let broker = Broker::open(config).expect("open");
    let addr = broker.listen("127.0.0.1:0").await.expect("listen");
    let conn = Connection::connect(
        &format!("amqp://guest:guest@{addr}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    (broker, conn)
}

async fn count(conn: &Connection, q: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let ok = ch
        .queue_declare(
            q.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ok.message_count()
}

#[tokio::test]
async fn fanned_out_message_lives_until_every_queue_acks_it() {
    let dir = std::env::temp_dir().join(format!("warren-fanout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let (broker, conn) = start(&dir).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "fan".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in ["a", "b", "c"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.into(),
            "fan".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let props = BasicProperties::default().with_delivery_mode(2);
    let confirm = ch
        .basic_publish(
            "fan".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"hello",
            props,
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack());
    // Take it from "a" only.
    let got = ch
        .basic_get("a".into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("message in a");
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let props = BasicProperties::default().with_delivery_mode(2);
    ch.basic_publish(
        "".into(),
        "c".into(),
        BasicPublishOptions::default(),
        b"later",
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;

    let (broker, conn) = start(&dir).await;
    assert_eq!(count(&conn, "a").await, 0);
    assert_eq!(count(&conn, "b").await, 1);
    assert_eq!(count(&conn, "c").await, 2);
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .basic_get("b".into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("message in b");
    assert_eq!(got.delivery.data, b"hello");
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;

    let (broker, conn) = start(&dir).await;
    assert_eq!(count(&conn, "b").await, 0);
    assert_eq!(count(&conn, "c").await, 2);
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
