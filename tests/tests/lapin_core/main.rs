//! Issue 3 through lapin: exchanges, routing, queues, basic, QoS, confirms,
//! transactions and errors. Each test passes against the reference RabbitMQ
//! too (`WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use warren_tests::features::*;
use warren_tests::{start, unique};

async fn open() -> (warren_tests::TestBroker, Connection, Channel) {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    (b, conn, ch)
}

/// An exchange that outlives its bindings (features::exchange is auto-delete).
async fn lasting_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

fn plain() -> BasicProperties {
    BasicProperties::default()
}

async fn hard_error<T: std::fmt::Debug>(
    conn: &Connection,
    r: lapin::Result<T>,
    code: u16,
) -> String {
    let err = r.expect_err("expected a connection error");
    let (got, text, hard) = reply(&err);
    assert!(
        hard,
        "expected connection.close {code}, got channel.close {got} {text}"
    );
    assert_eq!(got, code, "{text}");
    let _ = conn;
    text
}

// ------------------------------------------------------------- exchanges

#[tokio::test]
async fn exchanges_of_every_type_route() {
    let (_b, _conn, ch) = open().await;
    for (kind, key, binding) in [
        (ExchangeKind::Direct, "k", "k"),
        (ExchangeKind::Fanout, "anything", ""),
        (ExchangeKind::Topic, "a.b.c", "a.#"),
    ] {
        let x = unique("x");
        let q = unique("q");
        exchange(&ch, &x, kind).await;
        declare(&ch, &q, FieldTable::default()).await;
        bind(&ch, &q, &x, binding).await;
        publish(&ch, &x, key, b"m", plain()).await;
        assert_eq!(drain(&ch, &q).await, vec!["m"]);
    }
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let (_b, conn, ch) = open().await;
    let r = ch
        .exchange_declare(
            unique("nope").as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    expect_channel_error(&conn, &ch, r, 404).await;
}

#[tokio::test]
async fn inequivalent_exchange_redeclare_is_406() {
    let (_b, conn, ch) = open().await;
    let x = unique("x");
    exchange(&ch, &x, ExchangeKind::Direct).await;
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    let text = expect_channel_error(&conn, &ch, r, 406).await;
    assert_prefix(&text, "PRECONDITION_FAILED - inequivalent arg 'type'");
}

#[tokio::test]
async fn amq_prefixed_exchange_names_are_403() {
    let (_b, conn, ch) = open().await;
    let r = ch
        .exchange_declare(
            "amq.mine".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_channel_error(&conn, &ch, r, 403).await;
}

#[tokio::test]
async fn delete_if_unused_refuses_a_bound_exchange_and_missing_ones_delete_fine() {
    let (_b, conn, ch) = open().await;
    ch.exchange_delete(
        unique("never").as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    let x = unique("x");
    let q = unique("q");
    exchange(&ch, &x, ExchangeKind::Fanout).await;
    declare(&ch, &q, FieldTable::default()).await;
    bind(&ch, &q, &x, "").await;
    let r = ch
        .exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await;
    expect_channel_error(&conn, &ch, r, 406).await;
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes_and_unbind_stops_it() {
    let (_b, _conn, ch) = open().await;
    let (src, dst, q) = (unique("src"), unique("dst"), unique("q"));
    lasting_exchange(&ch, &src, ExchangeKind::Topic).await;
    lasting_exchange(&ch, &dst, ExchangeKind::Fanout).await;
    declare(&ch, &q, FieldTable::default()).await;
    bind(&ch, &q, &dst, "").await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &src, "a.b", b"through", plain()).await;
    publish(&ch, &src, "b.b", b"not", plain()).await;
    assert_eq!(drain(&ch, &q).await, vec!["through"]);
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &src, "a.b", b"gone", plain()).await;
    assert!(drain(&ch, &q).await.is_empty());
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let (_b, _conn, ch) = open().await;
    let (main, alt, q) = (unique("main"), unique("alt"), unique("q"));
    exchange(&ch, &alt, ExchangeKind::Fanout).await;
    ch.exchange_declare(
        main.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table([("alternate-exchange", text(&alt))]),
    )
    .await
    .unwrap();
    declare(&ch, &q, FieldTable::default()).await;
    bind(&ch, &q, &alt, "").await;
    publish(&ch, &main, "nobody", b"caught", plain()).await;
    assert_eq!(drain(&ch, &q).await, vec!["caught"]);
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let (_b, conn, ch) = open().await;
    let x = unique("internal");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = try_publish(&ch, &x, "", b"x", plain()).await;
    expect_channel_error(&conn, &ch, r, 403).await;
}

#[tokio::test]
async fn binding_to_the_default_exchange_is_403() {
    let (_b, conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            "".into(),
            q.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_channel_error(&conn, &ch, r, 403).await;
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection_with_503() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .exchange_declare(
            unique("x").as_str().into(),
            ExchangeKind::Custom("no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    hard_error(&conn, r, 503).await;
}

// ---------------------------------------------------------------- routing

#[tokio::test]
async fn topic_wildcards_match_as_rabbitmq_does() {
    let (_b, _conn, ch) = open().await;
    let x = unique("topic");
    lasting_exchange(&ch, &x, ExchangeKind::Topic).await;
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "*.orange.*",
            &["quick.orange.rabbit"],
            &["orange", "quick.orange.new.rabbit"],
        ),
        ("lazy.#", &["lazy", "lazy.a.b"], &["lazy1"]),
        ("a.#.b", &["a.b", "a.x.y.b"], &["a.x.c"]),
        ("#", &["", "x.y"], &[]),
        ("a..b", &["a..b"], &["a.b"]),
        ("*", &["word"], &["", "a.b"]),
    ];
    for (pattern, yes, no) in cases {
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        bind(&ch, &q, &x, pattern).await;
        for key in yes.iter().chain(no.iter()) {
            publish(&ch, &x, key, key.as_bytes(), plain()).await;
        }
        let got = drain(&ch, &q).await;
        let want: Vec<String> = yes.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "pattern {pattern}");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn headers_exchange_matches_all_and_any() {
    let (_b, _conn, ch) = open().await;
    let x = unique("headers");
    exchange(&ch, &x, ExchangeKind::Headers).await;
    let (all, any) = (unique("all"), unique("any"));
    declare(&ch, &all, FieldTable::default()).await;
    declare(&ch, &any, FieldTable::default()).await;
    ch.queue_bind(
        all.as_str().into(),
        x.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        table([("x-match", text("all")), ("a", text("1")), ("b", text("2"))]),
    )
    .await
    .unwrap();
    ch.queue_bind(
        any.as_str().into(),
        x.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        table([("x-match", text("any")), ("a", text("1")), ("b", text("2"))]),
    )
    .await
    .unwrap();
    publish(
        &ch,
        &x,
        "",
        b"both",
        with_headers(table([("a", text("1")), ("b", text("2"))])),
    )
    .await;
    publish(&ch, &x, "", b"one", with_headers(table([("a", text("1"))]))).await;
    publish(
        &ch,
        &x,
        "",
        b"none",
        with_headers(table([("c", text("3"))])),
    )
    .await;
    assert_eq!(drain(&ch, &all).await, vec!["both"]);
    assert_eq!(drain(&ch, &any).await, vec!["both", "one"]);
}

// ----------------------------------------------------------------- queues

#[tokio::test]
async fn server_named_queues_and_declare_ok_counts() {
    let (_b, _conn, ch) = open().await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
    for _ in 0..3 {
        publish(&ch, "", q.name().as_str(), b"m", plain()).await;
    }
    wait_for_message_count(&ch, q.name().as_str(), 3).await;
    let _c = consume(&ch, q.name().as_str(), false).await;
    let again = passive(&ch, q.name().as_str()).await;
    assert_eq!(again.consumer_count(), 1);
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_and_dies_with_it() {
    let b = start().await;
    let (owner, ch) = b.channel().await;
    let q = unique("excl");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let (other, och) = b.channel().await;
    let r = och
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    expect_channel_error(&other, &och, r, 405).await;
    owner.close(200, "bye".into()).await.unwrap();
    let och = other.create_channel().await.unwrap();
    wait_until_queue_expired(&other, &q).await;
    drop(och);
}

#[tokio::test]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    let q = unique("auto");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let c = consume(&ch, &q, false).await;
    ch.basic_cancel(c.tag().as_str().into(), BasicCancelOptions::default())
        .await
        .unwrap();
    wait_until_queue_expired(&conn, &q).await;
}

#[tokio::test]
async fn purge_and_delete_report_counts_and_delete_conditions_hold() {
    let (_b, conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    for _ in 0..4 {
        publish(&ch, "", &q, b"m", plain()).await;
    }
    wait_for_message_count(&ch, &q, 4).await;
    assert_eq!(
        ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap(),
        4
    );
    publish(&ch, "", &q, b"m", plain()).await;
    wait_for_message_count(&ch, &q, 1).await;
    let r = ch
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    expect_channel_error(&conn, &ch, r, 406).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn inequivalent_queue_redeclare_is_406() {
    let (_b, conn, ch) = open().await;
    let q = unique("q");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let r = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let text = expect_channel_error(&conn, &ch, r, 406).await;
    assert_prefix(&text, "PRECONDITION_FAILED - inequivalent arg 'durable'");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

// ------------------------------------------------------------------ basic

#[tokio::test]
async fn properties_and_headers_survive_the_round_trip() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    let mut headers = FieldTable::default();
    headers.insert("s".into(), AMQPValue::LongString("text".into()));
    headers.insert("i".into(), AMQPValue::LongInt(-7));
    headers.insert("l".into(), AMQPValue::LongLongInt(1 << 40));
    headers.insert("b".into(), AMQPValue::Boolean(true));
    headers.insert("d".into(), AMQPValue::Double(1.5));
    headers.insert("t".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert(
        "n".into(),
        AMQPValue::FieldTable(table([("inner", int(1))])),
    );
    headers.insert("a".into(), texts(&["x", "y"]));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_content_encoding("identity".into())
        .with_headers(headers.clone())
        .with_delivery_mode(1)
        .with_priority(3)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("id-1".into())
        .with_timestamp(1_700_000_001)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("cluster".into());
    publish(&ch, "", &q, b"payload", props.clone()).await;
    let mut c = consume(&ch, &q, true).await;
    let d = next(&mut c).await;
    assert_eq!(d.data, b"payload");
    assert_eq!(d.properties, props);
}

#[tokio::test]
async fn get_reports_remaining_count_and_empty() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
    }
    wait_for_message_count(&ch, &q, 3).await;
    let m = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.message_count, 2);
    assert_eq!(m.delivery.data, b"0");
    drain(&ch, &q).await;
    assert!(ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn nack_with_requeue_puts_messages_back_in_order_marked_redelivered() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
    }
    let mut c = consume(&ch, &q, false).await;
    let mut last = 0;
    for _ in 0..3 {
        last = next(&mut c).await.delivery_tag;
    }
    ch.basic_nack(
        last,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    for i in 0..3 {
        let d = next(&mut c).await;
        assert!(d.redelivered);
        assert_eq!(body(&d), format!("{i}"));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
}

#[tokio::test]
async fn reject_without_requeue_drops_and_acking_twice_is_406() {
    let (_b, conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    publish(&ch, "", &q, b"x", plain()).await;
    let d = get_with(&ch, &q, false).await.expect("a message");
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    sync(&ch).await.unwrap();
    assert_eq!(passive(&ch, &q).await.message_count(), 0);
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let r = sync(&ch).await;
    expect_channel_error(&conn, &ch, r, 406).await;
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
    }
    let worker = conn.create_channel().await.unwrap();
    let mut c = consume(&worker, &q, false).await;
    for _ in 0..3 {
        next(&mut c).await;
    }
    worker.close(200, "bye".into()).await.unwrap();
    wait_for_message_count(&ch, &q, 3).await;
    let d = get_with(&ch, &q, true).await.unwrap();
    assert!(d.redelivered);
    assert_eq!(body(&d), "0");
}

#[tokio::test]
async fn consumers_share_a_queue_round_robin() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    let mut a = consume(&ch, &q, true).await;
    let mut b2 = consume(&ch, &q, true).await;
    for i in 0..4 {
        publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
    }
    let got_a = vec![body(&next(&mut a).await), body(&next(&mut a).await)];
    let got_b = vec![body(&next(&mut b2).await), body(&next(&mut b2).await)];
    assert_eq!(got_a, vec!["0", "2"]);
    assert_eq!(got_b, vec!["1", "3"]);
}

#[tokio::test]
async fn consumer_tags_are_generated_and_an_exclusive_consumer_locks_the_queue() {
    let (_b, conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    let c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(c.tag().as_str().starts_with("amq.ctag-"), "{}", c.tag());
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_channel_error(&conn, &ch, r, 403).await;
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    let mut c = consume(&ch, &q, true).await;
    let other = _conn.create_channel().await.unwrap();
    other
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    use futures::StreamExt;
    let end = within("the consumer to end", c.next()).await;
    assert!(end.is_none(), "consumer still delivering: {end:?}");
}

#[tokio::test]
async fn mandatory_unroutable_publish_is_returned_with_312() {
    let (_b, _conn, ch) = open().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            unique("nobody").as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            plain(),
        )
        .await
        .unwrap();
    let confirmation = within("the confirm", confirm).await.unwrap();
    let returned = confirmation.take_message().expect("a basic.return");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.data, b"lost");
}

// -------------------------------------------------------------------- qos

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    for i in 0..5 {
        publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
    }
    let mut c = consume(&ch, &q, false).await;
    let first = next(&mut c).await;
    let _second = next(&mut c).await;
    // Exactly two are out; three wait in the queue.
    wait_for_message_count(&ch, &q, 3).await;
    first.ack(BasicAckOptions::default()).await.unwrap();
    let third = next(&mut c).await;
    assert_eq!(body(&third), "2");
    wait_for_message_count(&ch, &q, 2).await;
}

// ------------------------------------------------------- confirms and tx

#[tokio::test]
async fn confirms_ack_every_publish() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..50 {
        let c = publish(&ch, "", &q, format!("{i}").as_bytes(), plain()).await;
        assert!(c.is_ack());
    }
    wait_for_message_count(&ch, &q, 50).await;
}

#[tokio::test]
async fn tx_and_confirm_do_not_mix() {
    let (_b, conn, ch) = open().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = ch.tx_select().await;
    expect_channel_error(&conn, &ch, r, 406).await;
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    let r = ch.confirm_select(ConfirmSelectOptions::default()).await;
    expect_channel_error(&conn, &ch, r, 406).await;
}

#[tokio::test]
async fn transactions_hold_publishes_and_acks_until_commit() {
    let (_b, _conn, ch) = open().await;
    let q = unique("q");
    declare(&ch, &q, FieldTable::default()).await;
    publish(&ch, "", &q, b"first", plain()).await;
    let tx = _conn.create_channel().await.unwrap();
    tx.tx_select().await.unwrap();
    let d = get_with(&tx, &q, false).await.unwrap();
    tx.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    tx.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"second",
        plain(),
    )
    .await
    .unwrap();
    sync(&tx).await.unwrap();
    // Nothing happened yet: the ack and the publish wait for commit.
    assert_eq!(passive(&ch, &q).await.message_count(), 0);
    tx.tx_rollback().await.unwrap();
    assert_eq!(passive(&ch, &q).await.message_count(), 0);
    tx.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"third",
        plain(),
    )
    .await
    .unwrap();
    tx.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    tx.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["third"]);
}

#[tokio::test]
async fn immediate_publish_is_540_and_closes_the_connection() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = match ch
        .basic_publish(
            "".into(),
            "x".into(),
            BasicPublishOptions {
                immediate: true,
                ..Default::default()
            },
            b"x",
            plain(),
        )
        .await
    {
        Ok(c) => within("the outcome", c).await,
        Err(e) => Err(e),
    };
    hard_error(&conn, r, 540).await;
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_404() {
    let (_b, conn, ch) = open().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = try_publish(&ch, &unique("missing"), "k", b"x", plain()).await;
    expect_channel_error(&conn, &ch, r, 404).await;
}
