//! TTL, length limits and dead-lettering on FIFO queues keep group order.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::options::*;
use lapin::types::AMQPValue;

use crate::*;

/// Dead-lettering to queue `dlq` through the default exchange.
fn dlx_to(dlq: &str) -> [(&'static str, AMQPValue); 2] {
    [
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s(dlq)),
    ]
}

/// Bodies of what reached `q`, by group, each in arrival order.
async fn by_group(ch: &lapin::Channel, q: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(d) = get(ch, q, true).await {
        out.entry(group_of(&d)).or_default().push(text(&d));
    }
    out
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_in_group_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (q, dlq) = ("fifo-ttl", "fifo-ttl-dlq");
    declare(&ch, dlq, Default::default()).await;
    let mut args = dlx_to(dlq).to_vec();
    args.push(("x-message-ttl", AMQPValue::LongInt(200)));
    declare_fifo(&ch, q, &args).await;
    let (_a_ch, mut a) = consumer(&conn, q, 1).await;
    send(&ch, q, "g", "g:1").await;
    let g1 = next(&mut a).await;
    // A is full (prefetch 1), so everything else waits and expires.
    for (g, body) in [
        ("g", "g:2"),
        ("g", "g:3"),
        ("h", "h:1"),
        ("g", "g:4"),
        ("h", "h:2"),
    ] {
        send(&ch, q, g, body).await;
    }
    wait_ready(&ch, dlq, 5).await;
    assert_eq!(ready(&ch, q).await, 0);
    let dead = by_group(&ch, dlq).await;
    assert_eq!(dead["g"], ["g:2", "g:3", "g:4"]);
    assert_eq!(dead["h"], ["h:1", "h:2"]);
    // A acked g:1 in time; the group goes on with fresh messages.
    ack(&g1).await;
    send(&ch, q, "g", "g:5").await;
    assert_eq!(text(&next(&mut a).await), "g:5");
}

#[tokio::test]
async fn per_message_expiry_acts_at_the_head_of_the_group() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (q, dlq) = ("fifo-expiration", "fifo-expiration-dlq");
    declare(&ch, dlq, Default::default()).await;
    declare_fifo(&ch, q, &dlx_to(dlq)).await;
    let short = |g: &str| in_group(g).with_expiration("50".into());
    send_props(&ch, q, "g:a", short("g")).await;
    send_props(&ch, q, "g:b", in_group("g")).await;
    send_props(&ch, q, "g:c", short("g")).await;
    send_props(&ch, q, "h:a", short("h")).await;
    // The heads expire: g:a and h:a. g:c waits behind g:b, as in RabbitMQ.
    wait_ready(&ch, dlq, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ready(&ch, q).await, 2);
    let (_a_ch, mut a) = consumer(&conn, q, 10).await;
    let d = next(&mut a).await;
    assert_eq!(text(&d), "g:b");
    nothing(&mut a, "the consumer (g:c expired at the head)").await;
    wait_ready(&ch, dlq, 3).await;
    let dead = by_group(&ch, dlq).await;
    assert_eq!(dead["g"], ["g:a", "g:c"]);
    assert_eq!(dead["h"], ["h:a"]);
}

#[tokio::test]
async fn a_length_limit_drops_the_oldest_head_and_keeps_group_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (q, dlq) = ("fifo-max-length", "fifo-max-length-dlq");
    declare(&ch, dlq, Default::default()).await;
    let mut args = dlx_to(dlq).to_vec();
    args.push(("x-max-length", AMQPValue::LongInt(3)));
    declare_fifo(&ch, q, &args).await;
    for (g, body) in [
        ("a", "a:1"),
        ("b", "b:1"),
        ("a", "a:2"),
        ("b", "b:2"),
        ("a", "a:3"),
    ] {
        send(&ch, q, g, body).await;
    }
    wait_ready(&ch, dlq, 2).await;
    let dead = by_group(&ch, dlq).await;
    assert_eq!(
        (&dead["a"][..], &dead["b"][..]),
        (&["a:1".to_string()][..], &["b:1".to_string()][..])
    );
    let (_c_ch, mut c) = consumer(&conn, q, 10).await;
    let got = texts(&take(&mut c, 3).await);
    assert_eq!(
        got,
        ["a:2", "b:2", "a:3"],
        "oldest first, as far as groups allow"
    );
}

#[tokio::test]
async fn a_byte_limit_keeps_group_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-max-bytes";
    declare_fifo(&ch, q, &[("x-max-length-bytes", AMQPValue::LongInt(12))]).await;
    // Each body is 3 bytes: four fit.
    for (g, body) in [
        ("a", "a:1"),
        ("a", "a:2"),
        ("b", "b:1"),
        ("a", "a:3"),
        ("b", "b:2"),
        ("a", "a:4"),
    ] {
        send(&ch, q, g, body).await;
    }
    let left = by_group(&ch, q).await;
    assert_eq!(left["a"], ["a:3", "a:4"]);
    assert_eq!(left["b"], ["b:1", "b:2"]);
}

#[tokio::test]
async fn rejected_messages_dead_letter_into_a_fifo_queue_in_group_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (q, dlq) = ("fifo-dlx-source", "fifo-dlx-target");
    declare_fifo(&ch, dlq, &[]).await;
    declare_fifo(&ch, q, &dlx_to(dlq)).await;
    for (g, body) in [
        ("g", "g:1"),
        ("g", "g:2"),
        ("g", "g:3"),
        ("h", "h:1"),
        ("h", "h:2"),
    ] {
        send(&ch, q, g, body).await;
    }
    let (_a_ch, mut a) = consumer(&conn, q, 2).await;
    let held = take(&mut a, 2).await;
    assert_eq!(texts(&held), ["g:1", "g:2"]);
    // Rejecting g:1 without requeue dead-letters it alone; A still holds g.
    within(
        "basic.reject",
        held[0].reject(BasicRejectOptions { requeue: false }),
    )
    .await
    .unwrap();
    let next_one = next(&mut a).await;
    assert_eq!(text(&next_one), "g:3", "A keeps its group");
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(texts(&take(&mut bc, 2).await), ["h:1", "h:2"]);
    nothing(&mut bc, "B while A still holds g").await;
    for d in [&held[1], &next_one] {
        within(
            "basic.nack",
            d.nack(BasicNackOptions {
                multiple: false,
                requeue: false,
            }),
        )
        .await
        .unwrap();
    }
    // The dead letters keep their group and its order in the FIFO target.
    wait_ready(&ch, dlq, 3).await;
    let (_t_ch, mut t) = consumer(&conn, dlq, 10).await;
    let got = take(&mut t, 3).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3"]);
    assert!(got.iter().all(|d| group_of(d) == "g"));
    let death = got[0]
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned());
    assert!(death.is_some(), "dead letters carry x-death");
}

#[tokio::test]
async fn a_no_ack_consumer_gets_each_group_in_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-no-ack";
    declare_fifo(&ch, q, &[]).await;
    for n in 0..20 {
        send(
            &ch,
            q,
            ["x", "y"][n % 2],
            &format!("{}:{n}", ["x", "y"][n % 2]),
        )
        .await;
    }
    let c_ch = conn.create_channel().await.unwrap();
    let mut c = c_ch
        .basic_consume(
            q.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let got = take(&mut c, 20).await;
    for g in ["x", "y"] {
        let seen: Vec<usize> = got
            .iter()
            .filter(|d| group_of(d) == g)
            .map(|d| text(d)[2..].parse().unwrap())
            .collect();
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(seen, sorted, "group {g}");
        assert_eq!(seen.len(), 10);
    }
}

/// The lapin example of the README's "FIFO queues" section, as written
/// (bar the URL and the end of the loop).
#[tokio::test]
async fn the_readme_lapin_example_works() {
    use futures::StreamExt;
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let Some(b) = warren().await else { return };
    let conn = Connection::connect(&b.url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("fifo")),
    );
    args.insert(
        "x-content-based-deduplication".into(),
        AMQPValue::Boolean(true),
    );
    ch.queue_declare(
        "orders".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();

    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "x-group-id".into(),
        AMQPValue::LongString(LongString::from("customer-42")),
    );
    let props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2);
    for body in [&b"created"[..], b"paid", b"paid"] {
        let confirm = ch
            .basic_publish(
                "".into(),
                "orders".into(),
                BasicPublishOptions::default(),
                body,
                props.clone(),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }

    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let mut deliveries = ch
        .basic_consume(
            "orders".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(QUIET, deliveries.next()).await {
        let delivery = delivery.unwrap();
        got.push(text(&delivery));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(got, ["created", "paid"]);
}
