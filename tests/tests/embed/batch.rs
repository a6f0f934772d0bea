//! `Channel::basic_publish_batch`: the same outcome as one basic.publish per
//! body, in order, on every path (routed once, per message, in a
//! transaction, with confirms), and all or nothing when a message is refused.

use bytes::Bytes;
use futures::StreamExt;
use warren::embed::{
    BasicProperties, Channel, ConsumeOptions, FieldTable, PublishOptions, QueueDeclareOptions,
    ReplyCode, ShortStr,
};
use warren::{Broker, BrokerConfig};
use warren_tests::scenario::within;

use super::{declare_opts, headers};

fn bodies(prefix: &str, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("{prefix}{i}")))
        .collect()
}

async fn ready(ch: &Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..declare_opts()
    };
    ch.queue_declare(queue, passive, FieldTable::default())
        .await
        .unwrap()
        .message_count
}

#[tokio::test]
async fn a_batch_reaches_every_bound_queue_in_order_with_its_properties() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.exchange_declare("bx", "fanout", Default::default(), FieldTable::default())
        .await
        .unwrap();
    for q in ["b-acked", "b-noack"] {
        ch.queue_declare(q, declare_opts(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_bind(q, "bx", "", FieldTable::default())
            .await
            .unwrap();
    }
    let mut acked = ch
        .basic_consume("b-acked", ConsumeOptions::default())
        .await
        .unwrap();
    let no_ack = ConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut unacked = ch.basic_consume("b-noack", no_ack).await.unwrap();
    let props = BasicProperties {
        content_type: Some(ShortStr::from_static("text/plain")),
        headers: Some(headers(&[("k", "v")])),
        ..Default::default()
    };
    let n = 600;
    let confirmations = ch
        .basic_publish_batch(
            "bx",
            "",
            PublishOptions::default(),
            props.clone(),
            bodies("m", n),
        )
        .await
        .unwrap();
    assert!(confirmations.is_empty(), "no confirms outside confirm mode");
    for i in 0..n {
        let want = format!("m{i}");
        let d = within("acked delivery", acked.next()).await.unwrap();
        assert_eq!(&d.body()[..], want.as_bytes());
        assert_eq!(d.properties(), &props);
        assert_eq!(d.exchange().as_str(), Some("bx"));
        d.ack().await.unwrap();
        let d = within("no-ack delivery", unacked.next()).await.unwrap();
        assert_eq!(&d.body()[..], want.as_bytes());
        assert_eq!(d.properties(), &props);
    }
    assert_eq!(ready(&ch, "b-acked").await, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_batch_to_a_headers_exchange_is_routed_by_its_headers() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("b-hdr", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "b-hdr",
        "amq.headers",
        "",
        headers(&[("x-match", "all"), ("kind", "a")]),
    )
    .await
    .unwrap();
    for kind in ["a", "b", "a"] {
        let props = BasicProperties {
            headers: Some(headers(&[("kind", kind)])),
            ..Default::default()
        };
        ch.basic_publish_batch(
            "amq.headers",
            "",
            PublishOptions::default(),
            props,
            bodies(kind, 5),
        )
        .await
        .unwrap();
    }
    assert_eq!(ready(&ch, "b-hdr").await, 10);
    // Through an exchange-to-exchange binding: the headers decide downstream.
    ch.exchange_declare("b-src", "direct", Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.exchange_bind("amq.headers", "b-src", "k", FieldTable::default())
        .await
        .unwrap();
    for kind in ["b", "a"] {
        let props = BasicProperties {
            headers: Some(headers(&[("kind", kind)])),
            ..Default::default()
        };
        ch.basic_publish_batch(
            "b-src",
            "k",
            PublishOptions::default(),
            props,
            bodies(kind, 4),
        )
        .await
        .unwrap();
    }
    assert_eq!(ready(&ch, "b-hdr").await, 14);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_batch_in_confirm_mode_gets_a_confirm_per_message_and_returns_when_unroutable() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.confirm_select().await.unwrap();
    ch.queue_declare("b-conf", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    let confirmations = ch
        .basic_publish_batch(
            "",
            "b-conf",
            PublishOptions::default(),
            BasicProperties::default(),
            bodies("c", 50),
        )
        .await
        .unwrap();
    assert_eq!(confirmations.len(), 50);
    for c in confirmations {
        assert!(within("confirm", c).await.unwrap());
    }
    let confirmations = ch
        .basic_publish_batch(
            "amq.direct",
            "nowhere",
            PublishOptions { mandatory: true },
            BasicProperties::default(),
            bodies("r", 3),
        )
        .await
        .unwrap();
    assert_eq!(confirmations.len(), 3);
    for (i, c) in confirmations.into_iter().enumerate() {
        let outcome = within("confirm", c.outcome()).await.unwrap();
        assert!(outcome.ack);
        let r = outcome.returned.expect("returned");
        assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
        assert_eq!(&r.body[..], format!("r{i}").as_bytes());
    }
    assert_eq!(ready(&ch, "b-conf").await, 50);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_refused_batch_publishes_nothing_and_closes_the_channel() {
    let mut config = BrokerConfig::default();
    config.limits.max_message_size = 1000;
    let broker = Broker::new(config);
    let conn = broker.connect().await.unwrap();
    let admin = conn.open_channel().await.unwrap();
    admin
        .queue_declare("b-refused", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    // One bad property refuses the batch.
    let ch = conn.open_channel().await.unwrap();
    let props = BasicProperties {
        expiration: Some(ShortStr::from_static("soon")),
        ..Default::default()
    };
    let e = ch
        .basic_publish_batch(
            "",
            "b-refused",
            PublishOptions::default(),
            props,
            bodies("x", 10),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::PreconditionFailed);
    assert_eq!(
        e.reply_text(),
        "PRECONDITION_FAILED - invalid expiration 'soon': no_integer"
    );
    assert!(!ch.is_open());
    // One body over the size limit refuses the batch, even the bodies before it.
    let ch = conn.open_channel().await.unwrap();
    let mut batch = bodies("ok", 5);
    batch.push(Bytes::from(vec![b'x'; 1001]));
    let e = ch
        .basic_publish_batch(
            "",
            "b-refused",
            PublishOptions::default(),
            BasicProperties::default(),
            batch,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::PreconditionFailed);
    assert_eq!(
        e.reply_text(),
        "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
    );
    // A missing exchange: 404, as for a single publish.
    let ch = conn.open_channel().await.unwrap();
    let e = ch
        .basic_publish_batch(
            "no-such-x",
            "",
            PublishOptions::default(),
            BasicProperties::default(),
            bodies("y", 3),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ReplyCode::NotFound);
    assert_eq!(ready(&admin, "b-refused").await, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_batch_in_a_transaction_waits_for_the_commit() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare("b-tx", declare_opts(), FieldTable::default())
        .await
        .unwrap();
    ch.tx_select().await.unwrap();
    let publish = |prefix: &'static str| {
        ch.basic_publish_batch(
            "",
            "b-tx",
            PublishOptions::default(),
            BasicProperties::default(),
            bodies(prefix, 10),
        )
    };
    publish("rolled-back").await.unwrap();
    ch.tx_rollback().await.unwrap();
    publish("t").await.unwrap();
    assert_eq!(ready(&ch, "b-tx").await, 0);
    ch.tx_commit().await.unwrap();
    assert_eq!(ready(&ch, "b-tx").await, 10);
    let first = ch.basic_get("b-tx", true).await.unwrap().expect("message");
    assert_eq!(&first.body()[..], b"t0");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_batch_to_a_length_limited_queue_keeps_the_newest() {
    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let args = FieldTable::from_entries([(
        ShortStr::from_static("x-max-length"),
        warren::embed::FieldValue::I32(5),
    )]);
    ch.queue_declare("b-limited", declare_opts(), args)
        .await
        .unwrap();
    ch.basic_publish_batch(
        "",
        "b-limited",
        PublishOptions::default(),
        BasicProperties::default(),
        bodies("l", 20),
    )
    .await
    .unwrap();
    assert_eq!(ready(&ch, "b-limited").await, 5);
    for i in 15..20 {
        let d = ch
            .basic_get("b-limited", true)
            .await
            .unwrap()
            .expect("message");
        assert_eq!(&d.body()[..], format!("l{i}").as_bytes());
    }
    broker.shutdown().await;
}
