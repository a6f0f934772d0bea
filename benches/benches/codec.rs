//! The AMQP codec (`warren-protocol`) against amq-protocol (lapin's codec)
//! on the same bytes: a publish and a deliver, each as method + content
//! header + body frames, with 16-byte and 1 KiB bodies.
//!
//! - `decode`: split a read buffer into frames and drop them, as a
//!   connection does. The buffer holds up to 1000 messages back to back
//!   (filling and freeing it are not timed); times are per message (three
//!   frames). Ours
//!   splits the `BytesMut` and slices it; amq-protocol parses a `&[u8]`
//!   and copies strings, table entries and the body.
//! - `encode`: write the three frames into a reused buffer.
//!   `warren-raw` forwards the properties as received (what the broker
//!   does for a delivery) instead of encoding them.
//!
//! The properties are what a typical client sets: content type, delivery
//! mode, message id, timestamp and one header.
//!
//! On a shared machine, load from other processes moves criterion's
//! figures a lot between one benchmark and the next. So before the
//! criterion groups, each decode is also measured *paired*: batches of
//! ours and amq-protocol's alternate for a second, and the medians of the
//! per-batch times are printed with their ratio; both sides see the same
//! load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as AFieldTable, LongString, ShortString};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use warren_protocol::*;

const FRAME_MAX: u32 = 131_072;
const CHANNEL: u16 = 1;

struct Message {
    name: &'static str,
    method: Method,
    amq_method: AMQPClass,
    properties: BasicProperties,
    amq_properties: basic::AMQPProperties,
    body: Vec<u8>,
}

fn properties() -> (BasicProperties, basic::AMQPProperties) {
    let ours = BasicProperties {
        content_type: Some(ShortStr::from_static("application/json")),
        delivery_mode: Some(2),
        message_id: Some(ShortStr::from_static(
            "6f1c2a9e-0b7d-4c1e-9a52-3f0c7d1e8b44",
        )),
        timestamp: Some(1_700_000_000),
        headers: Some(FieldTable::from_entries([(
            ShortStr::from_static("x-trace-id"),
            FieldValue::LongStr(LongStr::from_static("4bf92f3577b34da6")),
        )])),
        ..Default::default()
    };
    let mut headers = BTreeMap::new();
    headers.insert(
        ShortString::from("x-trace-id"),
        AMQPValue::LongString(LongString::from("4bf92f3577b34da6")),
    );
    let theirs = basic::AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id("6f1c2a9e-0b7d-4c1e-9a52-3f0c7d1e8b44".into())
        .with_timestamp(1_700_000_000)
        .with_headers(AFieldTable::from(headers));
    (ours, theirs)
}

fn messages() -> Vec<Message> {
    let mut out = Vec::new();
    for size in [16, 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (properties, amq_properties) = properties();
        out.push(Message {
            name: if size == 16 {
                "publish-16B"
            } else {
                "publish-1KiB"
            },
            method: Method::BasicPublish(BasicPublish {
                exchange: ShortStr::from_static("orders"),
                routing_key: ShortStr::from_static("orders.created.eu"),
                mandatory: false,
                immediate: false,
            }),
            amq_method: AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "orders".into(),
                routing_key: "orders.created.eu".into(),
                mandatory: false,
                immediate: false,
            })),
            properties: properties.clone(),
            amq_properties: amq_properties.clone(),
            body: body.clone(),
        });
        out.push(Message {
            name: if size == 16 {
                "deliver-16B"
            } else {
                "deliver-1KiB"
            },
            method: Method::BasicDeliver(BasicDeliver {
                consumer_tag: ShortStr::from_static("amq.ctag-Xk3_9xQe1r7hFv0tZ2bq4A"),
                delivery_tag: 123_456,
                redelivered: false,
                exchange: ShortStr::from_static("orders"),
                routing_key: ShortStr::from_static("orders.created.eu"),
            }),
            amq_method: AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "amq.ctag-Xk3_9xQe1r7hFv0tZ2bq4A".into(),
                delivery_tag: 123_456,
                redelivered: false,
                exchange: "orders".into(),
                routing_key: "orders.created.eu".into(),
            })),
            properties,
            amq_properties,
            body,
        });
    }
    out
}

fn encode_ours(buf: &mut BytesMut, m: &Message) {
    encode_method_frame(buf, CHANNEL, &m.method);
    encode_header_frame(buf, CHANNEL, 60, m.body.len() as u64, &m.properties);
    encode_body_frames(buf, CHANNEL, &m.body, FRAME_MAX);
}

fn amq_frames(m: &Message) -> [AMQPFrame; 3] {
    [
        AMQPFrame::Method(CHANNEL, m.amq_method.clone()),
        AMQPFrame::Header(
            CHANNEL,
            AMQPContentHeader {
                class_id: 60,
                body_size: m.body.len() as u64,
                properties: m.amq_properties.clone(),
            },
        ),
        AMQPFrame::Body(CHANNEL, m.body.clone()),
    ]
}

fn encode_amq(out: Vec<u8>, frames: &[AMQPFrame; 3]) -> Vec<u8> {
    let mut ctx = WriteContext::from(out);
    for frame in frames {
        ctx = gen_frame(frame)(ctx).unwrap();
    }
    ctx.write
}

/// Messages per read buffer in the decode benchmarks.
const BATCH: u64 = 1000;

/// Times decoding `iters` messages from buffers of up to [`BATCH`] copies
/// of `wire`; `decode` takes a buffer and the number of messages in it.
///
/// Neither filling the buffer nor freeing it is timed: both are the
/// harness's work (a connection reuses its read buffer), and giving a
/// megabyte back to the kernel costs whatever the VM's memory pressure
/// makes it cost (up to a few hundred ns per message here), for either
/// codec.
fn time_decode<B>(
    iters: u64,
    wire: &[u8],
    fill: impl Fn(&[u8]) -> B,
    mut decode: impl FnMut(&mut B, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        let mut input = fill(&wire.repeat(n as usize));
        let start = Instant::now();
        decode(&mut input, n);
        total += start.elapsed();
        drop(input);
        left -= n;
    }
    total
}

// Both decoders look at each frame where it was returned rather than
// moving it out. Ours drops each frame at once; the emptied buffer keeps
// the allocation until the harness drops it.
fn decode_ours(buf: &mut BytesMut, messages: u64) {
    for _ in 0..messages * 3 {
        match decode_frame(buf, FRAME_MAX) {
            Ok(Some(frame)) => {
                black_box(&frame);
            }
            other => panic!("{other:?}"),
        }
    }
}

fn decode_amq(input: &mut Vec<u8>, messages: u64) {
    let mut rest: &[u8] = input;
    for _ in 0..messages * 3 {
        let (next, frame) = parse_frame(rest).unwrap();
        black_box(&frame);
        rest = next;
    }
}

/// Alternates batches of ours and amq-protocol's decode for about a
/// second and prints the median time per message of each.
fn paired_decode(name: &str, wire: &[u8]) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        ours.push(time_decode(BATCH, wire, |w| BytesMut::from(w), decode_ours));
        theirs.push(time_decode(BATCH, wire, |w| w.to_vec(), decode_amq));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_nanos() as f64 / BATCH as f64
    };
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    println!(
        "paired decode {name}: warren {ours:.0} ns, amq-protocol {theirs:.0} ns, ratio {:.2}",
        theirs / ours
    );
}

fn codec(c: &mut Criterion) {
    for m in messages() {
        let mut wire = BytesMut::new();
        encode_ours(&mut wire, &m);
        let wire: Bytes = wire.freeze();
        let frames = amq_frames(&m);
        // Both codecs write the same bytes, so both decode the same input.
        assert_eq!(&encode_amq(Vec::new(), &frames)[..], &wire[..]);
        let mut buf = BytesMut::from(&wire[..]);
        let decoded: Vec<Frame> =
            std::iter::from_fn(|| decode_frame(&mut buf, FRAME_MAX).unwrap()).collect();
        assert_eq!(decoded.len(), 3);
        assert_eq!(
            decoded[2],
            Frame::Body {
                channel: CHANNEL,
                payload: Bytes::from(m.body.clone())
            }
        );

        paired_decode(m.name, &wire);

        let mut group = c.benchmark_group(format!("codec/decode/{}", m.name));
        group.bench_function(BenchmarkId::from_parameter("warren"), |b| {
            b.iter_custom(|iters| time_decode(iters, &wire, |w| BytesMut::from(w), decode_ours))
        });
        group.bench_function(BenchmarkId::from_parameter("amq-protocol"), |b| {
            b.iter_custom(|iters| time_decode(iters, &wire, |w| w.to_vec(), decode_amq))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("codec/encode/{}", m.name));
        let mut buf = BytesMut::with_capacity(8192);
        group.bench_function(BenchmarkId::from_parameter("warren"), |b| {
            b.iter(|| {
                buf.clear();
                encode_ours(&mut buf, &m);
                buf.len()
            })
        });
        if m.name.starts_with("deliver") {
            let raw = m.properties.to_bytes();
            group.bench_function(BenchmarkId::from_parameter("warren-raw"), |b| {
                b.iter(|| {
                    buf.clear();
                    encode_method_frame(&mut buf, CHANNEL, &m.method);
                    encode_header_frame_raw(&mut buf, CHANNEL, 60, m.body.len() as u64, &raw);
                    encode_body_frames(&mut buf, CHANNEL, &m.body, FRAME_MAX);
                    buf.len()
                })
            });
        }
        let mut out = Vec::with_capacity(8192);
        group.bench_function(BenchmarkId::from_parameter("amq-protocol"), |b| {
            b.iter(|| {
                out.clear();
                out = encode_amq(std::mem::take(&mut out), &frames);
                out.len()
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
