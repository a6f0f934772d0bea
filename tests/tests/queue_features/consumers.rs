//! Single active consumer (`x-single-active-consumer`) and consumer
//! priorities (`x-priority` on basic.consume).

use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren_tests::features::*;
use warren_tests::{start, unique};

#[tokio::test]
async fn single_active_consumer_gets_everything_and_the_next_takes_over_on_close() {
    let b = start().await;
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("sac");
    declare(
        &publisher,
        &q,
        table([("x-single-active-consumer", flag(true))]),
    )
    .await;
    let ch_a = conn.create_channel().await.unwrap();
    let ch_b = conn.create_channel().await.unwrap();
    let mut a = consume(&ch_a, &q, false).await;
    let mut b_consumer = consume(&ch_b, &q, false).await;
    // Both are registered (declare-ok counts the waiting one too).
    assert_eq!(passive(&publisher, &q).await.consumer_count(), 2);

    for i in 1..=3 {
        publish(
            &publisher,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // All three go to the first consumer (so none to the second).
    let mut held = Vec::new();
    for i in 1..=3 {
        let d = next(&mut a).await;
        assert_eq!(body(&d), format!("m{i}"));
        held.push(d);
    }
    held[0].acker.ack(BasicAckOptions::default()).await.unwrap();
    held[1].acker.ack(BasicAckOptions::default()).await.unwrap();
    // The active consumer's channel goes away with m3 unacked: m3 is
    // requeued and the waiting consumer becomes active.
    ch_a.close(200, "OK".into()).await.unwrap();
    let d = next(&mut b_consumer).await;
    assert_eq!(body(&d), "m3");
    assert!(d.redelivered);
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
    publish(&publisher, "", &q, b"m4", BasicProperties::default()).await;
    assert_eq!(body(&next(&mut b_consumer).await), "m4");
}

#[tokio::test]
async fn single_active_consumer_fails_over_on_cancel_and_newcomers_wait() {
    let b = start().await;
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("sac-cancel");
    declare(
        &publisher,
        &q,
        table([("x-single-active-consumer", flag(true))]),
    )
    .await;
    let ch = conn.create_channel().await.unwrap();
    let mut first = consume(&ch, &q, true).await;
    let mut second = consume(&ch, &q, true).await;
    publish(&publisher, "", &q, b"to-first", BasicProperties::default()).await;
    assert_eq!(body(&next(&mut first).await), "to-first");
    ch.basic_cancel(first.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // A consumer that arrives now waits behind the second one.
    let mut third = consume(&ch, &q, true).await;
    for body_text in ["s1", "s2"] {
        publish(
            &publisher,
            "",
            &q,
            body_text.as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    assert_eq!(body(&next(&mut second).await), "s1");
    assert_eq!(body(&next(&mut second).await), "s2");
    ch.basic_cancel(second.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    publish(&publisher, "", &q, b"t1", BasicProperties::default()).await;
    assert_eq!(body(&next(&mut third).await), "t1");
}

#[tokio::test]
async fn a_higher_priority_consumer_gets_messages_while_it_has_credit() {
    let b = start().await;
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("consumer-prio");
    declare(&publisher, &q, FieldTable::default()).await;
    // The low-priority consumer registers first; registration order does
    // not matter, priority does.
    let ch_low = conn.create_channel().await.unwrap();
    let mut low = consume(&ch_low, &q, false).await;
    let ch_high = conn.create_channel().await.unwrap();
    ch_high
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let mut high = consume_with(&ch_high, &q, false, table([("x-priority", int(10))])).await;

    for i in 1..=5 {
        publish(
            &publisher,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // Two for the high-priority consumer (its prefetch), the rest to low.
    let h1 = next(&mut high).await;
    let h2 = next(&mut high).await;
    assert_eq!((body(&h1), body(&h2)), ("m1".into(), "m2".into()));
    for i in 3..=5 {
        let d = next(&mut low).await;
        assert_eq!(body(&d), format!("m{i}"));
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    // With credit again, the high-priority consumer is served first again.
    h2.acker
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    for i in 6..=7 {
        publish(
            &publisher,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    assert_eq!(body(&next(&mut high).await), "m6");
    assert_eq!(body(&next(&mut high).await), "m7");
}

#[tokio::test]
async fn a_higher_priority_consumer_without_a_prefetch_limit_takes_everything() {
    let b = start().await;
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("consumer-prio-all");
    declare(&publisher, &q, FieldTable::default()).await;
    let ch = conn.create_channel().await.unwrap();
    let _low = consume_with(&ch, &q, true, table([("x-priority", int(-5))])).await;
    let _default = consume(&ch, &q, true).await;
    let mut high = consume_with(&ch, &q, true, table([("x-priority", int(1))])).await;
    for i in 1..=4 {
        publish(
            &publisher,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // All four to the highest-priority consumer, so none to the others.
    for i in 1..=4 {
        assert_eq!(body(&next(&mut high).await), format!("m{i}"));
    }
}
