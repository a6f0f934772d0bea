//! The in-process API (`warren::embed`).
//!
//! - `in_process::*` and `lapin_tcp::*`: the scenarios of `scenarios.rs`,
//!   each run through the in-process API and through lapin over TCP.
//! - the rest: what only the in-process API has, and the two together
//!   (messages crossing between in-process and TCP clients, two brokers in
//!   one process, shutdown).
//!
//! No sleeps: every wait is for an event, bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod memory;
mod scenarios;

use bytes::Bytes;
use futures::StreamExt;
use lapin::options as lo;
use lapin::types::FieldTable as LapinTable;
use warren::embed::{
    BasicProperties, ConsumeOptions, FieldTable, FieldValue, LongStr, PublishOptions,
    QueueDeclareOptions, ReplyCode, ShortStr,
};
use warren::{AmqpError, Broker, BrokerConfig};
use warren_tests::scenario::{within, Transport};
use warren_tests::unique;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(#[tokio::test]
            async fn $name() {
                super::scenarios::$name(warren_tests::scenario::Transport::InProcess).await
            })*
        }
        mod lapin_tcp {
            $(#[tokio::test]
            async fn $name() {
                super::scenarios::$name(warren_tests::scenario::Transport::Lapin).await
            })*
        }
    };
}

scenarios!(
    publish_consume_ack,
    unacked_messages_return_when_the_channel_closes,
    nack_requeue_keeps_order_and_sets_redelivered,
    basic_get_and_purge,
    confirms_ack_every_publish_and_report_returns,
    routing_direct,
    routing_topic,
    routing_fanout,
    routing_headers,
    exclusive_queue_is_locked_to_its_connection,
    missing_queue_is_404_and_the_connection_goes_on,
    inequivalent_redeclare_is_406,
    publish_to_a_missing_exchange_is_404,
    ack_of_an_unknown_tag_is_406,
    consumer_ends_on_cancel,
    consumer_ends_when_its_queue_is_deleted,
    exclusive_consumer_and_prefetch,
    transactions_commit_and_roll_back,
    round_robin_between_consumers,
);

fn declare_opts() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

async fn broker_on_any_port() -> (Broker, std::net::SocketAddr) {
    let broker = Broker::new(BrokerConfig::default());
    let addr = broker.listen("127.0.0.1:0").await.unwrap();
    (broker, addr)
}

async fn lapin_channel(addr: std::net::SocketAddr) -> (lapin::Connection, lapin::Channel) {
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = within(
        "lapin connect",
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let ch = within("lapin channel", conn.create_channel())
        .await
        .unwrap();
    (conn, ch)
}

fn headers(pairs: &[(&str, &'static str)]) -> FieldTable {
    FieldTable::from_entries(pairs.iter().map(|(k, v)| {
        (
            ShortStr::try_from(*k).unwrap(),
            FieldValue::LongStr(LongStr::from(*v)),
        )
    }))
}

#[tokio::test]
async fn in_process_publish_reaches_a_lapin_consumer_with_its_properties() {
    let (broker, addr) = broker_on_any_port().await;
    let (_lconn, lch) = lapin_channel(addr).await;
    let q = unique("to-lapin");
    lch.queue_declare(q.as_str().into(), Default::default(), LapinTable::default())
        .await
        .unwrap();
    let mut consumer = lch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            Default::default(),
            LapinTable::default(),
        )
        .await
        .unwrap();

    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let props = BasicProperties {
        content_type: Some(ShortStr::from_static("text/plain")),
        correlation_id: Some(ShortStr::from_static("corr-1")),
        delivery_mode: Some(2),
        headers: Some(headers(&[("origin", "in-process")])),
        ..Default::default()
    };
    ch.basic_publish(
        "",
        &q,
        PublishOptions::default(),
        props,
        Bytes::from_static(b"hi lapin"),
    )
    .await
    .unwrap();

    let d = within("lapin delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"hi lapin");
    assert_eq!(d.routing_key.as_str(), q);
    assert_eq!(
        d.properties.content_type().as_ref().unwrap().as_str(),
        "text/plain"
    );
    assert_eq!(
        d.properties.correlation_id().as_ref().unwrap().as_str(),
        "corr-1"
    );
    assert_eq!(*d.properties.delivery_mode(), Some(2));
    let h = d.properties.headers().as_ref().unwrap();
    assert_eq!(
        h.inner()
            .get("origin")
            .and_then(|v| v.as_long_string())
            .map(|s| s.to_string()),
        Some("in-process".to_string())
    );
    d.acker.ack(lo::BasicAckOptions::default()).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn lapin_publish_reaches_an_in_process_consumer_with_its_properties() {
    let (broker, addr) = broker_on_any_port().await;
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let q = ch
        .queue_declare("", declare_opts(), FieldTable::default())
        .await
        .unwrap()
        .name;
    let mut consumer = ch
        .basic_consume(&q, ConsumeOptions::default())
        .await
        .unwrap();

    let (_lconn, lch) = lapin_channel(addr).await;
    lch.confirm_select(Default::default()).await.unwrap();
    let props = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id("m-7".into());
    lch.basic_publish(
        "".into(),
        q.as_str().into(),
        Default::default(),
        b"{\"n\":7}",
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let d = within("in-process delivery", consumer.next())
        .await
        .unwrap();
    assert_eq!(&d.body()[..], b"{\"n\":7}");
    assert_eq!(d.routing_key(), q.as_str());
    assert_eq!(
        d.properties().content_type,
        Some(ShortStr::from_static("application/json"))
    );
    assert_eq!(
        d.properties().message_id,
        Some(ShortStr::from_static("m-7"))
    );
    assert_eq!(
        d.consumer_tag().map(|t| t.to_string_lossy().into_owned()),
        Some(consumer.tag().to_string())
    );
    d.ack().await.unwrap();
    assert_eq!(
        ch.queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                ..declare_opts()
            },
            FieldTable::default()
        )
        .await
        .unwrap()
        .message_count,
        0
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn scenario_clients_of_both_kinds_share_queues() {
    let env = warren_tests::scenario::Env::start(Transport::InProcess).await;
    if env.broker.is_none() {
        return;
    }
    let inproc = env.connect_with(Transport::InProcess).await.channel().await;
    let tcp = env.connect_with(Transport::Lapin).await.channel().await;
    let q = unique("shared");
    inproc.declare(&q).await.unwrap();
    let mut from_tcp = tcp.consume(&q, false).await.unwrap();
    for i in 0..50 {
        let body = format!("n{i}");
        inproc
            .publish(warren_tests::scenario::Publish::to_queue(
                &q,
                body.as_bytes(),
            ))
            .await
            .unwrap();
    }
    for i in 0..50 {
        let m = from_tcp.expect().await;
        assert_eq!(m.text(), format!("n{i}"));
        tcp.ack(m.delivery_tag, false).await.unwrap();
    }
    assert_eq!(inproc.message_count(&q).await.unwrap(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn the_body_is_shared_not_copied() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("zero-copy", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let body = Bytes::from(vec![7u8; 4096]);
    ch.basic_publish(
        "",
        "zero-copy",
        PublishOptions::default(),
        BasicProperties::default(),
        body.clone(),
    )
    .await
    .unwrap();
    let d = ch.basic_get("zero-copy", true).await.unwrap().unwrap();
    assert_eq!(d.body().as_ptr(), body.as_ptr());
    assert_eq!(d.body().len(), 4096);
    broker.shutdown().await;
}

#[tokio::test]
async fn two_brokers_in_one_process_do_not_see_each_other() {
    let (a, addr_a) = broker_on_any_port().await;
    let (b, addr_b) = broker_on_any_port().await;
    assert_ne!(addr_a, addr_b);
    let ca = a.connect().await.unwrap().open_channel().await.unwrap();
    let cb = b.connect().await.unwrap().open_channel().await.unwrap();
    ca.queue_declare("only-in-a", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    ca.basic_publish(
        "",
        "only-in-a",
        PublishOptions::default(),
        BasicProperties::default(),
        "a".into(),
    )
    .await
    .unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    let e = cb
        .queue_declare("only-in-a", passive, FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::NotFound);
    // Same name in B: a different, empty queue.
    let cb = b.connect().await.unwrap().open_channel().await.unwrap();
    let info = cb
        .queue_declare("only-in-a", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(info.message_count, 0);
    // And over TCP too.
    let (_l, lch) = lapin_channel(addr_b).await;
    let q = lch
        .queue_declare(
            "only-in-a".into(),
            lo::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            LapinTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 0);
    let info = ca
        .queue_declare("only-in-a", passive, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(info.message_count, 1);
    // Shutting one down leaves the other running.
    b.shutdown().await;
    ca.basic_publish(
        "",
        "only-in-a",
        PublishOptions::default(),
        BasicProperties::default(),
        "a2".into(),
    )
    .await
    .unwrap();
    assert_eq!(
        ca.queue_declare("only-in-a", passive, FieldTable::default())
            .await
            .unwrap()
            .message_count,
        2
    );
    a.shutdown().await;
}

#[tokio::test]
async fn shutdown_returns_closes_everyone_and_releases_the_port() {
    let (broker, addr) = broker_on_any_port().await;
    let (lconn, lch) = lapin_channel(addr).await;
    lch.queue_declare("sd".into(), Default::default(), LapinTable::default())
        .await
        .unwrap();
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume("sd", ConsumeOptions::default())
        .await
        .unwrap();

    within("shutdown", broker.shutdown()).await;

    // The port is free again.
    let listener = std::net::TcpListener::bind(addr).expect("port released");
    drop(listener);
    // In-process: the stream ends, calls fail with 320, new connections are refused.
    assert!(within("stream end", consumer.next()).await.is_none());
    let e = ch
        .queue_declare("sd", declare_opts(), FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::ConnectionForced, "{e}");
    assert!(!conn.is_open());
    let e = broker.connect().await.unwrap_err();
    assert_eq!(e.code, ReplyCode::ConnectionForced);
    // TCP: the client was told.
    within("lapin sees the close", async {
        while lconn.status().connected() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // A second shutdown returns at once.
    within("second shutdown", broker.shutdown()).await;
}

#[tokio::test]
async fn channel_error_returns_the_code_and_closes_only_that_channel() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let other = conn.open_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    let e: AmqpError = ch
        .queue_declare("nope", passive, FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::NotFound);
    assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'nope' in vhost '/'");
    assert_eq!((e.class_id, e.method_id), (50, 10));
    assert!(!ch.is_open());
    // Every later call on it returns the same error, publish included.
    let again = ch
        .queue_declare("q", declare_opts(), FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(again, e);
    let again = ch
        .basic_publish(
            "",
            "q",
            PublishOptions::default(),
            BasicProperties::default(),
            "x".into(),
        )
        .await
        .unwrap_err();
    assert_eq!(again, e);
    assert_eq!(ch.basic_ack(1, false).await.unwrap_err(), e);
    // Closing it again is a no-op; the connection and other channels work.
    ch.close().await.unwrap();
    assert!(conn.is_open());
    assert!(other.is_open());
    other
        .queue_declare("q", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let fresh = conn.open_channel().await.unwrap();
    fresh
        .queue_declare("q", passive, FieldTable::default())
        .await
        .unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn publish_errors_come_back_from_the_publish_call() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let e = ch
        .basic_publish(
            "missing-x",
            "k",
            PublishOptions::default(),
            BasicProperties::default(),
            "x".into(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::NotFound);
    assert_eq!(
        e.reply_text(),
        "NOT_FOUND - no exchange 'missing-x' in vhost '/'"
    );
    assert_eq!((e.class_id, e.method_id), (60, 40));
    // Internal exchanges refuse publishes: 403.
    let ch = conn.open_channel().await.unwrap();
    let opts = warren::embed::ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    ch.exchange_declare("inner", "fanout", opts, FieldTable::default())
        .await
        .unwrap();
    let e = ch
        .basic_publish(
            "inner",
            "",
            PublishOptions::default(),
            BasicProperties::default(),
            "x".into(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::AccessRefused);
    broker.shutdown().await;
}

#[tokio::test]
async fn delivery_ack_nack_and_reject() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("dq", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    for b in ["a", "b", "c"] {
        ch.basic_publish(
            "",
            "dq",
            PublishOptions::default(),
            BasicProperties::default(),
            Bytes::from(b),
        )
        .await
        .unwrap();
    }
    let mut consumer = ch
        .basic_consume("dq", ConsumeOptions::default())
        .await
        .unwrap();
    let a = within("a", consumer.next()).await.unwrap();
    let b = within("b", consumer.next()).await.unwrap();
    let c = within("c", consumer.next()).await.unwrap();
    a.ack().await.unwrap();
    b.reject(false).await.unwrap();
    c.nack(true).await.unwrap();
    let c2 = within("c again", consumer.next()).await.unwrap();
    assert_eq!(&c2.body()[..], b"c");
    assert!(c2.redelivered());
    assert_eq!(c2.delivery_tag(), 4);
    c2.ack().await.unwrap();
    // Acking twice: 406, as over TCP.
    let e = c2.ack().await.unwrap_err();
    assert_eq!(e.code, ReplyCode::PreconditionFailed);
    assert_eq!(
        e.reply_text(),
        "PRECONDITION_FAILED - unknown delivery tag 4"
    );
    assert!(within("stream ends with the channel", consumer.next())
        .await
        .is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn dropping_a_consumer_cancels_it() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("drop-c", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let consumer = ch
        .basic_consume("drop-c", ConsumeOptions::default())
        .await
        .unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    assert_eq!(
        ch.queue_declare("drop-c", passive, FieldTable::default())
            .await
            .unwrap()
            .consumer_count,
        1
    );
    drop(consumer);
    assert_eq!(
        ch.queue_declare("drop-c", passive, FieldTable::default())
            .await
            .unwrap()
            .consumer_count,
        0
    );
    ch.basic_publish(
        "",
        "drop-c",
        PublishOptions::default(),
        BasicProperties::default(),
        "kept".into(),
    )
    .await
    .unwrap();
    assert_eq!(
        ch.queue_declare("drop-c", passive, FieldTable::default())
            .await
            .unwrap()
            .message_count,
        1
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let broker = Broker::new(BrokerConfig::default());
    let observer = broker
        .connect()
        .await
        .unwrap()
        .open_channel()
        .await
        .unwrap();
    {
        let conn = broker.connect().await.unwrap();
        let ch = conn.open_channel().await.unwrap();
        let excl = QueueDeclareOptions {
            exclusive: true,
            ..declare_opts()
        };
        ch.queue_declare("mine", excl, FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare("shared", declare_opts(), FieldTable::default())
            .await
            .unwrap();
        ch.basic_publish(
            "",
            "shared",
            PublishOptions::default(),
            BasicProperties::default(),
            "u".into(),
        )
        .await
        .unwrap();
        let _unacked = ch.basic_get("shared", false).await.unwrap().unwrap();
    }
    // The exclusive queue went with the connection; the unacked message is back.
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    let info = observer
        .queue_declare("shared", passive, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(info.message_count, 1);
    let e = observer
        .queue_declare("mine", passive, FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::NotFound);
    broker.shutdown().await;
}

#[tokio::test]
async fn replies_match_calls_when_tasks_share_a_channel() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let name = format!("t{t}-q{i}");
                let info = ch
                    .queue_declare(&name, QueueDeclareOptions::default(), FieldTable::default())
                    .await
                    .unwrap();
                assert_eq!(info.name, name);
                ch.basic_publish(
                    "",
                    &name,
                    PublishOptions::default(),
                    BasicProperties::default(),
                    "x".into(),
                )
                .await
                .unwrap();
                let d = ch.basic_get(&name, true).await.unwrap().unwrap();
                assert_eq!(d.routing_key(), name.as_str());
            }
        }));
    }
    for t in tasks {
        within("task", t).await.unwrap();
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_consumer_that_does_not_read_holds_its_queue_back() {
    let mut config = BrokerConfig::default();
    config.limits.outbox_high_water = 4 * 1024;
    let broker = Broker::new(config);
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("slow", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let opts = ConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = ch.basic_consume("slow", opts).await.unwrap();
    let n = 2000;
    for i in 0..n {
        ch.basic_publish(
            "",
            "slow",
            PublishOptions::default(),
            BasicProperties::default(),
            Bytes::from(format!("{i}")),
        )
        .await
        .unwrap();
    }
    // ~80 bytes of budget each: at most a few dozen left the queue.
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    let waiting = ch
        .queue_declare("slow", passive, FieldTable::default())
        .await
        .unwrap()
        .message_count;
    assert!(waiting > n - 200, "only {waiting} of {n} held back");
    for i in 0..n {
        let d = within("delivery", consumer.next()).await.unwrap();
        assert_eq!(&d.body()[..], format!("{i}").as_bytes());
    }
    assert_eq!(
        ch.queue_declare("slow", passive, FieldTable::default())
            .await
            .unwrap()
            .message_count,
        0
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn confirm_outcome_reports_the_returned_message() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.confirm_select().await.unwrap();
    let props = BasicProperties {
        app_id: Some(ShortStr::from_static("svc")),
        ..Default::default()
    };
    let outcome = ch
        .basic_publish(
            "amq.topic",
            "no.route",
            PublishOptions { mandatory: true },
            props,
            "back".into(),
        )
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap();
    assert!(outcome.ack);
    let r = outcome.returned.expect("returned");
    assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(
        (r.exchange.as_str(), r.routing_key.as_str()),
        ("amq.topic", "no.route")
    );
    assert_eq!(&r.body[..], b"back");
    assert_eq!(r.properties.app_id, Some(ShortStr::from_static("svc")));
    assert_eq!(ch.take_returned(), vec![r]);
    assert!(ch.take_returned().is_empty());
    // Many confirms in flight resolve in order.
    ch.queue_declare("confirmed", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending.push(
            ch.basic_publish(
                "",
                "confirmed",
                PublishOptions::default(),
                BasicProperties::default(),
                "c".into(),
            )
            .await
            .unwrap(),
        );
    }
    for c in pending {
        assert!(within("confirm", c).await.unwrap());
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn vhosts_and_channel_numbers() {
    let broker = Broker::new(BrokerConfig::default());
    let e = broker.connect_vhost("/nope").await.unwrap_err();
    assert_eq!(e.code, ReplyCode::NotAllowed);
    let conn = broker.connect().await.unwrap();
    let a = conn.open_channel().await.unwrap();
    let b = conn.open_channel().await.unwrap();
    assert_ne!(a.id(), b.id());
    // Channel numbers are not reused at once.
    let a_id = a.id();
    a.close().await.unwrap();
    drop(a);
    let c = conn.open_channel().await.unwrap();
    assert_ne!(c.id(), a_id);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_publisher_waits_while_its_queue_is_far_behind_a_consumer_elsewhere() {
    let mut config = BrokerConfig::default();
    config.limits.outbox_high_water = 4 * 1024;
    let broker = Broker::new(config);
    let publisher = broker
        .connect()
        .await
        .unwrap()
        .open_channel()
        .await
        .unwrap();
    let args =
        FieldTable::from_entries([(ShortStr::from_static("x-max-length"), FieldValue::I32(1000))]);
    publisher
        .queue_declare("behind", declare_opts(), args)
        .await
        .unwrap();
    // A consumer on another connection that does not read yet: the
    // outbox budget holds the queue back, which fills up.
    let consumer_conn = broker.connect().await.unwrap();
    let consumer_ch = consumer_conn.open_channel().await.unwrap();
    let opts = ConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = consumer_ch.basic_consume("behind", opts).await.unwrap();
    let bodies = (0..1100).map(|i| Bytes::from(format!("{i}")));
    publisher
        .basic_publish_batch(
            "",
            "behind",
            PublishOptions::default(),
            BasicProperties::default(),
            bodies,
        )
        .await
        .unwrap();
    // The queue is full (congested): the next publish is held back...
    let mut held = Box::pin(publisher.basic_publish(
        "",
        "behind",
        PublishOptions::default(),
        BasicProperties::default(),
        "last".into(),
    ));
    assert!(futures::poll!(&mut held).is_pending());
    // ...until the consumer has taken the backlog down to half.
    let mut read = 0;
    loop {
        tokio::select! {
            r = &mut held => {
                r.unwrap();
                break;
            }
            d = within("delivery", consumer.next()) => {
                d.unwrap();
                read += 1;
            }
        }
    }
    assert!(read >= 400, "released after only {read} deliveries");
    broker.shutdown().await;
}
