//! basic.publish / get / ack / nack / reject / recover: properties and
//! headers preserved, get-ok counts, delivery tags, requeue order and the
//! redelivered flag, mandatory returns, and the ack errors.

use lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicPublishOptions, BasicRecoverOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable};
use lapin::BasicProperties;
use warren_tests::unique;

use crate::support::*;

/// A header table with a value of every field type lapin can send.
fn headers_of_every_type() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), text("value"));
    nested.insert("n".into(), AMQPValue::LongInt(-7));
    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        text("two"),
        AMQPValue::Boolean(false),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void])),
    ]);
    table([
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-64_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        ("longstr", text("a long string with ünïcödé")),
        ("empty", text("")),
        ("array", AMQPValue::FieldArray(array)),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("void", AMQPValue::Void),
    ])
}

/// All 14 basic properties set.
fn every_property() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers_of_every_type())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_600_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into())
}

#[tokio::test]
async fn consume_preserves_every_property_header_type_and_the_body() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-props").await;
    let body_bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    publish_with(
        &ch,
        "",
        &q,
        &body_bytes,
        every_property(),
        BasicPublishOptions::default(),
    )
    .await
    .unwrap();
    let mut consumer = consume_no_ack(&ch, &q).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.properties, every_property());
    assert_eq!(d.data, body_bytes);
    assert!(!d.redelivered);
}

#[tokio::test]
async fn get_preserves_every_property() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-props-get").await;
    publish_with(
        &ch,
        "",
        &q,
        b"with properties",
        every_property(),
        BasicPublishOptions::default(),
    )
    .await
    .unwrap();
    let m = get(&ch, &q, true).await.expect("the message");
    assert_eq!(m.delivery.properties, every_property());
    assert_eq!(body(&m.delivery), "with properties");
}

#[tokio::test]
async fn a_message_without_properties_arrives_without_properties() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-no-props").await;
    publish(&ch, "", &q, "").await;
    let m = get(&ch, &q, true).await.expect("the message");
    assert_eq!(m.delivery.properties, BasicProperties::default());
    assert!(m.delivery.data.is_empty());
}

#[tokio::test]
async fn get_ok_counts_the_messages_left_and_get_empty_ends() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-get").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    for (i, (want, left)) in [("m1", 2), ("m2", 1), ("m3", 0)].into_iter().enumerate() {
        let m = get(&ch, &q, true).await.expect("a message");
        assert_eq!(body(&m.delivery), want);
        assert_eq!(m.message_count, left);
        assert_eq!(m.delivery.delivery_tag, i as u64 + 1);
        assert_eq!(m.delivery.exchange.as_str(), "");
        assert_eq!(m.delivery.routing_key.as_str(), q);
        assert!(!m.delivery.redelivered);
    }
    assert!(get(&ch, &q, true).await.is_none());
}

#[tokio::test]
async fn get_of_a_missing_queue_is_404() {
    let (_b, conn, ch) = setup().await;
    let q = unique("missing-q");
    let r = ch.basic_get(q.as_str().into(), Default::default()).await;
    let text = expect_channel_closed(&conn, &ch, r.map(|m| m.is_some()), 404).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

#[tokio::test]
async fn delivery_tags_count_per_channel_across_get_and_consume() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-tags").await;
    publish_all(&ch, &q, &["m1", "m2", "m3", "m4"]).await;
    let a = get(&ch, &q, false).await.unwrap();
    let b = get(&ch, &q, false).await.unwrap();
    assert_eq!((a.delivery.delivery_tag, b.delivery.delivery_tag), (1, 2));
    // Another channel starts again at 1.
    let other = conn.create_channel().await.unwrap();
    let c = get(&other, &q, false).await.unwrap();
    assert_eq!(c.delivery.delivery_tag, 1);
    let mut consumer = consume(&ch, &q).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!((body(&d), d.delivery_tag), ("m4".to_string(), 3));
}

// --------------------------------------------------------------- ack & co

#[tokio::test]
async fn acked_messages_are_gone_and_unacked_ones_return_when_the_channel_closes() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-ack").await;
    publish_all(&ch, &q, &["acked", "unacked"]).await;
    let getter = conn.create_channel().await.unwrap();
    let m1 = get(&getter, &q, false).await.unwrap();
    let _m2 = get(&getter, &q, false).await.unwrap();
    m1.delivery.ack(BasicAckOptions::default()).await.unwrap();
    getter.close(200, "OK".into()).await.unwrap();
    let back = get(&ch, &q, true).await.expect("the unacked message");
    assert_eq!(body(&back.delivery), "unacked");
    assert!(back.delivery.redelivered);
    assert!(get(&ch, &q, true).await.is_none());
}

#[tokio::test]
async fn ack_multiple_acks_everything_up_to_the_tag() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-ack-multiple").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let getter = conn.create_channel().await.unwrap();
    for _ in 0..3 {
        get(&getter, &q, false).await.unwrap();
    }
    getter
        .basic_ack(2, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    getter.close(200, "OK".into()).await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["m3"]);
}

#[tokio::test]
async fn ack_multiple_with_tag_0_acks_everything_outstanding() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-ack-all").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let getter = conn.create_channel().await.unwrap();
    for _ in 0..3 {
        get(&getter, &q, false).await.unwrap();
    }
    getter
        .basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    sync(&getter).await.unwrap();
    getter.close(200, "OK".into()).await.unwrap();
    assert_eq!(drain(&ch, &q).await, Vec::<String>::new());
}

#[tokio::test]
async fn nack_multiple_with_requeue_puts_messages_back_in_order_marked_redelivered() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-nack").await;
    publish_all(&ch, &q, &["m1", "m2", "m3", "m4"]).await;
    for _ in 0..3 {
        get(&ch, &q, false).await.unwrap();
    }
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while let Some(m) = get(&ch, &q, true).await {
        got.push((body(&m.delivery), m.delivery.redelivered));
    }
    assert_eq!(
        got,
        vec![
            ("m1".to_string(), true),
            ("m2".to_string(), true),
            ("m3".to_string(), true),
            ("m4".to_string(), false),
        ]
    );
}

#[tokio::test]
async fn nack_without_requeue_drops_the_message() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-nack-drop").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let m1 = get(&ch, &q, false).await.unwrap();
    m1.delivery
        .nack(BasicNackOptions {
            multiple: false,
            requeue: false,
        })
        .await
        .unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["m2"]);
}

#[tokio::test]
async fn reject_with_requeue_puts_the_message_back_at_its_position() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-reject").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let m1 = get(&ch, &q, false).await.unwrap();
    let m2 = get(&ch, &q, false).await.unwrap();
    // Rejected in reverse order, they still come back in publish order,
    // ahead of the message never delivered.
    m2.delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    m1.delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = get(&ch, &q, true).await {
        got.push((body(&m.delivery), m.delivery.redelivered));
    }
    assert_eq!(
        got,
        vec![
            ("m1".to_string(), true),
            ("m2".to_string(), true),
            ("m3".to_string(), false),
        ]
    );
}

#[tokio::test]
async fn reject_without_requeue_drops_the_message() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-reject-drop").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let m1 = get(&ch, &q, false).await.unwrap();
    m1.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["m2"]);
}

#[tokio::test]
async fn ack_of_an_unknown_delivery_tag_closes_the_channel_with_406() {
    let (_b, conn, ch) = setup().await;
    let watch = ErrorWatch::new(&conn);
    ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 99");
}

#[tokio::test]
async fn acking_a_delivery_twice_closes_the_channel_with_406() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-double-ack").await;
    publish(&ch, "", &q, "m").await;
    let m = get(&ch, &q, false).await.unwrap();
    let tag = m.delivery.delivery_tag;
    ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    let watch = ErrorWatch::new(&conn);
    ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
    );
}

#[tokio::test]
async fn acking_a_no_ack_delivery_closes_the_channel_with_406() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-ack-no-ack").await;
    publish(&ch, "", &q, "m").await;
    let m = get(&ch, &q, true).await.unwrap();
    let watch = ErrorWatch::new(&conn);
    ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 1");
}

#[tokio::test]
async fn reject_and_nack_of_an_unknown_tag_close_the_channel_with_406() {
    let (_b, conn, ch) = setup().await;
    let watch = ErrorWatch::new(&conn);
    ch.basic_reject(5, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 5");

    let ch = conn.create_channel().await.unwrap();
    let watch = ErrorWatch::new(&conn);
    ch.basic_nack(
        6,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    )
    .await
    .unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 6");
}

#[tokio::test]
async fn an_unknown_tag_is_406_even_with_an_ack_outstanding() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-unknown-tag").await;
    publish(&ch, "", &q, "m").await;
    let _m = get(&ch, &q, false).await.unwrap();
    let watch = ErrorWatch::new(&conn);
    ch.basic_ack(2, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    let text = watch.channel_closed(&conn, &ch, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 2");
    // The channel closing put the message back.
    let ch = conn.create_channel().await.unwrap();
    let back = get(&ch, &q, true).await.expect("the requeued message");
    assert!(back.delivery.redelivered);
}

// ------------------------------------------------------------------ recover

#[tokio::test]
async fn recover_with_requeue_redelivers_unacked_messages_marked_redelivered() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-recover").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let mut consumer = consume(&ch, &q).await;
    let first = next_deliveries(&mut consumer, 2).await;
    assert_eq!(
        bodies_redelivered(&first),
        vec![("m1".to_string(), false), ("m2".to_string(), false)]
    );
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let again = next_deliveries(&mut consumer, 2).await;
    assert_eq!(
        bodies_redelivered(&again),
        vec![("m1".to_string(), true), ("m2".to_string(), true)]
    );
    // The redeliveries have new tags; the old ones are gone.
    assert_eq!(
        again.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        vec![3, 4]
    );
    for d in &again {
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    sync(&ch).await.unwrap();
    assert_eq!(counts(&ch, &q).await, (0, 1));
}

// ---------------------------------------------------------------- mandatory

#[tokio::test]
async fn mandatory_unroutable_message_comes_back_with_312_no_route() {
    // Without confirms (with them, see the confirm tests).
    let (_b, _conn, ch) = setup_plain().await;
    let q = unique("no-such-queue");
    let props = BasicProperties::default()
        .with_message_id("returned-1".into())
        .with_headers(table([("h", text("v"))]));
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    publish_with(&ch, "", &q, b"nobody home", props.clone(), options)
        .await
        .unwrap();
    // The return is sent before anything the channel handles later.
    sync(&ch).await.unwrap();
    let returned = ch.wait_for_confirms().await.unwrap();
    assert_eq!(returned.len(), 1, "one basic.return: {returned:?}");
    let r = &returned[0];
    assert_eq!(r.reply_code, 312);
    assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(r.delivery.exchange.as_str(), "");
    assert_eq!(r.delivery.routing_key.as_str(), q);
    assert_eq!(r.delivery.properties, props);
    assert_eq!(r.delivery.data, b"nobody home");
}

#[tokio::test]
async fn mandatory_routable_message_is_not_returned() {
    let (_b, _conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-mandatory").await;
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    publish_with(&ch, "", &q, b"routed", BasicProperties::default(), options)
        .await
        .unwrap();
    sync(&ch).await.unwrap();
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(drain(&ch, &q).await, vec!["routed"]);
}

#[tokio::test]
async fn non_mandatory_unroutable_message_is_dropped_silently() {
    let (_b, _conn, ch) = setup_plain().await;
    publish(&ch, "amq.direct", &unique("no-binding"), "dropped").await;
    sync(&ch).await.unwrap();
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert!(ch.status().connected());
}

#[tokio::test]
async fn immediate_publish_closes_the_connection_with_540() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-immediate").await;
    let options = BasicPublishOptions {
        immediate: true,
        ..BasicPublishOptions::default()
    };
    let watch = ErrorWatch::new(&conn);
    publish_with(&ch, "", &q, b"now", BasicProperties::default(), options)
        .await
        .unwrap();
    let text = watch.connection_closed(&conn, 540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - immediate=true");
}
