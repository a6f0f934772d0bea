//! Space reclamation: delete sealed segments nothing needs any more, and
//! rewrite ("compact") sealed segments that are mostly dead.
//!
//! Only sealed, fully written segments are touched. Plans are made under
//! the index lock from counters and slot flags; the I/O runs without it;
//! results are applied under it again. Records only ever go from live to
//! dead, so anything that died in between is simply left for the next run.
//!
//! Order matters for crash safety: a tombstone is needed while its target is
//! on disk, and the target counts as gone only once its removal is durable
//! (directory fsynced). So a run makes several passes: a pass that deletes
//! a target segment lets the next pass drop the tombstones pointing into it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::files::{sync_dir, temp_path};
use crate::index::{Index, SegmentIndex, Slot};
use crate::record;
use crate::segment::{self, HEADER_LEN};
use crate::shared::{lock, Counters, Shared};

/// Passes per run; each pass makes progress, this only bounds a run.
const MAX_PASSES: usize = 8;

struct Compaction {
    base: u64,
    file: Arc<File>,
    keep: Vec<(u64, Slot)>,
}

#[derive(Default)]
struct Plan {
    delete: Vec<u64>,
    compact: Vec<Compaction>,
}

/// One reclamation run (serialized by `Shared::reclaim`).
pub(crate) fn run(shared: &Shared) -> Result<()> {
    let _running = lock(&shared.reclaim);
    for _ in 0..MAX_PASSES {
        let plan = plan(shared);
        if plan.delete.is_empty() && plan.compact.is_empty() {
            break;
        }
        delete(shared, &plan.delete)?;
        for c in plan.compact {
            compact(shared, c)?;
        }
    }
    Ok(())
}

fn plan(shared: &Shared) -> Plan {
    let written = shared.written_lsn.load(Ordering::Acquire);
    let ratio = shared.config.compact_below;
    let idx = lock(&shared.index);
    let mut plan = Plan::default();
    for seg in idx.segments.values() {
        if !seg.sealed || seg.last_id() > written || !seg.reclaim_candidate(ratio) {
            continue;
        }
        let Some(file) = seg.file.clone() else {
            continue;
        };
        let (keep, present) = needed_slots(&idx, seg);
        let keep_bytes: u64 = keep.iter().map(|(_, s)| u64::from(s.len())).sum();
        let body = seg.file_len.saturating_sub(HEADER_LEN) as f64;
        if keep.is_empty() {
            plan.delete.push(seg.base);
        } else if keep.len() < present && (keep_bytes as f64) < ratio * body {
            plan.compact.push(Compaction {
                base: seg.base,
                file,
                keep,
            });
        }
    }
    plan
}

/// The slots of `seg` that must stay on disk, and how many are on disk now.
fn needed_slots(idx: &Index, seg: &SegmentIndex) -> (Vec<(u64, Slot)>, usize) {
    let mut tombstones = seg.tombstones.iter().peekable();
    let mut keep = Vec::new();
    let mut present = 0;
    for (i, &slot) in seg.slots.iter().enumerate() {
        let id = seg.base + i as u64;
        let mut target = None;
        if slot.is_tombstone() {
            while let Some(&&(t_id, t_target)) = tombstones.peek() {
                if t_id > id {
                    break;
                }
                tombstones.next();
                if t_id == id {
                    target = Some(t_target);
                }
            }
        }
        if slot.is_removed() {
            continue;
        }
        present += 1;
        if idx.needed(seg, slot, target) {
            keep.push((id, slot));
        }
    }
    (keep, present)
}

fn delete(shared: &Shared, bases: &[u64]) -> Result<()> {
    if bases.is_empty() {
        return Ok(());
    }
    for &base in bases {
        let path = segment::path(&shared.dir, base);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path, e)),
        }
    }
    sync_dir(&shared.dir).map_err(|e| StoreError::io(&shared.dir, e))?;
    Counters::add(&shared.counters.dir_syncs, 1);
    // Only now, with the deletion durable, do the records count as gone.
    let mut idx = lock(&shared.index);
    for base in bases {
        idx.segments.remove(base);
    }
    drop(idx);
    Counters::add(&shared.counters.segments_deleted, bases.len() as u64);
    tracing::debug!(segments = bases.len(), "deleted dead segments");
    Ok(())
}

/// Rewrites a segment with only the records it needs:
/// write `<segment>.tmp`, fsync, rename over the segment, fsync the directory.
fn compact(shared: &Shared, c: Compaction) -> Result<()> {
    let path = segment::path(&shared.dir, c.base);
    let tmp = temp_path(&path);
    let io_err = |e| StoreError::io(&tmp, e);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let out = segment::create(&tmp, c.base).map_err(io_err)?;
    let mut out_len = HEADER_LEN;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut frame = Vec::new();
    let mut moved = Vec::with_capacity(c.keep.len());
    for &(id, slot) in &c.keep {
        frame.resize(slot.len() as usize, 0);
        c.file
            .read_exact_at(&mut frame, u64::from(slot.offset()))
            .map_err(|e| StoreError::io(&path, e))?;
        match record::decode(&frame) {
            Ok(f) if f.id == id => {
                // Flags are cleared: the batch this record was part of is
                // long complete, and some of its records may be dropped here.
                let at = out_len + buf.len() as u64;
                record::encode(&mut buf, id, f.kind, f.refers_to, 0, f.payload(&frame));
                moved.push((id, at as u32));
            }
            Ok(_) => {
                tracing::warn!(segment = %path.display(), id, "record has another id than indexed; dropped during compaction")
            }
            Err(e) => {
                tracing::warn!(segment = %path.display(), id, reason = e.reason(), "record damaged on disk; dropped during compaction")
            }
        }
        if buf.len() >= 1 << 20 {
            out.write_all_at(&buf, out_len).map_err(io_err)?;
            out_len += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all_at(&buf, out_len).map_err(io_err)?;
    out_len += buf.len() as u64;
    out.sync_all().map_err(io_err)?;
    Counters::add(&shared.counters.fsyncs, 1);
    fs::rename(&tmp, &path).map_err(io_err)?;
    sync_dir(&shared.dir).map_err(|e| StoreError::io(&shared.dir, e))?;
    Counters::add(&shared.counters.dir_syncs, 1);

    let mut idx = lock(&shared.index);
    if let Some(seg) = idx.segments.get_mut(&c.base) {
        let old_len = seg.file_len;
        let mut moved_iter = moved.iter().peekable();
        for i in 0..seg.slots.len() {
            let id = seg.base + i as u64;
            if let Some(&&(m_id, at)) = moved_iter.peek() {
                if m_id == id {
                    moved_iter.next();
                    seg.slots[i] = seg.slots[i].with_offset(at);
                    continue;
                }
            }
            seg.mark_removed(id);
        }
        let still_there = |id: &u64| moved.binary_search_by_key(id, |&(m, _)| m).is_ok();
        seg.tombstones.retain(|(id, _)| still_there(id));
        seg.file = Some(Arc::new(out));
        seg.file_len = out_len;
        tracing::debug!(segment = %path.display(), old_len, new_len = out_len, "compacted segment");
    }
    drop(idx);
    Counters::add(&shared.counters.segments_compacted, 1);
    Ok(())
}
