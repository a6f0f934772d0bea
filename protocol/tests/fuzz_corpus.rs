//! Replays the fuzz corpus (and every crash input the fuzzer ever found)
//! through the same checks as the fuzz target, so `cargo test` keeps them
//! fixed. `protocol/fuzz/README.md` says how the corpus was made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use warren_protocol::*;

#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

#[test]
fn the_fuzz_corpus_replays_without_panics() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| harness::check(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count > 0, "the corpus is empty");
}

/// Seeds for the fuzzer: one frame of each method, a whole publish, a
/// heartbeat, properties and tables of every kind. Run with
/// `cargo test -p warren-protocol --test fuzz_corpus -- --ignored` to
/// (re)write them into `tests/fuzz-corpus/seed-*`.
#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() {
    let s = |v: &str| ShortStr::try_from(v).unwrap();
    let table = FieldTable::from_entries([
        (s("b"), FieldValue::Bool(true)),
        (s("i"), FieldValue::I32(-1)),
        (s("S"), FieldValue::LongStr(LongStr::from("str"))),
        (s("D"), FieldValue::Decimal { scale: 1, value: 5 }),
        (s("T"), FieldValue::Timestamp(1)),
        (s("V"), FieldValue::Void),
        (
            s("x"),
            FieldValue::Bytes(bytes::Bytes::from_static(b"\x00")),
        ),
        (s("d"), FieldValue::F64(0.5)),
        (
            s("A"),
            FieldValue::Array(
                [FieldValue::U8(1), FieldValue::I16(2)]
                    .into_iter()
                    .collect(),
            ),
        ),
        (
            s("F"),
            FieldValue::Table(FieldTable::from_entries([(s("u"), FieldValue::U16(3))])),
        ),
    ]);
    let methods = [
        Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: table.clone(),
            mechanisms: LongStr::from("PLAIN"),
            locales: LongStr::from("en_US"),
        }),
        Method::ConnectionTune(ConnectionTune {
            channel_max: 2047,
            frame_max: 131072,
            heartbeat: 60,
        }),
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: s("/"),
        }),
        Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: s("bye"),
            class_id: 0,
            method_id: 0,
        }),
        Method::ChannelOpen,
        Method::ExchangeDeclare(ExchangeDeclare {
            exchange: s("e"),
            kind: s("topic"),
            arguments: table.clone(),
            ..Default::default()
        }),
        Method::QueueDeclare(QueueDeclare {
            queue: s("q"),
            durable: true,
            arguments: table.clone(),
            ..Default::default()
        }),
        Method::QueueBind(QueueBind {
            queue: s("q"),
            exchange: s("e"),
            routing_key: s("k"),
            ..Default::default()
        }),
        Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count: 10,
            global: false,
        }),
        Method::BasicConsume(BasicConsume {
            queue: s("q"),
            consumer_tag: s("c"),
            no_ack: true,
            ..Default::default()
        }),
        Method::BasicDeliver(BasicDeliver {
            consumer_tag: s("c"),
            delivery_tag: 1,
            redelivered: true,
            exchange: s("e"),
            routing_key: s("k"),
        }),
        Method::BasicNack(BasicNack {
            delivery_tag: 1,
            multiple: true,
            requeue: true,
        }),
        Method::ConfirmSelect(ConfirmSelect { no_wait: false }),
        Method::TxCommit,
    ];
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, method) in methods.iter().enumerate() {
        let mut buf = BytesMut::new();
        encode_method_frame(&mut buf, 1, method);
        std::fs::write(dir.join(format!("seed-method-{i:02}")), &buf).unwrap();
    }
    let props = BasicProperties {
        content_type: Some(s("text/plain")),
        headers: Some(table),
        delivery_mode: Some(2),
        timestamp: Some(7),
        message_id: Some(s("m")),
        ..Default::default()
    };
    let mut publish = BytesMut::new();
    let method = Method::BasicPublish(BasicPublish {
        exchange: s("e"),
        routing_key: s("k"),
        mandatory: true,
        immediate: false,
    });
    encode_method_frame(&mut publish, 1, &method);
    encode_header_frame(&mut publish, 1, 60, 5, &props);
    encode_body_frames(&mut publish, 1, b"hello", FRAME_MIN_SIZE);
    encode_heartbeat(&mut publish);
    std::fs::write(dir.join("seed-publish"), &publish).unwrap();
    // A header claiming a 4 GiB body frame.
    std::fs::write(
        dir.join("seed-huge-size"),
        [FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff],
    )
    .unwrap();
}
