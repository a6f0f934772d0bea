//! basic.qos prefetch-count: per consumer (global=false) and per channel
//! (global=true), as RabbitMQ applies them.
//!
//! "Exactly N delivered" is checked without waiting for something not to
//! happen: once the consumers hold their N, the rest stay ready, and the
//! ready count in a passive declare-ok says so.

use lapin::options::{BasicAckOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions};

use crate::support::*;

const FIVE: &[&str] = &["m1", "m2", "m3", "m4", "m5"];

#[tokio::test]
async fn prefetch_count_limits_unacked_deliveries_to_a_consumer() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch").await;
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .unwrap();
    let mut consumer = consume(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    let first = next_deliveries(&mut consumer, 2).await;
    assert_eq!(bodies(&first), vec!["m1", "m2"]);
    assert_eq!(counts(&ch, &q).await, (3, 1));

    // Each ack frees one slot: exactly one more arrives.
    first[0].ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(body(&next_delivery(&mut consumer).await), "m3");
    assert_eq!(counts(&ch, &q).await, (2, 1));

    // A reject frees a slot too.
    first[1]
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    assert_eq!(body(&next_delivery(&mut consumer).await), "m4");
    assert_eq!(counts(&ch, &q).await, (1, 1));
}

#[tokio::test]
async fn ack_multiple_frees_as_many_slots_as_it_acks() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-multi").await;
    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    let first = next_deliveries(&mut consumer, 2).await;
    first[1]
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(
        bodies(&next_deliveries(&mut consumer, 2).await),
        vec!["m3", "m4"]
    );
    assert_eq!(counts(&ch, &q).await, (1, 1));
}

#[tokio::test]
async fn per_consumer_prefetch_applies_to_each_consumer_of_the_channel() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-each").await;
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .unwrap();
    let mut a = consume(&ch, &q).await;
    let mut b = consume(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    next_deliveries(&mut a, 2).await;
    next_deliveries(&mut b, 2).await;
    assert_eq!(counts(&ch, &q).await, (1, 2));
}

#[tokio::test]
async fn global_prefetch_count_limits_the_whole_channel() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-global").await;
    ch.basic_qos(2, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut a = consume(&ch, &q).await;
    let mut b = consume(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    // Round robin: one each, and then the channel's limit of 2 is reached.
    let da = next_delivery(&mut a).await;
    let db = next_delivery(&mut b).await;
    assert_eq!((body(&da), body(&db)), ("m1".to_string(), "m2".to_string()));
    assert_eq!(counts(&ch, &q).await, (3, 2));
    da.ack(BasicAckOptions::default()).await.unwrap();
    // One slot for the channel: exactly one more message, m3, to either.
    let d = within("a delivery to either consumer", async {
        tokio::select! {
            d = next_delivery(&mut a) => d,
            d = next_delivery(&mut b) => d,
        }
    })
    .await;
    assert_eq!(body(&d), "m3");
    assert_eq!(counts(&ch, &q).await, (2, 2));
}

#[tokio::test]
async fn prefetch_on_one_channel_does_not_limit_another() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-other-channel").await;
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let mut limited = consume(&ch, &q).await;
    let mut unlimited = consume(&other, &q).await;
    publish_all(&ch, &q, FIVE).await;
    assert_eq!(body(&next_delivery(&mut limited).await), "m1");
    // Everything else goes to the consumer without a limit.
    assert_eq!(
        bodies(&next_deliveries(&mut unlimited, 4).await),
        vec!["m2", "m3", "m4", "m5"]
    );
    assert_eq!(counts(&ch, &q).await, (0, 2));
}

#[tokio::test]
async fn prefetch_0_means_no_limit() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-0").await;
    ch.basic_qos(0, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    assert_eq!(bodies(&next_deliveries(&mut consumer, 5).await), FIVE);
    assert_eq!(counts(&ch, &q).await, (0, 1));
}

#[tokio::test]
async fn no_ack_consumers_ignore_the_prefetch_count() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-no-ack").await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume_no_ack(&ch, &q).await;
    publish_all(&ch, &q, FIVE).await;
    assert_eq!(bodies(&next_deliveries(&mut consumer, 5).await), FIVE);
}

#[tokio::test]
async fn basic_get_ignores_the_prefetch_count() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-get").await;
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .unwrap();
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    for want in ["m1", "m2", "m3"] {
        let m = get(&ch, &q, false)
            .await
            .expect("a message despite prefetch 1");
        assert_eq!(body(&m.delivery), want);
    }
}

#[tokio::test]
async fn prefetch_limits_redeliveries_too() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-prefetch-redeliver").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish_all(&ch, &q, FIVE).await;
    // Another channel takes all five and goes away: they are requeued.
    let grabber = conn.create_channel().await.unwrap();
    let mut grab = consume(&grabber, &q).await;
    next_deliveries(&mut grab, 5).await;
    grabber.close(200, "OK".into()).await.unwrap();

    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q).await;
    let ds = next_deliveries(&mut consumer, 2).await;
    assert_eq!(
        bodies_redelivered(&ds),
        vec![("m1".to_string(), true), ("m2".to_string(), true)]
    );
    assert_eq!(counts(&ch, &q).await, (3, 1));
}

#[tokio::test]
async fn prefetch_size_other_than_0_closes_the_connection_with_540() {
    // lapin always sends prefetch-size 0, so this one goes through the raw
    // client.
    use warren_protocol::{BasicQos, Method};
    use warren_tests::raw::RawClient;
    let b = warren_tests::start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    c.send(
        1,
        Method::BasicQos(BasicQos {
            prefetch_size: 1024,
            prefetch_count: 10,
            global: false,
        }),
    )
    .await;
    let text = c.expect_connection_close(540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (1024)");
}
