//! Storage scenarios written once and run against both `FileLog` and
//! `MemoryStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{ids, payload, Backend};
use warren_persistence::{NewRecord, RecordId, Store, StoreConfig, StoreError};

scenarios!(
    append_then_read,
    recovery_returns_live_records_in_order,
    ids_keep_growing_across_restarts,
    tombstone_kills_its_target_for_good,
    tombstone_of_a_recovered_record,
    mark_dead_hides_a_record,
    batches_get_contiguous_ids,
    empty_batch,
    invalid_references_are_rejected,
    unknown_ids_are_not_found,
    watermark_and_callback_cover_every_append,
    rotation_with_tiny_segments,
    record_larger_than_a_segment,
    tombstones_survive_reclamation_and_restart,
    many_threads_append,
);

fn tiny() -> StoreConfig {
    StoreConfig::default().with_segment_size(256)
}

fn append_then_read<B: Backend>(b: &mut B) {
    let (s, rec) = b.open(StoreConfig::default());
    assert!(rec.is_empty());
    let a = s.append(1, Bytes::from_static(b"alpha"), None).unwrap();
    let c = s.append(2, Bytes::from_static(b""), None).unwrap();
    let d = s.append(3, payload(3, 5000), None).unwrap();
    assert_eq!((a, c, d), (RecordId(1), RecordId(2), RecordId(3)));
    // Readable at once, before any explicit flush.
    assert_eq!(s.read(a).unwrap(), Bytes::from_static(b"alpha"));
    assert_eq!(s.read(c).unwrap(), Bytes::new());
    assert_eq!(s.read(d).unwrap(), payload(3, 5000));
    s.flush().unwrap();
    assert!(s.durable_lsn() >= 3);
    s.sync().unwrap();
    assert_eq!(s.stats().appended, 3);
    assert_eq!(s.stats().live_records, 3);
}

fn recovery_returns_live_records_in_order<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    for i in 0..50u64 {
        s.append((i % 7) as u8, payload(i, (i * 13 % 200) as usize), None)
            .unwrap();
    }
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), (1..=50).collect::<Vec<_>>());
    for (i, r) in rec.iter().enumerate() {
        let i = i as u64;
        assert_eq!(r.kind, (i % 7) as u8);
        assert_eq!(r.payload, payload(i, (i * 13 % 200) as usize));
        assert_eq!(s.read(r.id).unwrap(), r.payload);
    }
}

fn ids_keep_growing_across_restarts<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let first = s.append(0, payload(0, 10), None).unwrap();
    let (s, _) = b.restart(s);
    let second = s.append(0, payload(1, 10), None).unwrap();
    assert!(second > first);
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), vec![first.0, second.0]);
    assert!(s.append(0, payload(2, 10), None).unwrap() > second);
}

fn tombstone_kills_its_target_for_good<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let a = s.append(1, payload(1, 30), None).unwrap();
    let keep = s.append(1, payload(2, 30), None).unwrap();
    let t = s.append(9, Bytes::from_static(b"ack"), Some(a)).unwrap();
    assert!(matches!(s.read(a), Err(StoreError::NotFound(id)) if id == a));
    assert!(matches!(s.read(t), Err(StoreError::NotFound(_))));
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), vec![keep.0]);
    let (_, rec) = b.restart(s);
    assert_eq!(ids(&rec), vec![keep.0]);
}

fn tombstone_of_a_recovered_record<B: Backend>(b: &mut B) {
    let (s, _) = b.open(tiny());
    let mut all = Vec::new();
    for i in 0..20 {
        all.push(s.append(1, payload(i, 40), None).unwrap());
    }
    let (s, rec) = b.restart(s);
    assert_eq!(rec.len(), 20);
    for id in all.iter().step_by(2) {
        s.append(2, Bytes::new(), Some(*id)).unwrap();
    }
    s.reclaim().unwrap();
    let (_, rec) = b.restart(s);
    let expect: Vec<u64> = all.iter().skip(1).step_by(2).map(|i| i.0).collect();
    assert_eq!(ids(&rec), expect);
}

fn mark_dead_hides_a_record<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let a = s.append(1, payload(1, 10), None).unwrap();
    let c = s.append(1, payload(2, 10), None).unwrap();
    s.mark_dead(a).unwrap();
    s.mark_dead(a).unwrap(); // idempotent
    assert!(matches!(s.read(a), Err(StoreError::NotFound(_))));
    assert_eq!(s.read(c).unwrap(), payload(2, 10));
    assert_eq!(s.stats().live_records, 1);
    // Not logged: after a restart `a` may come back (the caller kills it
    // again); `c` is always there.
    let (_, rec) = b.restart(s);
    let got = ids(&rec);
    assert!(got == vec![c.0] || got == vec![a.0, c.0], "{got:?}");
}

fn batches_get_contiguous_ids<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let first = s.append(1, payload(0, 10), None).unwrap();
    let batch = vec![
        NewRecord::new(2, payload(1, 10)),
        NewRecord::new(2, payload(2, 10)),
        NewRecord::tombstone(3, Bytes::new(), first),
        NewRecord::new(2, payload(3, 10)),
    ];
    let range = s.append_batch(&batch).unwrap();
    assert_eq!(range.first, RecordId(2));
    assert_eq!(range.count, 4);
    assert_eq!(range.last(), Some(RecordId(5)));
    assert!(s.read(first).is_err());
    // A record of a batch may tombstone an earlier record of the same batch.
    let r2 = s
        .append_batch(&[
            NewRecord::new(4, payload(9, 10)),
            NewRecord::tombstone(5, Bytes::new(), RecordId(6)),
        ])
        .unwrap();
    assert_eq!(r2.first, RecordId(6));
    s.flush().unwrap();
    assert!(s.durable_lsn() >= 7);
    let (_, rec) = b.restart(s);
    assert_eq!(ids(&rec), vec![2, 3, 5]);
    assert_eq!(rec[2].payload, payload(3, 10));
}

fn empty_batch<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let r = s.append_batch(&[]).unwrap();
    assert_eq!((r.first, r.count, r.last()), (RecordId(1), 0, None));
    assert_eq!(s.append(0, Bytes::new(), None).unwrap(), RecordId(1));
}

fn invalid_references_are_rejected<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    let a = s.append(1, payload(1, 10), None).unwrap();
    for bad in [RecordId(0), RecordId(2), RecordId(100)] {
        let e = s.append(1, Bytes::new(), Some(bad)).unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidReference { target, .. } if target == bad),
            "{e}"
        );
    }
    let e = s
        .append_batch(&[
            NewRecord::new(1, payload(2, 1)),
            NewRecord::tombstone(1, Bytes::new(), RecordId(50)),
        ])
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidReference { .. }));
    // Nothing of the failed calls was appended.
    assert_eq!(s.append(1, payload(3, 10), None).unwrap(), RecordId(2));
    assert_eq!(s.read(a).unwrap(), payload(1, 10));
}

fn unknown_ids_are_not_found<B: Backend>(b: &mut B) {
    let (s, _) = b.open(StoreConfig::default());
    s.append(1, payload(1, 10), None).unwrap();
    assert!(matches!(s.read(RecordId(99)), Err(StoreError::NotFound(_))));
    assert!(matches!(s.read(RecordId(0)), Err(StoreError::NotFound(_))));
    assert!(matches!(
        s.mark_dead(RecordId(99)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.wait_durable(RecordId(99)),
        Err(StoreError::NotFound(_))
    ));
    s.wait_durable(RecordId(1)).unwrap();
}

fn watermark_and_callback_cover_every_append<B: Backend>(b: &mut B) {
    let seen = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let (seen2, calls2) = (seen.clone(), calls.clone());
    let config = StoreConfig::default().on_durable(move |lsn| {
        seen2.fetch_max(lsn, Ordering::SeqCst);
        calls2.fetch_add(1, Ordering::SeqCst);
    });
    let (s, _) = b.open(config);
    let mut last = RecordId(0);
    for i in 0..100 {
        last = s.append(1, payload(i, 20), None).unwrap();
    }
    s.wait_durable(last).unwrap();
    assert!(s.durable_lsn() >= last.0);
    s.flush().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), last.0);
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

fn rotation_with_tiny_segments<B: Backend>(b: &mut B) {
    let (s, _) = b.open(tiny());
    for i in 0..100 {
        s.append(1, payload(i, 40), None).unwrap();
    }
    s.flush().unwrap();
    if B::IS_FILE {
        // 66-byte frames, 256-byte segments: three records per segment.
        assert_eq!(s.stats().segments, 34);
    }
    for i in 0..100 {
        assert_eq!(s.read(RecordId(i + 1)).unwrap(), payload(i, 40));
    }
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), (1..=100).collect::<Vec<_>>());
    // After a restart appends go to a fresh segment and all stays readable.
    let id = s.append(1, payload(100, 40), None).unwrap();
    assert_eq!(id, RecordId(101));
    let (_, rec) = b.restart(s);
    assert_eq!(rec.len(), 101);
}

fn record_larger_than_a_segment<B: Backend>(b: &mut B) {
    let (s, _) = b.open(tiny());
    let small = s.append(1, payload(0, 10), None).unwrap();
    let big = s.append(1, payload(1, 10_000), None).unwrap();
    let after = s.append(1, payload(2, 10), None).unwrap();
    assert_eq!(s.read(big).unwrap(), payload(1, 10_000));
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), vec![small.0, big.0, after.0]);
    assert_eq!(rec[1].payload, payload(1, 10_000));
    assert_eq!(s.read(big).unwrap(), payload(1, 10_000));
}

fn tombstones_survive_reclamation_and_restart<B: Backend>(b: &mut B) {
    let (s, _) = b.open(tiny().with_background_reclaim(false));
    let mut live = Vec::new();
    for i in 0..200u64 {
        let id = s.append(1, payload(i, 30), None).unwrap();
        live.push(id);
        if i % 3 != 0 {
            // Ack an older record: tombstones land in later segments than
            // their targets.
            let victim = live.remove(live.len() / 2);
            s.append(2, Bytes::new(), Some(victim)).unwrap();
        }
        if i % 50 == 0 {
            s.flush().unwrap();
            s.reclaim().unwrap();
        }
    }
    s.flush().unwrap();
    s.reclaim().unwrap();
    for id in &live {
        assert!(s.read(*id).is_ok(), "{id} unreadable after reclamation");
    }
    let (s, rec) = b.restart(s);
    assert_eq!(ids(&rec), live.iter().map(|i| i.0).collect::<Vec<_>>());
    if B::IS_FILE {
        let st = s.stats();
        assert!(
            st.segments_deleted + st.segments_compacted > 0 || st.segments < 60,
            "{st:?}"
        );
    }
}

fn many_threads_append<B: Backend>(b: &mut B)
where
    B::S: Sync,
{
    let (s, _) = b.open(StoreConfig::default().with_segment_size(64 << 10));
    let threads = 8;
    let per = 500u64;
    let all: Vec<Vec<(RecordId, Bytes)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..per)
                        .map(|i| {
                            let p = payload(t * 1_000_000 + i, 24);
                            (s.append(t as u8, p.clone(), None).unwrap(), p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    s.flush().unwrap();
    let total = threads * per;
    assert_eq!(s.durable_lsn(), total);
    for per_thread in &all {
        // Each thread's ids increase in its own append order.
        assert!(per_thread.windows(2).all(|w| w[0].0 < w[1].0));
        for (id, p) in per_thread {
            assert_eq!(&s.read(*id).unwrap(), p);
        }
    }
    let (_, rec) = b.restart(s);
    assert_eq!(ids(&rec), (1..=total).collect::<Vec<_>>());
}
