//! Helpers for the lapin suite: declares, publishes, bounded waits for
//! deliveries, and checks that the broker closed the channel (or the whole
//! connection) with an exact reply code.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps for a fixed time.
//!
//! Two lapin behaviours shape these helpers:
//! - Dropping the last handle of a `Channel` closes it, and dropping a
//!   `Consumer` cancels it: tests keep both alive in named variables for as
//!   long as they matter.
//! - Once a channel is closed, lapin refuses further methods on it locally
//!   (`InvalidChannelState`) without sending anything. An error caused by a
//!   method without a reply (basic.publish, basic.ack, …) therefore has to be
//!   observed either on a round trip sent right after it, or, race-free, as
//!   the `Event::Error` lapin emits when it answers the broker's close:
//!   [`ErrorWatch`] does the latter.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, Consumer, ErrorKind, Event, ExchangeKind,
};
use warren_tests::{unique, TestBroker};

/// How long any single awaited event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A broker (in-process Warren, or `WARREN_TEST_URL`), one connection and
/// one open channel on it, in confirm mode.
///
/// Confirm mode makes [`publish`] return only once the broker has the
/// message in its queues. That matters for counts: RabbitMQ answers a
/// passive queue.declare (its `stat`) ahead of publishes it has received
/// but not yet enqueued, so without confirms a count right after a publish
/// may miss it.
pub async fn setup() -> (TestBroker, Connection, Channel) {
    let (broker, conn, ch) = setup_plain().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (broker, conn, ch)
}

/// Like [`setup`], without confirm mode (for transactions, and for what a
/// publisher sees without confirms).
pub async fn setup_plain() -> (TestBroker, Connection, Channel) {
    let broker = warren_tests::start().await;
    let (conn, ch) = broker.channel().await;
    (broker, conn, ch)
}

// ------------------------------------------------------------ field values

/// A field table from `(key, value)` pairs.
pub fn table<const N: usize>(pairs: [(&str, AMQPValue); N]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(k.into(), v);
    }
    t
}

/// A long string (`S`).
pub fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

pub fn no_args() -> FieldTable {
    FieldTable::default()
}

// ------------------------------------------------------- declare and bind

/// Declares a fresh exclusive queue named after `prefix`; it goes away with
/// the test's connection.
pub async fn exclusive_queue(ch: &Channel, prefix: &str) -> String {
    let name = unique(prefix);
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    declare_queue(ch, &name, options, no_args()).await;
    name
}

/// Declares a fresh non-exclusive, non-durable queue (usable from other
/// connections). The test deletes it when done.
pub async fn shared_queue(ch: &Channel, prefix: &str) -> String {
    let name = unique(prefix);
    declare_queue(ch, &name, QueueDeclareOptions::default(), no_args()).await;
    name
}

pub async fn declare_queue(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> lapin::Queue {
    ch.queue_declare(name.into(), options, args)
        .await
        .unwrap_or_else(|e| panic!("declare of queue {name:?} failed: {e}"))
}

/// The declare-ok of a passive queue.declare: `(message_count, consumer_count)`.
pub async fn counts(ch: &Channel, queue: &str) -> (u32, u32) {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let q = ch
        .queue_declare(queue.into(), options, no_args())
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue} failed: {e}"));
    (q.message_count(), q.consumer_count())
}

/// Ready messages in `queue` (not counting delivered-but-unacked ones).
pub async fn message_count(ch: &Channel, queue: &str) -> u32 {
    counts(ch, queue).await.0
}

pub async fn delete_queue(ch: &Channel, queue: &str) {
    ch.queue_delete(queue.into(), Default::default())
        .await
        .unwrap_or_else(|e| panic!("delete of queue {queue} failed: {e}"));
}

/// Declares a fresh, non-durable exchange of `kind` named after `prefix`.
pub async fn exchange(ch: &Channel, prefix: &str, kind: ExchangeKind) -> String {
    let name = unique(prefix);
    declare_exchange(
        ch,
        &name,
        kind,
        ExchangeDeclareOptions::default(),
        no_args(),
    )
    .await;
    name
}

pub async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) {
    ch.exchange_declare(name.into(), kind, options, args)
        .await
        .unwrap_or_else(|e| panic!("declare of exchange {name:?} failed: {e}"));
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, routing_key: &str) {
    bind_with(ch, queue, exchange, routing_key, no_args()).await;
}

pub async fn bind_with(
    ch: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
    args: FieldTable,
) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        routing_key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {routing_key:?} failed: {e}"));
}

/// A no-op round trip on `ch` (a passive declare of `amq.direct`). Methods
/// on one channel are handled in order, so once it returns, the broker has
/// handled everything sent before it on `ch` (a basic.return for an earlier
/// publish has arrived, an asynchronous error has closed the channel).
pub async fn sync(ch: &Channel) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    within(
        "a passive exchange.declare",
        ch.exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            options,
            no_args(),
        ),
    )
    .await
}

// ---------------------------------------------------- publish and receive

/// Publishes `body` and awaits its confirmation (`NotRequested` unless the
/// channel is in confirm mode); a nack fails the test.
pub async fn publish(ch: &Channel, exchange: &str, routing_key: &str, body: &str) -> Confirmation {
    let c = publish_with(
        ch,
        exchange,
        routing_key,
        body.as_bytes(),
        BasicProperties::default(),
        BasicPublishOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("publish to {exchange:?}/{routing_key:?} failed: {e}"));
    assert!(!c.is_nack(), "publish of {body:?} was nacked");
    c
}

/// Publishes and awaits the confirmation, returning lapin's result as is.
pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    options: BasicPublishOptions,
) -> lapin::Result<Confirmation> {
    let confirm = ch
        .basic_publish(exchange.into(), routing_key.into(), options, body, props)
        .await?;
    within("a publisher confirm", confirm).await
}

/// Publishes each body to `queue` through the default exchange.
pub async fn publish_all(ch: &Channel, queue: &str, bodies: &[&str]) {
    for b in bodies {
        publish(ch, "", queue, b).await;
    }
}

/// A consumer with a server-generated tag and manual acks.
pub async fn consume(ch: &Channel, queue: &str) -> Consumer {
    consume_with(ch, queue, "", BasicConsumeOptions::default()).await
}

/// A consumer with a server-generated tag and no acks.
pub async fn consume_no_ack(ch: &Channel, queue: &str) -> Consumer {
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    consume_with(ch, queue, "", options).await
}

pub async fn consume_with(
    ch: &Channel,
    queue: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> Consumer {
    ch.basic_consume(queue.into(), tag.into(), options, no_args())
        .await
        .unwrap_or_else(|e| panic!("basic.consume on {queue} failed: {e}"))
}

/// The next delivery of `consumer`, within [`WAIT`].
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    let queue = consumer.queue();
    match within(&format!("a delivery from {queue}"), consumer.next()).await {
        Some(Ok(d)) => d,
        Some(Err(e)) => panic!("consumer on {queue} failed: {e}"),
        None => panic!("consumer on {queue} ended"),
    }
}

/// The next `n` deliveries of `consumer`.
pub async fn next_deliveries(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_delivery(consumer).await);
    }
    out
}

/// Awaits the end of `consumer`'s stream (a server-sent basic.cancel or the
/// channel closing), failing on a delivery.
pub async fn consumer_ends(consumer: &mut Consumer) {
    let queue = consumer.queue();
    match within(
        &format!("the end of the consumer on {queue}"),
        consumer.next(),
    )
    .await
    {
        None => {}
        Some(Ok(d)) => panic!(
            "expected the consumer to end, got a delivery {:?}",
            body(&d)
        ),
        Some(Err(e)) => panic!("expected the consumer to end, got an error {e}"),
    }
}

/// basic.get.
pub async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack }),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.get on {queue} failed: {e}"))
}

/// The body of the next message of `queue`, taken with a no-ack basic.get.
pub async fn get_body(ch: &Channel, queue: &str) -> Option<String> {
    get(ch, queue, true).await.map(|m| body(&m.delivery))
}

/// The bodies of everything in the queue, taken with no-ack basic.gets.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(b) = get_body(ch, queue).await {
        out.push(b);
        assert!(out.len() < 10_000, "queue {queue} does not drain");
    }
    out
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

pub fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(body).collect()
}

/// `(body, redelivered)` of each delivery.
pub fn bodies_redelivered(ds: &[Delivery]) -> Vec<(String, bool)> {
    ds.iter().map(|d| (body(d), d.redelivered)).collect()
}

// ------------------------------------------------------------------ errors

/// `(reply code, reply text)` of an error the broker sent.
///
/// lapin also tags each error "soft" or "hard", but from the reply code
/// alone (403 is "soft" even when it arrives in a connection.close), so
/// which side was closed is told here from the connection's state instead.
pub fn reply(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP error from the broker, got {other:?}"),
    }
}

/// Asserts that `result` is the broker closing `ch` (and only `ch`) with
/// `code`, and that the connection is still usable; returns the reply text.
pub async fn expect_channel_closed<T: Debug>(
    conn: &Connection,
    ch: &Channel,
    result: lapin::Result<T>,
    code: u16,
) -> String {
    let err = match result {
        Ok(v) => panic!("expected channel.close {code}, got {v:?}"),
        Err(e) => e,
    };
    let (got, text) = reply(&err);
    assert!(
        conn.status().connected(),
        "expected channel.close {code}, got connection.close {got} {text:?}"
    );
    assert_eq!(got, code, "channel closed with {got} {text:?}");
    assert_channel_only_closed(conn, ch).await;
    text
}

/// Asserts that `result` is the broker closing the whole connection with
/// `code`; returns the reply text.
pub async fn expect_connection_closed<T: Debug>(
    conn: &Connection,
    result: lapin::Result<T>,
    code: u16,
) -> String {
    let err = match result {
        Ok(v) => panic!("expected connection.close {code}, got {v:?}"),
        Err(e) => e,
    };
    let (got, text) = reply(&err);
    assert!(
        !conn.status().connected(),
        "expected connection.close {code}, got channel.close {got} {text:?}"
    );
    assert_eq!(got, code, "connection closed with {got} {text:?}");
    assert_connection_gone(conn).await;
    text
}

/// The channel is closed, the connection is not: a new channel opens on it.
async fn assert_channel_only_closed(conn: &Connection, ch: &Channel) {
    assert!(!ch.status().connected(), "the channel is still open");
    assert!(
        conn.status().connected(),
        "a channel error must not close the connection"
    );
    let probe = within("a new channel", conn.create_channel())
        .await
        .expect("a new channel on the same connection");
    within("closing the probe channel", probe.close(200, "OK".into()))
        .await
        .expect("close probe channel");
}

async fn assert_connection_gone(conn: &Connection) {
    assert!(
        conn.create_channel().await.is_err(),
        "a channel opened on a closed connection"
    );
}

/// Watches a connection for the close the broker sends in answer to a
/// method that has no reply of its own (basic.publish, basic.ack, …).
/// Create it before sending the method.
pub struct ErrorWatch {
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl ErrorWatch {
    pub fn new(conn: &Connection) -> ErrorWatch {
        ErrorWatch {
            events: Box::pin(conn.events_listener()),
        }
    }

    /// The next error lapin reports on the connection.
    pub async fn next_error(&mut self) -> lapin::Error {
        loop {
            match within("a channel or connection close", self.events.next()).await {
                Some(Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("the connection's event stream ended without an error"),
            }
        }
    }

    /// Awaits the broker closing `ch` (only `ch`) with `code`; returns the
    /// reply text.
    pub async fn channel_closed(mut self, conn: &Connection, ch: &Channel, code: u16) -> String {
        let err = self.next_error().await;
        expect_channel_closed::<()>(conn, ch, Err(err), code).await
    }

    /// Awaits the broker closing the connection with `code`; returns the
    /// reply text.
    pub async fn connection_closed(mut self, conn: &Connection, code: u16) -> String {
        let err = self.next_error().await;
        expect_connection_closed::<()>(conn, Err(err), code).await
    }
}

/// Asserts that `text` starts with `prefix`.
#[track_caller]
pub fn assert_prefix(text: &str, prefix: &str) {
    assert!(
        text.starts_with(prefix),
        "reply text {text:?} does not start with {prefix:?}"
    );
}

// ------------------------------------------------------- background effects

/// Polls `check` (every 10 ms, for at most [`WAIT`]) until it holds. Only
/// for what the broker does in the background with no event a client can
/// await, such as deleting a queue after its owner went away.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `queue` exists, asked with a passive declare on a fresh channel
/// of `conn` (a 404 closes only that channel).
pub async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = within("a new channel", conn.create_channel())
        .await
        .expect("channel");
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match within(
        "a passive queue.declare",
        ch.queue_declare(queue.into(), options, no_args()),
    )
    .await
    {
        Ok(_) => {
            let _ = ch.close(200, "OK".into()).await;
            true
        }
        Err(e) => {
            let (code, text) = reply(&e);
            assert_eq!(code, 404, "passive declare of {queue}: {text}");
            assert!(conn.status().connected(), "{text}");
            false
        }
    }
}

/// Waits until `queue` no longer exists.
pub async fn queue_disappears(conn: &Connection, queue: &str) {
    eventually(&format!("queue {queue} is deleted"), || async {
        !queue_exists(conn, queue).await
    })
    .await;
}

/// Whether `exchange` exists, asked with a passive declare on a fresh
/// channel of `conn` (a 404 closes only that channel).
pub async fn exchange_exists(conn: &Connection, exchange: &str) -> bool {
    let ch = within("a new channel", conn.create_channel())
        .await
        .expect("channel");
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    match within(
        "a passive exchange.declare",
        ch.exchange_declare(exchange.into(), ExchangeKind::Direct, options, no_args()),
    )
    .await
    {
        Ok(()) => {
            let _ = ch.close(200, "OK".into()).await;
            true
        }
        Err(e) => {
            let (code, text) = reply(&e);
            assert_eq!(code, 404, "passive declare of {exchange}: {text}");
            assert!(conn.status().connected(), "{text}");
            false
        }
    }
}
