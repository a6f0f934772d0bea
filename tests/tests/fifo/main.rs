//! FIFO queues (`x-queue-type = fifo`) through lapin over TCP: per-group
//! order, group ownership, order-keeping requeue, deduplication, declare-time
//! validation, TTL / length limits / dead-lettering, restarts, and a
//! randomized run with a printed seed (`WARREN_FIFO_SEED` replays one).
//!
//! FIFO queues are a Warren extension: every test here needs Warren and
//! returns early against an external broker (`WARREN_TEST_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dedup;
mod features;
mod groups;
mod random;
mod validation;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use warren_tests::TestBroker;

/// The longest a single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(250);

/// Awaits `f`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A Warren broker for one test, or `None` (the test is skipped) when the
/// tests point at another broker, which has no FIFO queues.
pub async fn warren() -> Option<TestBroker> {
    let b = warren_tests::start().await;
    if b.is_warren() {
        Some(b)
    } else {
        eprintln!("skipped: FIFO queues are a Warren extension");
        None
    }
}

pub fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// A field table from pairs.
pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// The arguments of a FIFO queue plus `extra`.
pub fn fifo(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert("x-queue-type".into(), s("fifo"));
    t
}

/// Declares a (non-durable) queue with `args`.
pub async fn declare(ch: &Channel, name: &str, args: FieldTable) {
    within(
        "queue.declare",
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

/// A FIFO queue named `name` with `extra` arguments.
pub async fn declare_fifo(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    declare(ch, name, fifo(extra)).await;
}

/// Properties putting a message in `group` ("" = the default group: no header).
pub fn in_group(group: &str) -> BasicProperties {
    if group.is_empty() {
        return BasicProperties::default();
    }
    BasicProperties::default().with_headers(table(&[("x-group-id", s(group))]))
}

/// Publishes `body` to queue `q` in `group`; with confirms on, waits for the confirm.
pub async fn send(ch: &Channel, q: &str, group: &str, body: &str) {
    send_props(ch, q, body, in_group(group)).await;
}

pub async fn send_props(ch: &Channel, q: &str, body: &str, props: BasicProperties) {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        ),
    )
    .await
    .expect("publish");
    within("confirm", confirm).await.expect("confirm");
}

/// The group of a delivery ("" for the default group).
pub fn group_of(d: &Delivery) -> String {
    match d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-group-id").cloned())
    {
        Some(AMQPValue::LongString(g)) => String::from_utf8_lossy(g.as_bytes()).into_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

pub fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// A channel with basic.qos `prefetch` and a consumer on `q`.
pub async fn consumer(conn: &Connection, q: &str, prefetch: u16) -> (Channel, Consumer) {
    let ch = within("channel.open", conn.create_channel())
        .await
        .expect("channel");
    within(
        "basic.qos",
        ch.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await
    .expect("qos");
    let c = within(
        "basic.consume",
        ch.basic_consume(
            q.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    (ch, c)
}

/// The next delivery, which must come within [`WAIT`].
pub async fn next(c: &mut Consumer) -> Delivery {
    match within("a delivery", c.next()).await {
        Some(Ok(d)) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// The next `n` deliveries.
pub async fn take(c: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(c).await);
    }
    out
}

/// Bodies of deliveries.
pub fn texts(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(text).collect()
}

/// Asserts that no delivery arrives within [`QUIET`].
pub async fn nothing(c: &mut Consumer, who: &str) {
    if let Ok(Some(Ok(d))) = tokio::time::timeout(QUIET, c.next()).await {
        panic!(
            "{who} got {:?} (group {:?}) but should get nothing",
            text(&d),
            group_of(&d)
        );
    }
}

pub async fn ack(d: &Delivery) {
    within("basic.ack", d.ack(BasicAckOptions::default()))
        .await
        .expect("ack");
}

/// The queue's ready count from a passive declare.
pub async fn ready(ch: &Channel, q: &str) -> u32 {
    within(
        "passive queue.declare",
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// Polls the ready count of `q` until it is `n` (bounded by [`WAIT`]).
pub async fn wait_ready(ch: &Channel, q: &str, n: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = ready(ch, q).await;
        if got == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue {q}: {got} ready, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The AMQP reply code and text of a failed call.
pub fn amqp_error<T: std::fmt::Debug>(r: lapin::Result<T>) -> (u16, String) {
    match r {
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => {
                (amqp.get_id(), amqp.get_message().to_string())
            }
            other => panic!("expected an AMQP error, got {other:?}"),
        },
        Ok(v) => panic!("expected an AMQP error, got {v:?}"),
    }
}

/// basic.get (with ack unless `no_ack`); `None` on get-empty.
pub async fn get(ch: &Channel, q: &str, no_ack: bool) -> Option<Delivery> {
    within(
        "basic.get",
        ch.basic_get(q.into(), BasicGetOptions { no_ack }),
    )
    .await
    .expect("basic.get")
    .map(|m| m.delivery)
}
