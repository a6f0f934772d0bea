//! exchange.declare / delete / bind / unbind, the alternate-exchange
//! argument, internal exchanges, and the default exchange's protections.

use lapin::options::{
    BasicPublishOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeUnbindOptions, QueueBindOptions,
};
use lapin::{BasicProperties, ExchangeKind};
use warren_tests::unique;

use crate::support::*;

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    }
}

#[tokio::test]
async fn each_exchange_type_can_be_declared_and_found_passively() {
    let (_b, _conn, ch) = setup().await;
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let x = exchange(&ch, "x-type", kind.clone()).await;
        // A passive declare finds it whatever type it names.
        declare_exchange(&ch, &x, ExchangeKind::Direct, passive(), no_args()).await;
        // A redeclare with the same type and flags is a no-op.
        declare_exchange(&ch, &x, kind, ExchangeDeclareOptions::default(), no_args()).await;
    }
    assert!(ch.status().connected());
}

#[tokio::test]
async fn the_predeclared_exchanges_exist() {
    let (_b, _conn, ch) = setup().await;
    for name in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
    ] {
        declare_exchange(&ch, name, ExchangeKind::Direct, passive(), no_args()).await;
    }
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_closes_the_channel_with_404() {
    let (_b, conn, ch) = setup().await;
    let x = unique("missing-x");
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
}

#[tokio::test]
async fn redeclare_with_another_type_is_406() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-redeclare", ExchangeKind::Direct).await;
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': \
             received 'fanout' but current is 'direct'"
        )
    );
}

#[tokio::test]
async fn redeclare_with_another_durable_flag_is_406() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-redeclare", ExchangeKind::Topic).await;
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let r = ch
        .exchange_declare(x.as_str().into(), ExchangeKind::Topic, options, no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_prefix(
        &text,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in vhost '/'"
        ),
    );
}

#[tokio::test]
async fn declaring_a_name_starting_with_amq_dot_is_403() {
    let (_b, conn, ch) = setup().await;
    let x = unique("amq.custom");
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'")
    );
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection_with_503() {
    let (_b, conn, ch) = setup().await;
    let x = unique("x-bogus-type");
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_connection_closed(&conn, r, 503).await;
    assert_eq!(
        text,
        "COMMAND_INVALID - unknown exchange type 'x-no-such-type'"
    );
}

#[tokio::test]
async fn delete_removes_the_exchange() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-delete", ExchangeKind::Fanout).await;
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            passive(),
            no_args(),
        )
        .await;
    expect_channel_closed(&conn, &ch, r, 404).await;
}

#[tokio::test]
async fn delete_of_a_missing_exchange_succeeds() {
    let (_b, _conn, ch) = setup().await;
    ch.exchange_delete(
        unique("missing-x").as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    assert!(ch.status().connected());
}

#[tokio::test]
async fn delete_if_unused_of_a_bound_exchange_is_406_and_keeps_it() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-in-use", ExchangeKind::Direct).await;
    let q = exclusive_queue(&ch, "q-in-use").await;
    bind(&ch, &q, &x, "k").await;
    let options = ExchangeDeleteOptions {
        if_unused: true,
        ..ExchangeDeleteOptions::default()
    };
    let r = ch.exchange_delete(x.as_str().into(), options).await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")
    );
    // Still there, binding included.
    let ch = conn.create_channel().await.unwrap();
    publish(&ch, &x, "k", "still routed").await;
    assert_eq!(get_body(&ch, &q).await.as_deref(), Some("still routed"));
}

#[tokio::test]
async fn delete_if_unused_of_an_unbound_exchange_succeeds() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-unused", ExchangeKind::Direct).await;
    let options = ExchangeDeleteOptions {
        if_unused: true,
        ..ExchangeDeleteOptions::default()
    };
    ch.exchange_delete(x.as_str().into(), options)
        .await
        .unwrap();
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive(),
            no_args(),
        )
        .await;
    expect_channel_closed(&conn, &ch, r, 404).await;
}

#[tokio::test]
async fn deleting_an_exchange_removes_its_bindings() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-rebind", ExchangeKind::Fanout).await;
    let q = exclusive_queue(&ch, "q-rebind").await;
    bind(&ch, &q, &x, "").await;
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    // A new exchange of the same name starts without the old binding.
    declare_exchange(
        &ch,
        &x,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        no_args(),
    )
    .await;
    publish(&ch, &x, "", "nobody").await;
    sync(&ch).await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes_and_unbind_stops_it() {
    let (_b, _conn, ch) = setup().await;
    let source = exchange(&ch, "x-source", ExchangeKind::Topic).await;
    let destination = exchange(&ch, "x-destination", ExchangeKind::Direct).await;
    let q = exclusive_queue(&ch, "q-e2e").await;
    bind(&ch, &q, &destination, "orders.new").await;
    ch.exchange_bind(
        destination.as_str().into(),
        source.as_str().into(),
        "orders.*".into(),
        ExchangeBindOptions::default(),
        no_args(),
    )
    .await
    .unwrap();

    publish(&ch, &source, "orders.new", "through both").await;
    // Matches the e2e binding but not the queue binding on the destination.
    publish(&ch, &source, "orders.old", "dropped at destination").await;
    // Does not match the e2e binding.
    publish(&ch, &source, "invoices.new", "dropped at source").await;
    let d = get(&ch, &q, true)
        .await
        .expect("a message through the e2e binding");
    assert_eq!(body(&d.delivery), "through both");
    // The delivery names the exchange it was published to.
    assert_eq!(d.delivery.exchange.as_str(), source);
    assert_eq!(d.delivery.routing_key.as_str(), "orders.new");
    assert_eq!(get_body(&ch, &q).await, None);

    ch.exchange_unbind(
        destination.as_str().into(),
        source.as_str().into(),
        "orders.*".into(),
        ExchangeUnbindOptions::default(),
        no_args(),
    )
    .await
    .unwrap();
    publish(&ch, &source, "orders.new", "after unbind").await;
    sync(&ch).await.unwrap();
    assert_eq!(get_body(&ch, &q).await, None);
    // The destination still routes on its own.
    publish(&ch, &destination, "orders.new", "direct").await;
    assert_eq!(get_body(&ch, &q).await.as_deref(), Some("direct"));
}

#[tokio::test]
async fn a_message_reaches_a_queue_once_even_through_two_paths() {
    let (_b, _conn, ch) = setup().await;
    let source = exchange(&ch, "x-source", ExchangeKind::Fanout).await;
    let middle = exchange(&ch, "x-middle", ExchangeKind::Fanout).await;
    let q = exclusive_queue(&ch, "q-two-paths").await;
    bind(&ch, &q, &source, "").await;
    bind(&ch, &q, &middle, "").await;
    ch.exchange_bind(
        middle.as_str().into(),
        source.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        no_args(),
    )
    .await
    .unwrap();
    publish(&ch, &source, "", "once").await;
    assert_eq!(drain(&ch, &q).await, vec!["once"]);
}

#[tokio::test]
async fn exchange_bind_with_a_missing_source_is_404() {
    let (_b, conn, ch) = setup().await;
    let destination = exchange(&ch, "x-destination", ExchangeKind::Fanout).await;
    let missing = unique("missing-x");
    let r = ch
        .exchange_bind(
            destination.as_str().into(),
            missing.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let (_b, _conn, ch) = setup().await;
    let ae = exchange(&ch, "x-ae", ExchangeKind::Fanout).await;
    let unrouted = exclusive_queue(&ch, "q-unrouted").await;
    bind(&ch, &unrouted, &ae, "").await;
    let main = unique("x-with-ae");
    declare_exchange(
        &ch,
        &main,
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table([("alternate-exchange", text(&ae))]),
    )
    .await;
    let routed = exclusive_queue(&ch, "q-routed").await;
    bind(&ch, &routed, &main, "known").await;

    publish(&ch, &main, "known", "routed").await;
    publish(&ch, &main, "unknown", "to the ae").await;
    assert_eq!(drain(&ch, &routed).await, vec!["routed"]);
    let d = get(&ch, &unrouted, true)
        .await
        .expect("the unroutable message");
    assert_eq!(body(&d.delivery), "to the ae");
    // It keeps the exchange and routing key it was published with.
    assert_eq!(d.delivery.exchange.as_str(), main);
    assert_eq!(d.delivery.routing_key.as_str(), "unknown");
}

#[tokio::test]
async fn a_mandatory_message_taken_by_the_alternate_exchange_is_not_returned() {
    let (_b, _conn, ch) = setup().await;
    let ae = exchange(&ch, "x-ae", ExchangeKind::Fanout).await;
    let unrouted = exclusive_queue(&ch, "q-unrouted").await;
    bind(&ch, &unrouted, &ae, "").await;
    let main = unique("x-with-ae");
    declare_exchange(
        &ch,
        &main,
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table([("alternate-exchange", text(&ae))]),
    )
    .await;
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirmation = publish_with(
        &ch,
        &main,
        "nowhere",
        b"m",
        BasicProperties::default(),
        options,
    )
    .await
    .unwrap();
    assert_eq!(confirmation, lapin::Confirmation::Ack(None));
    assert_eq!(drain(&ch, &unrouted).await, vec!["m"]);
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let x = unique("x-internal");
    let options = ExchangeDeclareOptions {
        internal: true,
        ..ExchangeDeclareOptions::default()
    };
    declare_exchange(&ch, &x, ExchangeKind::Fanout, options, no_args()).await;
    let r = publish_with(
        &ch,
        &x,
        "",
        b"m",
        BasicProperties::default(),
        BasicPublishOptions::default(),
    )
    .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'")
    );
}

#[tokio::test]
async fn an_internal_exchange_routes_what_another_exchange_sends_it() {
    let (_b, _conn, ch) = setup().await;
    let internal = unique("x-internal");
    let options = ExchangeDeclareOptions {
        internal: true,
        ..ExchangeDeclareOptions::default()
    };
    declare_exchange(&ch, &internal, ExchangeKind::Fanout, options, no_args()).await;
    let front = exchange(&ch, "x-front", ExchangeKind::Fanout).await;
    ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        no_args(),
    )
    .await
    .unwrap();
    let q = exclusive_queue(&ch, "q-behind-internal").await;
    bind(&ch, &q, &internal, "").await;
    publish(&ch, &front, "", "via internal").await;
    assert_eq!(drain(&ch, &q).await, vec!["via internal"]);
}

#[tokio::test]
async fn binding_a_queue_to_the_default_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-default-bind").await;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            "".into(),
            "other-key".into(),
            QueueBindOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
}

#[tokio::test]
async fn unbinding_a_queue_from_the_default_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-default-unbind").await;
    let r = ch
        .queue_unbind(q.as_str().into(), "".into(), q.as_str().into(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
}

#[tokio::test]
async fn deleting_the_default_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let r = ch
        .exchange_delete("".into(), ExchangeDeleteOptions::default())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let (_b, conn, ch) = setup().await;
    let x = unique("missing-x");
    let r = publish_with(
        &ch,
        &x,
        "k",
        b"lost",
        BasicProperties::default(),
        BasicPublishOptions::default(),
    )
    .await;
    let text = expect_channel_closed(&conn, &ch, r, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_without_confirms_closes_the_channel() {
    let (_b, conn, ch) = setup_plain().await;
    let x = unique("missing-x");
    let watch = ErrorWatch::new(&conn);
    publish(&ch, &x, "k", "lost").await;
    let text = watch.channel_closed(&conn, &ch, 404).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
}

#[tokio::test]
async fn redeclaring_a_predeclared_exchange_as_it_is_succeeds() {
    let (_b, _conn, ch) = setup().await;
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    declare_exchange(&ch, "amq.direct", ExchangeKind::Direct, options, no_args()).await;
    declare_exchange(&ch, "amq.topic", ExchangeKind::Topic, options, no_args()).await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn deleting_a_predeclared_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let r = ch
        .exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    );
    assert!(exchange_exists(&conn, "amq.direct").await);
}

#[tokio::test]
async fn declaring_the_default_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let r = ch
        .exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            no_args(),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
}

#[tokio::test]
async fn passive_declare_of_the_default_exchange_is_403() {
    let (_b, conn, ch) = setup().await;
    let r = ch
        .exchange_declare("".into(), ExchangeKind::Direct, passive(), no_args())
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 403).await;
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
}

/// Declares a fresh auto-delete exchange.
async fn auto_delete_exchange(ch: &lapin::Channel, kind: ExchangeKind) -> String {
    let x = unique("x-auto-delete");
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    declare_exchange(ch, &x, kind, options, no_args()).await;
    x
}

#[tokio::test]
async fn auto_delete_exchange_is_deleted_when_its_last_binding_is_removed() {
    let (_b, conn, ch) = setup().await;
    let x = auto_delete_exchange(&ch, ExchangeKind::Direct).await;
    let q1 = exclusive_queue(&ch, "q-ad1").await;
    let q2 = exclusive_queue(&ch, "q-ad2").await;
    bind(&ch, &q1, &x, "k").await;
    bind(&ch, &q2, &x, "k").await;
    ch.queue_unbind(q1.as_str().into(), x.as_str().into(), "k".into(), no_args())
        .await
        .unwrap();
    assert!(exchange_exists(&conn, &x).await, "one binding left");
    ch.queue_unbind(q2.as_str().into(), x.as_str().into(), "k".into(), no_args())
        .await
        .unwrap();
    assert!(!exchange_exists(&conn, &x).await, "no binding left");
}

#[tokio::test]
async fn auto_delete_exchange_is_deleted_with_its_last_bound_queue() {
    let (_b, conn, ch) = setup().await;
    let x = auto_delete_exchange(&ch, ExchangeKind::Fanout).await;
    let q = exclusive_queue(&ch, "q-ad").await;
    bind(&ch, &q, &x, "").await;
    delete_queue(&ch, &q).await;
    assert!(!exchange_exists(&conn, &x).await);
}

#[tokio::test]
async fn auto_delete_exchange_that_never_had_a_binding_stays() {
    let (_b, conn, ch) = setup().await;
    let x = auto_delete_exchange(&ch, ExchangeKind::Fanout).await;
    publish(&ch, &x, "", "nowhere").await;
    assert!(exchange_exists(&conn, &x).await);
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_invalid_x_match_is_406() {
    let (_b, conn, ch) = setup().await;
    let x = exchange(&ch, "x-headers", ExchangeKind::Headers).await;
    let q = exclusive_queue(&ch, "q-bad-x-match").await;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            table([("x-match", text("some"))]),
        )
        .await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; \
         expected all, any, all-with-x, or any-with-x"
    );
}
