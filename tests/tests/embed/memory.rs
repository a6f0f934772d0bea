//! The memory alarm (RabbitMQ's memory high watermark): while the broker's
//! resident memory is above its limit, publishers wait (a TCP connection
//! that publishes is blocked and told so with connection.blocked) and
//! consumers go on. A limit of one byte sets the alarm at the next sample;
//! lifting the limit clears it.

use bytes::Bytes;
use futures::StreamExt;
use lapin::options as lo;
use lapin::types::FieldTable as LapinTable;
use warren::embed::{ConsumeOptions, PublishOptions};
use warren::Broker;
use warren_tests::scenario::within;

use super::{broker_on_any_port, declare_opts, lapin_channel};

async fn alarm(broker: &Broker, on: bool) {
    let mut state = broker.watch_memory_alarm();
    within("the memory alarm", state.wait_for(|s| *s == on))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tcp_publisher_is_blocked_while_consumers_go_on() {
    let (broker, addr) = broker_on_any_port().await;
    let (pub_conn, publisher) = lapin_channel(addr).await;
    let mut events = pub_conn.events_listener();
    publisher
        .confirm_select(lo::ConfirmSelectOptions::default())
        .await
        .unwrap();
    publisher
        .queue_declare(
            "alarmed".into(),
            lo::QueueDeclareOptions::default(),
            LapinTable::default(),
        )
        .await
        .unwrap();
    let publish = |body: &'static [u8]| {
        publisher.basic_publish(
            "".into(),
            "alarmed".into(),
            lo::BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
    };
    assert!(publish(b"before").await.unwrap().await.unwrap().is_ack());

    broker.set_memory_limit(Some(1));
    alarm(&broker, true).await;
    // The connection is read up to its first publish, then blocked.
    let during = within("a publish", publish(b"during")).await.unwrap();
    loop {
        match within("connection.blocked", events.next()).await {
            Some(lapin::Event::ConnectionBlocked(reason)) => {
                assert_eq!(reason, "low on memory");
                break;
            }
            Some(_) => continue,
            None => panic!("the connection ended"),
        }
    }
    // (lapin holds it back itself once told: it is sent when unblocked.)
    let mut held = Box::pin(async { publish(b"held").await.unwrap().await.unwrap() });
    assert!(futures::poll!(&mut held).is_pending());
    // Consumers are not blocked: they get and ack what is queued.
    let (_con_conn, consumer_ch) = lapin_channel(addr).await;
    let mut consumer = consumer_ch
        .basic_consume(
            "alarmed".into(),
            "".into(),
            lo::BasicConsumeOptions::default(),
            LapinTable::default(),
        )
        .await
        .unwrap();
    for want in [&b"before"[..], b"during"] {
        let d = within("a delivery", consumer.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.data, want);
        d.ack(lo::BasicAckOptions::default()).await.unwrap();
    }
    assert!(within("a confirm", during).await.unwrap().is_ack());
    assert!(futures::poll!(&mut held).is_pending());

    broker.set_memory_limit(None);
    alarm(&broker, false).await;
    loop {
        match within("connection.unblocked", events.next()).await {
            Some(lapin::Event::ConnectionUnblocked) => break,
            Some(_) => continue,
            None => panic!("the connection ended"),
        }
    }
    assert!(within("the held confirm", held).await.is_ack());
    let d = within("the held delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"held");
    broker.shutdown().await;
}

#[tokio::test]
async fn an_in_process_publisher_waits_while_consumers_go_on() {
    let (broker, _) = broker_on_any_port().await;
    let conn = broker.connect().await.unwrap();
    let publisher = conn.open_channel().await.unwrap();
    publisher
        .queue_declare("alarmed", declare_opts(), Default::default())
        .await
        .unwrap();
    publisher
        .basic_publish(
            "",
            "alarmed",
            PublishOptions::default(),
            Default::default(),
            Bytes::from_static(b"before"),
        )
        .await
        .unwrap();

    broker.set_memory_limit(Some(1));
    alarm(&broker, true).await;
    let mut held = Box::pin(publisher.basic_publish(
        "",
        "alarmed",
        PublishOptions::default(),
        Default::default(),
        Bytes::from_static(b"held"),
    ));
    assert!(futures::poll!(&mut held).is_pending());
    let consumer_ch = broker
        .connect()
        .await
        .unwrap()
        .open_channel()
        .await
        .unwrap();
    let mut consumer = consumer_ch
        .basic_consume("alarmed", ConsumeOptions::default())
        .await
        .unwrap();
    // (An in-process publish is made at the call; what waits is the
    // publisher, before it can make the next.)
    for want in [&b"before"[..], b"held"] {
        let d = within("a delivery", consumer.next()).await.unwrap();
        assert_eq!(&d.body()[..], want);
        d.ack().await.unwrap();
    }
    assert!(futures::poll!(&mut held).is_pending());

    broker.set_memory_limit(None);
    within("the held publish", held).await.unwrap();
    broker.shutdown().await;
}
