//! Property tests: arbitrary methods, properties and field tables survive
//! encode → decode unchanged, inside frames and alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use warren_protocol::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn methods_round_trip(method in common::method(false), channel in any::<u16>()) {
        let mut buf = BytesMut::new();
        method.encode(&mut buf);
        prop_assert_eq!(Method::decode(&buf.clone().freeze()), Ok(method.clone()));

        let mut frame = BytesMut::new();
        encode_method_frame(&mut frame, channel, &method);
        prop_assert_eq!(decode_frame(&mut frame, 0), Ok(Some(Frame::Method { channel, method })));
        prop_assert!(frame.is_empty());
    }

    #[test]
    fn truncated_methods_are_errors(method in common::method(false), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        method.encode(&mut buf);
        let at = cut.index(buf.len());
        prop_assert_eq!(Method::decode(&Bytes::copy_from_slice(&buf[..at])), Err(DecodeError::Truncated));
    }

    #[test]
    fn properties_round_trip(props in common::properties(false), body_size in any::<u64>()) {
        let bytes = props.to_bytes();
        prop_assert_eq!(BasicProperties::decode(&bytes), Ok(props.clone()));

        let mut frame = BytesMut::new();
        encode_header_frame(&mut frame, 1, 60, body_size, &props);
        let Ok(Some(Frame::Header { channel: 1, header })) = decode_frame(&mut frame, 0) else {
            return Err(TestCaseError::fail("not a header frame"));
        };
        prop_assert_eq!(header.body_size, body_size);
        prop_assert_eq!(header.properties.raw(), &bytes);
        prop_assert_eq!(header.properties, props);
    }

    #[test]
    fn wire_properties_read_what_was_encoded(
        props in common::properties(false),
        continuations in 0usize..3,
        bit_one in any::<bool>(),
    ) {
        let built = WireProperties::from(&props);
        prop_assert_eq!(built.raw(), &props.to_bytes());
        check_accessors(&built, &props)?;

        // Received with continuation flag words and the undefined bit 1
        // set, which are ignored.
        let bytes = props.to_bytes();
        let mut first = props.flags() | (u16::from(bit_one) << 1);
        if continuations > 0 {
            first |= 1;
        }
        let mut raw = first.to_be_bytes().to_vec();
        for i in 0..continuations {
            let more: u16 = if i + 1 < continuations { 0xffff } else { 0xfffe };
            raw.extend_from_slice(&more.to_be_bytes());
        }
        raw.extend_from_slice(&bytes[2..]);
        let received = WireProperties::decode(Bytes::from(raw.clone())).unwrap();
        prop_assert_eq!(&received.raw()[..], &raw[..]);
        check_accessors(&received, &props)?;
        prop_assert_eq!(&received, &built);
    }

    #[test]
    fn cut_properties_are_truncated(props in common::properties(false), cut in any::<prop::sample::Index>()) {
        let bytes = props.to_bytes();
        let at = cut.index(bytes.len());
        prop_assert_eq!(WireProperties::decode(bytes.slice(..at)), Err(DecodeError::Truncated));
        let mut longer = bytes.to_vec();
        longer.push(0);
        prop_assert_eq!(WireProperties::decode(Bytes::from(longer)), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn field_tables_round_trip(table in common::field_table(false)) {
        let decoded = FieldTable::decode_entries(table.raw_bytes().clone()).unwrap();
        prop_assert_eq!(&decoded, &table);
        // Rebuilding from the lazily read entries gives the same bytes.
        let rebuilt: FieldTable = decoded.iter().collect();
        prop_assert_eq!(rebuilt.raw_bytes(), table.raw_bytes());
        prop_assert_eq!(decoded.len(), table.to_btree().len());
        for (key, value) in table.iter() {
            if let Some(key) = key.as_str() {
                prop_assert_eq!(decoded.get(key), Some(value));
            }
        }
    }

    #[test]
    fn field_values_round_trip_in_arrays(values in proptest::collection::vec(common::field_value(false), 0..8)) {
        let array: FieldArray = values.iter().cloned().collect();
        let table = FieldTable::from_entries([(ShortStr::from_static("a"), FieldValue::Array(array))]);
        let decoded = FieldTable::decode_entries(table.raw_bytes().clone()).unwrap();
        let Some(FieldValue::Array(array)) = decoded.get("a") else {
            return Err(TestCaseError::fail("no array"));
        };
        prop_assert_eq!(array.iter().collect::<Vec<_>>(), values);
    }

    #[test]
    fn inserting_then_reading_sees_the_value(
        table in common::field_table(true),
        key in "[a-z]{1,8}",
        value in common::field_value(true),
    ) {
        let mut table = table;
        let before = table.to_btree().len();
        let existed = table.contains_key(&key);
        table.insert(ShortStr::try_from(key.as_str()).unwrap(), value.clone());
        prop_assert_eq!(table.get(&key), Some(value));
        prop_assert_eq!(table.len(), before + usize::from(!existed));
        prop_assert!(table.remove(&key).is_some());
        prop_assert!(!table.contains_key(&key));
    }

    #[test]
    fn bodies_reassemble(body in proptest::collection::vec(any::<u8>(), 0..20_000), frame_max in 4096u32..20_000) {
        let mut buf = BytesMut::new();
        encode_body_frames(&mut buf, 3, &body, frame_max);
        let mut joined = Vec::new();
        while let Some(frame) = decode_frame(&mut buf, frame_max).unwrap() {
            let Frame::Body { channel: 3, payload } = frame else {
                return Err(TestCaseError::fail("not a body frame"));
            };
            prop_assert!(!payload.is_empty());
            joined.extend_from_slice(&payload);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(joined, body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), frame_max in prop_oneof![Just(0u32), Just(4096u32)]) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode_frame(&mut buf, frame_max) {}
    }
}

/// Every accessor of `wire` gives the property `props` holds.
fn check_accessors(wire: &WireProperties, props: &BasicProperties) -> Result<(), TestCaseError> {
    let b = |s: &Option<ShortStr>| s.as_ref().map(|s| s.as_bytes().to_vec());
    let v = |s: Option<&[u8]>| s.map(<[u8]>::to_vec);
    prop_assert_eq!(v(wire.content_type()), b(&props.content_type));
    prop_assert_eq!(v(wire.content_encoding()), b(&props.content_encoding));
    prop_assert_eq!(wire.headers(), props.headers.clone());
    prop_assert_eq!(
        wire.headers_raw().map(<[u8]>::to_vec),
        props.headers.as_ref().map(|h| h.raw_bytes().to_vec())
    );
    prop_assert_eq!(wire.delivery_mode(), props.delivery_mode);
    prop_assert_eq!(wire.priority(), props.priority);
    prop_assert_eq!(v(wire.correlation_id()), b(&props.correlation_id));
    prop_assert_eq!(v(wire.reply_to()), b(&props.reply_to));
    prop_assert_eq!(v(wire.expiration()), b(&props.expiration));
    prop_assert_eq!(v(wire.message_id()), b(&props.message_id));
    prop_assert_eq!(wire.timestamp(), props.timestamp);
    prop_assert_eq!(v(wire.kind()), b(&props.kind));
    prop_assert_eq!(v(wire.user_id()), b(&props.user_id));
    prop_assert_eq!(v(wire.app_id()), b(&props.app_id));
    prop_assert_eq!(v(wire.cluster_id()), b(&props.cluster_id));
    prop_assert_eq!(wire.is_empty(), props.flags() == 0);
    prop_assert_eq!(&wire.to_basic_properties(), props);
    Ok(())
}
