//! Helpers for the queue-feature tests (`tests/tests/queue_features`):
//! argument tables, bounded waits for deliveries, channel-error checks and
//! the `x-death` header as RabbitMQ 3.10 lays it out.
//!
//! Every wait here is bounded by [`WAIT`]; nothing sleeps for a fixed time.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPErrorKind;
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, Consumer, ErrorKind, ExchangeKind,
};

/// How long any single awaited event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
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

/// A signed 32-bit integer (`I`, RabbitMQ's `signedint`).
pub fn int(n: i32) -> AMQPValue {
    AMQPValue::LongInt(n)
}

/// A signed 64-bit integer (`l`, RabbitMQ's `long`).
pub fn long(n: i64) -> AMQPValue {
    AMQPValue::LongLongInt(n)
}

/// A long string (`S`, RabbitMQ's `longstr`).
pub fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

pub fn flag(b: bool) -> AMQPValue {
    AMQPValue::Boolean(b)
}

/// An array of long strings, as the CC/BCC headers and `routing-keys` are.
pub fn texts(items: &[&str]) -> AMQPValue {
    let values: Vec<AMQPValue> = items.iter().map(|s| text(s)).collect();
    AMQPValue::FieldArray(FieldArray::from(values))
}

/// A header of a message, if present.
pub fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref().and_then(|h| h.inner().get(key))
}

/// Message properties with the given headers.
pub fn with_headers(headers: FieldTable) -> BasicProperties {
    BasicProperties::default().with_headers(headers)
}

// ------------------------------------------------------- declare and bind

/// Declares an exclusive queue (it goes away with the test's connection).
pub async fn declare(ch: &Channel, name: &str, args: FieldTable) -> lapin::Queue {
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(name.into(), options, args)
        .await
        .unwrap_or_else(|e| panic!("declare of queue {name} failed: {e}"))
}

/// Declares an auto-delete exchange (it goes away with its last binding).
pub async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare of exchange {name} failed: {e}"));
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, routing_key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        routing_key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {routing_key:?} failed: {e}"));
}

/// The declare-ok of a passive queue.declare.
pub async fn passive(ch: &Channel, queue: &str) -> lapin::Queue {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue} failed: {e}"))
}

/// A no-op round trip on `ch` (a passive declare of `amq.direct`): it
/// succeeds while the channel is open.
pub async fn sync(ch: &Channel) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        options,
        FieldTable::default(),
    )
    .await
}

/// Polls passive declares (every 20 ms, bounded) until the queue holds `n`
/// ready messages.
pub async fn wait_for_message_count(ch: &Channel, queue: &str, n: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = passive(ch, queue).await.message_count();
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue {queue} still has {got} messages after {WAIT:?}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `queue` no longer exists, without touching it in a
/// way that counts as use for `x-expires` (RabbitMQ counts declares, even
/// passive ones, gets and consumers as use; publishes are not): publishes
/// mandatory probes to it through the default exchange every 20 ms until one
/// comes back unroutable. Then a passive declare must answer 404, closing
/// only its channel; returns that reply text.
pub async fn wait_until_queue_expired(conn: &Connection, queue: &str) -> String {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let deadline = Instant::now() + WAIT;
    loop {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"probe",
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
        let confirmation = within("a publisher confirm", confirm)
            .await
            .expect("publisher confirm");
        if confirmation.take_message().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue {queue} still exists after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let r = ch
        .queue_declare(queue.into(), options, FieldTable::default())
        .await;
    expect_channel_error(conn, &ch, r, 404).await
}

// ---------------------------------------------------- publish and receive

/// Publishes and awaits the confirmation (`NotRequested` unless the channel
/// is in confirm mode).
pub async fn publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("basic.publish");
    within("a publisher confirm", confirm)
        .await
        .expect("publisher confirm")
}

/// Publishes on a channel in confirm mode and returns what became of the
/// message: its confirmation, or the error the broker closed the channel (or
/// the connection) with instead. The pending confirm is what reliably
/// carries that error to the test.
pub async fn try_publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::Result<Confirmation> {
    assert!(ch.status().confirm(), "try_publish needs confirm mode");
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?;
    within("the outcome of a publish", confirm).await
}

/// A consumer with a server-generated tag.
pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    consume_with(ch, queue, no_ack, FieldTable::default()).await
}

pub async fn consume_with(ch: &Channel, queue: &str, no_ack: bool, args: FieldTable) -> Consumer {
    let options = BasicConsumeOptions {
        no_ack,
        ..BasicConsumeOptions::default()
    };
    ch.basic_consume(queue.into(), "".into(), options, args)
        .await
        .unwrap_or_else(|e| panic!("basic.consume on {queue} failed: {e}"))
}

/// The next delivery of `consumer`, within [`WAIT`].
pub async fn next(consumer: &mut Consumer) -> Delivery {
    let queue = consumer.queue();
    match within(&format!("a delivery from {queue}"), consumer.next()).await {
        Some(Ok(d)) => d,
        Some(Err(e)) => panic!("consumer on {queue} failed: {e}"),
        None => panic!("consumer on {queue} ended"),
    }
}

/// basic.get with no-ack.
pub async fn get(ch: &Channel, queue: &str) -> Option<Delivery> {
    get_with(ch, queue, true).await
}

pub async fn get_with(ch: &Channel, queue: &str, no_ack: bool) -> Option<Delivery> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack })
        .await
        .unwrap_or_else(|e| panic!("basic.get on {queue} failed: {e}"))
        .map(|m| m.delivery)
}

/// The bodies of everything in the queue, taken with no-ack basic.gets.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = get(ch, queue).await {
        out.push(String::from_utf8_lossy(&d.data).into_owned());
        assert!(out.len() < 10_000, "queue {queue} does not drain");
    }
    out
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// A place dead letters go: a fanout exchange with one exclusive queue bound
/// to it and a no-ack consumer on that queue.
pub struct DeadLetters {
    pub exchange: String,
    pub queue: String,
    pub consumer: Consumer,
}

impl DeadLetters {
    pub async fn new(ch: &Channel, exchange_name: &str, queue: &str) -> DeadLetters {
        exchange(ch, exchange_name, ExchangeKind::Fanout).await;
        declare(ch, queue, FieldTable::default()).await;
        bind(ch, queue, exchange_name, "").await;
        let consumer = consume(ch, queue, true).await;
        DeadLetters {
            exchange: exchange_name.to_string(),
            queue: queue.to_string(),
            consumer,
        }
    }

    /// The next dead-lettered message.
    pub async fn next(&mut self) -> Delivery {
        next(&mut self.consumer).await
    }
}

// ------------------------------------------------------------------ errors

/// `(reply code, reply text, connection-level?)` of a protocol error.
pub fn reply(err: &lapin::Error) -> (u16, String, bool) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (
            e.get_id(),
            e.get_message().to_string(),
            matches!(e.kind(), AMQPErrorKind::Hard(_)),
        ),
        other => panic!("expected an AMQP error from the broker, got {other:?}"),
    }
}

/// Asserts that `result` is the broker closing `ch` (and only `ch`) with
/// `code`; returns the reply text. The connection must stay usable.
pub async fn expect_channel_error<T: Debug>(
    conn: &Connection,
    ch: &Channel,
    result: lapin::Result<T>,
    code: u16,
) -> String {
    let err = match result {
        Ok(v) => panic!("expected channel.close {code}, got {v:?}"),
        Err(e) => e,
    };
    let (got, text, hard) = reply(&err);
    assert!(
        !hard,
        "expected channel.close {code}, got connection.close {got} {text}"
    );
    assert_eq!(got, code, "channel closed with {got} {text}");
    assert!(!ch.status().connected(), "the channel is still open");
    assert!(
        conn.status().connected(),
        "a channel error must not close the connection"
    );
    let probe = conn
        .create_channel()
        .await
        .expect("a new channel on the same connection");
    probe.close(200, "OK".into()).await.expect("close probe");
    text
}

/// Asserts that `text` starts with `prefix`.
#[track_caller]
pub fn assert_prefix(text: &str, prefix: &str) {
    assert!(
        text.starts_with(prefix),
        "reply text {text:?} does not start with {prefix:?}"
    );
}

// ------------------------------------------------------------------ x-death

/// What one entry of the `x-death` header must hold.
pub struct Death<'a> {
    pub count: i64,
    pub reason: &'a str,
    pub queue: &'a str,
    pub exchange: &'a str,
    pub routing_keys: &'a [&'a str],
    /// Present only when the message had an `expiration` property.
    pub original_expiration: Option<&'a str>,
}

/// The entries of the `x-death` header (an array of tables), most recent
/// first as RabbitMQ keeps them.
pub fn x_death(props: &BasicProperties) -> Vec<FieldTable> {
    match header(props, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death entry is not a table: {other:?}"),
            })
            .collect(),
        other => panic!("expected an x-death array header, got {other:?}"),
    }
}

/// Checks one x-death entry field by field, with RabbitMQ's types: `count`
/// long (`l`), `reason`/`queue`/`exchange`/`original-expiration` longstr,
/// `time` a timestamp (`T`, seconds), `routing-keys` an array of longstr —
/// and no other fields.
#[track_caller]
pub fn assert_death(entry: &FieldTable, want: &Death<'_>) {
    let fields = entry.inner();
    let mut keys: Vec<&str> = fields.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    let mut want_keys = vec![
        "count",
        "exchange",
        "queue",
        "reason",
        "routing-keys",
        "time",
    ];
    if want.original_expiration.is_some() {
        want_keys.push("original-expiration");
    }
    want_keys.sort_unstable();
    assert_eq!(keys, want_keys, "x-death entry fields: {entry:?}");
    assert_eq!(
        fields.get("count"),
        Some(&AMQPValue::LongLongInt(want.count)),
        "count (a long) in {entry:?}"
    );
    assert_eq!(
        fields.get("reason"),
        Some(&text(want.reason)),
        "reason in {entry:?}"
    );
    assert_eq!(
        fields.get("queue"),
        Some(&text(want.queue)),
        "queue in {entry:?}"
    );
    assert_eq!(
        fields.get("exchange"),
        Some(&text(want.exchange)),
        "exchange in {entry:?}"
    );
    assert_eq!(
        fields.get("routing-keys"),
        Some(&texts(want.routing_keys)),
        "routing-keys in {entry:?}"
    );
    if let Some(exp) = want.original_expiration {
        assert_eq!(
            fields.get("original-expiration"),
            Some(&text(exp)),
            "original-expiration in {entry:?}"
        );
    }
    match fields.get("time") {
        Some(AMQPValue::Timestamp(t)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            assert!(
                *t + 300 >= now && *t <= now + 60,
                "x-death time {t} is not a timestamp in seconds near now ({now})"
            );
        }
        other => panic!("x-death time must be a timestamp, got {other:?}"),
    }
}

/// Checks the `x-first-death-reason`, `-queue` and `-exchange` headers.
#[track_caller]
pub fn assert_first_death(props: &BasicProperties, reason: &str, queue: &str, exchange: &str) {
    assert_eq!(
        header(props, "x-first-death-reason"),
        Some(&text(reason)),
        "x-first-death-reason"
    );
    assert_eq!(
        header(props, "x-first-death-queue"),
        Some(&text(queue)),
        "x-first-death-queue"
    );
    assert_eq!(
        header(props, "x-first-death-exchange"),
        Some(&text(exchange)),
        "x-first-death-exchange"
    );
}
