//! `x-dead-letter-exchange`, `x-dead-letter-routing-key`, the `x-death` and
//! `x-first-death-*` headers, and cycle detection.

use lapin::options::{BasicNackOptions, BasicRejectOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use warren_tests::features::*;
use warren_tests::{start, unique};

#[tokio::test]
async fn a_rejected_message_is_dead_lettered_with_x_death() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("rej-dlx"), &unique("rej-dlq")).await;
    let x = unique("rej-src");
    exchange(&ch, &x, ExchangeKind::Direct).await;
    let q = unique("rej");
    declare(
        &ch,
        &q,
        table([("x-dead-letter-exchange", text(&dl.exchange))]),
    )
    .await;
    bind(&ch, &q, &x, "rk-1").await;
    let props = BasicProperties::default()
        .with_expiration("60000".into())
        .with_correlation_id("corr-1".into())
        .with_content_type("text/plain".into())
        .with_headers(table([("app", text("kept"))]));
    publish(&ch, &x, "rk-1", b"payload", props).await;

    let m = get_with(&ch, &q, false).await.expect("the message");
    m.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = dl.next().await;
    assert_eq!(body(&d), "payload");
    // Delivered through the dead-letter exchange with the original key.
    assert_eq!(d.exchange.as_str(), dl.exchange);
    assert_eq!(d.routing_key.as_str(), "rk-1");
    assert!(!d.redelivered);
    // Properties survive, except the expiration, which moves into x-death.
    assert_eq!(d.properties.expiration(), &None);
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr-1")
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(header(&d.properties, "app"), Some(&text("kept")));
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(
        &deaths[0],
        &Death {
            count: 1,
            reason: "rejected",
            queue: &q,
            exchange: &x,
            routing_keys: &["rk-1"],
            original_expiration: Some("60000"),
        },
    );
    assert_first_death(&d.properties, "rejected", &q, &x);
    // Exactly these headers: the message's own plus the four RabbitMQ adds.
    let mut keys: Vec<String> = d
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .keys()
        .map(|k| k.to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "app",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ]
    );
}

#[tokio::test]
async fn nack_without_requeue_dead_letters_and_requeue_does_not() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let mut dl = DeadLetters::new(&ch, &unique("nack-dlx"), &unique("nack-dlq")).await;
    let q = unique("nack");
    declare(
        &ch,
        &q,
        table([("x-dead-letter-exchange", text(&dl.exchange))]),
    )
    .await;
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", &q, b"m1", BasicProperties::default()).await;
    publish(&ch, "", &q, b"m2", BasicProperties::default()).await;
    let d1 = next(&mut consumer).await;
    let d2 = next(&mut consumer).await;
    assert_eq!((body(&d1), body(&d2)), ("m1".into(), "m2".into()));
    // A requeue brings both back to the consumer, not to the DLX.
    d2.acker
        .nack(BasicNackOptions {
            multiple: true,
            requeue: true,
        })
        .await
        .unwrap();
    let r1 = next(&mut consumer).await;
    let r2 = next(&mut consumer).await;
    assert_eq!((body(&r1), body(&r2)), ("m1".into(), "m2".into()));
    assert!(r1.redelivered && r2.redelivered);
    // Without requeue (multiple), both are dead-lettered, in order.
    r2.acker
        .nack(BasicNackOptions {
            multiple: true,
            requeue: false,
        })
        .await
        .unwrap();
    for expected in ["m1", "m2"] {
        let d = dl.next().await;
        assert_eq!(body(&d), expected);
        assert_death(
            &x_death(&d.properties)[0],
            &Death {
                count: 1,
                reason: "rejected",
                queue: &q,
                exchange: "",
                routing_keys: &[&q],
                original_expiration: None,
            },
        );
    }
}

#[tokio::test]
async fn dead_letter_routing_key_replaces_the_routing_key() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let dlx = unique("dlrk-dlx");
    exchange(&ch, &dlx, ExchangeKind::Direct).await;
    let target = unique("dlrk-target");
    declare(&ch, &target, FieldTable::default()).await;
    bind(&ch, &target, &dlx, "dl-key").await;
    let mut dead = consume(&ch, &target, true).await;
    let q = unique("dlrk");
    declare(
        &ch,
        &q,
        table([
            ("x-dead-letter-exchange", text(&dlx)),
            ("x-dead-letter-routing-key", text("dl-key")),
        ]),
    )
    .await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    let m = get_with(&ch, &q, false).await.expect("m");
    m.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = next(&mut dead).await;
    assert_eq!(d.exchange.as_str(), dlx);
    assert_eq!(d.routing_key.as_str(), "dl-key");
    // x-death keeps the keys the message was originally routed with.
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "rejected",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
}

#[tokio::test]
async fn dead_lettering_through_the_default_exchange() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let target = unique("dl-default-target");
    declare(&ch, &target, FieldTable::default()).await;
    let mut dead = consume(&ch, &target, true).await;
    let q = unique("dl-default");
    declare(
        &ch,
        &q,
        table([
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&target)),
        ]),
    )
    .await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    let m = get_with(&ch, &q, false).await.expect("m");
    m.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = next(&mut dead).await;
    assert_eq!(body(&d), "m");
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), target);
    assert_first_death(&d.properties, "rejected", &q, "");
}

#[tokio::test]
async fn dying_again_in_the_same_queue_for_the_same_reason_increments_count() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    // The queue dead-letters into a fanout exchange it is bound to itself:
    // a cycle, but one with a rejection in it, which RabbitMQ allows.
    let loop_x = unique("loop-x");
    exchange(&ch, &loop_x, ExchangeKind::Fanout).await;
    let q = unique("loop");
    declare(&ch, &q, table([("x-dead-letter-exchange", text(&loop_x))])).await;
    bind(&ch, &q, &loop_x, "").await;
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;

    let first = next(&mut consumer).await;
    assert_eq!(header(&first.properties, "x-death"), None);
    first
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    for count in 1..=2 {
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "m");
        assert_eq!(d.exchange.as_str(), loop_x);
        assert_eq!(d.routing_key.as_str(), q);
        let deaths = x_death(&d.properties);
        assert_eq!(deaths.len(), 1, "one entry per (queue, reason): {deaths:?}");
        assert_death(
            &deaths[0],
            &Death {
                count,
                reason: "rejected",
                queue: &q,
                exchange: "",
                routing_keys: &[&q],
                original_expiration: None,
            },
        );
        assert_first_death(&d.properties, "rejected", &q, "");
        d.acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn deaths_in_two_queues_are_listed_most_recent_first() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    // work --rejected--> xa --> retry (TTL 50) --expired--> xb --> work
    let xa = unique("retry-in");
    let xb = unique("retry-out");
    exchange(&ch, &xa, ExchangeKind::Fanout).await;
    exchange(&ch, &xb, ExchangeKind::Fanout).await;
    let work = unique("work");
    let retry = unique("retry");
    declare(&ch, &work, table([("x-dead-letter-exchange", text(&xa))])).await;
    bind(&ch, &work, &xb, "").await;
    declare(
        &ch,
        &retry,
        table([
            ("x-dead-letter-exchange", text(&xb)),
            ("x-message-ttl", int(50)),
        ]),
    )
    .await;
    bind(&ch, &retry, &xa, "").await;
    let mut consumer = consume(&ch, &work, false).await;
    publish(&ch, "", &work, b"job", BasicProperties::default()).await;

    let d = next(&mut consumer).await;
    d.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    for count in 1..=2 {
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "job");
        assert_eq!(d.exchange.as_str(), xb);
        assert_eq!(d.routing_key.as_str(), work);
        let deaths = x_death(&d.properties);
        assert_eq!(deaths.len(), 2, "{deaths:?}");
        // The latest death (expiry in `retry`, reached through xa) first.
        assert_death(
            &deaths[0],
            &Death {
                count,
                reason: "expired",
                queue: &retry,
                exchange: &xa,
                routing_keys: &[&work],
                original_expiration: None,
            },
        );
        assert_death(
            &deaths[1],
            &Death {
                count,
                reason: "rejected",
                queue: &work,
                exchange: "",
                routing_keys: &[&work],
                original_expiration: None,
            },
        );
        // The first death stays the first death.
        assert_first_death(&d.properties, "rejected", &work, "");
        d.acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_automatic_dead_letter_cycle_is_dropped() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // A queue that overflows into a fanout exchange bound back to itself,
    // plus an observer queue on the same exchange.
    let cx = unique("cycle-x");
    exchange(&ch, &cx, ExchangeKind::Fanout).await;
    let q = unique("cycle");
    declare(
        &ch,
        &q,
        table([
            ("x-max-length", int(1)),
            ("x-dead-letter-exchange", text(&cx)),
        ]),
    )
    .await;
    bind(&ch, &q, &cx, "").await;
    let observer = unique("cycle-observer");
    declare(&ch, &observer, FieldTable::default()).await;
    bind(&ch, &observer, &cx, "").await;
    let mut seen = consume(&ch, &observer, true).await;

    publish(&ch, "", &q, b"m1", BasicProperties::default()).await;
    publish(&ch, "", &q, b"m2", BasicProperties::default()).await;
    // m1 is pushed out (maxlen). It reaches the observer, but not `q` again:
    // `q` is already in its x-death and no death on the way was a
    // rejection, so that route is a cycle and RabbitMQ drops it.
    let d = next(&mut seen).await;
    assert_eq!(body(&d), "m1");
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "maxlen",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
    let left = get(&ch, &q).await.expect("m2 stays");
    assert_eq!(body(&left), "m2");
    assert_eq!(header(&left.properties, "x-death"), None);
    assert!(get(&ch, &q).await.is_none());
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_the_message_quietly() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("dlx-missing");
    // The exchange need not exist at declare time ...
    declare(
        &ch,
        &q,
        table([("x-dead-letter-exchange", text(&unique("no-such-exchange")))]),
    )
    .await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    let m = get_with(&ch, &q, false).await.expect("m");
    m.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    // ... nor when a message dies: it is dropped and nobody gets an error.
    sync(&ch).await.expect("the channel stays open");
    assert!(get(&ch, &q).await.is_none());
}
