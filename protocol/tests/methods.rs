//! Every method: encodes to hand-written golden bytes, decodes back, and
//! every truncation of its payload and of its frame is an error or "need
//! more bytes", never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use warren_protocol::*;

fn ss(s: &str) -> Vec<u8> {
    let mut v = vec![u8::try_from(s.len()).unwrap()];
    v.extend_from_slice(s.as_bytes());
    v
}

fn ls(s: &str) -> Vec<u8> {
    let mut v = u32::try_from(s.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn s(v: &str) -> ShortStr {
    ShortStr::try_from(v).unwrap()
}

/// `{"x-a": I32(1)}`
fn table() -> FieldTable {
    FieldTable::from_entries([(s("x-a"), FieldValue::I32(1))])
}

const TABLE: &[u8] = &[0, 0, 0, 9, 3, b'x', b'-', b'a', b'I', 0, 0, 0, 1];

/// Each method with the bytes of its arguments (after class and method id).
fn cases() -> Vec<(Method, Vec<u8>)> {
    vec![
        (
            Method::ConnectionStart(ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: table(),
                mechanisms: LongStr::from("PLAIN AMQPLAIN"),
                locales: LongStr::from("en_US"),
            }),
            cat(&[&[0, 9], TABLE, &ls("PLAIN AMQPLAIN"), &ls("en_US")]),
        ),
        (
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: table(),
                mechanism: s("PLAIN"),
                response: LongStr::from("\0guest\0guest"),
                locale: s("en_US"),
            }),
            cat(&[TABLE, &ss("PLAIN"), &ls("\0guest\0guest"), &ss("en_US")]),
        ),
        (
            Method::ConnectionSecure(ConnectionSecure {
                challenge: LongStr::from("ch"),
            }),
            ls("ch"),
        ),
        (
            Method::ConnectionSecureOk(ConnectionSecureOk {
                response: LongStr::from("re"),
            }),
            ls("re"),
        ),
        (
            Method::ConnectionTune(ConnectionTune {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 60,
            }),
            vec![0x07, 0xff, 0, 2, 0, 0, 0, 60],
        ),
        (
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: 1,
                frame_max: 4096,
                heartbeat: 0,
            }),
            vec![0, 1, 0, 0, 0x10, 0, 0, 0],
        ),
        (
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: s("/"),
            }),
            // vhost, capabilities "", insist false
            cat(&[&ss("/"), &[0], &[0]]),
        ),
        (Method::ConnectionOpenOk, vec![0]),
        (
            Method::ConnectionClose(ConnectionClose {
                reply_code: 320,
                reply_text: s("CONNECTION_FORCED - bye"),
                class_id: 0,
                method_id: 0,
            }),
            cat(&[&[0x01, 0x40], &ss("CONNECTION_FORCED - bye"), &[0, 0, 0, 0]]),
        ),
        (Method::ConnectionCloseOk, vec![]),
        (
            Method::ConnectionBlocked(ConnectionBlocked {
                reason: s("low on memory"),
            }),
            ss("low on memory"),
        ),
        (Method::ConnectionUnblocked, vec![]),
        (
            Method::ConnectionUpdateSecret(ConnectionUpdateSecret {
                new_secret: LongStr::from("token"),
                reason: s("refresh"),
            }),
            cat(&[&ls("token"), &ss("refresh")]),
        ),
        (Method::ConnectionUpdateSecretOk, vec![]),
        (Method::ChannelOpen, vec![0]),
        (Method::ChannelOpenOk, vec![0, 0, 0, 0]),
        (Method::ChannelFlow(ChannelFlow { active: true }), vec![1]),
        (
            Method::ChannelFlowOk(ChannelFlowOk { active: false }),
            vec![0],
        ),
        (
            Method::ChannelClose(ChannelClose {
                reply_code: 404,
                reply_text: s("NOT_FOUND"),
                class_id: 50,
                method_id: 10,
            }),
            cat(&[&[0x01, 0x94], &ss("NOT_FOUND"), &[0, 50, 0, 10]]),
        ),
        (Method::ChannelCloseOk, vec![]),
        (
            Method::ExchangeDeclare(ExchangeDeclare {
                exchange: s("ex"),
                kind: s("topic"),
                passive: true,
                durable: false,
                auto_delete: true,
                internal: false,
                no_wait: true,
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("ex"), &ss("topic"), &[0b1_0101], TABLE]),
        ),
        (Method::ExchangeDeclareOk, vec![]),
        (
            Method::ExchangeDelete(ExchangeDelete {
                exchange: s("ex"),
                if_unused: false,
                no_wait: true,
            }),
            cat(&[&[0, 0], &ss("ex"), &[0b10]]),
        ),
        (Method::ExchangeDeleteOk, vec![]),
        (
            Method::ExchangeBind(ExchangeBind {
                destination: s("d"),
                source: s("src"),
                routing_key: s("k.#"),
                no_wait: true,
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("d"), &ss("src"), &ss("k.#"), &[1], TABLE]),
        ),
        (Method::ExchangeBindOk, vec![]),
        (
            Method::ExchangeUnbind(ExchangeUnbind {
                destination: s("d"),
                source: s("src"),
                routing_key: s(""),
                no_wait: false,
                arguments: FieldTable::new(),
            }),
            cat(&[&[0, 0], &ss("d"), &ss("src"), &ss(""), &[0], &[0, 0, 0, 0]]),
        ),
        (Method::ExchangeUnbindOk, vec![]),
        (
            Method::QueueDeclare(QueueDeclare {
                queue: s("q"),
                passive: false,
                durable: true,
                exclusive: false,
                auto_delete: true,
                no_wait: false,
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("q"), &[0b0_1010], TABLE]),
        ),
        (
            Method::QueueDeclareOk(QueueDeclareOk {
                queue: s("amq.gen-1"),
                message_count: 7,
                consumer_count: 258,
            }),
            cat(&[&ss("amq.gen-1"), &[0, 0, 0, 7], &[0, 0, 1, 2]]),
        ),
        (
            Method::QueueBind(QueueBind {
                queue: s("q"),
                exchange: s("ex"),
                routing_key: s("rk"),
                no_wait: false,
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("q"), &ss("ex"), &ss("rk"), &[0], TABLE]),
        ),
        (Method::QueueBindOk, vec![]),
        (
            Method::QueuePurge(QueuePurge {
                queue: s("q"),
                no_wait: true,
            }),
            cat(&[&[0, 0], &ss("q"), &[1]]),
        ),
        (
            Method::QueuePurgeOk(QueuePurgeOk {
                message_count: 65536,
            }),
            vec![0, 1, 0, 0],
        ),
        (
            Method::QueueDelete(QueueDelete {
                queue: s("q"),
                if_unused: true,
                if_empty: false,
                no_wait: true,
            }),
            cat(&[&[0, 0], &ss("q"), &[0b101]]),
        ),
        (
            Method::QueueDeleteOk(QueueDeleteOk { message_count: 3 }),
            vec![0, 0, 0, 3],
        ),
        (
            Method::QueueUnbind(QueueUnbind {
                queue: s("q"),
                exchange: s("ex"),
                routing_key: s("rk"),
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("q"), &ss("ex"), &ss("rk"), TABLE]),
        ),
        (Method::QueueUnbindOk, vec![]),
        (
            Method::BasicQos(BasicQos {
                prefetch_size: 0,
                prefetch_count: 10,
                global: true,
            }),
            vec![0, 0, 0, 0, 0, 10, 1],
        ),
        (Method::BasicQosOk, vec![]),
        (
            Method::BasicConsume(BasicConsume {
                queue: s("q"),
                consumer_tag: s("ctag"),
                no_local: false,
                no_ack: true,
                exclusive: true,
                no_wait: false,
                arguments: table(),
            }),
            cat(&[&[0, 0], &ss("q"), &ss("ctag"), &[0b0110], TABLE]),
        ),
        (
            Method::BasicConsumeOk(BasicConsumeOk {
                consumer_tag: s("ctag"),
            }),
            ss("ctag"),
        ),
        (
            Method::BasicCancel(BasicCancel {
                consumer_tag: s("ctag"),
                no_wait: true,
            }),
            cat(&[&ss("ctag"), &[1]]),
        ),
        (
            Method::BasicCancelOk(BasicCancelOk {
                consumer_tag: s("ctag"),
            }),
            ss("ctag"),
        ),
        (
            Method::BasicPublish(BasicPublish {
                exchange: s("amq.topic"),
                routing_key: s("a.b"),
                mandatory: true,
                immediate: false,
            }),
            cat(&[&[0, 0], &ss("amq.topic"), &ss("a.b"), &[1]]),
        ),
        (
            Method::BasicReturn(BasicReturn {
                reply_code: 312,
                reply_text: s("NO_ROUTE"),
                exchange: s("ex"),
                routing_key: s("rk"),
            }),
            cat(&[&[0x01, 0x38], &ss("NO_ROUTE"), &ss("ex"), &ss("rk")]),
        ),
        (
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: s("ctag"),
                delivery_tag: 0x0102_0304_0506_0708,
                redelivered: true,
                exchange: s("ex"),
                routing_key: s("rk"),
            }),
            cat(&[
                &ss("ctag"),
                &[1, 2, 3, 4, 5, 6, 7, 8],
                &[1],
                &ss("ex"),
                &ss("rk"),
            ]),
        ),
        (
            Method::BasicGet(BasicGet {
                queue: s("q"),
                no_ack: true,
            }),
            cat(&[&[0, 0], &ss("q"), &[1]]),
        ),
        (
            Method::BasicGetOk(BasicGetOk {
                delivery_tag: 1,
                redelivered: false,
                exchange: s(""),
                routing_key: s("q"),
                message_count: 9,
            }),
            cat(&[
                &[0, 0, 0, 0, 0, 0, 0, 1],
                &[0],
                &ss(""),
                &ss("q"),
                &[0, 0, 0, 9],
            ]),
        ),
        (Method::BasicGetEmpty, vec![0]),
        (
            Method::BasicAck(BasicAck {
                delivery_tag: 42,
                multiple: true,
            }),
            vec![0, 0, 0, 0, 0, 0, 0, 42, 1],
        ),
        (
            Method::BasicReject(BasicReject {
                delivery_tag: 43,
                requeue: false,
            }),
            vec![0, 0, 0, 0, 0, 0, 0, 43, 0],
        ),
        (
            Method::BasicRecoverAsync(BasicRecoverAsync { requeue: true }),
            vec![1],
        ),
        (
            Method::BasicRecover(BasicRecover { requeue: false }),
            vec![0],
        ),
        (Method::BasicRecoverOk, vec![]),
        (
            Method::BasicNack(BasicNack {
                delivery_tag: 44,
                multiple: false,
                requeue: true,
            }),
            vec![0, 0, 0, 0, 0, 0, 0, 44, 0b10],
        ),
        (
            Method::ConfirmSelect(ConfirmSelect { no_wait: true }),
            vec![1],
        ),
        (Method::ConfirmSelectOk, vec![]),
        (Method::TxSelect, vec![]),
        (Method::TxSelectOk, vec![]),
        (Method::TxCommit, vec![]),
        (Method::TxCommitOk, vec![]),
        (Method::TxRollback, vec![]),
        (Method::TxRollbackOk, vec![]),
    ]
}

/// Class and method id as the spec numbers them.
const IDS: &[(&str, u16, u16)] = &[
    ("connection.start", 10, 10),
    ("connection.start-ok", 10, 11),
    ("connection.secure", 10, 20),
    ("connection.secure-ok", 10, 21),
    ("connection.tune", 10, 30),
    ("connection.tune-ok", 10, 31),
    ("connection.open", 10, 40),
    ("connection.open-ok", 10, 41),
    ("connection.close", 10, 50),
    ("connection.close-ok", 10, 51),
    ("connection.blocked", 10, 60),
    ("connection.unblocked", 10, 61),
    ("connection.update-secret", 10, 70),
    ("connection.update-secret-ok", 10, 71),
    ("channel.open", 20, 10),
    ("channel.open-ok", 20, 11),
    ("channel.flow", 20, 20),
    ("channel.flow-ok", 20, 21),
    ("channel.close", 20, 40),
    ("channel.close-ok", 20, 41),
    ("exchange.declare", 40, 10),
    ("exchange.declare-ok", 40, 11),
    ("exchange.delete", 40, 20),
    ("exchange.delete-ok", 40, 21),
    ("exchange.bind", 40, 30),
    ("exchange.bind-ok", 40, 31),
    ("exchange.unbind", 40, 40),
    ("exchange.unbind-ok", 40, 51),
    ("queue.declare", 50, 10),
    ("queue.declare-ok", 50, 11),
    ("queue.bind", 50, 20),
    ("queue.bind-ok", 50, 21),
    ("queue.purge", 50, 30),
    ("queue.purge-ok", 50, 31),
    ("queue.delete", 50, 40),
    ("queue.delete-ok", 50, 41),
    ("queue.unbind", 50, 50),
    ("queue.unbind-ok", 50, 51),
    ("basic.qos", 60, 10),
    ("basic.qos-ok", 60, 11),
    ("basic.consume", 60, 20),
    ("basic.consume-ok", 60, 21),
    ("basic.cancel", 60, 30),
    ("basic.cancel-ok", 60, 31),
    ("basic.publish", 60, 40),
    ("basic.return", 60, 50),
    ("basic.deliver", 60, 60),
    ("basic.get", 60, 70),
    ("basic.get-ok", 60, 71),
    ("basic.get-empty", 60, 72),
    ("basic.ack", 60, 80),
    ("basic.reject", 60, 90),
    ("basic.recover-async", 60, 100),
    ("basic.recover", 60, 110),
    ("basic.recover-ok", 60, 111),
    ("basic.nack", 60, 120),
    ("confirm.select", 85, 10),
    ("confirm.select-ok", 85, 11),
    ("tx.select", 90, 10),
    ("tx.select-ok", 90, 11),
    ("tx.commit", 90, 20),
    ("tx.commit-ok", 90, 21),
    ("tx.rollback", 90, 30),
    ("tx.rollback-ok", 90, 31),
];

fn payload(method: &Method, args: &[u8]) -> Vec<u8> {
    cat(&[
        &method.class_id().to_be_bytes(),
        &method.method_id().to_be_bytes(),
        args,
    ])
}

#[test]
fn every_method_is_covered_with_its_ids() {
    let cases = cases();
    assert_eq!(cases.len(), IDS.len());
    for ((method, _), (name, class_id, method_id)) in cases.iter().zip(IDS) {
        assert_eq!(method.name(), *name);
        assert_eq!(
            (method.class_id(), method.method_id()),
            (*class_id, *method_id),
            "{name}"
        );
        assert_eq!(Method::name_of(*class_id, *method_id), Some(*name));
    }
}

#[test]
fn every_method_encodes_to_its_golden_bytes() {
    for (method, args) in cases() {
        let mut buf = BytesMut::new();
        method.encode(&mut buf);
        assert_eq!(&buf[..], &payload(&method, &args)[..], "{}", method.name());
    }
}

#[test]
fn every_method_decodes_from_its_golden_bytes() {
    for (method, args) in cases() {
        let bytes = Bytes::from(payload(&method, &args));
        assert_eq!(Method::decode(&bytes), Ok(method));
    }
}

#[test]
fn every_method_round_trips_through_a_frame() {
    for (channel, (method, _)) in cases().into_iter().enumerate() {
        let channel = u16::try_from(channel).unwrap();
        let mut buf = BytesMut::new();
        encode_method_frame(&mut buf, channel, &method);
        let frame = decode_frame(&mut buf, FRAME_MIN_SIZE).unwrap();
        assert_eq!(frame, Some(Frame::Method { channel, method }));
        assert!(buf.is_empty());
    }
}

#[test]
fn every_truncated_payload_is_an_error() {
    for (method, args) in cases() {
        let full = payload(&method, &args);
        for i in 0..full.len() {
            let cut = Bytes::copy_from_slice(&full[..i]);
            assert_eq!(
                Method::decode(&cut),
                Err(DecodeError::Truncated),
                "{} cut at {i}",
                method.name()
            );
        }
    }
}

#[test]
fn every_truncated_frame_needs_more_bytes() {
    for (method, _) in cases() {
        let mut full = BytesMut::new();
        encode_method_frame(&mut full, 1, &method);
        for i in 0..full.len() {
            let mut cut = BytesMut::from(&full[..i]);
            assert_eq!(
                decode_frame(&mut cut, 0),
                Ok(None),
                "{} cut at {i}",
                method.name()
            );
            assert_eq!(cut.len(), i, "an incomplete frame is left in the buffer");
        }
    }
}

/// A frame whose size field is honest but whose method payload is cut:
/// the frame is complete, its arguments are not.
#[test]
fn a_complete_frame_with_cut_arguments_is_a_frame_error() {
    for (method, args) in cases() {
        let full = payload(&method, &args);
        for i in 0..full.len() {
            let mut buf = BytesMut::new();
            write_raw_frame(&mut buf, FRAME_METHOD, 1, &full[..i]);
            let err = decode_frame(&mut buf, 0).unwrap_err();
            assert_eq!(err, DecodeError::Truncated);
            assert_eq!(err.reply_code(), ReplyCode::FrameError);
        }
    }
}

#[test]
fn trailing_bytes_after_the_arguments_are_rejected() {
    for (method, args) in cases() {
        let mut full = payload(&method, &args);
        full.push(0);
        assert_eq!(
            Method::decode(&Bytes::from(full)),
            Err(DecodeError::TrailingBytes),
            "{}",
            method.name()
        );
    }
}

#[test]
fn reserved_fields_are_ignored_on_decode() {
    // connection.open with capabilities "x" and insist set, as old
    // clients send them.
    let bytes = Bytes::from(cat(&[&[0, 10, 0, 40], &ss("/"), &ss("x"), &[1]]));
    assert_eq!(
        Method::decode(&bytes),
        Ok(Method::ConnectionOpen(ConnectionOpen {
            virtual_host: s("/")
        }))
    );
    // A non-zero ticket.
    let bytes = Bytes::from(cat(&[&[0, 60, 0, 70], &[0, 1], &ss("q"), &[0]]));
    assert_eq!(
        Method::decode(&bytes),
        Ok(Method::BasicGet(BasicGet {
            queue: s("q"),
            no_ack: false
        }))
    );
}

#[test]
fn unknown_methods_are_not_implemented() {
    for (class_id, method_id) in [(60u16, 41u16), (10, 0), (99, 10), (0, 0), (40, 41)] {
        let bytes = Bytes::from(cat(&[&class_id.to_be_bytes(), &method_id.to_be_bytes()]));
        let err = Method::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownMethod {
                class_id,
                method_id
            }
        );
        assert_eq!(err.reply_code(), ReplyCode::NotImplemented);
    }
}

#[test]
fn only_content_methods_have_content() {
    let with: Vec<&str> = cases()
        .iter()
        .filter(|(m, _)| m.has_content())
        .map(|(m, _)| m.name())
        .collect();
    assert_eq!(
        with,
        [
            "basic.publish",
            "basic.return",
            "basic.deliver",
            "basic.get-ok"
        ]
    );
}

#[test]
fn decoded_strings_are_slices_of_the_frame() {
    let (method, args) = cases()
        .into_iter()
        .find(|(m, _)| m.name() == "basic.publish")
        .unwrap();
    let bytes = Bytes::from(payload(&method, &args));
    let Ok(Method::BasicPublish(p)) = Method::decode(&bytes) else {
        panic!()
    };
    let range = bytes.as_ptr_range();
    assert!(range.contains(&p.exchange.as_bytes().as_ptr()));
    assert!(range.contains(&p.routing_key.as_bytes().as_ptr()));
}

fn write_raw_frame(buf: &mut BytesMut, kind: u8, channel: u16, payload: &[u8]) {
    buf.extend_from_slice(&[kind]);
    buf.extend_from_slice(&channel.to_be_bytes());
    buf.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&[FRAME_END]);
}

/// The same through `decode_frame`, which takes a faster path for
/// basic.publish: it must fail the same way.
#[test]
fn trailing_bytes_in_a_method_frame_are_rejected() {
    for (method, args) in cases() {
        let mut full = payload(&method, &args);
        full.push(0);
        let mut buf = BytesMut::new();
        write_raw_frame(&mut buf, FRAME_METHOD, 1, &full);
        assert_eq!(
            decode_frame(&mut buf, 0),
            Err(DecodeError::TrailingBytes),
            "{}",
            method.name()
        );
    }
}

#[test]
fn a_publish_from_a_frame_keeps_its_strings_in_the_read_buffer() {
    let (method, _) = cases()
        .into_iter()
        .find(|(m, _)| m.name() == "basic.publish")
        .unwrap();
    let mut buf = BytesMut::new();
    encode_method_frame(&mut buf, 1, &method);
    let start = buf.as_ptr() as usize;
    let range = start..start + buf.len();
    let Ok(Some(Frame::Method {
        method: Method::BasicPublish(p),
        ..
    })) = decode_frame(&mut buf, 0)
    else {
        panic!()
    };
    assert_eq!(Method::BasicPublish(p.clone()), method);
    assert!(range.contains(&(p.exchange.as_bytes().as_ptr() as usize)));
    assert!(range.contains(&(p.routing_key.as_bytes().as_ptr() as usize)));
}
