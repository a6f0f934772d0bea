//! Errors that are neither about one exchange nor one queue: channel.flow,
//! basic.recover without requeue, queue types, connection-level refusals,
//! and how a channel or connection error affects the rest.

use lapin::options::{BasicRecoverOptions, ChannelFlowOptions, QueueDeclareOptions};
use lapin::{Connection, ConnectionProperties, ErrorKind};
use warren_tests::unique;

use crate::support::*;

#[tokio::test]
async fn channel_flow_active_true_is_acknowledged() {
    let (_b, _conn, ch) = setup().await;
    let active = ch
        .channel_flow(ChannelFlowOptions { active: true })
        .await
        .unwrap();
    assert!(active);
    assert!(ch.status().connected());
}

#[tokio::test]
async fn channel_flow_active_false_closes_the_connection_with_540() {
    let (_b, conn, ch) = setup().await;
    let r = ch.channel_flow(ChannelFlowOptions { active: false }).await;
    let text = expect_connection_closed(&conn, r, 540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - active=false");
}

#[tokio::test]
async fn recover_without_requeue_closes_the_connection_with_540() {
    let (_b, conn, ch) = setup().await;
    let r = ch
        .basic_recover(BasicRecoverOptions { requeue: false })
        .await;
    let text = expect_connection_closed(&conn, r, 540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - requeue=false");
}

#[tokio::test]
async fn a_stream_queue_must_be_durable() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-stream");
    let r = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            table([("x-queue-type", text("stream"))]),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'"
        )
    );
}

#[tokio::test]
async fn a_quorum_queue_cannot_be_exclusive() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-quorum");
    let options = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let r = ch
        .queue_declare(
            q.as_str().into(),
            options,
            table([("x-queue-type", text("quorum"))]),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"
        )
    );
}

#[tokio::test]
async fn an_unknown_queue_type_is_406() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-bogus-type");
    let r = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            table([("x-queue-type", text("no-such-type"))]),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_prefix(&text, "PRECONDITION_FAILED - invalid arg 'x-queue-type'");
}

#[tokio::test]
async fn a_channel_error_leaves_the_other_channels_working() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-survivor").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume_no_ack(&consumer_ch, &q).await;

    let doomed = conn.create_channel().await.unwrap();
    let r = doomed
        .queue_declare(
            unique("missing-q").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            no_args(),
        )
        .await;
    expect_channel_closed(&conn, &doomed, r, 404).await;

    publish(&ch, "", &q, "still flowing").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "still flowing");
}

#[tokio::test]
async fn a_connection_error_ends_every_channel_and_consumer_of_it() {
    let (b, _conn, ch) = setup().await;
    let q = shared_queue(&ch, "q-conn-error").await;
    let (victim, victim_ch) = b.channel().await;
    let mut consumer = consume(&victim_ch, &q).await;
    let other = victim.create_channel().await.unwrap();

    let r = victim_ch
        .channel_flow(ChannelFlowOptions { active: false })
        .await;
    expect_connection_closed(&victim, r, 540).await;
    assert!(!other.status().connected());
    // The consumer reports the error, then ends.
    match within(
        "the consumer's error",
        futures::StreamExt::next(&mut consumer),
    )
    .await
    {
        Some(Err(e)) => assert_eq!(reply(&e).0, 540),
        other => panic!("expected the connection error on the consumer, got {other:?}"),
    }
    // Other connections are unaffected.
    publish(&ch, "", &q, "m").await;
    assert_eq!(drain(&ch, &q).await, vec!["m"]);
    delete_queue(&ch, &q).await;
}

#[tokio::test]
async fn a_closed_channel_refuses_further_methods_in_lapin() {
    // lapin never sends a method on a channel it knows is closed: it fails
    // locally. (A method on a closed channel reaching the broker — 504
    // CHANNEL_ERROR — is covered by the raw-frame tests.)
    let (_b, conn, ch) = setup().await;
    let r = ch
        .queue_declare(
            unique("missing-q").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            no_args(),
        )
        .await;
    expect_channel_closed(&conn, &ch, r, 404).await;
    let again = ch
        .queue_declare("".into(), QueueDeclareOptions::default(), no_args())
        .await;
    match again {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidChannelState(..)),
            "expected lapin's local refusal, got {e:?}"
        ),
        Ok(q) => panic!("a closed channel declared {q:?}"),
    }
}

#[tokio::test]
async fn wrong_password_is_refused_with_403() {
    let b = warren_tests::start().await;
    let url = b.url.replacen("guest:guest", "guest:wrong-password", 1);
    let r = within(
        "the connection attempt",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    match r {
        Err(e) => {
            // Refused during the handshake, so with connection.close.
            let (code, text) = reply(&e);
            assert_eq!(code, 403, "{text}");
            assert_eq!(
                text,
                "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                 For details see the broker logfile."
            );
        }
        Ok(_) => panic!("connected with a wrong password"),
    }
}

#[tokio::test]
async fn unknown_vhost_is_refused_with_530() {
    let b = warren_tests::start().await;
    let vhost = unique("no-such-vhost");
    let base = b.url.rsplit_once('/').expect("url with a vhost").0;
    let url = format!("{base}/{vhost}");
    let r = within(
        "the connection attempt",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    match r {
        Err(e) => {
            let (code, text) = reply(&e);
            assert_eq!(code, 530, "{text}");
            assert_eq!(text, format!("NOT_ALLOWED - vhost {vhost} not found"));
        }
        Ok(_) => panic!("connected to a vhost that does not exist"),
    }
}
