//! Declare-time validation of FIFO arguments: 406 PRECONDITION_FAILED with
//! a clear text, and the channel is closed.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

use crate::*;

/// Declares `q` with `args` on a fresh channel; expects a 406 whose text
/// contains every string in `says`, and the channel closed after it.
async fn refused(conn: &lapin::Connection, q: &str, args: FieldTable, says: &[&str]) {
    let ch = conn.create_channel().await.unwrap();
    let r = within(
        "queue.declare",
        ch.queue_declare(q.into(), QueueDeclareOptions::default(), args.clone()),
    )
    .await;
    let (code, text) = amqp_error(r);
    assert_eq!(code, 406, "{args:?}: {text}");
    assert!(text.starts_with("PRECONDITION_FAILED - "), "{text}");
    for s in says {
        assert!(text.contains(s), "{text:?} should mention {s:?}");
    }
    assert!(
        !ch.status().connected(),
        "the channel is closed after a 406"
    );
    assert!(
        ch.queue_declare(
            "x".into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        )
        .await
        .is_err(),
        "the closed channel refuses further calls"
    );
    // The queue was not created.
    let probe = conn.create_channel().await.unwrap();
    let r = probe
        .queue_declare(
            q.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(amqp_error(r).0, 404, "{q} must not exist");
}

#[tokio::test]
async fn fifo_arguments_on_a_standard_queue_are_refused() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    refused(
        &conn,
        "std-window",
        table(&[("x-deduplication-window", AMQPValue::LongInt(1000))]),
        &["x-deduplication-window", "std-window", "FIFO"],
    )
    .await;
    refused(
        &conn,
        "std-content",
        table(&[("x-content-based-deduplication", AMQPValue::Boolean(true))]),
        &["x-content-based-deduplication", "FIFO"],
    )
    .await;
    refused(
        &conn,
        "classic-window",
        table(&[
            ("x-queue-type", s("classic")),
            ("x-deduplication-window", AMQPValue::LongInt(1000)),
        ]),
        &["x-deduplication-window"],
    )
    .await;
}

#[tokio::test]
async fn priorities_on_a_fifo_queue_are_refused() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    refused(
        &conn,
        "fifo-priority",
        fifo(&[("x-max-priority", AMQPValue::ShortShortUInt(5))]),
        &["x-max-priority", "FIFO"],
    )
    .await;
}

#[tokio::test]
async fn a_deduplication_window_must_be_a_positive_integer() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    for (name, v) in [
        ("zero", AMQPValue::LongInt(0)),
        ("negative", AMQPValue::LongInt(-1)),
        ("negative-long", AMQPValue::LongLongInt(-300_000)),
        ("text", s("abc")),
        ("numeric-text", s("1000")),
        ("float", AMQPValue::Double(1.5)),
        ("bool", AMQPValue::Boolean(true)),
    ] {
        refused(
            &conn,
            &format!("fifo-window-{name}"),
            fifo(&[("x-deduplication-window", v)]),
            &["x-deduplication-window", "positive integer"],
        )
        .await;
    }
    // The text names the value, or the type as RabbitMQ names field types,
    // never a Rust debug form.
    for (name, v, got) in [
        ("zero", AMQPValue::LongInt(0), "0"),
        ("negative-long", AMQPValue::LongLongInt(-300_000), "-300000"),
        ("text", s("abc"), "a longstr"),
        ("float", AMQPValue::Double(1.5), "a double"),
        ("bool", AMQPValue::Boolean(true), "a bool"),
    ] {
        let q = format!("fifo-window-text-{name}");
        let want = format!(
            "PRECONDITION_FAILED - invalid arg 'x-deduplication-window' for queue '{q}' in vhost '/': must be a positive integer (milliseconds), got {got}"
        );
        refused(&conn, &q, fifo(&[("x-deduplication-window", v)]), &[&want]).await;
    }
    refused(
        &conn,
        "fifo-content-text",
        fifo(&[("x-content-based-deduplication", s("yes"))]),
        &["x-content-based-deduplication"],
    )
    .await;
    // Every integer width is fine.
    let ch = conn.create_channel().await.unwrap();
    for (i, v) in [
        AMQPValue::ShortShortUInt(1),
        AMQPValue::ShortUInt(500),
        AMQPValue::LongInt(1000),
        AMQPValue::LongUInt(60_000),
        AMQPValue::LongLongInt(300_000),
    ]
    .into_iter()
    .enumerate()
    {
        declare(
            &ch,
            &format!("fifo-window-ok-{i}"),
            fifo(&[("x-deduplication-window", v)]),
        )
        .await;
    }
}

#[tokio::test]
async fn fifo_queues_take_the_usual_arguments_and_redeclare_equivalently() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let args = fifo(&[
        ("x-deduplication-window", AMQPValue::LongInt(1000)),
        ("x-content-based-deduplication", AMQPValue::Boolean(true)),
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-max-length", AMQPValue::LongInt(100)),
        ("x-dead-letter-exchange", s("")),
    ]);
    declare(&ch, "fifo-full", args.clone()).await;
    declare(&ch, "fifo-full", args).await;
    // Redeclaring it as a standard queue is inequivalent.
    let r = ch
        .queue_declare(
            "fifo-full".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    let (code, text) = amqp_error(r);
    assert_eq!(code, 406, "{text}");
    assert!(text.contains("inequivalent arg 'x-"), "{text}");
}
