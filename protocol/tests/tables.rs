//! Field tables and arrays: every value type against golden bytes,
//! nesting, validation, and the lazy accessors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use warren_protocol::*;

fn s(v: &str) -> ShortStr {
    ShortStr::try_from(v).unwrap()
}

/// One entry of every type, in the order RabbitMQ's errata lists them,
/// with the bytes each one encodes to.
fn every_type() -> Vec<(&'static str, FieldValue, Vec<u8>)> {
    let nested_table = FieldTable::from_entries([(s("k"), FieldValue::U8(7))]);
    let nested_array: FieldArray = [FieldValue::I16(-2), FieldValue::LongStr(LongStr::from("z"))]
        .into_iter()
        .collect();
    vec![
        ("bool", FieldValue::Bool(true), vec![b't', 1]),
        ("i8", FieldValue::I8(-1), vec![b'b', 0xff]),
        ("u8", FieldValue::U8(200), vec![b'B', 200]),
        ("i16", FieldValue::I16(-2), vec![b's', 0xff, 0xfe]),
        ("u16", FieldValue::U16(0xabcd), vec![b'u', 0xab, 0xcd]),
        (
            "i32",
            FieldValue::I32(-3),
            vec![b'I', 0xff, 0xff, 0xff, 0xfd],
        ),
        (
            "u32",
            FieldValue::U32(0xdead_beef),
            vec![b'i', 0xde, 0xad, 0xbe, 0xef],
        ),
        (
            "i64",
            FieldValue::I64(-4),
            vec![b'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc],
        ),
        ("f32", FieldValue::F32(1.5), vec![b'f', 0x3f, 0xc0, 0, 0]),
        (
            "f64",
            FieldValue::F64(-2.5),
            vec![b'd', 0xc0, 0x04, 0, 0, 0, 0, 0, 0],
        ),
        (
            "decimal",
            FieldValue::Decimal {
                scale: 2,
                value: 31415,
            }, // 31415 = 0x7ab7
            vec![b'D', 2, 0, 0, 0x7a, 0xb7],
        ),
        (
            "longstr",
            FieldValue::LongStr(LongStr::from("hi")),
            vec![b'S', 0, 0, 0, 2, b'h', b'i'],
        ),
        (
            "array",
            FieldValue::Array(nested_array),
            vec![b'A', 0, 0, 0, 9, b's', 0xff, 0xfe, b'S', 0, 0, 0, 1, b'z'],
        ),
        (
            "timestamp",
            FieldValue::Timestamp(1_700_000_000),
            vec![b'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00],
        ),
        (
            "table",
            FieldValue::Table(nested_table),
            vec![b'F', 0, 0, 0, 4, 1, b'k', b'B', 7],
        ),
        ("void", FieldValue::Void, vec![b'V']),
        (
            "bytes",
            FieldValue::Bytes(Bytes::from_static(b"\x00\x01")),
            vec![b'x', 0, 0, 0, 2, 0, 1],
        ),
    ]
}

fn entry_bytes(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(key.len()).unwrap()];
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(value);
    v
}

#[test]
fn every_type_encodes_to_its_golden_bytes() {
    for (key, value, bytes) in every_type() {
        let table = FieldTable::from_entries([(s(key), value.clone())]);
        assert_eq!(
            &table.raw_bytes()[..],
            &entry_bytes(key, &bytes)[..],
            "{key}"
        );
        assert_eq!(value.type_letter(), bytes[0]);
    }
}

#[test]
fn a_table_of_every_type_round_trips() {
    let mut raw = Vec::new();
    for (key, _, bytes) in every_type() {
        raw.extend(entry_bytes(key, &bytes));
    }
    let table = FieldTable::decode_entries(Bytes::from(raw.clone())).unwrap();
    assert_eq!(table.len(), every_type().len());
    for (key, value, _) in every_type() {
        assert_eq!(table.get(key), Some(value), "{key}");
    }
    let rebuilt: FieldTable = table.iter().collect();
    assert_eq!(&rebuilt.raw_bytes()[..], &raw[..]);
    assert_eq!(rebuilt, table);

    // As a method argument, with its length prefix.
    let mut buf = bytes::BytesMut::new();
    table.encode(&mut buf);
    assert_eq!(&buf[..4], &u32::try_from(raw.len()).unwrap().to_be_bytes());
}

#[test]
fn every_type_round_trips_inside_an_array() {
    let values: Vec<FieldValue> = every_type().into_iter().map(|(_, v, _)| v).collect();
    let array: FieldArray = values.iter().cloned().collect();
    let expected: Vec<u8> = every_type().into_iter().flat_map(|(_, _, b)| b).collect();
    assert_eq!(&array.raw_bytes()[..], &expected[..]);
    assert_eq!(array.iter().collect::<Vec<_>>(), values);
    assert_eq!(array.len(), values.len());
}

#[test]
fn nested_tables_and_arrays_decode_as_slices_of_the_parent() {
    let inner =
        FieldTable::from_entries([(s("deep"), FieldValue::LongStr(LongStr::from("value")))]);
    let array: FieldArray = [
        FieldValue::Table(inner.clone()),
        FieldValue::Array(FieldArray::new()),
    ]
    .into_iter()
    .collect();
    let outer = FieldTable::from_entries([
        (s("a"), FieldValue::Array(array)),
        (s("t"), FieldValue::Table(inner)),
    ]);
    let raw = outer.raw_bytes().clone();
    let decoded = FieldTable::decode_entries(raw.clone()).unwrap();
    let range = raw.as_ptr_range();

    let Some(FieldValue::Table(t)) = decoded.get("t") else {
        panic!()
    };
    assert!(range.contains(&t.raw_bytes().as_ptr()));
    let Some(FieldValue::LongStr(v)) = t.get("deep") else {
        panic!()
    };
    assert_eq!(v, "value");
    assert!(range.contains(&v.as_bytes().as_ptr()));

    let Some(FieldValue::Array(a)) = decoded.get("a") else {
        panic!()
    };
    let items: Vec<FieldValue> = a.iter().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]
            .as_table()
            .and_then(|t| t.get("deep"))
            .as_ref()
            .and_then(FieldValue::as_str),
        Some("value")
    );
}

#[test]
fn capital_l_is_read_as_a_signed_64_bit_value_like_rabbitmq() {
    let raw = entry_bytes("n", &[b'L', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let table = FieldTable::decode_entries(Bytes::from(raw)).unwrap();
    assert_eq!(table.get("n"), Some(FieldValue::I64(-1)));
}

#[test]
fn any_non_zero_octet_is_true() {
    let table = FieldTable::decode_entries(Bytes::from(entry_bytes("b", &[b't', 2]))).unwrap();
    assert_eq!(table.get("b"), Some(FieldValue::Bool(true)));
}

#[test]
fn unknown_type_letters_are_syntax_errors() {
    // 'U' (u16 in the spec's table), 'L' aside, and letters nobody uses.
    for letter in [b'U', b'c', b'0', 0u8, b'z'] {
        let err = FieldTable::decode_entries(Bytes::from(entry_bytes("k", &[letter, 0, 0, 0, 0])))
            .unwrap_err();
        assert_eq!(err, DecodeError::InvalidFieldType(letter));
        assert_eq!(err.reply_code(), ReplyCode::SyntaxError);
    }
    // Inside a nested array too.
    let err = FieldTable::decode_entries(Bytes::from(entry_bytes("k", &[b'A', 0, 0, 0, 1, b'?'])))
        .unwrap_err();
    assert_eq!(err, DecodeError::InvalidFieldType(b'?'));
}

fn nested(depth: usize) -> Vec<u8> {
    // A table holding a table holding ... `depth` levels of tables; each
    // level is the 7-byte entry header `1 't' 'F' <u32 length>`.
    let mut raw = Vec::with_capacity(depth * 7);
    for level in 0..depth {
        raw.extend_from_slice(&[1, b't', b'F']);
        raw.extend_from_slice(
            &u32::try_from((depth - level - 1) * 7)
                .unwrap()
                .to_be_bytes(),
        );
    }
    raw
}

#[test]
fn nesting_is_limited() {
    assert!(FieldTable::decode_entries(Bytes::from(nested(MAX_NESTING_DEPTH))).is_ok());
    assert_eq!(
        FieldTable::decode_entries(Bytes::from(nested(MAX_NESTING_DEPTH + 1))),
        Err(DecodeError::TableTooDeep)
    );
    // Deep enough to overflow the stack if the walk did not stop early.
    assert_eq!(
        FieldTable::decode_entries(Bytes::from(nested(100_000))),
        Err(DecodeError::TableTooDeep)
    );
}

#[test]
fn every_truncation_is_either_fewer_entries_or_an_error() {
    let raw: Vec<u8> = every_type()
        .into_iter()
        .flat_map(|(k, _, b)| entry_bytes(k, &b))
        .collect();
    let boundaries: Vec<usize> = every_type()
        .into_iter()
        .scan(0, |at, (k, _, b)| {
            *at += entry_bytes(k, &b).len();
            Some(*at)
        })
        .collect();
    for i in 0..raw.len() {
        let result = FieldTable::decode_entries(Bytes::copy_from_slice(&raw[..i]));
        if i == 0 || boundaries.contains(&i) {
            assert!(result.is_ok(), "cut at an entry boundary {i}");
        } else {
            assert!(result.is_err(), "cut inside an entry at {i}");
        }
    }
}

#[test]
fn lookups_see_the_first_of_duplicate_keys() {
    let mut raw = entry_bytes("k", &[b'B', 1]);
    raw.extend(entry_bytes("k", &[b'B', 2]));
    let table = FieldTable::decode_entries(Bytes::from(raw)).unwrap();
    assert_eq!(table.len(), 2);
    assert_eq!(table.get("k"), Some(FieldValue::U8(1)));
    assert_eq!(table.to_btree().len(), 1);
}

#[test]
fn insert_replaces_and_remove_removes() {
    let mut table = FieldTable::new();
    assert!(table.is_empty());
    table.insert(s("a"), FieldValue::I32(1));
    table.insert(s("b"), FieldValue::Bool(false));
    table.insert(s("a"), FieldValue::I32(2));
    assert_eq!(table.len(), 2);
    assert_eq!(table.get("a"), Some(FieldValue::I32(2)));
    assert!(table.contains_key("b"));
    assert_eq!(table.remove("b"), Some(FieldValue::Bool(false)));
    assert_eq!(table.remove("b"), None);
    assert!(!table.contains_key("b"));
    assert_eq!(table.get("missing"), None);
}

#[test]
fn from_entries_keeps_the_last_of_duplicate_keys() {
    let table =
        FieldTable::from_entries([(s("k"), FieldValue::U8(1)), (s("k"), FieldValue::U8(2))]);
    assert_eq!(table.len(), 1);
    assert_eq!(table.get("k"), Some(FieldValue::U8(2)));
}

#[test]
fn equality_ignores_entry_order() {
    let a = FieldTable::from_entries([(s("x"), FieldValue::U8(1)), (s("y"), FieldValue::Void)]);
    let b = FieldTable::from_entries([(s("y"), FieldValue::Void), (s("x"), FieldValue::U8(1))]);
    assert_ne!(a.raw_bytes(), b.raw_bytes());
    assert_eq!(a, b);
    let c = FieldTable::from_entries([(s("x"), FieldValue::U8(2)), (s("y"), FieldValue::Void)]);
    assert_ne!(a, c);
}

#[test]
fn floats_compare_by_bits() {
    assert_eq!(FieldValue::F64(f64::NAN), FieldValue::F64(f64::NAN));
    assert_ne!(FieldValue::F32(0.0), FieldValue::F32(-0.0));
}

#[test]
fn value_helpers() {
    assert_eq!(FieldValue::U32(7).as_i64(), Some(7));
    assert_eq!(FieldValue::I8(-7).as_i64(), Some(-7));
    assert_eq!(FieldValue::Timestamp(7).as_i64(), None);
    assert_eq!(FieldValue::LongStr(LongStr::from("x")).as_str(), Some("x"));
    assert_eq!(
        FieldValue::LongStr(LongStr::from(vec![0xff])).as_str(),
        None
    );
    assert_eq!(FieldValue::Bool(true).as_bool(), Some(true));
    assert_eq!(FieldValue::Void.as_table(), None);
}

#[test]
fn debug_prints_like_a_map() {
    let table = FieldTable::from_entries([(s("x-max-length"), FieldValue::I32(10))]);
    assert_eq!(format!("{table:?}"), r#"{"x-max-length": I32(10)}"#);
}
