//! What must *not* come back after a restart: messages acked, rejected or
//! nacked without requeue, consumed in no-ack mode, purged, expired (TTL),
//! or moved to a dead-letter queue (they come back there, once); deleted
//! durable queues and exchanges; removed bindings. And a fan-out copy keeps
//! its shared body alive after the other copy is acked, across restarts.

use std::time::{Duration, Instant};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::{close, declare, open, persistent, temp_dir};

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) {
    let c = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
}

/// Message count of a queue, `None` if it does not exist (which closes
/// `ch`, so callers pass a scratch channel).
async fn count(conn: &Connection, queue: &str) -> Option<u32> {
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .ok()
        .map(|q| q.message_count())
}

/// Every body in `queue`, in order, taken with basic.get and left unacked
/// (the channel is closed afterwards, which requeues them).
async fn bodies(conn: &Connection, queue: &str) -> Vec<String> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    let _ = ch.close(200, "done".into()).await;
    out
}

async fn get(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("a message")
}

#[tokio::test]
async fn settled_and_deleted_things_stay_gone() {
    let dir = temp_dir("dead");
    let (broker, conn, ch) = open(&dir).await;
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "gone-x".into(),
        ExchangeKind::Fanout,
        durable_x,
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in ["q1", "q2", "dlq", "purged", "deleted"] {
        declare(&ch, q, FieldTable::default()).await;
    }
    let mut ttl_args = FieldTable::default();
    ttl_args.insert("x-message-ttl".into(), AMQPValue::LongInt(20));
    ttl_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    ttl_args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dlq".into()),
    );
    declare(&ch, "ttl", ttl_args).await;
    for q in ["q1", "q2"] {
        ch.queue_bind(
            q.into(),
            "dx".into(),
            "a.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.queue_bind(
        "purged".into(),
        "gone-x".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // One body shared by q1 and q2.
    publish(&ch, "dx", "a.keep", "keep").await;
    for body in ["acked", "rejected", "nacked", "no-ack"] {
        publish(&ch, "", "q1", body).await;
    }
    for i in 0..3 {
        publish(&ch, "", "ttl", &format!("t{i}")).await;
    }
    for i in 0..5 {
        publish(&ch, "gone-x", "", &format!("p{i}")).await;
    }
    for i in 0..4 {
        publish(&ch, "", "deleted", &format!("d{i}")).await;
    }

    // Settle q1's messages every way but "keep".
    let keep = get(&ch, "q1").await;
    assert_eq!(keep.delivery.data, b"keep");
    let m = get(&ch, "q1").await;
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let m = get(&ch, "q1").await;
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let m = get(&ch, "q1").await;
    m.delivery
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await
        .unwrap();
    let m = ch
        .basic_get("q1".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery.data, b"no-ack");
    // "keep" goes back to q1 (redelivered) when its channel closes.
    let _ = keep;

    ch.queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    ch.queue_delete("deleted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete("gone-x".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    ch.queue_unbind(
        "q2".into(),
        "dx".into(),
        "a.*".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // The TTL queue's messages expire into the dead-letter queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&conn, "dlq").await != Some(3) {
        assert!(Instant::now() < deadline, "messages did not expire in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A confirmed publish after all that makes it durable (the contract).
    publish(&ch, "", "q1", "last").await;
    close(broker, conn).await;

    let (broker, conn, ch) = open(&dir).await;
    assert_eq!(bodies(&conn, "q1").await, ["keep", "last"]);
    assert_eq!(bodies(&conn, "q2").await, ["keep"]);
    assert_eq!(bodies(&conn, "dlq").await, ["t0", "t1", "t2"]);
    assert_eq!(count(&conn, "ttl").await, Some(0));
    assert_eq!(count(&conn, "purged").await, Some(0));
    assert_eq!(count(&conn, "deleted").await, None, "deleted queue is back");
    let scratch = conn.create_channel().await.unwrap();
    let passive_x = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    assert!(
        scratch
            .exchange_declare(
                "gone-x".into(),
                ExchangeKind::Fanout,
                passive_x,
                FieldTable::default()
            )
            .await
            .is_err(),
        "deleted exchange is back"
    );
    // The x-death header of the dead-lettered copies came back too.
    let m = get(&ch, "dlq").await;
    let headers = m.delivery.properties.headers().clone().unwrap_or_default();
    assert!(
        headers.inner().contains_key(&ShortString::from("x-death")),
        "{headers:?}"
    );
    drop(m);
    // q2's binding is gone: a.* reaches q1 only.
    publish(&ch, "dx", "a.after", "after").await;
    assert_eq!(count(&conn, "q1").await, Some(3));
    assert_eq!(count(&conn, "q2").await, Some(1));
    // Ack q1's copy of the shared body; q2's copy keeps it alive.
    let keep = get(&ch, "q1").await;
    assert_eq!(keep.delivery.data, b"keep");
    assert!(keep.delivery.redelivered, "keep was delivered before");
    keep.delivery.ack(BasicAckOptions::default()).await.unwrap();
    publish(&ch, "", "q1", "later").await;
    close(broker, conn).await;

    let (broker, conn, _ch) = open(&dir).await;
    assert_eq!(bodies(&conn, "q1").await, ["last", "after", "later"]);
    assert_eq!(bodies(&conn, "q2").await, ["keep"]);
    // dlq still holds its three: the one taken above went back unacked.
    assert_eq!(count(&conn, "dlq").await, Some(3));
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn delivery_count(m: &lapin::message::BasicGetMessage) -> Option<i64> {
    let headers = m.delivery.properties.headers().clone().unwrap_or_default();
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => Some(*n),
        Some(AMQPValue::LongInt(n)) => Some(i64::from(*n)),
        other => panic!("x-delivery-count is {other:?}"),
    }
}

/// A quorum queue's delivery count is durable: returns counted before a
/// restart still count towards the delivery limit after it.
#[tokio::test]
async fn a_delivery_count_survives_a_restart() {
    let dir = temp_dir("delivery-count");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(2));

    let (broker, conn, ch) = open(&dir).await;
    declare(&ch, "poison", args.clone()).await;
    publish(&ch, "", "poison", "p").await;
    for _ in 0..2 {
        return_to_queue(&get(&ch, "poison").await.delivery).await;
    }
    // Wait for both returns to be taken in.
    assert_eq!(count(&conn, "poison").await, Some(1));
    close(broker, conn).await;

    let (broker, conn, ch) = open(&dir).await;
    let m = get(&ch, "poison").await;
    assert!(m.delivery.redelivered);
    assert_eq!(delivery_count(&m), Some(2), "the count before the restart");
    // A third return is past the limit of 2: the message is dropped.
    return_to_queue(&m.delivery).await;
    assert_eq!(count(&conn, "poison").await, Some(0));
    close(broker, conn).await;

    let (broker, conn, _ch) = open(&dir).await;
    assert_eq!(count(&conn, "poison").await, Some(0), "it stays dropped");
    close(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// basic.nack with requeue: the message goes back to its queue, one return more.
async fn return_to_queue(delivery: &lapin::message::Delivery) {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
}
