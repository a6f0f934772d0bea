//! Torn and corrupt logs at the broker level: after a clean run the data
//! directory is damaged (the last segment cut at every byte offset of its
//! last records; a byte flipped in a record in the middle), and the broker
//! must start every time and give back, through lapin, the durable queue,
//! exchange and binding and every message logged before the damage, in
//! order, with `redelivered` where a delivery marker survived.
//!
//! The expectation is computed from the segment files themselves: the frame
//! layout is the one documented in `warren-persistence` (crc u32, len u32,
//! flags u8, kind u8, id u64, refers_to u64, payload; little-endian), and
//! the record kinds and payloads are the broker's (`broker/src/store/records.rs`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use warren::{Broker, BrokerConfig};

use super::{persistent, temp_dir, WAIT};

const SEGMENT_HEADER: usize = 24;
const KIND_MESSAGE: u8 = 6;
const KIND_DELIVERED: u8 = 7;

#[derive(Debug, Clone)]
struct Frame {
    start: usize,
    end: usize,
    kind: u8,
    id: u64,
    refers_to: u64,
    payload: Vec<u8>,
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wlog"))
        .collect();
    v.sort();
    v
}

fn frames(data: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut off = SEGMENT_HEADER;
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
    while off + 8 <= data.len() {
        let len = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap()) as usize;
        let end = off + 8 + len;
        assert!(end <= data.len(), "clean log has a torn frame");
        out.push(Frame {
            start: off,
            end,
            kind: data[off + 9],
            id: u64_at(off + 10),
            refers_to: u64_at(off + 18),
            payload: data[off + 26..end].to_vec(),
        });
        off = end;
    }
    out
}

/// The body of a MESSAGE record: queue record u64, exchange and routing key
/// (short strings), properties (long string), then the body.
fn message_body(payload: &[u8]) -> Vec<u8> {
    let mut at = 8;
    at += 1 + payload[at] as usize;
    at += 1 + payload[at] as usize;
    let props = u32::from_be_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
    at += 4 + props;
    payload[at..].to_vec()
}

/// What recovery must give back from the surviving frames: message bodies
/// in log order with their redelivered flag.
fn expected(surviving: &[Frame]) -> Vec<(Vec<u8>, bool)> {
    let killed: HashSet<u64> = surviving
        .iter()
        .filter(|f| f.refers_to != 0)
        .map(|f| f.refers_to)
        .collect();
    let marked: HashSet<u64> = surviving
        .iter()
        .filter(|f| f.kind == KIND_DELIVERED && f.refers_to == 0 && !killed.contains(&f.id))
        .map(|f| u64::from_be_bytes(f.payload[..8].try_into().unwrap()))
        .collect();
    surviving
        .iter()
        .filter(|f| f.kind == KIND_MESSAGE && f.refers_to == 0 && !killed.contains(&f.id))
        .map(|f| (message_body(&f.payload), marked.contains(&f.id)))
        .collect()
}

fn config(dir: &Path, segment_size: u64) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    config.storage.segment_size = segment_size;
    config
}

async fn connect(broker: &Broker) -> Connection {
    let addr = broker.listen("127.0.0.1:0").await.unwrap();
    let url = format!("amqp://guest:guest@{addr}/%2f");
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap()
}

/// The clean run: a durable exchange, queue and binding; 42 persistent
/// messages; some acked (tombstones), some delivered and requeued (markers),
/// interleaved with the publishes so that the last records of the log mix
/// all kinds.
async fn clean_run(dir: &Path, segment_size: u64) {
    let broker = Broker::open(config(dir, segment_size)).unwrap();
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("dq".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "dq".into(),
        "dx".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..40u8 {
        ch.basic_publish(
            "dx".into(),
            "k".into(),
            BasicPublishOptions::default(),
            &[i; 3],
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        if i % 5 == 4 {
            // Take the oldest: ack it, or leave it unacked (delivered, and
            // requeued when the connection closes).
            let m = ch
                .basic_get("dq".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .unwrap();
            if i % 10 == 4 {
                m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            }
        }
    }
    // End with every kind of record mixed: marker, tombstone, message,
    // marker, message.
    let m = ch
        .basic_get("dq".into(), BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    for (i, take) in [(40u8, true), (41, false)] {
        ch.basic_publish(
            "dx".into(),
            "k".into(),
            BasicPublishOptions::default(),
            &[i; 3],
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        if take {
            ch.basic_get("dq".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .unwrap();
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
}

/// Starts a broker on `dir` and checks, through lapin, that it has the
/// durable definitions and exactly `want` in `dq`.
async fn check(dir: &Path, segment_size: u64, want: &[(Vec<u8>, bool)], what: &str) {
    let broker = Broker::open(config(dir, segment_size))
        .unwrap_or_else(|e| panic!("{what}: the broker does not start: {e}"));
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("dq".into(), passive, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("{what}: durable queue missing: {e}"));
    assert_eq!(
        q.message_count() as usize,
        want.len(),
        "{what}: message count"
    );
    let mut consumer = ch
        .basic_consume(
            "dq".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < want.len() {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: delivery in time"))
            .unwrap()
            .unwrap();
        got.push((d.data, d.redelivered));
    }
    assert_eq!(got, want, "{what}: messages and redelivered flags");
    // The exchange and the binding came back too.
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: durable exchange missing: {e}"));
    ch.basic_publish(
        "dx".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"probe",
        persistent(),
    )
    .await
    .unwrap();
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: the binding is missing"))
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"probe", "{what}");
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Cuts the last (only) segment at every byte offset of its last records:
/// the broker starts every time and recovers every message whose record is
/// complete before the cut (and an ack or a marker only when complete).
#[tokio::test]
async fn torn_tail_at_every_offset_of_the_last_records() {
    let clean = temp_dir("torn-clean");
    clean_run(&clean, 64 << 20).await;
    let segs = segments(&clean);
    assert_eq!(segs.len(), 1);
    let data = std::fs::read(&segs[0]).unwrap();
    let all = frames(&data);
    let full = expected(&all);
    assert_eq!(full.len(), 37, "42 published, 5 acked");
    assert!(full.iter().any(|(_, r)| *r), "some markers");
    // The last six records: messages, markers and tombstones.
    let tail = &all[all.len() - 6..];
    let kinds: HashSet<u8> = tail.iter().map(|f| f.kind).collect();
    assert!(kinds.len() >= 3, "tail mixes record kinds: {tail:?}");
    let work = temp_dir("torn-work");
    let name = segs[0].file_name().unwrap().to_owned();
    let mut checked = 0;
    let mut outcomes = BTreeMap::new();
    for cut in tail[0].start..=data.len() {
        copy_dir(&clean, &work);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(work.join(&name))
            .unwrap();
        f.set_len(cut as u64).unwrap();
        drop(f);
        let surviving: Vec<Frame> = all.iter().filter(|f| f.end <= cut).cloned().collect();
        let want = expected(&surviving);
        outcomes.insert(want.len(), cut);
        check(&work, 64 << 20, &want, &format!("cut at byte {cut}")).await;
        checked += 1;
    }
    eprintln!(
        "torn tail: {checked} cuts over the last {} records ({} bytes), {} distinct outcomes",
        tail.len(),
        data.len() - tail[0].start,
        outcomes.len()
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&clean);
}

/// Flips a byte in a record in the middle of the only segment: that record
/// and everything after it are a corrupt tail; everything before comes back.
#[tokio::test]
async fn flipped_byte_in_a_middle_record() {
    let clean = temp_dir("flip-clean");
    clean_run(&clean, 64 << 20).await;
    let segs = segments(&clean);
    let data = std::fs::read(&segs[0]).unwrap();
    let all = frames(&data);
    let work = temp_dir("flip-work");
    let name = segs[0].file_name().unwrap().to_owned();
    let middle = all.len() / 2;
    let victim = &all[middle];
    // A byte of the CRC, of the length, of the header and of the payload.
    for at in [
        victim.start,
        victim.start + 5,
        victim.start + 12,
        (victim.start + victim.end) / 2,
        victim.end - 1,
    ] {
        copy_dir(&clean, &work);
        let mut bytes = data.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(work.join(&name), &bytes).unwrap();
        let want = expected(&all[..middle]);
        check(
            &work,
            64 << 20,
            &want,
            &format!("byte {at} of record {} flipped", victim.id),
        )
        .await;
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&clean);
}

/// With tiny segments, a flipped byte in a sealed segment in the middle:
/// the rest of that segment is skipped, everything before it and every
/// later segment is recovered.
#[tokio::test]
async fn flipped_byte_in_a_sealed_segment() {
    let segment_size = 512;
    let clean = temp_dir("flip-sealed-clean");
    clean_run(&clean, segment_size).await;
    let segs = segments(&clean);
    assert!(segs.len() >= 4, "tiny segments: {}", segs.len());
    let per_segment: Vec<Vec<Frame>> = segs
        .iter()
        .map(|p| frames(&std::fs::read(p).unwrap()))
        .collect();
    let work = temp_dir("flip-sealed-work");
    // A segment in the middle that holds a message, not the first (which
    // holds the definitions) nor the last.
    let k = (1..segs.len() - 1)
        .find(|&k| k >= segs.len() / 2 && per_segment[k].iter().any(|f| f.kind == KIND_MESSAGE))
        .expect("a middle segment with a message");
    let frames_k = &per_segment[k];
    let victim = frames_k
        .iter()
        .position(|f| f.kind == KIND_MESSAGE)
        .unwrap();
    let mut bytes = std::fs::read(&segs[k]).unwrap();
    let at = (frames_k[victim].start + frames_k[victim].end) / 2;
    bytes[at] ^= 0x01;
    copy_dir(&clean, &work);
    std::fs::write(work.join(segs[k].file_name().unwrap()), &bytes).unwrap();
    let surviving: Vec<Frame> = per_segment
        .iter()
        .enumerate()
        .flat_map(|(i, fs)| {
            let keep = if i == k { victim } else { fs.len() };
            fs[..keep].iter().cloned()
        })
        .collect();
    let want = expected(&surviving);
    let all: Vec<Frame> = per_segment.concat();
    assert!(
        want.len() < expected(&all).len(),
        "the damage costs a message"
    );
    check(
        &work,
        segment_size,
        &want,
        &format!("byte {at} of segment {k} flipped"),
    )
    .await;
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&clean);
}
