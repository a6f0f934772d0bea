//! Sender-selected distribution: the `CC` and `BCC` headers add routing
//! keys; `BCC` is removed before delivery.

use lapin::options::{BasicRejectOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use warren_tests::features::*;
use warren_tests::{start, unique};

#[tokio::test]
async fn cc_and_bcc_route_to_more_queues_and_bcc_is_stripped() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = unique("cc-x");
    exchange(&ch, &x, ExchangeKind::Direct).await;
    let mut queues = Vec::new();
    for key in ["k1", "k2", "k3", "k4"] {
        let q = unique(&format!("cc-{key}"));
        declare(&ch, &q, FieldTable::default()).await;
        bind(&ch, &q, &x, key).await;
        queues.push(q);
    }
    let props = with_headers(table([
        ("CC", texts(&["k2"])),
        ("BCC", texts(&["k3"])),
        ("app", text("kept")),
    ]));
    publish(&ch, &x, "k1", b"m", props).await;
    for q in &queues[..3] {
        let d = get(&ch, q)
            .await
            .unwrap_or_else(|| panic!("nothing in {q}"));
        assert_eq!(body(&d), "m");
        // The routing key stays the published one in every copy.
        assert_eq!(d.routing_key.as_str(), "k1");
        assert_eq!(d.exchange.as_str(), x);
        let headers = d.properties.headers().as_ref().expect("headers");
        let mut keys: Vec<&str> = headers.inner().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["CC", "app"], "BCC must be gone, CC kept, in {q}");
        assert_eq!(header(&d.properties, "CC"), Some(&texts(&["k2"])));
        assert!(get(&ch, q).await.is_none(), "one copy only in {q}");
    }
    assert!(get(&ch, &queues[3]).await.is_none(), "k4 was not addressed");
}

#[tokio::test]
async fn a_queue_matched_by_several_keys_gets_one_copy() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = unique("cc-dup-x");
    exchange(&ch, &x, ExchangeKind::Direct).await;
    let q = unique("cc-dup");
    declare(&ch, &q, FieldTable::default()).await;
    bind(&ch, &q, &x, "k1").await;
    bind(&ch, &q, &x, "k2").await;
    let props = with_headers(table([("CC", texts(&["k2"])), ("BCC", texts(&["k1"]))]));
    publish(&ch, &x, "k1", b"m", props).await;
    assert_eq!(drain(&ch, &q).await, ["m"]);
}

#[tokio::test]
async fn cc_works_on_the_default_exchange() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q1 = unique("cc-default-1");
    let q2 = unique("cc-default-2");
    let q3 = unique("cc-default-3");
    for q in [&q1, &q2, &q3] {
        declare(&ch, q, FieldTable::default()).await;
    }
    let props = with_headers(table([("CC", texts(&[&q2])), ("BCC", texts(&[&q3]))]));
    publish(&ch, "", &q1, b"m", props).await;
    for q in [&q1, &q2, &q3] {
        let d = get(&ch, q)
            .await
            .unwrap_or_else(|| panic!("nothing in {q}"));
        assert_eq!(d.routing_key.as_str(), q1);
        assert_eq!(header(&d.properties, "BCC"), None);
        assert_eq!(header(&d.properties, "CC"), Some(&texts(&[&q2])));
    }
}

#[tokio::test]
async fn x_death_routing_keys_include_cc_but_not_bcc() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut dl = DeadLetters::new(&ch, &unique("cc-dlx"), &unique("cc-dlq")).await;
    let x = unique("cc-dl-x");
    exchange(&ch, &x, ExchangeKind::Direct).await;
    let q = unique("cc-dl");
    declare(
        &ch,
        &q,
        table([("x-dead-letter-exchange", text(&dl.exchange))]),
    )
    .await;
    bind(&ch, &q, &x, "k1").await;
    let props = with_headers(table([("CC", texts(&["k2"])), ("BCC", texts(&["k3"]))]));
    publish(&ch, &x, "k1", b"m", props).await;
    let m = get_with(&ch, &q, false).await.expect("m");
    m.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = dl.next().await;
    assert_eq!(d.routing_key.as_str(), "k1");
    assert_eq!(header(&d.properties, "BCC"), None);
    assert_eq!(header(&d.properties, "CC"), Some(&texts(&["k2"])));
    assert_death(
        &x_death(&d.properties)[0],
        &Death {
            count: 1,
            reason: "rejected",
            queue: &q,
            exchange: &x,
            routing_keys: &["k1", "k2"],
            original_expiration: None,
        },
    );
}

#[tokio::test]
async fn a_cc_or_bcc_header_that_is_not_an_array_is_precondition_failed() {
    let b = start().await;
    let conn = b.connect().await;
    for name in ["CC", "BCC"] {
        let ch = conn.create_channel().await.unwrap();
        let q = unique("cc-bad");
        declare(&ch, &q, FieldTable::default()).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let props = with_headers(table([(name, text("k2"))]));
        let r = try_publish(&ch, "", &q, b"m", props).await;
        let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
        // RabbitMQ 3.10: PRECONDITION_FAILED - invalid message:
        // {unacceptable_type_in_header,"CC",longstr}
        assert_prefix(&reply_text, "PRECONDITION_FAILED - invalid message");
    }
}
