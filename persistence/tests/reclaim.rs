//! Space reclamation of a `FileLog`: disk use follows live data, and
//! deleting or compacting segments never brings a dead record back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;

use bytes::Bytes;
use common::{disk_bytes, ids, payload, segments, TempDir};
use warren_persistence::{FileLog, Record, RecordId, Store, StoreConfig};

fn open(dir: &std::path::Path, config: StoreConfig) -> (FileLog, Vec<Record>) {
    let (log, rec) = FileLog::open(dir, config).unwrap();
    (log, rec.into_vec().unwrap())
}

/// Appends and kills ten times more data than is ever live (acks as
/// tombstones, and plain mark_dead): disk use stays below twice the live
/// data plus one segment, and a restart recovers exactly the live window.
fn bounded_by_live_data(use_tombstones: bool) {
    let dir = TempDir::new("bounded");
    let segment_size = 16 << 10;
    let config = StoreConfig::default()
        .with_segment_size(segment_size)
        .with_background_reclaim(false);
    let (log, _) = open(dir.path(), config.clone());
    let window = 64;
    let body = 1024;
    let total = window * 10;
    let mut live: VecDeque<RecordId> = VecDeque::new();
    let mut worst = 0.0f64;
    for i in 0..total as u64 {
        live.push_back(log.append(1, payload(i, body), None).unwrap());
        if live.len() > window {
            let victim = live.pop_front().unwrap();
            if use_tombstones {
                log.append(2, Bytes::new(), Some(victim)).unwrap();
            } else {
                log.mark_dead(victim).unwrap();
            }
        }
        if i % 16 == 15 {
            log.flush().unwrap();
            log.reclaim().unwrap();
            let stats = log.stats();
            let disk = disk_bytes(dir.path());
            assert_eq!(disk, stats.disk_bytes, "index and files agree");
            let bound = 2 * stats.live_bytes + segment_size;
            worst = worst.max(disk as f64 / stats.live_bytes as f64);
            assert!(
                disk <= bound,
                "after {i} appends: {disk} bytes on disk, {} live, bound {bound}",
                stats.live_bytes
            );
        }
    }
    let stats = log.stats();
    assert!(stats.segments_deleted > 0, "{stats:?}");
    eprintln!("tombstones={use_tombstones}: worst disk/live {worst:.2}, {stats:?}");
    let written = stats.bytes_written;
    assert!(written > 10 * stats.live_bytes);
    drop(log);
    let (_, rec) = open(dir.path(), config);
    if use_tombstones {
        assert_eq!(ids(&rec), live.iter().map(|i| i.0).collect::<Vec<_>>());
    } else {
        // mark_dead is not logged: whatever was not reclaimed comes back,
        // but every live record is there.
        let got = ids(&rec);
        assert!(live.iter().all(|id| got.contains(&id.0)));
    }
}

#[test]
fn disk_use_follows_live_data_with_tombstones() {
    bounded_by_live_data(true);
}

#[test]
fn disk_use_follows_live_data_with_mark_dead() {
    bounded_by_live_data(false);
}

/// A tombstone is kept while its target is on disk, even when its own
/// segment is compacted; and it goes once the target is gone.
#[test]
fn compaction_keeps_tombstones_whose_target_is_on_disk() {
    let dir = TempDir::new("keep-tombstone");
    let config = StoreConfig::default()
        .with_segment_size(4096)
        .with_background_reclaim(false);
    let (log, _) = open(dir.path(), config.clone());
    // Segment 1: a small record x and a big live record keep it >50% live.
    let x = log.append(1, payload(0, 10), None).unwrap();
    let big = log.append(1, payload(1, 3000), None).unwrap();
    // Segment 2: the tombstone of x, then two big fillers.
    let f1 = log.append(1, payload(2, 1500), None).unwrap();
    let t = log.append(2, Bytes::new(), Some(x)).unwrap();
    let f2 = log.append(1, payload(3, 1500), None).unwrap();
    // Segment 3: something so that segment 2 is sealed.
    let tail = log.append(1, payload(4, 3000), None).unwrap();
    log.flush().unwrap();
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 3, "layout as planned");
    log.mark_dead(f1).unwrap();
    log.mark_dead(f2).unwrap();
    log.flush().unwrap();
    log.reclaim().unwrap();
    let stats = log.stats();
    assert_eq!(stats.segments_compacted, 1, "{stats:?}");
    assert!(segs[1].exists());
    assert!(log.read(big).is_ok() && log.read(tail).is_ok());
    // Crash now: x must stay dead, so the tombstone survived compaction.
    drop(log);
    let (log, rec) = open(dir.path(), config.clone());
    assert_eq!(ids(&rec), vec![big.0, tail.0]);
    assert!(log.read(t).is_err());
    // Once x's segment is gone, the tombstone's segment can go too.
    log.mark_dead(big).unwrap();
    log.flush().unwrap();
    log.reclaim().unwrap();
    assert!(
        !segs[0].exists() && !segs[1].exists(),
        "{:?}",
        segments(dir.path())
    );
    drop(log);
    let (_, rec) = open(dir.path(), config);
    assert_eq!(ids(&rec), vec![tail.0]);
}

/// Reads keep working while the background reclaimer rewrites segments.
#[test]
fn reads_during_background_reclamation() {
    let dir = TempDir::new("read-while-compacting");
    let config = StoreConfig::default().with_segment_size(2048);
    let (log, _) = open(dir.path(), config);
    let mut live = Vec::new();
    for i in 0..2000u64 {
        let id = log.append(1, payload(i, 100), None).unwrap();
        if i % 4 == 0 {
            live.push((id, i));
        } else {
            log.append(2, Bytes::new(), Some(id)).unwrap();
        }
        if i % 100 == 99 {
            for &(id, i) in live.iter().rev().take(20) {
                assert_eq!(log.read(id).unwrap(), payload(i, 100));
            }
        }
    }
    log.flush().unwrap();
    log.reclaim().unwrap();
    for &(id, i) in &live {
        assert_eq!(log.read(id).unwrap(), payload(i, 100));
    }
    let stats = log.stats();
    assert!(
        stats.segments_compacted + stats.segments_deleted > 0,
        "{stats:?}"
    );
}
