//! Frame splitting and writing: golden bytes of a whole publish, partial
//! input, limits, and malformed frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use warren_protocol::*;

fn s(v: &str) -> ShortStr {
    ShortStr::try_from(v).unwrap()
}

fn publish() -> (Method, BasicProperties) {
    let method = Method::BasicPublish(BasicPublish {
        exchange: s("ex"),
        routing_key: s("rk"),
        mandatory: false,
        immediate: false,
    });
    let props = BasicProperties {
        content_type: Some(s("text/plain")),
        delivery_mode: Some(2),
        ..Default::default()
    };
    (method, props)
}

#[rustfmt::skip]
const PUBLISH_GOLDEN: &[u8] = &[
    // method frame, channel 1, 13-byte payload
    1, 0, 1, 0, 0, 0, 13,
    0, 60, 0, 40, // basic.publish
    0, 0, // ticket
    2, b'e', b'x',
    2, b'r', b'k',
    0, // mandatory, immediate
    0xce,
    // header frame, channel 1, 26-byte payload
    2, 0, 1, 0, 0, 0, 26,
    0, 60, 0, 0, // class, weight
    0, 0, 0, 0, 0, 0, 0, 5, // body size
    0x90, 0x00, // content-type, delivery-mode
    10, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n',
    2,
    0xce,
    // body frame, channel 1
    3, 0, 1, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0xce,
];

#[test]
fn a_publish_encodes_to_golden_bytes() {
    let (method, props) = publish();
    let mut buf = BytesMut::new();
    encode_method_frame(&mut buf, 1, &method);
    encode_header_frame(&mut buf, 1, 60, 5, &props);
    encode_body_frames(&mut buf, 1, b"hello", FRAME_MIN_SIZE);
    assert_eq!(&buf[..], PUBLISH_GOLDEN);
}

#[test]
fn a_publish_decodes_from_golden_bytes_without_copying_the_body() {
    let (method, props) = publish();
    let mut buf = BytesMut::from(PUBLISH_GOLDEN);
    let start = buf.as_ptr() as usize;
    let range = start..start + PUBLISH_GOLDEN.len();

    assert_eq!(
        decode_frame(&mut buf, FRAME_MIN_SIZE),
        Ok(Some(Frame::Method { channel: 1, method }))
    );
    let Ok(Some(Frame::Header { channel: 1, header })) = decode_frame(&mut buf, FRAME_MIN_SIZE)
    else {
        panic!()
    };
    assert_eq!((header.class_id, header.body_size), (60, 5));
    assert_eq!(header.properties, props);
    assert_eq!(&header.properties.raw()[..], &PUBLISH_GOLDEN[40..54]);
    let Ok(Some(Frame::Body {
        channel: 1,
        payload,
    })) = decode_frame(&mut buf, FRAME_MIN_SIZE)
    else {
        panic!()
    };
    assert_eq!(&payload[..], b"hello");
    assert!(
        range.contains(&(payload.as_ptr() as usize)),
        "the body is a slice of the read buffer"
    );
    assert!(range.contains(&(header.properties.raw().as_ptr() as usize)));
    assert_eq!(decode_frame(&mut buf, FRAME_MIN_SIZE), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn raw_properties_forward_byte_for_byte() {
    let mut buf = BytesMut::from(&PUBLISH_GOLDEN[21..]);
    let Ok(Some(Frame::Header { header, .. })) = decode_frame(&mut buf, 0) else {
        panic!()
    };
    let mut out = BytesMut::new();
    encode_header_frame_raw(
        &mut out,
        1,
        header.class_id,
        header.body_size,
        header.properties.raw(),
    );
    assert_eq!(&out[..], &PUBLISH_GOLDEN[21..55]);
}

#[test]
fn frames_arriving_one_byte_at_a_time() {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &byte in PUBLISH_GOLDEN {
        buf.extend_from_slice(&[byte]);
        while let Some(frame) = decode_frame(&mut buf, 0).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 3);
    assert!(buf.is_empty());
}

#[test]
fn bodies_split_at_frame_max() {
    let body: Vec<u8> = (0..10_000u32).map(|i| i.to_le_bytes()[0]).collect();
    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 7, &body, FRAME_MIN_SIZE);
    let mut sizes = Vec::new();
    let mut joined = Vec::new();
    while let Some(frame) = decode_frame(&mut buf, FRAME_MIN_SIZE).unwrap() {
        let Frame::Body {
            channel: 7,
            payload,
        } = frame
        else {
            panic!()
        };
        sizes.push(payload.len());
        joined.extend_from_slice(&payload);
    }
    assert_eq!(sizes, [4088, 4088, 1824]);
    assert_eq!(joined, body);

    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 7, &body, 0);
    assert_eq!(buf.len(), body.len() + 8, "frame_max 0: one frame");

    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 7, &[], FRAME_MIN_SIZE);
    assert!(buf.is_empty(), "an empty body has no body frame");

    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 7, &body[..4088], FRAME_MIN_SIZE);
    assert_eq!(buf.len(), 4096, "a body that exactly fills a frame");
}

#[test]
fn heartbeat_and_protocol_header_golden_bytes() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(&buf[..], &[8, 0, 0, 0, 0, 0, 0, 0xce]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Ok(Some(Frame::Heartbeat { channel: 0 }))
    );

    let mut buf = BytesMut::new();
    encode_protocol_header(&mut buf);
    assert_eq!(&buf[..], b"AMQP\x00\x00\x09\x01");
}

#[test]
fn protocol_header_check() {
    assert_eq!(check_protocol_header(b""), ProtocolHeaderCheck::Incomplete);
    assert_eq!(
        check_protocol_header(b"AMQ"),
        ProtocolHeaderCheck::Incomplete
    );
    assert_eq!(
        check_protocol_header(b"AMQP\x00\x00\x09"),
        ProtocolHeaderCheck::Incomplete
    );
    assert_eq!(
        check_protocol_header(PROTOCOL_HEADER),
        ProtocolHeaderCheck::Ok
    );
    assert_eq!(
        check_protocol_header(b"AMQP\x00\x00\x09\x01more"),
        ProtocolHeaderCheck::Ok
    );
    assert_eq!(
        check_protocol_header(b"GET "),
        ProtocolHeaderCheck::Unsupported
    );
    assert_eq!(
        check_protocol_header(b"AMQP\x01\x01\x00\x09"),
        ProtocolHeaderCheck::Unsupported
    );
    assert_eq!(
        check_protocol_header(b"AMQP\x00\x00\x09\x00"),
        ProtocolHeaderCheck::Unsupported
    );
}

#[test]
fn a_4_gib_size_waits_without_reserving() {
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let capacity = buf.capacity();
    assert_eq!(decode_frame(&mut buf, 0), Ok(None));
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), 10);
}

#[test]
fn a_frame_over_frame_max_is_refused_before_it_arrives() {
    let mut buf = BytesMut::from(&[FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff][..]);
    let err = decode_frame(&mut buf, 131_072).unwrap_err();
    assert_eq!(
        err,
        DecodeError::FrameTooLarge {
            size: 0xffff_ffff + 8,
            max: 131_072
        }
    );
    assert_eq!(err.reply_code(), ReplyCode::FrameError);

    // Exactly frame_max is fine; one more byte is not.
    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 1, &[0; 4088], 0);
    assert!(decode_frame(&mut buf.clone(), 4096).unwrap().is_some());
    assert!(matches!(
        decode_frame(&mut buf, 4095),
        Err(DecodeError::FrameTooLarge {
            size: 4096,
            max: 4095
        })
    ));
}

#[test]
fn malformed_frames() {
    let mut buf = BytesMut::from(&[FRAME_BODY, 0, 1, 0, 0, 0, 1, b'x', 0xcd][..]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Err(DecodeError::BadFrameEnd(0xcd))
    );

    // An AMQP header sent mid-connection reads as frame type 'A'.
    let mut buf = BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Err(DecodeError::UnknownFrameType(b'A'))
    );

    let mut buf = BytesMut::from(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 1, 0, 0xce][..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::BadHeartbeat(1)));

    // A method frame too short for class and method ids.
    let mut buf = BytesMut::from(&[FRAME_METHOD, 0, 0, 0, 0, 0, 2, 0, 10, 0xce][..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::Truncated));

    // A header frame whose properties are cut.
    let mut buf = BytesMut::from(
        &[
            FRAME_HEADER,
            0,
            1,
            0,
            0,
            0,
            13,
            0,
            60,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0x80,
            0xce,
        ][..],
    );
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::Truncated));

    for err in [
        DecodeError::BadFrameEnd(0),
        DecodeError::UnknownFrameType(9),
        DecodeError::BadHeartbeat(1),
    ] {
        assert_eq!(err.reply_code(), ReplyCode::FrameError);
    }
}

#[test]
fn heartbeats_keep_their_channel() {
    let mut buf = BytesMut::from(&[FRAME_HEARTBEAT, 0, 5, 0, 0, 0, 0, 0xce][..]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Ok(Some(Frame::Heartbeat { channel: 5 }))
    );
}

#[test]
fn header_continuation_flags_are_kept_in_raw_properties() {
    let payload: &[u8] = &[
        0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 0x00, 0x00, 1,
    ];
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[FRAME_HEADER, 0, 1, 0, 0, 0, 17]);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&[FRAME_END]);
    let Ok(Some(Frame::Header { header, .. })) = decode_frame(&mut buf, 0) else {
        panic!()
    };
    assert_eq!(header.properties.delivery_mode(), Some(1));
    assert_eq!(
        header.properties.raw(),
        &Bytes::copy_from_slice(&payload[12..])
    );
}

#[test]
fn frame_encode_matches_the_encoders() {
    let (method, props) = publish();
    let frames = [
        Frame::Method { channel: 1, method },
        Frame::Header {
            channel: 1,
            header: ContentHeader::new(60, 5, props),
        },
        Frame::Body {
            channel: 1,
            payload: Bytes::from_static(b"hello"),
        },
    ];
    let mut buf = BytesMut::new();
    for frame in &frames {
        frame.encode(&mut buf);
    }
    assert_eq!(&buf[..], PUBLISH_GOLDEN);
    for frame in frames {
        assert_eq!(decode_frame(&mut buf, 0), Ok(Some(frame)));
    }
}

#[test]
fn a_deliver_frame_from_borrowed_names_is_the_method_frame() {
    for (tag, exchange, key, redelivered) in [
        ("amq.ctag-1", "", "jobs", false),
        ("c", "amq.topic", "a.b.c", true),
        (&"t".repeat(255)[..], &"x".repeat(255)[..], "", false),
    ] {
        let mut want = BytesMut::new();
        let method = Method::BasicDeliver(BasicDeliver {
            consumer_tag: s(tag),
            delivery_tag: 0x0102_0304_0506_0708,
            redelivered,
            exchange: s(exchange),
            routing_key: s(key),
        });
        encode_method_frame(&mut want, 7, &method);
        let mut got = BytesMut::new();
        encode_deliver_frame(
            &mut got,
            7,
            &s(tag),
            0x0102_0304_0506_0708,
            redelivered,
            &s(exchange),
            &s(key),
        );
        assert_eq!(got, want);
    }
}
