//! `x-queue-type`: classic, quorum (durable only; `x-delivery-limit` with
//! the `x-delivery-count` header) and stream.

use lapin::options::{
    BasicNackOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use warren_tests::features::*;
use warren_tests::{start, unique};

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Deletes a durable queue a test made (it would outlive the connection).
async fn delete(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

/// Declares on a fresh channel of `conn` and expects a channel error 406;
/// returns the reply text.
async fn refused(
    conn: &Connection,
    queue: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> String {
    let ch = conn.create_channel().await.unwrap();
    let r = ch.queue_declare(queue.into(), options, args).await;
    expect_channel_error(conn, &ch, r, 406).await
}

fn quorum() -> FieldTable {
    table([("x-queue-type", text("quorum"))])
}

#[tokio::test]
async fn classic_queue_type_is_a_plain_queue() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("classic");
    declare(&ch, &q, table([("x-queue-type", text("classic"))])).await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, ["m"]);
}

#[tokio::test]
async fn an_unknown_queue_type_is_refused() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("bogus-type");
    let reply_text = refused(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table([("x-queue-type", text("bogus"))]),
    )
    .await;
    // RabbitMQ 3.10: PRECONDITION_FAILED - invalid arg 'x-queue-type' for
    // queue '<q>' in vhost '/': "unsupported queue type 'bogus'"
    assert_prefix(
        &reply_text,
        &format!("PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/'"),
    );
}

#[tokio::test]
async fn a_quorum_queue_must_be_durable_and_neither_exclusive_nor_auto_delete() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("quorum-transient");
    let reply_text = refused(&conn, &q, QueueDeclareOptions::default(), quorum()).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'"
        )
    );
    let q = unique("quorum-exclusive");
    let options = QueueDeclareOptions {
        exclusive: true,
        ..durable()
    };
    let reply_text = refused(&conn, &q, options, quorum()).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"
        )
    );
    let q = unique("quorum-auto-delete");
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..durable()
    };
    let reply_text = refused(&conn, &q, options, quorum()).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue '{q}' in vhost '/'"
        )
    );
}

#[tokio::test]
async fn a_durable_quorum_queue_is_declared_and_keeps_its_type_on_redeclare() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("quorum");
    ch.queue_declare(q.as_str().into(), durable(), quorum())
        .await
        .unwrap();
    ch.queue_declare(q.as_str().into(), durable(), quorum())
        .await
        .expect("an equivalent redeclare");
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    let m = get(&ch, &q).await.expect("m");
    assert_eq!(body(&m), "m");
    // Redeclaring without the type is inequivalent.
    let reply_text = refused(&conn, &q, durable(), FieldTable::default()).await;
    // RabbitMQ 3.10: PRECONDITION_FAILED - inequivalent arg 'x-queue-type'
    // for queue '<q>' in vhost '/': received none but current is the value
    // 'quorum' of type 'longstr'
    assert_prefix(
        &reply_text,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/'"
        ),
    );
    delete(&conn, &q).await;
}

/// A durable quorum queue with the given extra arguments.
async fn declare_quorum(ch: &Channel, q: &str, extra: FieldTable) {
    let mut args = quorum();
    for (k, v) in extra.inner() {
        args.insert(k.clone(), v.clone());
    }
    ch.queue_declare(q.into(), durable(), args)
        .await
        .unwrap_or_else(|e| panic!("declare quorum queue {q}: {e}"));
}

#[tokio::test]
async fn quorum_delivery_limit_counts_redeliveries_then_dead_letters_with_reason_delivery_limit() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut dl = DeadLetters::new(&ch, &unique("poison-dlx"), &unique("poison-dlq")).await;
    let q = unique("quorum-poison");
    declare_quorum(
        &ch,
        &q,
        table([
            ("x-delivery-limit", int(2)),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    let props = with_headers(table([("app", text("kept"))]));
    publish(&ch, "", &q, b"poison", props).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q, false).await;
    // Delivered three times: the first without x-delivery-count, then with
    // the number of earlier returns (a long). The third return exceeds the
    // limit of 2.
    for attempt in 0..3 {
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "poison");
        assert_eq!(d.redelivered, attempt > 0);
        let expected = (attempt > 0).then_some(AMQPValue::LongLongInt(attempt));
        assert_eq!(
            header(&d.properties, "x-delivery-count"),
            expected.as_ref(),
            "delivery {attempt}"
        );
        assert_eq!(header(&d.properties, "app"), Some(&text("kept")));
        d.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .unwrap();
    }
    let d = dl.next().await;
    assert_eq!(body(&d), "poison");
    assert_eq!(d.routing_key.as_str(), q);
    // The dead letter does not carry x-delivery-count.
    assert_eq!(header(&d.properties, "x-delivery-count"), None);
    assert_eq!(header(&d.properties, "app"), Some(&text("kept")));
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(
        &deaths[0],
        &Death {
            count: 1,
            reason: "delivery_limit",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
    assert_first_death(&d.properties, "delivery_limit", &q, "");
    assert_eq!(passive(&ch, &q).await.message_count(), 0);
    delete(&conn, &q).await;
}

#[tokio::test]
async fn quorum_delivery_limit_without_dead_letter_exchange_drops_the_message() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("quorum-drop");
    declare_quorum(&ch, &q, table([("x-delivery-limit", int(1))])).await;
    publish(&ch, "", &q, b"poison", BasicProperties::default()).await;
    // basic.get on a quorum queue carries x-delivery-count from the first
    // delivery on (RabbitMQ 3.10 sends 0 there, unlike basic.consume).
    for attempt in 0..2 {
        let d = get_with(&ch, &q, false).await.expect("the message");
        assert_eq!(d.redelivered, attempt > 0);
        assert_eq!(
            header(&d.properties, "x-delivery-count"),
            Some(&AMQPValue::LongLongInt(attempt)),
            "get {attempt}"
        );
        d.acker
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();
    }
    // The second return exceeds the limit of 1: the message is gone.
    assert!(get(&ch, &q).await.is_none());
    assert_eq!(passive(&ch, &q).await.message_count(), 0);
    delete(&conn, &q).await;
}

#[tokio::test]
async fn x_delivery_limit_is_refused_on_a_classic_queue() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("classic-delivery-limit");
    let reply_text = refused(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table([("x-delivery-limit", int(2))]),
    )
    .await;
    // RabbitMQ 3.10: PRECONDITION_FAILED - invalid arg 'x-delivery-limit'
    // for queue '<q>' in vhost '/' of queue type rabbit_classic_queue
    assert_prefix(
        &reply_text,
        &format!(
            "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{q}' in vhost '/'"
        ),
    );
}

#[tokio::test]
async fn x_max_priority_is_refused_on_a_quorum_queue() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("quorum-priority");
    let mut args = quorum();
    args.insert("x-max-priority".into(), int(5));
    let reply_text = refused(&conn, &q, durable(), args).await;
    // RabbitMQ 3.10: PRECONDITION_FAILED - invalid arg 'x-max-priority' for
    // queue '<q>' in vhost '/' of queue type rabbit_quorum_queue
    assert_prefix(
        &reply_text,
        &format!("PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/'"),
    );
}

#[tokio::test]
async fn a_stream_must_be_durable() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("stream-transient");
    let reply_text = refused(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table([("x-queue-type", text("stream"))]),
    )
    .await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'"
        )
    );
}

#[tokio::test]
async fn a_durable_stream_is_refused_by_warren() {
    let b = start().await;
    let conn = b.connect().await;
    let q = unique("stream");
    let args = table([("x-queue-type", text("stream"))]);
    if !b.is_warren() {
        // RabbitMQ 3.10 has streams and accepts this declare. Warren has no
        // streams and refuses them with 406 instead of pretending.
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(q.as_str().into(), durable(), args)
            .await
            .expect("RabbitMQ accepts a durable stream");
        delete(&conn, &q).await;
        return;
    }
    let reply_text = refused(&conn, &q, durable(), args).await;
    assert_prefix(&reply_text, "PRECONDITION_FAILED - ");
    assert!(reply_text.contains("stream"), "{reply_text}");
}
