//! Content header properties: the flag word and all 14 properties.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use warren_protocol::*;

fn s(v: &str) -> ShortStr {
    ShortStr::try_from(v).unwrap()
}

fn all() -> BasicProperties {
    BasicProperties {
        content_type: Some(s("application/json")),
        content_encoding: Some(s("gzip")),
        headers: Some(FieldTable::from_entries([(
            s("x-group-id"),
            FieldValue::LongStr(LongStr::from("g1")),
        )])),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some(s("corr")),
        reply_to: Some(s("amq.rabbitmq.reply-to")),
        expiration: Some(s("60000")),
        message_id: Some(s("m-1")),
        timestamp: Some(1_700_000_000),
        kind: Some(s("order.created")),
        user_id: Some(s("guest")),
        app_id: Some(s("shop")),
        cluster_id: Some(s("c")),
    }
}

fn ss(v: &str) -> Vec<u8> {
    let mut out = vec![u8::try_from(v.len()).unwrap()];
    out.extend_from_slice(v.as_bytes());
    out
}

fn all_golden() -> Vec<u8> {
    [
        &[0xff, 0xfc][..],
        &ss("application/json"),
        &ss("gzip"),
        &[0, 0, 0, 18, 10],
        b"x-group-id",
        &[b'S', 0, 0, 0, 2, b'g', b'1'],
        &[2],
        &[9],
        &ss("corr"),
        &ss("amq.rabbitmq.reply-to"),
        &ss("60000"),
        &ss("m-1"),
        &1_700_000_000u64.to_be_bytes(),
        &ss("order.created"),
        &ss("guest"),
        &ss("shop"),
        &ss("c"),
    ]
    .concat()
}

#[test]
fn all_14_properties_encode_to_golden_bytes() {
    let mut buf = BytesMut::new();
    all().encode(&mut buf);
    assert_eq!(&buf[..], &all_golden()[..]);
    assert_eq!(all().flags(), 0xfffc);
}

#[test]
fn all_14_properties_decode_from_golden_bytes() {
    assert_eq!(
        BasicProperties::decode(&Bytes::from(all_golden())),
        Ok(all())
    );
}

#[test]
fn no_properties_is_a_zero_flag_word() {
    let mut buf = BytesMut::new();
    BasicProperties::default().encode(&mut buf);
    assert_eq!(&buf[..], &[0, 0]);
    assert_eq!(
        BasicProperties::decode(&Bytes::from_static(&[0, 0])),
        Ok(BasicProperties::default())
    );
}

/// Each property alone sets its own flag bit, from bit 15 down to bit 2.
#[test]
fn each_property_alone_round_trips_with_its_flag_bit() {
    let full = all();
    let singles: Vec<BasicProperties> = vec![
        BasicProperties {
            content_type: full.content_type.clone(),
            ..Default::default()
        },
        BasicProperties {
            content_encoding: full.content_encoding.clone(),
            ..Default::default()
        },
        BasicProperties {
            headers: full.headers.clone(),
            ..Default::default()
        },
        BasicProperties {
            delivery_mode: full.delivery_mode,
            ..Default::default()
        },
        BasicProperties {
            priority: full.priority,
            ..Default::default()
        },
        BasicProperties {
            correlation_id: full.correlation_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            reply_to: full.reply_to.clone(),
            ..Default::default()
        },
        BasicProperties {
            expiration: full.expiration.clone(),
            ..Default::default()
        },
        BasicProperties {
            message_id: full.message_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            timestamp: full.timestamp,
            ..Default::default()
        },
        BasicProperties {
            kind: full.kind.clone(),
            ..Default::default()
        },
        BasicProperties {
            user_id: full.user_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            app_id: full.app_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            cluster_id: full.cluster_id.clone(),
            ..Default::default()
        },
    ];
    for (i, props) in singles.into_iter().enumerate() {
        assert_eq!(props.flags(), 1 << (15 - i));
        let bytes = props.to_bytes();
        assert_eq!(&bytes[..2], &(1u16 << (15 - i)).to_be_bytes());
        assert_eq!(BasicProperties::decode(&bytes), Ok(props));
    }
}

#[test]
fn continuation_flag_words_are_accepted() {
    // delivery-mode with the continuation bit, then two more flag words.
    let bytes = Bytes::from_static(&[0x10, 0x01, 0xff, 0xff, 0x00, 0x00, 2]);
    assert_eq!(
        BasicProperties::decode(&bytes),
        Ok(BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        })
    );
}

#[test]
fn every_truncation_is_an_error() {
    let golden = all_golden();
    for i in 0..golden.len() {
        assert_eq!(
            BasicProperties::decode(&Bytes::copy_from_slice(&golden[..i])),
            Err(DecodeError::Truncated),
            "cut at {i}"
        );
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    assert_eq!(
        BasicProperties::decode(&Bytes::from_static(&[0, 0, 1])),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn a_bad_headers_table_is_rejected_at_decode() {
    let bytes = Bytes::from_static(&[0x20, 0, 0, 0, 0, 3, 1, b'k', b'?']);
    assert_eq!(
        BasicProperties::decode(&bytes),
        Err(DecodeError::InvalidFieldType(b'?'))
    );
}
