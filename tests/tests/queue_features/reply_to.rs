//! Direct reply-to: the `amq.rabbitmq.reply-to` pseudo-queue.

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use warren_tests::features::*;
use warren_tests::{start, unique};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[tokio::test]
async fn rpc_round_trip_through_direct_reply_to() {
    let b = start().await;
    // The server side, on its own connection.
    let (_server_conn, server) = b.channel().await;
    let requests = unique("rpc-requests");
    declare(&server, &requests, FieldTable::default()).await;
    let mut incoming = consume(&server, &requests, true).await;

    let (_client_conn, client) = b.channel().await;
    let mut replies = consume(&client, REPLY_TO, true).await;
    let mut reply_names = Vec::new();
    for n in 1..=2 {
        let props = BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(format!("call-{n}").into());
        publish(
            &client,
            "",
            &requests,
            format!("request {n}").as_bytes(),
            props,
        )
        .await;

        let request = next(&mut incoming).await;
        assert_eq!(body(&request), format!("request {n}"));
        let reply_to = request
            .properties
            .reply_to()
            .as_ref()
            .expect("reply_to on the request")
            .to_string();
        assert!(
            reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 1,
            "the server sees a per-channel name, got {reply_to:?}"
        );
        let props = BasicProperties::default().with_correlation_id(format!("call-{n}").into());
        publish(
            &server,
            "",
            &reply_to,
            format!("reply {n}").as_bytes(),
            props,
        )
        .await;

        let reply = next(&mut replies).await;
        assert_eq!(body(&reply), format!("reply {n}"));
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some(format!("call-{n}").as_str())
        );
        assert_eq!(reply.exchange.as_str(), "");
        assert_eq!(reply.routing_key.as_str(), reply_to);
        reply_names.push(reply_to);
    }
    // One name per requesting channel.
    assert_eq!(reply_names[0], reply_names[1]);
}

#[tokio::test]
async fn consuming_direct_reply_to_with_acks_is_refused() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    let r = ch
        .basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
    assert_eq!(
        reply_text,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );
}

#[tokio::test]
async fn a_second_reply_consumer_on_the_channel_is_refused() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    let _replies = consume(&ch, REPLY_TO, true).await;
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let r = ch
        .basic_consume(REPLY_TO.into(), "".into(), options, FieldTable::default())
        .await;
    let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
    assert_eq!(
        reply_text,
        "PRECONDITION_FAILED - reply consumer already set"
    );
}

#[tokio::test]
async fn publishing_with_direct_reply_to_needs_a_reply_consumer_on_the_channel() {
    let b = start().await;
    let (conn, ch) = b.channel().await;
    let q = unique("rpc-no-consumer");
    declare(&ch, &q, FieldTable::default()).await;
    // A reply consumer on another channel does not count.
    let other = conn.create_channel().await.unwrap();
    let _replies = consume(&other, REPLY_TO, true).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into());
    let r = try_publish(&ch, "", &q, b"request", props).await;
    let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
    assert_eq!(
        reply_text,
        "PRECONDITION_FAILED - fast reply consumer does not exist"
    );
}

#[tokio::test]
async fn a_reply_to_an_unknown_reply_name_is_unroutable() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "amq.rabbitmq.reply-to.no-such-channel".into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            b"late reply",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let confirmation = within("the confirm", confirm).await.unwrap();
    let Confirmation::Ack(Some(returned)) = confirmation else {
        panic!("expected an ack with the message returned, got {confirmation:?}")
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    // And without mandatory it is dropped without an error.
    publish(
        &ch,
        "",
        "amq.rabbitmq.reply-to.no-such-channel",
        b"late reply",
        BasicProperties::default(),
    )
    .await;
    sync(&ch).await.expect("the channel stays open");
}
