//! `x-max-length` and `x-max-length-bytes` with the overflow modes
//! `drop-head` (the default), `reject-publish` and `reject-publish-dlx`.

use lapin::options::{BasicRejectOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};
use warren_tests::features::*;
use warren_tests::{start, unique};

fn is_ack(c: &Confirmation) -> bool {
    matches!(c, Confirmation::Ack(_))
}

fn is_nack(c: &Confirmation) -> bool {
    matches!(c, Confirmation::Nack(_))
}

#[tokio::test]
async fn drop_head_keeps_the_newest_and_dead_letters_the_oldest_with_reason_maxlen() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut dl = DeadLetters::new(&ch, &unique("maxlen-dlx"), &unique("maxlen-dlq")).await;
    let q = unique("maxlen");
    declare(
        &ch,
        &q,
        table([
            ("x-max-length", int(3)),
            ("x-overflow", text("drop-head")),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    for i in 1..=5 {
        let c = publish(
            &ch,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
        // drop-head never refuses a publish.
        assert!(is_ack(&c), "m{i}: {c:?}");
    }
    for expected in ["m1", "m2"] {
        let d = dl.next().await;
        assert_eq!(body(&d), expected);
        assert_eq!(d.exchange.as_str(), dl.exchange);
        assert_eq!(d.routing_key.as_str(), q);
        let deaths = x_death(&d.properties);
        assert_eq!(deaths.len(), 1, "{deaths:?}");
        assert_death(
            &deaths[0],
            &Death {
                count: 1,
                reason: "maxlen",
                queue: &q,
                exchange: "",
                routing_keys: &[&q],
                original_expiration: None,
            },
        );
        assert_first_death(&d.properties, "maxlen", &q, "");
    }
    assert_eq!(drain(&ch, &q).await, ["m3", "m4", "m5"]);
}

#[tokio::test]
async fn drop_head_is_the_default_overflow() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("maxlen-default");
    declare(&ch, &q, table([("x-max-length", int(2))])).await;
    for i in 1..=3 {
        let c = publish(
            &ch,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
        assert!(is_ack(&c), "m{i}: {c:?}");
    }
    assert_eq!(passive(&ch, &q).await.message_count(), 2);
    assert_eq!(drain(&ch, &q).await, ["m2", "m3"]);
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes_only() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("maxbytes");
    declare(&ch, &q, table([("x-max-length-bytes", int(10))])).await;
    // Big headers do not count: only the 4-byte bodies do, so two fit.
    let padding = "p".repeat(200);
    for body in ["aaaa", "bbbb", "cccc", "dddd"] {
        let props = with_headers(table([("padding", text(&padding))]));
        publish(&ch, "", &q, body.as_bytes(), props).await;
    }
    assert_eq!(drain(&ch, &q).await, ["cccc", "dddd"]);
}

#[tokio::test]
async fn reject_publish_nacks_what_does_not_fit_and_does_not_dead_letter_it() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut dl = DeadLetters::new(&ch, &unique("rp-dlx"), &unique("rp-dlq")).await;
    let q = unique("reject-publish");
    declare(
        &ch,
        &q,
        table([
            ("x-max-length", int(2)),
            ("x-overflow", text("reject-publish")),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    let confirms = [
        publish(&ch, "", &q, b"m1", BasicProperties::default()).await,
        publish(&ch, "", &q, b"m2", BasicProperties::default()).await,
        publish(&ch, "", &q, b"m3", BasicProperties::default()).await,
    ];
    assert!(is_ack(&confirms[0]), "{confirms:?}");
    assert!(is_ack(&confirms[1]), "{confirms:?}");
    assert!(is_nack(&confirms[2]), "m3 must be nacked: {confirms:?}");
    // The first dead letter is one we cause now, so m3 was not dead-lettered.
    let m1 = get_with(&ch, &q, false).await.expect("m1");
    assert_eq!(body(&m1), "m1");
    m1.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = dl.next().await;
    assert_eq!(body(&d), "m1");
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
    // With room again, publishes are accepted.
    let c = publish(&ch, "", &q, b"m4", BasicProperties::default()).await;
    assert!(is_ack(&c), "{c:?}");
    assert_eq!(drain(&ch, &q).await, ["m2", "m4"]);
}

#[tokio::test]
async fn reject_publish_applies_to_max_length_bytes() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("reject-publish-bytes");
    declare(
        &ch,
        &q,
        table([
            ("x-max-length-bytes", int(5)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await;
    let first = publish(&ch, "", &q, b"abc", BasicProperties::default()).await;
    let second = publish(&ch, "", &q, b"def", BasicProperties::default()).await;
    assert!(is_ack(&first), "{first:?}");
    assert!(is_nack(&second), "{second:?}");
    assert_eq!(drain(&ch, &q).await, ["abc"]);
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters_with_reason_maxlen() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut dl = DeadLetters::new(&ch, &unique("rpd-dlx"), &unique("rpd-dlq")).await;
    let q = unique("reject-publish-dlx");
    declare(
        &ch,
        &q,
        table([
            ("x-max-length", int(1)),
            ("x-overflow", text("reject-publish-dlx")),
            ("x-dead-letter-exchange", text(&dl.exchange)),
        ]),
    )
    .await;
    let first = publish(&ch, "", &q, b"m1", BasicProperties::default()).await;
    let second = publish(&ch, "", &q, b"m2", BasicProperties::default()).await;
    assert!(is_ack(&first), "{first:?}");
    assert!(is_nack(&second), "{second:?}");
    let d = dl.next().await;
    assert_eq!(body(&d), "m2");
    assert_eq!(d.routing_key.as_str(), q);
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(
        &deaths[0],
        &Death {
            count: 1,
            reason: "maxlen",
            queue: &q,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        },
    );
    assert_first_death(&d.properties, "maxlen", &q, "");
    assert_eq!(drain(&ch, &q).await, ["m1"]);
}

#[tokio::test]
async fn max_length_zero_keeps_nothing() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("maxlen-zero");
    declare(&ch, &q, table([("x-max-length", int(0))])).await;
    publish(&ch, "", &q, b"m", BasicProperties::default()).await;
    assert!(get(&ch, &q).await.is_none());
}
