//! Connection-level behaviour and bad input, with a raw client.
//!
//! These run against Warren in-process, or against the reference RabbitMQ
//! with `WARREN_TEST_URL` set (tests that need Warren's configuration say so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use warren_protocol::{
    encode_body_frames, encode_header_frame, encode_method_frame, BasicConsume, BasicProperties,
    BasicPublish, FieldTable, Frame, Method, QueueDeclare, ShortStr, PROTOCOL_HEADER,
};
use warren_tests::raw::{RawClient, Tune};
use warren_tests::{start, start_with, unique};

fn declare(name: &str) -> Method {
    Method::QueueDeclare(QueueDeclare {
        queue: ShortStr::try_from(name).unwrap(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        no_wait: false,
        arguments: FieldTable::default(),
    })
}

fn publish(queue: &str) -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: ShortStr::default(),
        routing_key: ShortStr::try_from(queue).unwrap(),
        mandatory: false,
        immediate: false,
    })
}

/// Appends a whole basic.publish of `body` to `queue` (method, header, body).
fn put_message(out: &mut BytesMut, queue: &str, body: &[u8]) {
    encode_method_frame(out, 1, &publish(queue));
    encode_header_frame(out, 1, 60, body.len() as u64, &BasicProperties::default());
    encode_body_frames(out, 1, body, 131_072);
}

fn consume(queue: &str, no_ack: bool) -> Method {
    Method::BasicConsume(BasicConsume {
        queue: ShortStr::try_from(queue).unwrap(),
        consumer_tag: ShortStr::default(),
        no_local: false,
        no_ack,
        exclusive: false,
        no_wait: false,
        arguments: FieldTable::default(),
    })
}

/// How many messages `queue` holds, by a passive declare on `channel`.
async fn message_count(c: &mut RawClient, channel: u16, queue: &str) -> u32 {
    let Method::QueueDeclare(d) = declare(queue) else {
        unreachable!()
    };
    c.send(
        channel,
        Method::QueueDeclare(QueueDeclare { passive: true, ..d }),
    )
    .await;
    let Method::QueueDeclareOk(ok) = c.method().await else {
        panic!("expected declare-ok")
    };
    ok.message_count
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_and_a_close() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.write(b"AMQP\x01\x01\x00\x0a").await;
    assert!(c.closed_by_server().await);
    assert_eq!(&c.buf[..], PROTOCOL_HEADER);
}

#[tokio::test]
async fn http_request_gets_the_protocol_header() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.write(b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(c.closed_by_server().await);
    assert_eq!(&c.buf[..], PROTOCOL_HEADER);
}

#[tokio::test]
async fn bad_frame_end_is_frame_error() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 1, &Method::ChannelOpen);
    let last = out.len() - 1;
    out[last] = 0x00;
    c.write(&out).await;
    c.expect_connection_close(501).await;
}

#[tokio::test]
async fn unknown_frame_type_is_frame_error() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.write(&[9, 0, 0, 0, 0, 0, 0, 0xCE]).await;
    c.expect_connection_close(501).await;
}

#[tokio::test]
async fn frame_above_frame_max_is_frame_error() {
    let b = start().await;
    let mut c = RawClient::open_with(
        b.addr,
        Tune {
            frame_max: Some(4096),
            ..Tune::default()
        },
    )
    .await;
    c.open_channel(1).await;
    c.send(1, declare(&unique("big"))).await;
    c.method().await;
    // A body frame of 10000 bytes when 4096 was negotiated.
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 1, &publish("x"));
    encode_header_frame(&mut out, 1, 60, 10_000, &BasicProperties::default());
    out.put_u8(3);
    out.put_u16(1);
    out.put_u32(10_000);
    out.put_bytes(0, 10_000);
    out.put_u8(0xCE);
    c.write(&out).await;
    c.expect_connection_close(501).await;
}

#[tokio::test]
async fn unknown_method_is_rejected() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    // class 60, method 999
    c.write(&[1, 0, 1, 0, 0, 0, 4, 0, 60, 3, 0xE7, 0xCE]).await;
    if !b.is_warren() {
        // RabbitMQ drops the socket without a close frame here.
        assert!(c.closed_by_server().await);
        return;
    }
    c.expect_connection_close(540).await;
}

#[tokio::test]
async fn truncated_method_arguments_are_a_frame_error() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    // queue.declare whose payload stops after the ticket
    c.write(&[1, 0, 1, 0, 0, 0, 6, 0, 50, 0, 10, 0, 0, 0xCE])
        .await;
    let code = match c.method().await {
        Method::ConnectionClose(close) => close.reply_code,
        other => panic!("expected connection.close, got {other:?}"),
    };
    // RabbitMQ answers 502 SYNTAX_ERROR for undecodable method arguments;
    // some versions say 501. Either way the connection is closed.
    assert!(code == 501 || code == 502, "got {code}");
}

#[tokio::test]
async fn method_on_unopened_channel_is_channel_error() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.send(5, declare("whatever")).await;
    c.expect_connection_close(504).await;
}

#[tokio::test]
async fn second_channel_open_is_channel_error() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    c.send(1, Method::ChannelOpen).await;
    c.expect_connection_close(504).await;
}

#[tokio::test]
async fn channel_above_channel_max_is_refused() {
    let b = start().await;
    let mut c = RawClient::open_with(
        b.addr,
        Tune {
            channel_max: Some(10),
            ..Tune::default()
        },
    )
    .await;
    c.send(11, Method::ChannelOpen).await;
    if !b.is_warren() {
        return; // RabbitMQ 3.10 does not enforce the negotiated channel_max.
    }
    c.expect_connection_close(530).await;
}

#[tokio::test]
async fn content_header_without_publish_is_unexpected_frame() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    let mut out = BytesMut::new();
    encode_header_frame(&mut out, 1, 60, 3, &BasicProperties::default());
    c.write(&out).await;
    c.expect_connection_close(505).await;
}

#[tokio::test]
async fn method_in_the_middle_of_content_is_unexpected_frame() {
    let b = start().await;
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    c.send(1, publish("nowhere")).await;
    c.send(1, declare(&unique("q"))).await;
    c.expect_connection_close(505).await;
}

#[tokio::test]
async fn tune_ok_above_server_channel_max_is_not_allowed() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.start("PLAIN", "\0guest\0guest", true).await;
    let Method::ConnectionTune(t) = c.method().await else {
        panic!("expected tune")
    };
    c.send(
        0,
        Method::ConnectionTuneOk(warren_protocol::ConnectionTuneOk {
            channel_max: t.channel_max.saturating_add(1).max(t.channel_max),
            frame_max: t.frame_max.saturating_add(1),
            heartbeat: 0,
        }),
    )
    .await;
    c.send(
        0,
        Method::ConnectionOpen(warren_protocol::ConnectionOpen {
            virtual_host: ShortStr::from_static("/"),
        }),
    )
    .await;
    if !b.is_warren() {
        // RabbitMQ drops the socket without a close frame here.
        assert!(c.closed_by_server().await);
        return;
    }
    c.expect_connection_close(530).await;
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.start("PLAIN", "\0guest\0guest", true).await;
    let Method::ConnectionTune(t) = c.method().await else {
        panic!("expected tune")
    };
    c.send(
        0,
        Method::ConnectionTuneOk(warren_protocol::ConnectionTuneOk {
            channel_max: t.channel_max,
            frame_max: t.frame_max,
            heartbeat: 0,
        }),
    )
    .await;
    c.send(
        0,
        Method::ConnectionOpen(warren_protocol::ConnectionOpen {
            virtual_host: ShortStr::from_static("no-such-vhost"),
        }),
    )
    .await;
    c.expect_connection_close(530).await;
}

#[tokio::test]
async fn wrong_password_is_access_refused_when_the_client_asks() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.start("PLAIN", "\0guest\0wrong", true).await;
    let text = c.expect_connection_close(403).await;
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
}

#[tokio::test]
async fn wrong_password_just_closes_for_old_clients() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    c.start("PLAIN", "\0guest\0wrong", false).await;
    assert!(c.closed_by_server().await);
}

#[tokio::test]
async fn amqplain_login_works() {
    let b = start().await;
    let mut c = RawClient::connect_tcp(b.addr).await;
    // AMQPLAIN's response is a field table without its length prefix.
    let table: FieldTable = [
        (
            ShortStr::from_static("LOGIN"),
            warren_protocol::FieldValue::LongStr(warren_protocol::LongStr::from_static("guest")),
        ),
        (
            ShortStr::from_static("PASSWORD"),
            warren_protocol::FieldValue::LongStr(warren_protocol::LongStr::from_static("guest")),
        ),
    ]
    .into_iter()
    .collect();
    let response: &'static [u8] = Box::leak(table.raw_bytes().to_vec().into_boxed_slice());
    let mut out = BytesMut::new();
    warren_protocol::encode_protocol_header(&mut out);
    c.write(&out).await;
    let Method::ConnectionStart(_) = c.method().await else {
        panic!("expected start")
    };
    c.send(
        0,
        Method::ConnectionStartOk(warren_protocol::ConnectionStartOk {
            client_properties: warren_tests::raw::client_properties(true),
            mechanism: ShortStr::from_static("AMQPLAIN"),
            response: warren_protocol::LongStr::from(bytes::Bytes::from_static(response)),
            locale: ShortStr::from_static("en_US"),
        }),
    )
    .await;
    let m = c.method().await;
    assert!(
        matches!(m, Method::ConnectionTune(_)),
        "expected tune after AMQPLAIN login, got {m:?}"
    );
}

#[tokio::test]
async fn silent_client_is_dropped_after_two_heartbeats() {
    let b = start().await;
    let mut c = RawClient::open_with(
        b.addr,
        Tune {
            heartbeat: 1,
            ..Tune::default()
        },
    )
    .await;
    // The server heartbeats us while we say nothing, then gives up on us.
    let started = std::time::Instant::now();
    let mut heartbeats = 0;
    loop {
        match c.frame().await {
            Some(Frame::Heartbeat { .. }) => heartbeats += 1,
            Some(other) => panic!("unexpected frame {other:?}"),
            None => break,
        }
    }
    assert!(heartbeats >= 1, "server sent no heartbeat");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "dropped after {waited:?}"
    );
}

#[tokio::test]
async fn garbage_on_one_connection_leaves_others_alone() {
    let b = start().await;
    let mut good = RawClient::open(b.addr).await;
    good.open_channel(1).await;
    let mut bad = RawClient::open(b.addr).await;
    bad.write(&[1, 0, 1, 0xff, 0xff, 0xff, 0xff]).await;
    bad.write(&[0u8; 64]).await;
    bad.expect_connection_close(501).await;
    let q = unique("still-fine");
    good.send(1, declare(&q)).await;
    assert!(matches!(good.method().await, Method::QueueDeclareOk(_)));
}

#[tokio::test]
async fn message_over_max_size_is_precondition_failed() {
    let mut config = warren::BrokerConfig::default();
    config.limits.max_message_size = 1000;
    let b = start_with(config).await;
    if !b.is_warren() {
        return; // RabbitMQ's limit is 128 MiB; this checks our configured one.
    }
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    let q = unique("big");
    c.send(1, declare(&q)).await;
    c.method().await;
    let mut out = BytesMut::new();
    put_message(&mut out, &q, &[0u8; 1001]);
    c.write(&out).await;
    let text = c.expect_channel_close(1, 406).await;
    assert!(text.contains("larger than configured max size"), "{text}");
}

#[tokio::test]
async fn shutdown_closes_clients_with_connection_forced() {
    let b = start().await;
    let Some(broker) = b.broker().cloned() else {
        return;
    };
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    let (close_text, ()) = tokio::join!(c.expect_connection_close(320), broker.shutdown());
    assert!(close_text.starts_with("CONNECTION_FORCED"), "{close_text}");
    // The port is released.
    assert!(tokio::net::TcpStream::connect(b.addr).await.is_err());
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_make_the_broker_buffer_everything() {
    let b = start().await;
    if !b.is_warren() {
        return;
    }
    let q = unique("slow");
    // A no-ack consumer that never reads its socket.
    let mut slow = RawClient::open(b.addr).await;
    slow.open_channel(1).await;
    slow.send(1, declare(&q)).await;
    slow.method().await;
    slow.send(1, consume(&q, true)).await;
    slow.method().await;
    // Publish 64 MiB in 64 KiB messages.
    let mut p = RawClient::open(b.addr).await;
    p.open_channel(1).await;
    let body = vec![7u8; 64 * 1024];
    for _ in 0..16 {
        let mut out = BytesMut::new();
        for _ in 0..64 {
            put_message(&mut out, &q, &body);
        }
        p.write(&out).await;
    }
    // Most messages must still wait in the queue rather than in the slow
    // client's outbox: the broker stopped delivering once it was full.
    let count = message_count(&mut p, 1, &q).await;
    assert!(count > 512, "only {} of 1024 messages still queued", count);
}

/// The memory alarm blocks a publishing connection in the broker itself,
/// also for a client that did not ask to hear of it (no
/// `connection.blocked` capability, so nothing is sent): what it sends
/// after its first publish under the alarm is not read until the alarm
/// clears. A consumer on another connection goes on meanwhile.
#[tokio::test]
async fn under_the_memory_alarm_a_publisher_is_not_read() {
    let b = start().await;
    let Some(broker) = b.broker().cloned() else {
        return; // The alarm is set through Warren's API.
    };
    let q = unique("alarmed");
    let mut p = RawClient::open(b.addr).await;
    p.open_channel(1).await;
    p.send(1, declare(&q)).await;
    p.method().await;
    let (_conn, ch) = b.channel().await;
    let mut consumer = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let message = |body: &[u8]| {
        let mut out = BytesMut::new();
        put_message(&mut out, &q, body);
        out
    };
    const WAIT: Duration = Duration::from_secs(10);

    broker.set_memory_limit(Some(1));
    let mut alarm = broker.watch_memory_alarm();
    alarm.wait_for(|on| *on).await.unwrap();
    // Read and routed: the publish that finds the alarm on.
    p.write(&message(b"first")).await;
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"first");
    // Not read: nothing reaches the consumer while the alarm is on.
    p.write(&message(b"second")).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), consumer.next())
            .await
            .is_err(),
        "a publish was read under the memory alarm"
    );
    broker.set_memory_limit(None);
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"second");
    // The client never asked for connection.blocked: it got no frame.
    p.send(
        1,
        Method::ChannelClose(warren_protocol::ChannelClose {
            reply_code: 200,
            reply_text: ShortStr::default(),
            class_id: 0,
            method_id: 0,
        }),
    )
    .await;
    assert!(matches!(p.method().await, Method::ChannelCloseOk));
}

/// A client that acks a whole prefetch window in one write (as PerfTest
/// and warren-load do) has every ack handled, though the broker handles
/// them in slices and sends deliveries between slices; a method after the
/// acks in the same write comes after all of them.
/// A publish and a purge of its queue in one write: the queue's consumer
/// (on another connection, with room) gets the message before the purge
/// runs, as if they had come in separate reads.
#[tokio::test]
async fn a_purge_after_a_publish_in_the_same_write_leaves_the_consumer_its_message() {
    let b = start().await;
    let q = unique("purge-batch");
    let mut consumer = RawClient::open(b.addr).await;
    consumer.open_channel(1).await;
    consumer.send(1, declare(&q)).await;
    consumer.method().await;
    consumer.send(1, consume(&q, true)).await;
    let Method::BasicConsumeOk(_) = consumer.method().await else {
        panic!("expected consume-ok")
    };
    let mut publisher = RawClient::open(b.addr).await;
    publisher.open_channel(1).await;
    let mut out = BytesMut::new();
    put_message(&mut out, &q, b"kept");
    encode_method_frame(
        &mut out,
        1,
        &Method::QueuePurge(warren_protocol::QueuePurge {
            queue: ShortStr::try_from(q.as_str()).unwrap(),
            no_wait: false,
        }),
    );
    publisher.write(&out).await;
    let Method::QueuePurgeOk(ok) = publisher.method().await else {
        panic!("expected purge-ok")
    };
    assert_eq!(ok.message_count, 0, "the purge took the consumer's message");
    loop {
        match consumer.frame().await {
            Some(Frame::Body { payload, .. }) => {
                assert_eq!(payload.as_ref(), b"kept");
                break;
            }
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
}

/// Publishes read in one batch are delivered together at the end of it;
/// a message with a TTL of 0 among them must still go out at once (now or
/// never), not wait for the batch and expire.
#[tokio::test]
async fn a_batch_of_publishes_reaches_a_consumer_whole_and_in_order() {
    let b = start().await;
    let q = unique("batch");
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    c.send(1, declare(&q)).await;
    c.method().await;
    c.send(1, consume(&q, true)).await;
    let Method::BasicConsumeOk(_) = c.method().await else {
        panic!("expected consume-ok")
    };
    let mut out = BytesMut::new();
    for i in 0..200u32 {
        let body = i.to_be_bytes();
        if i == 100 {
            let now_or_never = BasicProperties {
                expiration: Some(ShortStr::from_static("0")),
                ..BasicProperties::default()
            };
            encode_method_frame(&mut out, 1, &publish(&q));
            encode_header_frame(&mut out, 1, 60, body.len() as u64, &now_or_never);
            encode_body_frames(&mut out, 1, &body, 131_072);
        } else {
            put_message(&mut out, &q, &body);
        }
    }
    c.write(&out).await;
    let mut bodies = Vec::new();
    while bodies.len() < 200 {
        match c.frame().await {
            Some(Frame::Body { payload, .. }) => bodies.push(u32::from_be_bytes(
                payload.as_ref().try_into().expect("a 4-byte body"),
            )),
            Some(_) => {}
            None => panic!("connection closed after {} deliveries", bodies.len()),
        }
    }
    assert_eq!(bodies, (0..200).collect::<Vec<u32>>());
}

#[tokio::test]
async fn a_window_of_acks_in_one_write_is_handled_whole_and_in_order() {
    let b = start().await;
    let q = unique("window");
    let mut c = RawClient::open(b.addr).await;
    c.open_channel(1).await;
    c.send(1, declare(&q)).await;
    c.method().await;
    let mut out = BytesMut::new();
    for _ in 0..300 {
        put_message(&mut out, &q, b"body");
    }
    c.write(&out).await;
    c.send(
        1,
        Method::BasicQos(warren_protocol::BasicQos {
            prefetch_size: 0,
            prefetch_count: 100,
            global: false,
        }),
    )
    .await;
    c.method().await;
    c.send(1, consume(&q, false)).await;
    let Method::BasicConsumeOk(_) = c.method().await else {
        panic!("expected consume-ok")
    };
    let mut next = 1;
    for window in 0..3 {
        // The window's 100 deliveries, in tag order, and no more.
        let mut tags = Vec::new();
        while tags.len() < 100 {
            if let Some(Frame::Method {
                method: Method::BasicDeliver(d),
                ..
            }) = c.frame().await
            {
                tags.push(d.delivery_tag);
            }
        }
        assert_eq!(
            tags,
            (next..next + 100).collect::<Vec<u64>>(),
            "window {window}"
        );
        next += 100;
        let mut acks = BytesMut::new();
        for tag in tags {
            let ack = Method::BasicAck(warren_protocol::BasicAck {
                delivery_tag: tag,
                multiple: false,
            });
            encode_method_frame(&mut acks, 1, &ack);
        }
        if window == 2 {
            // After the last acks, in the same write: had any of them been
            // lost, closing the channel would put its message back.
            encode_method_frame(
                &mut acks,
                1,
                &Method::ChannelClose(warren_protocol::ChannelClose {
                    reply_code: 200,
                    reply_text: ShortStr::from_static("done"),
                    class_id: 0,
                    method_id: 0,
                }),
            );
        }
        c.write(&acks).await;
    }
    loop {
        match c.frame().await {
            Some(Frame::Method {
                method: Method::ChannelCloseOk,
                ..
            }) => break,
            Some(Frame::Method {
                method: Method::BasicDeliver(d),
                ..
            }) => panic!("delivery {} beyond the 300 published", d.delivery_tag),
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
    c.open_channel(2).await;
    assert_eq!(
        message_count(&mut c, 2, &q).await,
        0,
        "every ack was handled"
    );
}
