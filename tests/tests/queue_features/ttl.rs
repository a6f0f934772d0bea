//! `x-message-ttl`, the `expiration` property and `x-expires`.

use lapin::options::{BasicCancelOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren_tests::features::*;
use warren_tests::{start, unique};

fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

#[tokio::test]
async fn queue_ttl_expires_a_message_and_dead_letters_it_with_reason_expired() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("ttl-dlx"), &unique("ttl-dlq")).await;
    let q = unique("ttl");
    declare(
        &ch,
        &q,
        table([
            ("x-message-ttl", int(100)),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    publish(&ch, "", &q, b"gone", BasicProperties::default()).await;

    // Nobody consumes the queue: the broker expires the message by itself.
    let d = dl.next().await;
    assert_eq!(body(&d), "gone");
    assert_eq!(d.exchange.as_str(), dl.exchange);
    assert_eq!(d.routing_key.as_str(), q);
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(
        &deaths[0],
        &Death {
            count: 1,
            reason: "expired",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
    assert_first_death(&d.properties, "expired", &q, "");
    assert!(get(&ch, &q).await.is_none(), "expired message still in {q}");
}

#[tokio::test]
async fn per_message_expiration_dead_letters_with_original_expiration() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("exp-dlx"), &unique("exp-dlq")).await;
    let q = unique("exp");
    declare(
        &ch,
        &q,
        table([("x-dead-letter-exchange", text(&dl.exchange))]),
    )
    .await;
    publish(&ch, "", &q, b"short-lived", expiring("100")).await;
    publish(&ch, "", &q, b"kept", BasicProperties::default()).await;

    let d = dl.next().await;
    assert_eq!(body(&d), "short-lived");
    // The dead-lettered copy loses its expiration (it would expire again);
    // the old value is kept in x-death's original-expiration.
    assert_eq!(d.properties.expiration(), &None);
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(
        &deaths[0],
        &Death {
            count: 1,
            reason: "expired",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: Some("100"),
        },
    );
    assert_first_death(&d.properties, "expired", &q, "");
    // The message without an expiration is untouched.
    assert_eq!(drain(&ch, &q).await, ["kept"]);
}

#[tokio::test]
async fn the_lower_of_queue_ttl_and_message_expiration_wins() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("min-dlx"), &unique("min-dlq")).await;
    // A long queue TTL and a short message expiration ...
    let long_queue = unique("ttl-long-queue");
    declare(
        &ch,
        &long_queue,
        table([
            ("x-message-ttl", int(60_000)),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    publish(&ch, "", &long_queue, b"message-expiration", expiring("50")).await;
    let d = dl.next().await;
    assert_eq!(body(&d), "message-expiration");
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "expired",
            queue: &long_queue,
            exchange: "",
            routing_keys: &[&long_queue],
            original_expiration: Some("50"),
        },
    );

    // ... and a short queue TTL with a long message expiration: both expire
    // within the test's bounded wait, far sooner than 60 s.
    let short_queue = unique("ttl-short-queue");
    declare(
        &ch,
        &short_queue,
        table([
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    publish(&ch, "", &short_queue, b"queue-ttl", expiring("60000")).await;
    let d = dl.next().await;
    assert_eq!(body(&d), "queue-ttl");
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "expired",
            queue: &short_queue,
            exchange: "",
            routing_keys: &[&short_queue],
            original_expiration: Some("60000"),
        },
    );
}

#[tokio::test]
async fn expired_messages_are_removed_without_any_consumer() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("ttl-nobody");
    declare(&ch, &q, table([("x-message-ttl", int(50))])).await;
    for body in [b"a", b"b", b"c"] {
        publish(&ch, "", &q, body, BasicProperties::default()).await;
    }
    // No dead-letter exchange, no consumer, no get: the count still drops.
    wait_for_message_count(&ch, &q, 0).await;
    assert!(get(&ch, &q).await.is_none());
    // A consumer that comes later gets nothing of them, only what is new.
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"fresh", BasicProperties::default()).await;
    assert_eq!(body(&next(&mut consumer).await), "fresh");
}

#[tokio::test]
async fn ttl_zero_drops_unless_a_consumer_takes_the_message_at_once() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    // x-message-ttl 0: with nobody consuming, the message is gone at once
    // (the get right after the publish on the same channel finds nothing).
    let q = unique("ttl-zero");
    declare(&ch, &q, table([("x-message-ttl", int(0))])).await;
    publish(&ch, "", &q, b"dropped", BasicProperties::default()).await;
    assert!(get(&ch, &q).await.is_none());
    // The same for a per-message expiration of "0".
    let q2 = unique("exp-zero");
    declare(&ch, &q2, FieldTable::default()).await;
    publish(&ch, "", &q2, b"dropped", expiring("0")).await;
    assert!(get(&ch, &q2).await.is_none());
    // A consumer that is ready gets it.
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"delivered", BasicProperties::default()).await;
    assert_eq!(body(&next(&mut consumer).await), "delivered");
}

#[tokio::test]
async fn ttl_zero_with_a_dead_letter_exchange_dead_letters_at_once() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("zero-dlx"), &unique("zero-dlq")).await;
    let q = unique("ttl-zero-dlx");
    declare(
        &ch,
        &q,
        table([
            ("x-message-ttl", int(0)),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    let d = dl.next().await;
    assert_eq!(body(&d), "m");
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "expired",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
}

#[tokio::test]
async fn x_expires_deletes_an_unused_queue() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("expires");
    // Not exclusive: it must go away by itself.
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        table([("x-expires", int(100))]),
    )
    .await
    .unwrap();
    let reply_text = wait_until_queue_expired(&conn, &q).await;
    assert_eq!(
        reply_text,
        format!("NOT_FOUND - no queue '{q}' in vhost '/'")
    );
}

#[tokio::test]
async fn x_expires_waits_while_the_queue_has_a_consumer() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let busy = unique("expires-busy");
    let idle = unique("expires-idle");
    let args = || table([("x-expires", int(200))]);
    ch.queue_declare(busy.as_str().into(), QueueDeclareOptions::default(), args())
        .await
        .unwrap();
    let consumer = consume(&ch, &busy, true).await;
    // Declared after `busy` got its consumer: once `idle` has expired,
    // `busy` would have too, were its consumer not keeping it.
    ch.queue_declare(idle.as_str().into(), QueueDeclareOptions::default(), args())
        .await
        .unwrap();
    wait_until_queue_expired(&conn, &idle).await;
    assert_eq!(passive(&ch, &busy).await.consumer_count(), 1);
    // Once unused, it expires too.
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    wait_until_queue_expired(&conn, &busy).await;
}
