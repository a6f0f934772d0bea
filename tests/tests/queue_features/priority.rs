//! `x-max-priority` queues and the `priority` message property.

use lapin::options::{BasicAckOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use warren_tests::features::*;
use warren_tests::{start, unique};

/// Publishes `(body, priority)` pairs, confirmed one by one.
async fn publish_all(ch: &Channel, queue: &str, messages: &[(&str, Option<u8>)]) {
    for (body, priority) in messages {
        let props = match priority {
            Some(p) => BasicProperties::default().with_priority(*p),
            None => BasicProperties::default(),
        };
        publish(ch, "", queue, body.as_bytes(), props).await;
    }
}

const MIXED: [(&str, Option<u8>); 7] = [
    ("a1", Some(1)),
    ("b5", Some(5)),
    ("c1", Some(1)),
    ("d10", Some(10)),
    ("e5", Some(5)),
    ("f0", Some(0)),
    ("g-none", None),
];
/// Highest first, FIFO within a priority; no priority counts as 0.
const MIXED_ORDER: [&str; 7] = ["d10", "b5", "e5", "a1", "c1", "f0", "g-none"];

#[tokio::test]
async fn a_consumer_gets_the_highest_priority_first_and_fifo_within_a_priority() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("prio");
    declare(&ch, &q, table([("x-max-priority", int(10))])).await;
    publish_all(&ch, &q, &MIXED).await;
    let mut consumer = consume(&ch, &q, true).await;
    let mut got = Vec::new();
    for _ in 0..MIXED.len() {
        got.push(body(&next(&mut consumer).await));
    }
    assert_eq!(got, MIXED_ORDER);
}

#[tokio::test]
async fn basic_get_takes_the_highest_priority_first() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("prio-get");
    declare(&ch, &q, table([("x-max-priority", int(10))])).await;
    publish_all(&ch, &q, &MIXED).await;
    assert_eq!(drain(&ch, &q).await, MIXED_ORDER);
}

#[tokio::test]
async fn a_priority_above_the_maximum_counts_as_the_maximum() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("prio-cap");
    declare(&ch, &q, table([("x-max-priority", int(5))])).await;
    // 9 is treated as 5: same level as "at-max", so FIFO between the two.
    publish_all(
        &ch,
        &q,
        &[
            ("at-max", Some(5)),
            ("above-max", Some(9)),
            ("below", Some(4)),
        ],
    )
    .await;
    assert_eq!(drain(&ch, &q).await, ["at-max", "above-max", "below"]);
}

#[tokio::test]
async fn a_queue_without_x_max_priority_ignores_priorities() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("no-prio");
    declare(&ch, &q, FieldTable::default()).await;
    publish_all(
        &ch,
        &q,
        &[("low", Some(1)), ("high", Some(9)), ("none", None)],
    )
    .await;
    assert_eq!(drain(&ch, &q).await, ["low", "high", "none"]);
}

#[tokio::test]
async fn a_busy_consumer_gets_what_arrived_meanwhile_by_priority() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("prio-busy");
    declare(&ch, &q, table([("x-max-priority", int(10))])).await;
    let mut consumer = consume(&ch, &q, false).await;
    publish_all(&ch, &q, &[("first", None)]).await;
    let first = next(&mut consumer).await;
    assert_eq!(body(&first), "first");
    // While the consumer holds its one unacked message, three arrive.
    publish_all(
        &publisher,
        &q,
        &[("low", Some(1)), ("high", Some(9)), ("mid", Some(5))],
    )
    .await;
    first.acker.ack(BasicAckOptions::default()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut consumer).await;
        got.push(body(&d));
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(got, ["high", "mid", "low"]);
}
