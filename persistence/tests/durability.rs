//! Group commit and the fsync policies of a `FileLog`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{payload, TempDir};
use warren_persistence::{FileLog, FsyncPolicy, RecordId, Store, StoreConfig};

fn open(dir: &std::path::Path, config: StoreConfig) -> FileLog {
    FileLog::open(dir, config).unwrap().0
}

fn recovered(dir: &std::path::Path) -> usize {
    FileLog::open(dir, StoreConfig::default())
        .unwrap()
        .1
        .into_vec()
        .unwrap()
        .len()
}

/// 10k appends from 8 threads share far fewer than 10k fsyncs, and the
/// watermark covers all of them after flush.
#[test]
fn group_commit_shares_fsyncs() {
    let dir = TempDir::new("group-commit");
    let log = open(dir.path(), StoreConfig::default());
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..1250 {
                    log.append(1, payload(t << 32 | i, 16), None).unwrap();
                }
            });
        }
    });
    log.flush().unwrap();
    let stats = log.stats();
    assert_eq!(stats.durable_lsn, 10_000);
    assert!(stats.fsyncs < 1_000, "{stats:?}");
    eprintln!(
        "free-running appenders: {} records/fsync, {stats:?}",
        10_000 / stats.fsyncs.max(1)
    );
    drop(log);
    assert_eq!(recovered(dir.path()), 10_000);
}

/// Publishers that wait for durability after every append (as a confirm
/// does) still share fsyncs.
#[test]
fn waiting_appenders_share_fsyncs() {
    let dir = TempDir::new("group-commit-wait");
    let log = open(dir.path(), StoreConfig::default());
    let per = 100;
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..per {
                    let id = log.append(1, payload(t << 32 | i, 16), None).unwrap();
                    log.wait_durable(id).unwrap();
                    assert!(log.durable_lsn() >= id.0);
                }
            });
        }
    });
    let stats = log.stats();
    assert!(stats.fsyncs < 8 * per * 3 / 4, "{stats:?}");
    eprintln!(
        "waiting appenders: {:.1} records/fsync",
        (8 * per) as f64 / stats.fsyncs as f64
    );
}

#[test]
fn always_fsyncs_before_the_watermark_moves() {
    let dir = TempDir::new("always");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let log = open(
        dir.path(),
        StoreConfig::default().on_durable(move |lsn| seen2.lock().unwrap().push(lsn)),
    );
    let id = log.append(1, Bytes::from_static(b"x"), None).unwrap();
    log.wait_durable(id).unwrap();
    let st = log.stats();
    // The data file and the directory (new segment) were fsynced.
    assert!(st.fsyncs >= 1 && st.dir_syncs >= 1, "{st:?}");
    for i in 0..200 {
        log.append(1, payload(i, 8), None).unwrap();
    }
    log.flush().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "watermark went back: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&201));
}

#[test]
fn interval_advances_on_write_and_fsyncs_later() {
    let dir = TempDir::new("interval");
    let log = open(
        dir.path(),
        StoreConfig::default().with_fsync(FsyncPolicy::Interval(Duration::from_millis(300))),
    );
    let start = Instant::now();
    let mut last = RecordId(0);
    for i in 0..10 {
        last = log.append(1, payload(i, 8), None).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(log.durable_lsn(), last.0);
    if start.elapsed() < Duration::from_millis(250) {
        assert_eq!(log.stats().fsyncs, 0, "fsynced before the interval");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "interval fsync never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start.elapsed() >= Duration::from_millis(290));
}

#[test]
fn never_leaves_fsync_to_the_os_until_asked() {
    let dir = TempDir::new("never");
    let log = open(
        dir.path(),
        StoreConfig::default().with_fsync(FsyncPolicy::Never),
    );
    for i in 0..1000 {
        log.append(1, payload(i, 16), None).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(log.durable_lsn(), 1000);
    assert_eq!(log.stats().fsyncs, 0);
    log.sync().unwrap();
    assert!(log.stats().fsyncs >= 1);
    log.append(1, payload(1000, 16), None).unwrap();
    // Close writes and fsyncs what is left.
    drop(log);
    assert_eq!(recovered(dir.path()), 1001);
}

/// A write error stops the store for good: waiters and appenders get
/// `Failed`, the callback is told, and dropping the store does not hang.
#[test]
fn a_write_failure_is_reported_not_hidden() {
    use warren_persistence::StoreError;
    let dir = TempDir::new("failure");
    let calls = Arc::new(Mutex::new(0u32));
    let calls2 = calls.clone();
    let log = open(
        dir.path(),
        StoreConfig::default()
            .with_segment_size(256)
            .on_durable(move |_| *calls2.lock().unwrap() += 1),
    );
    for i in 0..3 {
        log.append(1, payload(i, 40), None).unwrap();
    }
    log.flush().unwrap();
    // The next segment (base 4) cannot be created: its name is taken.
    std::fs::create_dir(dir.path().join("00000000000000000004.wlog")).unwrap();
    let id = log.append(1, payload(3, 40), None).unwrap();
    let err = log.wait_durable(id).unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)), "{err}");
    assert!(matches!(log.flush(), Err(StoreError::Failed(_))));
    assert!(matches!(
        log.append(1, Bytes::new(), None),
        Err(StoreError::Failed(_))
    ));
    assert!(log.durable_lsn() < id.0);
    assert!(*calls.lock().unwrap() >= 2);
    // Records before the failure stay readable.
    assert_eq!(log.read(RecordId(1)).unwrap(), payload(0, 40));
    drop(log);
    // And the next start recovers everything that was written.
    assert_eq!(recovered(dir.path()), 3);
}
