//! A durable queue keeps only the head of a long backlog of persistent
//! messages in memory; the rest stay in the log and are read back when they
//! leave the queue. Whatever way they leave (consumer with or without ack,
//! basic.get, requeue, dead-lettering, priorities, fan-out, a restart), a
//! client sees the same messages in the same order as without paging, and
//! the broker's log counters show that they were read back.

use std::path::Path;

use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use warren::{Broker, BrokerConfig};

use super::{close, declare, dir_config, open_with, temp_dir, WAIT};

/// Ready messages a queue keeps in memory in these tests.
const IN_MEMORY: usize = 4;

fn config(dir: &Path) -> BrokerConfig {
    let mut config = dir_config(dir);
    config.storage.queue_in_memory = IN_MEMORY;
    config
}

async fn open(dir: &Path) -> (Broker, Connection, Channel) {
    open_with(config(dir)).await
}

/// A durable fanout exchange with `queues` (declared durable) bound to it.
async fn fanout(ch: &Channel, exchange: &str, queues: &[&str]) {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Fanout,
        durable,
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in queues {
        declare(ch, q, FieldTable::default()).await;
        ch.queue_bind(
            (*q).into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
}

fn reads(broker: &Broker) -> u64 {
    broker.storage_stats().unwrap().reads
}

/// Persistent unless `i` is a multiple of 5; properties that must come back
/// as published.
fn props(i: u32) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("n"), AMQPValue::LongUInt(i));
    BasicProperties::default()
        .with_delivery_mode(if i.is_multiple_of(5) { 1 } else { 2 })
        .with_message_id(format!("m{i}").into())
        .with_content_type("text/plain".into())
        .with_headers(headers)
}

fn body(i: u32) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

/// Checks a message against what [`props`] and [`body`] gave message `i`.
fn check(i: u32, data: &[u8], p: &BasicProperties) {
    assert_eq!(data, body(i), "body of message {i}");
    assert_eq!(p, &props(i), "properties of message {i}");
}

async fn publish(ch: &Channel, exchange: &str, key: &str, range: std::ops::Range<u32>) {
    for i in range {
        let c = ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                &body(i),
                props(i),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(c.is_ack());
    }
}

/// Consumes `n` messages (with `no_ack`, the queue must hold no more);
/// returns their bodies' numbers after checking each. With acks, prefetch
/// 1 and a cancel before the last ack leave nothing else delivered.
async fn consume(ch: &Channel, queue: &str, n: usize, no_ack: bool) -> Vec<u32> {
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < n {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("a delivery in time")
            .unwrap()
            .unwrap();
        let i = number(&d.data);
        check(i, &d.data, &d.properties);
        assert!(!d.redelivered);
        seen.push(i);
        if seen.len() == n {
            ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await
                .unwrap();
        }
        if !no_ack {
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    seen
}

fn number(data: &[u8]) -> u32 {
    std::str::from_utf8(data)
        .unwrap()
        .trim_start_matches("message ")
        .parse()
        .unwrap()
}

async fn message_count(ch: &Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

#[tokio::test]
async fn a_backlog_comes_back_from_the_log_in_order_with_and_without_acks() {
    let dir = temp_dir("paging-order");
    let (broker, conn, ch) = open(&dir).await;
    declare(&ch, "backlog", FieldTable::default()).await;
    publish(&ch, "", "backlog", 0..60).await;
    assert_eq!(reads(&broker), 0, "nothing is read while publishing");
    assert_eq!(message_count(&ch, "backlog").await, 60);

    let first = consume(&ch, "backlog", 30, false).await;
    assert_eq!(first, (0..30).collect::<Vec<_>>());
    let later = consume(&ch, "backlog", 30, true).await;
    assert_eq!(later, (30..60).collect::<Vec<_>>());
    // Every persistent message behind the first IN_MEMORY was read back
    // (the transient ones stayed in memory).
    let paged = (IN_MEMORY as u32..60)
        .filter(|i| !i.is_multiple_of(5))
        .count() as u64;
    assert_eq!(reads(&broker), paged);
    assert_eq!(message_count(&ch, "backlog").await, 0);
    close(broker, conn).await;

    // Nothing comes back: acks and no-ack deliveries of paged messages
    // ended them in the log too.
    let (broker, conn, ch) = open(&dir).await;
    assert_eq!(message_count(&ch, "backlog").await, 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_backlog_recovered_at_start_stays_in_the_log_until_delivered() {
    let dir = temp_dir("paging-restart");
    let (broker, conn, ch) = open(&dir).await;
    declare(&ch, "kept", FieldTable::default()).await;
    publish(&ch, "", "kept", 0..40).await;
    close(broker, conn).await;

    let (broker, conn, ch) = open(&dir).await;
    // Transient messages are gone; persistent ones come back in order.
    let persistent: Vec<u32> = (0..40u32).filter(|i| !i.is_multiple_of(5)).collect();
    assert_eq!(message_count(&ch, "kept").await, persistent.len() as u32);
    assert_eq!(reads(&broker), 0);
    let got = consume(&ch, "kept", persistent.len(), false).await;
    assert_eq!(got, persistent);
    assert_eq!(reads(&broker), (persistent.len() - IN_MEMORY) as u64);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn get_and_requeue_of_paged_messages() {
    let dir = temp_dir("paging-get");
    let (broker, conn, ch) = open(&dir).await;
    declare(&ch, "got", FieldTable::default()).await;
    publish(&ch, "", "got", 0..20).await;
    // Take all, give every other one back: they return in place, redelivered.
    let mut held = Vec::new();
    for i in 0..20 {
        let m = ch
            .basic_get("got".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message");
        check(i, &m.delivery.data, &m.delivery.properties);
        held.push(m);
    }
    for (i, m) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            m.delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        } else {
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    for i in (0..20).step_by(2) {
        let m = ch
            .basic_get("got".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a requeued message");
        check(i, &m.delivery.data, &m.delivery.properties);
        assert!(m.delivery.redelivered);
    }
    assert_eq!(message_count(&ch, "got").await, 0);
    assert!(reads(&broker) > 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn paged_messages_are_dead_lettered_whole() {
    let dir = temp_dir("paging-dlx");
    let (broker, conn, ch) = open(&dir).await;
    fanout(&ch, "dlx", &["dead"]).await;
    // A full queue drops its oldest (paged) messages to the dead-letter
    // exchange.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("dlx".into()),
    );
    declare(&ch, "full", args).await;
    publish(&ch, "", "full", 0..30).await;
    assert_eq!(message_count(&ch, "full").await, 10);
    assert_eq!(message_count(&ch, "dead").await, 20);
    for i in 0..20 {
        let m = ch
            .basic_get("dead".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a dead letter");
        assert_eq!(m.delivery.data, body(i));
        let p = &m.delivery.properties;
        assert_eq!(p.message_id(), props(i).message_id());
        let headers = p.headers().as_ref().unwrap().inner();
        assert_eq!(headers.get("n"), Some(&AMQPValue::LongUInt(i)));
        assert!(headers.contains_key("x-death"), "x-death on {i}");
    }
    let rest = consume(&ch, "full", 10, false).await;
    assert_eq!(rest, (20..30).collect::<Vec<_>>());
    assert!(reads(&broker) > 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_paged_priority_queue_delivers_by_priority() {
    let dir = temp_dir("paging-priority");
    let (broker, conn, ch) = open(&dir).await;
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(3));
    declare(&ch, "prio", args).await;
    // Messages 0..30, priority i % 4, all persistent.
    for i in 0..30u32 {
        ch.basic_publish(
            "".into(),
            "prio".into(),
            BasicPublishOptions::default(),
            &body(i),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_priority((i % 4) as u8),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("prio".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        got.push(number(&m.delivery.data));
    }
    let mut want: Vec<u32> = (0..30).collect();
    want.sort_by_key(|i| (std::cmp::Reverse(i % 4), *i));
    assert_eq!(got, want);
    assert!(reads(&broker) > 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn fan_out_copies_share_one_body_in_the_log() {
    let dir = temp_dir("paging-fanout");
    let (broker, conn, ch) = open(&dir).await;
    fanout(&ch, "both", &["left", "right"]).await;
    publish(&ch, "both", "", 0..30).await;
    assert_eq!(
        consume(&ch, "left", 30, false).await,
        (0..30).collect::<Vec<_>>()
    );
    close(broker, conn).await;
    // The right copies outlive the left ones' acks, across a restart.
    let (broker, conn, ch) = open(&dir).await;
    let persistent: Vec<u32> = (0..30u32).filter(|i| !i.is_multiple_of(5)).collect();
    assert_eq!(message_count(&ch, "left").await, 0);
    assert_eq!(
        consume(&ch, "right", persistent.len(), false).await,
        persistent
    );
    assert!(reads(&broker) > 0);
    close(broker, conn).await;
    let (broker, conn, ch) = open(&dir).await;
    assert_eq!(message_count(&ch, "right").await, 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_purged_backlog_stays_purged() {
    let dir = temp_dir("paging-purge");
    let (broker, conn, ch) = open(&dir).await;
    declare(&ch, "purged", FieldTable::default()).await;
    publish(&ch, "", "purged", 0..25).await;
    let n = ch
        .queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 25);
    // A later confirmed publish makes the purge's tombstones durable.
    publish(&ch, "", "purged", 101..102).await;
    close(broker, conn).await;
    let (broker, conn, ch) = open(&dir).await;
    assert_eq!(consume(&ch, "purged", 1, false).await, vec![101]);
    assert_eq!(message_count(&ch, "purged").await, 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With memory short (here: any use at all counts as short, while the
/// alarm's limit is out of reach), a queue keeps an eighth of what it
/// otherwise would in memory (none, here), and transient messages behind
/// that are written out to the log too, in durable and transient queues
/// alike, and read back in order; a restart does not bring them back.
#[tokio::test]
async fn under_memory_pressure_transient_messages_are_paged_out() {
    let dir = temp_dir("paging-transient");
    let mut config = config(&dir);
    config.limits.memory_limit = Some(1 << 50);
    config.limits.memory_paging_ratio = 0.0;
    let (broker, conn, ch) = open_with(config).await;
    declare(&ch, "durable", FieldTable::default()).await;
    ch.queue_declare(
        "transient".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let appended = broker.storage_stats().unwrap().appended;
    for q in ["durable", "transient"] {
        publish(&ch, "", q, 0..30).await;
    }
    // Behind the first IN_MEMORY / 8 of each queue, the durable queue's
    // transient messages and every message of the transient queue were
    // written out (the durable queue's persistent ones are logged anyway).
    let short = IN_MEMORY as u32 / 8;
    let behind = short..30;
    let paged = behind.clone().filter(|i| i.is_multiple_of(5)).count() + behind.count();
    let logged = (0..30u32).filter(|i| !i.is_multiple_of(5)).count();
    assert_eq!(
        broker.storage_stats().unwrap().appended - appended,
        (paged + logged) as u64,
    );
    for q in ["durable", "transient"] {
        assert_eq!(
            consume(&ch, q, 30, false).await,
            (0..30).collect::<Vec<_>>()
        );
    }
    assert_eq!(reads(&broker), 2 * u64::from(30 - short));
    // Pages left at a restart are dropped with it: only the persistent
    // messages come back.
    publish(&ch, "", "durable", 0..30).await;
    close(broker, conn).await;
    let (broker, conn, ch) = open(&dir).await;
    let persistent: Vec<u32> = (0..30u32).filter(|i| !i.is_multiple_of(5)).collect();
    assert_eq!(
        consume(&ch, "durable", persistent.len(), false).await,
        persistent
    );
    assert_eq!(message_count(&ch, "durable").await, 0);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `x-queue-mode = lazy` (RabbitMQ's lazy queues): every message goes to
/// the log as it arrives, transient ones too, whatever the backlog, and is
/// read back when delivered; a `default` queue next to it reads nothing.
#[tokio::test]
async fn a_lazy_queue_keeps_nothing_in_memory() {
    let dir = temp_dir("paging-lazy");
    // The default window, far above these few messages.
    let mut config = config(&dir);
    config.storage.queue_in_memory = BrokerConfig::default().storage.queue_in_memory;
    let (broker, conn, ch) = open_with(config).await;
    let mode = |m: &str| {
        let mut args = FieldTable::default();
        args.insert("x-queue-mode".into(), AMQPValue::LongString(m.into()));
        args
    };
    declare(&ch, "lazy", mode("lazy")).await;
    declare(&ch, "eager", mode("default")).await;
    publish(&ch, "", "eager", 0..10).await;
    assert_eq!(
        consume(&ch, "eager", 10, false).await,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(reads(&broker), 0);
    publish(&ch, "", "lazy", 0..10).await;
    assert_eq!(
        consume(&ch, "lazy", 10, false).await,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(reads(&broker), 10);
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}
