//! Publisher confirms: acks, the return-then-ack of an unroutable mandatory
//! message, a nack for a message a queue refuses, and the 406 for mixing
//! confirms with transactions.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Confirmation};
use warren_tests::unique;

use crate::support::*;

/// `setup()` already puts its channel in confirm mode.
async fn confirm_channel() -> (warren_tests::TestBroker, lapin::Connection, lapin::Channel) {
    setup().await
}

#[tokio::test]
async fn without_confirm_select_publishes_are_not_confirmed() {
    let (_b, _conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-no-confirm").await;
    assert_eq!(publish(&ch, "", &q, "m").await, Confirmation::NotRequested);
    assert!(!ch.status().confirm());
}

#[tokio::test]
async fn every_publish_on_a_confirm_channel_is_acked() {
    let (_b, _conn, ch) = confirm_channel().await;
    assert!(ch.status().confirm());
    let q = exclusive_queue(&ch, "q-confirm").await;
    for i in 0..10 {
        let c = publish(&ch, "", &q, &format!("m{i}")).await;
        assert_eq!(c, Confirmation::Ack(None), "confirmation of m{i}");
    }
    assert_eq!(message_count(&ch, &q).await, 10);
}

#[tokio::test]
async fn many_outstanding_publishes_are_all_acked() {
    let (_b, _conn, ch) = confirm_channel().await;
    let q = exclusive_queue(&ch, "q-confirm-many").await;
    let mut pending = Vec::new();
    for i in 0..200 {
        let confirm = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        pending.push(confirm);
    }
    for (i, confirm) in pending.into_iter().enumerate() {
        let c = within("a confirm", confirm).await.unwrap();
        assert_eq!(c, Confirmation::Ack(None), "confirmation of m{i}");
    }
    assert!(within("wait_for_confirms", ch.wait_for_confirms())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(message_count(&ch, &q).await, 200);
}

#[tokio::test]
async fn unroutable_messages_are_acked_too() {
    let (_b, _conn, ch) = confirm_channel().await;
    let c = publish(&ch, "amq.direct", &unique("no-binding"), "dropped").await;
    assert_eq!(c, Confirmation::Ack(None));
}

#[tokio::test]
async fn unroutable_mandatory_message_is_returned_then_acked() {
    let (_b, _conn, ch) = confirm_channel().await;
    let q = unique("no-such-queue");
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let props = BasicProperties::default().with_correlation_id("c-1".into());
    let c = publish_with(&ch, "", &q, b"back to sender", props.clone(), options)
        .await
        .unwrap();
    let Confirmation::Ack(Some(returned)) = c else {
        panic!("expected an ack carrying the returned message, got {c:?}");
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "");
    assert_eq!(returned.delivery.routing_key.as_str(), q);
    assert_eq!(returned.delivery.properties, props);
    assert_eq!(returned.delivery.data, b"back to sender");

    // The next, routable, publish is a plain ack.
    let q = exclusive_queue(&ch, "q-after-return").await;
    let c = publish_with(&ch, "", &q, b"routed", BasicProperties::default(), options)
        .await
        .unwrap();
    assert_eq!(c, Confirmation::Ack(None));
}

#[tokio::test]
async fn a_message_the_queue_refuses_is_nacked() {
    let (_b, _conn, ch) = confirm_channel().await;
    let q = unique("q-reject-publish");
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    declare_queue(
        &ch,
        &q,
        options,
        table([
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await;
    let publish_one = |body: &'static str| {
        publish_with(
            &ch,
            "",
            &q,
            body.as_bytes(),
            BasicProperties::default(),
            BasicPublishOptions::default(),
        )
    };
    assert_eq!(publish_one("fits").await.unwrap(), Confirmation::Ack(None));
    assert_eq!(
        publish_one("overflows").await.unwrap(),
        Confirmation::Nack(None)
    );
    assert_eq!(drain(&ch, &q).await, vec!["fits"]);
    // The channel carries on.
    assert_eq!(
        publish(&ch, "", &q, "fits again").await,
        Confirmation::Ack(None)
    );
}

#[tokio::test]
async fn confirm_select_twice_is_fine() {
    let (_b, _conn, ch) = confirm_channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = exclusive_queue(&ch, "q-confirm-twice").await;
    assert_eq!(publish(&ch, "", &q, "m").await, Confirmation::Ack(None));
}

#[tokio::test]
async fn tx_select_on_a_confirm_channel_is_406() {
    let (_b, conn, ch) = confirm_channel().await;
    let r = ch.tx_select().await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    );
}

#[tokio::test]
async fn confirm_select_on_a_tx_channel_is_406() {
    let (_b, conn, ch) = setup_plain().await;
    ch.tx_select().await.unwrap();
    let r = ch.confirm_select(ConfirmSelectOptions::default()).await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    );
}

#[tokio::test]
async fn a_channel_error_fails_the_outstanding_confirms() {
    let (_b, conn, ch) = confirm_channel().await;
    let x = unique("missing-x");
    let r = publish_with(
        &ch,
        &x,
        "k",
        b"m",
        BasicProperties::default(),
        BasicPublishOptions::default(),
    )
    .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
}
