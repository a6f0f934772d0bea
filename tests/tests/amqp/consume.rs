//! basic.consume / cancel: consumer tags, exclusive consumers, round robin,
//! the server-sent cancel, and requeue when a consumer's channel closes.

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, QueueDeleteOptions,
};
use warren_tests::unique;

use crate::support::*;

#[tokio::test]
async fn consumer_gets_messages_with_its_generated_tag() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-consume").await;
    let mut consumer = consume(&ch, &q).await;
    let tag = consumer.tag();
    assert!(
        tag.as_str().starts_with("amq.ctag-"),
        "generated tag {tag:?}"
    );
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let ds = next_deliveries(&mut consumer, 2).await;
    assert_eq!(bodies(&ds), vec!["m1", "m2"]);
    for (i, d) in ds.iter().enumerate() {
        assert_eq!(d.delivery_tag, i as u64 + 1);
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(!d.redelivered);
    }
}

#[tokio::test]
async fn messages_published_before_the_consumer_are_delivered_to_it() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-backlog").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let mut consumer = consume_no_ack(&ch, &q).await;
    assert_eq!(
        bodies(&next_deliveries(&mut consumer, 3).await),
        vec!["m1", "m2", "m3"]
    );
    sync(&ch).await.unwrap();
    assert_eq!(counts(&ch, &q).await, (0, 1));
}

#[tokio::test]
async fn a_given_consumer_tag_is_used() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-tagged").await;
    let mut consumer = consume_with(&ch, &q, "my-tag", BasicConsumeOptions::default()).await;
    assert_eq!(consumer.tag().as_str(), "my-tag");
    publish(&ch, "", &q, "m").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "m");
}

#[tokio::test]
async fn the_same_tag_on_two_channels_is_fine() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-same-tag").await;
    let ch2 = conn.create_channel().await.unwrap();
    let _c1 = consume_with(&ch, &q, "shared-tag", BasicConsumeOptions::default()).await;
    let _c2 = consume_with(&ch2, &q, "shared-tag", BasicConsumeOptions::default()).await;
    assert_eq!(counts(&ch, &q).await, (0, 2));
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_closes_the_connection_with_530() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-reuse-tag").await;
    let _first = consume_with(&ch, &q, "dup", BasicConsumeOptions::default()).await;
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "dup".into(),
            Default::default(),
            no_args(),
        )
        .await;
    let text = expect_connection_closed(&conn, r.map(|c| c.tag()), 530).await;
    assert_eq!(text, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'");
}

#[tokio::test]
async fn consume_from_a_missing_queue_is_404() {
    let (_b, conn, ch) = setup().await;
    let q = unique("missing-q");
    let r = ch
        .basic_consume(q.as_str().into(), "".into(), Default::default(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r.map(|c| c.tag()), 404).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

#[tokio::test]
async fn exclusive_consume_while_another_consumer_exists_is_403() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-excl-consume").await;
    let other = conn.create_channel().await.unwrap();
    let _existing = consume(&other, &q).await;
    let options = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let r = ch
        .basic_consume(q.as_str().into(), "".into(), options, no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r.map(|c| c.tag()), 403).await;
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
    );
}

#[tokio::test]
async fn consume_while_an_exclusive_consumer_exists_is_403() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-excl-consumer").await;
    let other = conn.create_channel().await.unwrap();
    let options = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let _exclusive = consume_with(&other, &q, "", options).await;
    let r = ch
        .basic_consume(q.as_str().into(), "".into(), Default::default(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r.map(|c| c.tag()), 403).await;
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
    );
}

#[tokio::test]
async fn once_the_exclusive_consumer_cancels_others_may_consume() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-excl-cancel").await;
    let options = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let exclusive = consume_with(&ch, &q, "", options).await;
    ch.basic_cancel(exclusive.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    let mut consumer = consume(&ch, &q).await;
    publish(&ch, "", &q, "m").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "m");
}

#[tokio::test]
async fn two_consumers_take_turns() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-round-robin").await;
    let ch_a = conn.create_channel().await.unwrap();
    let ch_b = conn.create_channel().await.unwrap();
    let mut a = consume(&ch_a, &q).await;
    let mut b = consume(&ch_b, &q).await;
    publish_all(&ch, &q, &["m1", "m2", "m3", "m4", "m5", "m6"]).await;
    assert_eq!(
        bodies(&next_deliveries(&mut a, 3).await),
        vec!["m1", "m3", "m5"]
    );
    assert_eq!(
        bodies(&next_deliveries(&mut b, 3).await),
        vec!["m2", "m4", "m6"]
    );
}

#[tokio::test]
async fn cancel_stops_deliveries_and_ends_the_consumer_stream() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-cancel").await;
    let mut consumer = consume_no_ack(&ch, &q).await;
    publish(&ch, "", &q, "before").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "before");
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    consumer_ends(&mut consumer).await;
    publish(&ch, "", &q, "after").await;
    assert_eq!(counts(&ch, &q).await, (1, 0));
}

#[tokio::test]
async fn cancel_keeps_unacked_messages_with_the_channel() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-cancel-unacked").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_ch, &q).await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let ds = next_deliveries(&mut consumer, 2).await;
    consumer_ch
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // Not requeued by the cancel...
    assert_eq!(counts(&ch, &q).await, (0, 0));
    // ...and still ackable on the channel.
    ds[0].ack(BasicAckOptions::default()).await.unwrap();
    sync(&consumer_ch).await.unwrap();
    // Closing the channel returns only the one left unacked.
    consumer_ch.close(200, "OK".into()).await.unwrap();
    let back = get(&ch, &q, true).await.expect("m2 back");
    assert_eq!(body(&back.delivery), "m2");
    assert!(back.delivery.redelivered);
    assert!(get(&ch, &q, true).await.is_none());
}

#[tokio::test]
async fn deleting_the_queue_cancels_its_consumers_from_the_server() {
    let (_b, conn, ch) = setup().await;
    let q = shared_queue(&ch, "q-deleted-under-consumer").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_ch, &q).await;
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    // lapin advertises consumer_cancel_notify: the broker sends
    // basic.cancel and lapin ends the stream.
    consumer_ends(&mut consumer).await;
    // The channel itself stays open.
    assert!(consumer_ch.status().connected());
    sync(&consumer_ch).await.unwrap();
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order_marked_redelivered() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-requeue-on-close").await;
    publish_all(&ch, &q, &["m1", "m2", "m3", "m4"]).await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_ch, &q).await;
    let ds = next_deliveries(&mut consumer, 4).await;
    // m2 is acked; m1, m3 and m4 are still unacked when the channel closes.
    ds[1].ack(BasicAckOptions::default()).await.unwrap();
    consumer_ch.close(200, "OK".into()).await.unwrap();

    let mut again = consume(&ch, &q).await;
    let back = next_deliveries(&mut again, 3).await;
    assert_eq!(
        bodies_redelivered(&back),
        vec![
            ("m1".to_string(), true),
            ("m3".to_string(), true),
            ("m4".to_string(), true),
        ]
    );
}

#[tokio::test]
async fn closing_a_connection_requeues_its_unacked_messages() {
    let (b, _conn, ch) = setup().await;
    let q = shared_queue(&ch, "q-requeue-on-conn-close").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let (other, other_ch) = b.channel().await;
    let mut consumer = consume(&other_ch, &q).await;
    next_deliveries(&mut consumer, 2).await;
    other.close(200, "OK".into()).await.unwrap();
    let mut again = consume(&ch, &q).await;
    let back = next_deliveries(&mut again, 2).await;
    assert_eq!(
        bodies_redelivered(&back),
        vec![("m1".to_string(), true), ("m2".to_string(), true)]
    );
    delete_queue(&ch, &q).await;
}

#[tokio::test]
async fn no_ack_deliveries_are_not_requeued_when_the_channel_closes() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-no-ack").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume_no_ack(&consumer_ch, &q).await;
    next_deliveries(&mut consumer, 2).await;
    consumer_ch.close(200, "OK".into()).await.unwrap();
    assert_eq!(counts(&ch, &q).await, (0, 0));
}

#[tokio::test]
async fn cancelling_an_unknown_consumer_tag_succeeds() {
    let (_b, _conn, ch) = setup().await;
    ch.basic_cancel("no-such-consumer".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(ch.status().connected());
    sync(&ch).await.unwrap();
}
