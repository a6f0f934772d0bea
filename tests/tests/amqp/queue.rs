//! queue.declare (server-named, passive, exclusive, auto-delete,
//! equivalence), bind, purge and delete.

use lapin::options::{
    BasicCancelOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::AMQPValue;
use lapin::ExchangeKind;
use warren_tests::unique;

use crate::support::*;

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    }
}

#[tokio::test]
async fn empty_name_gets_a_server_generated_amq_gen_name() {
    let (_b, _conn, ch) = setup().await;
    let q1 = declare_queue(&ch, "", exclusive(), no_args()).await;
    let q2 = declare_queue(&ch, "", exclusive(), no_args()).await;
    for q in [&q1, &q2] {
        assert!(
            q.name().as_str().starts_with("amq.gen-"),
            "server-named queue {:?}",
            q.name()
        );
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    }
    assert_ne!(q1.name(), q2.name());
    // The generated name works like any other.
    publish(&ch, "", q1.name().as_str(), "to amq.gen").await;
    assert_eq!(drain(&ch, q1.name().as_str()).await, vec!["to amq.gen"]);
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-counts").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let again = declare_queue(&ch, &q, exclusive(), no_args()).await;
    assert_eq!((again.message_count(), again.consumer_count()), (3, 0));

    // One consumer holding one unacked message: that message is not ready.
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "m1");
    assert_eq!(counts(&ch, &q).await, (2, 1));
    let again = declare_queue(&ch, &q, exclusive(), no_args()).await;
    assert_eq!((again.message_count(), again.consumer_count()), (2, 1));
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_closes_the_channel_with_404() {
    let (_b, conn, ch) = setup().await;
    let q = unique("missing-q");
    let r = ch
        .queue_declare(q.as_str().into(), passive(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

#[tokio::test]
async fn passive_declare_ignores_the_other_flags() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-passive").await;
    let options = QueueDeclareOptions {
        passive: true,
        durable: true,
        auto_delete: true,
        exclusive: false,
        nowait: false,
    };
    let got = declare_queue(
        &ch,
        &q,
        options,
        table([("x-max-length", AMQPValue::LongInt(1))]),
    )
    .await;
    assert_eq!(got.name().as_str(), q);
}

#[tokio::test]
async fn redeclare_with_another_durable_flag_is_406() {
    let (_b, conn, ch) = setup().await;
    let q = shared_queue(&ch, "q-inequivalent").await;
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let r = ch
        .queue_declare(q.as_str().into(), options, no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': \
             received 'true' but current is 'false'"
        )
    );
    delete_queue(&conn.create_channel().await.unwrap(), &q).await;
}

#[tokio::test]
async fn an_exclusive_queue_is_never_durable_so_durable_redeclares_are_equivalent() {
    // RabbitMQ declares an exclusive queue non-durable whatever the durable
    // flag says, and compares redeclares after that.
    let (_b, _conn, ch) = setup().await;
    let q = unique("q-exclusive-durable");
    let durable_exclusive = QueueDeclareOptions {
        durable: true,
        ..exclusive()
    };
    declare_queue(&ch, &q, durable_exclusive, no_args()).await;
    declare_queue(&ch, &q, exclusive(), no_args()).await;
    declare_queue(&ch, &q, durable_exclusive, no_args()).await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn redeclare_with_other_arguments_is_406() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-inequivalent-args");
    declare_queue(
        &ch,
        &q,
        exclusive(),
        table([("x-max-length", AMQPValue::LongInt(5))]),
    )
    .await;
    let r = ch
        .queue_declare(
            q.as_str().into(),
            exclusive(),
            table([("x-max-length", AMQPValue::LongInt(6))]),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_prefix(
        &text,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/'"
        ),
    );
}

#[tokio::test]
async fn queue_name_starting_with_amq_dot_is_403() {
    let (_b, conn, ch) = setup().await;
    let q = unique("amq.custom");
    let r = ch
        .queue_declare(q.as_str().into(), exclusive(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'")
    );
}

// -------------------------------------------------------------- exclusive

/// An exclusive queue declared on one connection and a second connection
/// with a channel, for the 405 tests.
async fn locked_queue() -> (
    warren_tests::TestBroker,
    lapin::Connection,
    String,
    lapin::Connection,
    lapin::Channel,
) {
    let (b, owner, owner_ch) = setup().await;
    let q = exclusive_queue(&owner_ch, "q-locked").await;
    let (other, other_ch) = b.channel().await;
    (b, owner, q, other, other_ch)
}

fn locked_text(q: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. \
         It could be originally declared on another connection or the exclusive property value \
         does not match that of the original declaration."
    )
}

#[tokio::test]
async fn declaring_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let r = ch
        .queue_declare(q.as_str().into(), exclusive(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 405).await;
    assert_eq!(text, locked_text(&q));
}

#[tokio::test]
async fn passive_declare_of_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let r = ch
        .queue_declare(q.as_str().into(), passive(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 405).await;
    assert_eq!(text, locked_text(&q));
}

#[tokio::test]
async fn consuming_from_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let r = ch
        .basic_consume(q.as_str().into(), "".into(), Default::default(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r.map(|c| c.tag()), 405).await;
    assert_eq!(text, locked_text(&q));
}

#[tokio::test]
async fn getting_from_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let r = ch.basic_get(q.as_str().into(), Default::default()).await;
    let text = expect_channel_closed(&conn, &ch, r.map(|m| m.is_some()), 405).await;
    assert_eq!(text, locked_text(&q));
}

#[tokio::test]
async fn deleting_or_purging_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let r = ch.queue_delete(q.as_str().into(), Default::default()).await;
    assert_eq!(
        expect_channel_closed(&conn, &ch, r, 405).await,
        locked_text(&q)
    );
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await;
    assert_eq!(
        expect_channel_closed(&conn, &ch, r, 405).await,
        locked_text(&q)
    );
}

#[tokio::test]
async fn another_connection_may_publish_to_an_exclusive_queue() {
    let (_b, owner, q, _conn, ch) = locked_queue().await;
    publish(&ch, "", &q, "from elsewhere").await;
    let owner_ch = owner.create_channel().await.unwrap();
    let mut consumer = consume_no_ack(&owner_ch, &q).await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "from elsewhere");
}

#[tokio::test]
async fn binding_another_connections_exclusive_queue_is_405() {
    let (_b, _owner, q, conn, ch) = locked_queue().await;
    let x = exchange(&ch, "x-to-locked", ExchangeKind::Fanout).await;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            no_args(),
        )
        .await;
    assert_eq!(
        expect_channel_closed(&conn, &ch, r, 405).await,
        locked_text(&q)
    );
}

#[tokio::test]
async fn another_channel_of_the_same_connection_may_use_an_exclusive_queue() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-same-conn").await;
    let ch2 = conn.create_channel().await.unwrap();
    declare_queue(&ch2, &q, exclusive(), no_args()).await;
    publish(&ch2, "", &q, "m").await;
    assert_eq!(drain(&ch2, &q).await, vec!["m"]);
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let (b, owner, owner_ch) = setup().await;
    let q = exclusive_queue(&owner_ch, "q-dies-with-conn").await;
    let (other, _ch) = b.channel().await;
    owner.close(200, "OK".into()).await.unwrap();
    queue_disappears(&other, &q).await;
}

#[tokio::test]
async fn exclusive_queue_survives_its_declaring_channel() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-outlives-channel").await;
    ch.close(200, "OK".into()).await.unwrap();
    assert!(queue_exists(&conn, &q).await);
}

// ------------------------------------------------------------ auto-delete

#[tokio::test]
async fn auto_delete_queue_is_deleted_when_its_last_consumer_cancels() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-auto-delete");
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    declare_queue(&ch, &q, options, no_args()).await;
    let first = consume(&ch, &q).await;
    let second = consume(&ch, &q).await;
    assert_eq!(counts(&ch, &q).await, (0, 2));

    ch.basic_cancel(first.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // One consumer left: the queue stays.
    assert_eq!(counts(&ch, &q).await, (0, 1));

    ch.basic_cancel(second.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    queue_disappears(&conn, &q).await;
}

#[tokio::test]
async fn auto_delete_queue_is_deleted_when_its_consumers_channel_closes() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-auto-delete");
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    declare_queue(&ch, &q, options, no_args()).await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let _consumer = consume(&consumer_ch, &q).await;
    consumer_ch.close(200, "OK".into()).await.unwrap();
    queue_disappears(&conn, &q).await;
}

#[tokio::test]
async fn auto_delete_queue_that_never_had_a_consumer_stays() {
    let (_b, conn, ch) = setup().await;
    let q = unique("q-auto-delete-unused");
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    declare_queue(&ch, &q, options, no_args()).await;
    publish(&ch, "", &q, "m").await;
    assert_eq!(get_body(&ch, &q).await.as_deref(), Some("m"));
    assert!(queue_exists(&conn, &q).await);
    delete_queue(&ch, &q).await;
}

// --------------------------------------------------------- bind and purge

#[tokio::test]
async fn binding_a_missing_queue_is_404() {
    let (_b, conn, ch) = setup().await;
    let q = unique("missing-q");
    let r = ch
        .queue_bind(
            q.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

#[tokio::test]
async fn binding_to_a_missing_exchange_is_404() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-bind-missing-x").await;
    let x = unique("missing-x");
    let r = ch
        .queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
}

#[tokio::test]
async fn unbinding_a_binding_that_does_not_exist_succeeds() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-unbind-none").await;
    let x = exchange(&ch, "x-unbind-none", ExchangeKind::Direct).await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "never".into(),
        no_args(),
    )
    .await
    .unwrap();
    assert!(ch.status().connected());
}

#[tokio::test]
async fn purge_removes_ready_messages_and_returns_their_count() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-purge").await;
    publish_all(&ch, &q, &["m1", "m2", "m3"]).await;
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(message_count(&ch, &q).await, 0);
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 0);
}

#[tokio::test]
async fn purge_leaves_unacked_messages_which_come_back_on_requeue() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-purge-unacked").await;
    publish_all(&ch, &q, &["held", "ready1", "ready2"]).await;
    let getter = conn.create_channel().await.unwrap();
    let held = get(&getter, &q, false).await.expect("a message");
    assert_eq!(body(&held.delivery), "held");
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 2);
    // Closing the channel requeues the unacked message.
    getter.close(200, "OK".into()).await.unwrap();
    let back = get(&ch, &q, true).await.expect("the requeued message");
    assert_eq!(body(&back.delivery), "held");
    assert!(back.delivery.redelivered);
}

#[tokio::test]
async fn purge_of_a_missing_queue_is_404() {
    let (_b, conn, ch) = setup().await;
    let q = unique("missing-q");
    let r = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

// ------------------------------------------------------------------ delete

#[tokio::test]
async fn delete_returns_the_message_count_and_removes_the_queue() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-delete").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let n = ch
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(!queue_exists(&conn, &q).await);
}

#[tokio::test]
async fn delete_of_a_missing_queue_succeeds_with_count_0() {
    let (_b, _conn, ch) = setup().await;
    let n = ch
        .queue_delete(
            unique("missing-q").as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(ch.status().connected());
}

#[tokio::test]
async fn delete_if_empty_of_a_queue_with_messages_is_406() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-not-empty").await;
    publish(&ch, "", &q, "m").await;
    let options = QueueDeleteOptions {
        if_empty: true,
        ..QueueDeleteOptions::default()
    };
    let r = ch.queue_delete(q.as_str().into(), options).await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 1);
}

#[tokio::test]
async fn delete_if_unused_of_a_queue_with_a_consumer_is_406() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-in-use").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let _consumer = consume(&consumer_ch, &q).await;
    let options = QueueDeleteOptions {
        if_unused: true,
        ..QueueDeleteOptions::default()
    };
    let r = ch.queue_delete(q.as_str().into(), options).await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    );
    assert!(queue_exists(&conn, &q).await);
}

#[tokio::test]
async fn delete_if_unused_and_if_empty_of_an_idle_empty_queue_succeeds() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-idle").await;
    let options = QueueDeleteOptions {
        if_unused: true,
        if_empty: true,
        nowait: false,
    };
    let n = ch.queue_delete(q.as_str().into(), options).await.unwrap();
    assert_eq!(n, 0);
    assert!(!queue_exists(&conn, &q).await);
}

#[tokio::test]
async fn a_deleted_queue_loses_its_bindings() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-deleted-q", ExchangeKind::Fanout).await;
    let q = exclusive_queue(&ch, "q-deleted").await;
    bind(&ch, &q, &x, "").await;
    delete_queue(&ch, &q).await;
    declare_queue(&ch, &q, exclusive(), no_args()).await;
    publish(&ch, &x, "", "unbound now").await;
    sync(&ch).await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
}
