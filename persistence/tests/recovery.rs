//! Recovery of a `FileLog` from torn, corrupt and odd data directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;

use bytes::Bytes;
use common::{copy_dir, ids, payload, segments, TempDir};
use warren_persistence::{FileLog, NewRecord, Record, Store, StoreConfig, StoreError};

const FRAME_HEADER: u64 = 26;
const SEGMENT_HEADER: u64 = 24;

fn open(dir: &Path, config: StoreConfig) -> (FileLog, Vec<Record>) {
    let (log, rec) = FileLog::open(dir, config).unwrap();
    (log, rec.into_vec().unwrap())
}

fn base_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn size(i: u64) -> usize {
    (i * 7 % 50) as usize + 1
}

/// Cuts the last segment at every byte offset: open always succeeds and
/// recovers exactly the records completely before the cut (a batch only
/// when complete), and the file is truncated to that point.
#[test]
fn torn_tail_at_every_offset() {
    let original = TempDir::new("torn-original");
    let config = StoreConfig::default().with_segment_size(1024);
    let (log, _) = open(original.path(), config.clone());
    for i in 0..40u64 {
        log.append(1, payload(i, size(i)), None).unwrap();
    }
    // The last three records are one batch (ids 41..=43).
    let batch: Vec<NewRecord> = (40..43)
        .map(|i| NewRecord::new(2, payload(i, size(i))))
        .collect();
    log.append_batch(&batch).unwrap();
    drop(log);

    let last = segments(original.path()).pop().unwrap();
    let base = base_of(&last);
    let full = fs::metadata(&last).unwrap().len();
    // Frame end offsets of the records of the last segment.
    let mut ends = Vec::new();
    let mut at = SEGMENT_HEADER;
    for id in base..=43 {
        at += FRAME_HEADER + size(id - 1) as u64;
        ends.push((id, at));
    }
    assert_eq!(at, full, "test assumes it knows the layout");
    assert!(ends.len() >= 4, "want several records in the last segment");

    let work = TempDir::new("torn-work");
    // Every offset of the last records, and the header.
    let from = ends[ends.len() - 5].1 - 3;
    let cuts: Vec<u64> = (0..=SEGMENT_HEADER + 1).chain(from..=full).collect();
    for cut in cuts {
        for e in fs::read_dir(work.path()).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        copy_dir(original.path(), work.path());
        let seg = work.path().join(last.file_name().unwrap());
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let (log, rec) = open(work.path(), config.clone());
        let complete: Vec<u64> = ends
            .iter()
            .filter(|&&(id, end)| end <= cut && (id < 41 || cut == full))
            .map(|&(id, _)| id)
            .collect();
        let mut expect: Vec<u64> = (1..base).collect();
        expect.extend(&complete);
        assert_eq!(ids(&rec), expect, "cut at {cut}");
        for r in &rec {
            assert_eq!(
                r.payload,
                payload(r.id.0 - 1, size(r.id.0 - 1)),
                "cut {cut}"
            );
        }
        // The torn tail is gone from disk (or the segment, if nothing was left).
        match complete.last() {
            Some(id) => {
                let end = ends.iter().find(|e| e.0 == *id).unwrap().1;
                assert_eq!(fs::metadata(&seg).unwrap().len(), end, "cut {cut}");
            }
            None => assert!(!seg.exists(), "cut {cut}: empty segment kept"),
        }
        // The store goes on: new records after the damage survive a restart.
        if cut % 7 == 0 {
            let id = log.append(3, Bytes::from_static(b"after"), None).unwrap();
            assert!(id.0 > *expect.last().unwrap_or(&0));
            drop(log);
            let (_, rec2) = open(work.path(), config.clone());
            let mut expect2 = expect.clone();
            expect2.push(id.0);
            assert_eq!(ids(&rec2), expect2, "cut {cut}, second open");
        }
    }
}

/// Three 66-byte records per 256-byte segment: ids 3k+1..3k+3 in segment k.
fn tiny_log(name: &str, records: u64) -> TempDir {
    let dir = TempDir::new(name);
    let (log, _) = open(dir.path(), StoreConfig::default().with_segment_size(256));
    for i in 0..records {
        log.append(1, payload(i, 40), None).unwrap();
    }
    drop(log);
    dir
}

fn flip(path: &Path, at: u64) {
    let mut data = fs::read(path).unwrap();
    data[at as usize] ^= 0x10;
    fs::write(path, data).unwrap();
}

/// A flipped byte in a record in the middle of a sealed segment: everything
/// before it, and every later segment, is recovered; the store opens every
/// time and keeps working.
#[test]
fn corrupt_record_in_a_sealed_segment() {
    let dir = tiny_log("corrupt-middle", 30);
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 10);
    // Segment 5 holds ids 13, 14, 15; flip a payload byte of id 14.
    assert_eq!(base_of(&segs[4]), 13);
    flip(&segs[4], SEGMENT_HEADER + 66 + 30);

    let expect: Vec<u64> = (1..=30).filter(|&i| i != 14 && i != 15).collect();
    let config = StoreConfig::default()
        .with_segment_size(256)
        .with_background_reclaim(false);
    let (log, rec) = open(dir.path(), config);
    assert_eq!(ids(&rec), expect);
    // Open does not truncate a sealed segment (a later compaction may
    // rewrite it without the damaged bytes).
    assert_eq!(
        fs::metadata(&segs[4]).unwrap().len(),
        SEGMENT_HEADER + 3 * 66
    );
    let id = log.append(1, payload(99, 40), None).unwrap();
    assert_eq!(id.0, 31);
    drop(log);
    let (_, rec) = open(dir.path(), StoreConfig::default().with_segment_size(256));
    let mut expect2 = expect;
    expect2.push(31);
    assert_eq!(ids(&rec), expect2);
}

/// A flipped byte in the middle of the last segment is a tail: truncated.
#[test]
fn corrupt_record_in_the_last_segment() {
    let dir = tiny_log("corrupt-last", 30);
    let last = segments(dir.path()).pop().unwrap();
    assert_eq!(base_of(&last), 28);
    flip(&last, SEGMENT_HEADER + 66 + 5);
    let (_, rec) = open(dir.path(), StoreConfig::default());
    assert_eq!(ids(&rec), (1..=28).collect::<Vec<_>>());
    assert_eq!(fs::metadata(&last).unwrap().len(), SEGMENT_HEADER + 66);
}

/// A middle segment whose header is garbage is skipped whole.
#[test]
fn damaged_header_in_a_sealed_segment() {
    let dir = tiny_log("bad-header", 12);
    let segs = segments(dir.path());
    flip(&segs[1], 0);
    let (log, rec) = open(dir.path(), StoreConfig::default());
    assert_eq!(ids(&rec), vec![1, 2, 3, 7, 8, 9, 10, 11, 12]);
    // A segment with nothing needed in it is eventually deleted.
    log.reclaim().unwrap();
    assert!(!segs[1].exists());
}

#[test]
fn empty_and_foreign_files_are_not_fatal() {
    let dir = tiny_log("odd-files", 6);
    fs::write(dir.path().join("00000000000000000100.wlog"), b"").unwrap();
    fs::write(dir.path().join("00000000000000000200.wlog"), [0u8; 100]).unwrap();
    fs::write(
        dir.path().join("00000000000000000004.wlog.tmp"),
        b"half a compaction",
    )
    .unwrap();
    fs::write(dir.path().join("README"), b"not ours").unwrap();
    let (log, rec) = open(dir.path(), StoreConfig::default());
    assert_eq!(ids(&rec), (1..=6).collect::<Vec<_>>());
    assert!(!dir.path().join("00000000000000000100.wlog").exists());
    assert!(!dir.path().join("00000000000000000200.wlog").exists());
    assert!(!dir.path().join("00000000000000000004.wlog.tmp").exists());
    assert!(dir.path().join("README").exists());
    assert_eq!(log.append(1, Bytes::new(), None).unwrap().0, 7);
}

#[test]
fn missing_directory_is_created() {
    let root = TempDir::new("missing");
    let dir = root.path().join("a/b/data");
    let (log, rec) = open(&dir, StoreConfig::default());
    assert!(rec.is_empty());
    log.append(1, Bytes::from_static(b"x"), None).unwrap();
    drop(log);
    let (_, rec) = open(&dir, StoreConfig::default());
    assert_eq!(rec.len(), 1);
}

#[test]
fn a_data_directory_has_one_user() {
    let dir = TempDir::new("lock");
    let (log, _) = open(dir.path(), StoreConfig::default());
    let second = FileLog::open(dir.path(), StoreConfig::default());
    assert!(matches!(second, Err(StoreError::Locked(_))), "{second:?}");
    drop(log);
    let (_, _) = open(dir.path(), StoreConfig::default());
}

#[test]
fn unknown_format_version_refuses_to_open() {
    let dir = tiny_log("version", 3);
    let seg = segments(dir.path()).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    data[8] = 9; // version field
    fs::write(&seg, data).unwrap();
    let e = FileLog::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(e, StoreError::UnsupportedFormat { version: 9, .. }),
        "{e}"
    );
}

#[test]
fn bad_configuration_is_an_error() {
    let dir = TempDir::new("config");
    let e = FileLog::open(dir.path(), StoreConfig::default().with_segment_size(1)).unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e}");
}

/// The writer keeps zeros ahead of its data in the active segment (cut at
/// close). A crash leaves them: a copy of the directory taken while the
/// store runs has them, and opening it recovers every record, cuts the
/// zeros without calling them damage, and appends after them fine.
#[test]
fn preallocated_zeros_left_by_a_crash_are_the_clean_end() {
    let dir = TempDir::new("prealloc-live");
    let config = StoreConfig::default().with_segment_size(64 << 10);
    let (log, _) = open(dir.path(), config.clone());
    for i in 0..20u64 {
        log.append(1, payload(i, 100), None).unwrap();
    }
    log.flush().unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let data_len = SEGMENT_HEADER + 20 * (FRAME_HEADER + 100);
    let on_disk = fs::metadata(&seg).unwrap().len();
    assert_eq!(on_disk, 64 << 10, "zero-filled up to the segment size");
    assert!(fs::read(&seg).unwrap()[data_len as usize..]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(log.stats().disk_bytes, on_disk, "stats count the zeros");

    // "Crash": copy the files as they are now.
    let crashed = TempDir::new("prealloc-crashed");
    copy_dir(dir.path(), crashed.path());
    let (log2, rec) = open(crashed.path(), config.clone());
    assert_eq!(ids(&rec), (1..=20).collect::<Vec<_>>());
    let copied = crashed.path().join(seg.file_name().unwrap());
    assert_eq!(fs::metadata(&copied).unwrap().len(), data_len);
    let id = log2.append(1, payload(20, 100), None).unwrap();
    drop(log2);
    let (_, rec) = open(crashed.path(), config.clone());
    assert_eq!(ids(&rec), (1..=id.0).collect::<Vec<_>>());

    // A clean close cuts the zeros.
    drop(log);
    assert_eq!(fs::metadata(&seg).unwrap().len(), data_len);
}

/// A sealed segment is cut back to its data when the next one starts; and
/// one still holding zeros (a crash between the two) is read up to them,
/// with the later segments replayed as usual.
#[test]
fn sealed_segments_hold_no_zeros() {
    let dir = TempDir::new("prealloc-sealed");
    let config = StoreConfig::default()
        .with_segment_size(256)
        .with_background_reclaim(false);
    let (log, _) = open(dir.path(), config.clone());
    for i in 0..30u64 {
        log.append(1, payload(i, 40), None).unwrap();
    }
    log.flush().unwrap();
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 10);
    for s in &segs[..9] {
        assert_eq!(fs::metadata(s).unwrap().len(), SEGMENT_HEADER + 3 * 66);
    }
    assert_eq!(fs::metadata(&segs[9]).unwrap().len(), 256);
    drop(log);
    // Zeros at the end of a middle segment, as if its trim never reached
    // the disk.
    let f = OpenOptions::new().write(true).open(&segs[4]).unwrap();
    f.set_len(256).unwrap();
    drop(f);
    let (_, rec) = open(dir.path(), config);
    assert_eq!(ids(&rec), (1..=30).collect::<Vec<_>>());
    assert_eq!(
        fs::metadata(&segs[4]).unwrap().len(),
        SEGMENT_HEADER + 3 * 66
    );
}

/// With fsync `never` nothing is preallocated (there is no fsync to save).
#[test]
fn no_zeros_ahead_with_fsync_never() {
    let dir = TempDir::new("prealloc-never");
    let config = StoreConfig::default().with_fsync(warren_persistence::FsyncPolicy::Never);
    let (log, _) = open(dir.path(), config);
    log.append(1, payload(0, 100), None).unwrap();
    log.flush().unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        SEGMENT_HEADER + FRAME_HEADER + 100
    );
}
