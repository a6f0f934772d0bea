//! Replay of the segment files when a [`FileLog`](crate::FileLog) opens.
//!
//! Rules (also in the crate docs):
//! - Leftover `*.tmp` files (an interrupted compaction) are deleted: the
//!   segment they were to replace is still complete.
//! - Trailing segments with an unreadable header or without a single valid
//!   record are deleted (a segment created just before a crash).
//! - Every record's CRC, length and id sequence is checked. In the last
//!   segment the first bad record starts a torn tail: the file is truncated
//!   there (`warn!`). In an earlier (sealed) segment the rest of that
//!   segment is skipped (`warn!`), the file left as is, and replay goes on
//!   with the next segment: later segments are intact and hold confirmed
//!   records too.
//! - A batch whose last record is missing is dropped as a whole.
//! - An all-zero tail is the room the writer preallocates ahead of its data
//!   (left by a crash): the clean end of the segment, cut without a warning.
//! - A segment with another format version makes open fail rather than
//!   risk reclaiming data we do not understand.
//! - A tombstone kills its target; recovery returns the records that are
//!   neither tombstones nor tombstoned.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::files::sync_dir;
use crate::index::{Index, SegmentIndex, Slot};
use crate::record::{self, FRAME_HEADER};
use crate::segment::{self, Header, FORMAT_VERSION, HEADER_LEN};

/// A valid record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub id: u64,
    pub offset: u32,
    pub len: u32,
    pub refers_to: u64,
}

/// What [`scan`] found in one segment.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub records: Vec<Found>,
    /// Where the valid data ends.
    pub valid_end: u64,
    /// Why the data after `valid_end` (if any) was rejected.
    pub damage: Option<&'static str>,
}

/// Checks every record of a segment's bytes. `after` is the highest id of
/// the earlier segments, `next_base` the base of the next segment: ids must
/// lie strictly between.
pub(crate) fn scan(data: &[u8], base: u64, after: u64, next_base: Option<u64>) -> Scan {
    // Room for as many records as could fit, allocated once: grown by
    // doubling, a list of a million records would be freed at a size that
    // makes glibc serve later allocations from its heap, where the index's
    // lists then leave holes (a 10 M backlog kept ~140 MiB more after a
    // restart). Pages never written are never resident.
    let mut out = Scan {
        records: Vec::with_capacity(data.len() / FRAME_HEADER),
        ..Scan::default()
    };
    let mut off = HEADER_LEN as usize;
    let mut prev = after.max(base - 1);
    // Records of a batch whose last record has not been seen yet.
    let mut open_batch: Option<(usize, usize)> = None;
    while off < data.len() {
        let frame = match record::decode(&data[off..]) {
            Ok(f) => f,
            // Zeros the writer put ahead of its data: the clean end.
            Err(_) if data[off..].iter().all(|&b| b == 0) => break,
            Err(e) => {
                out.damage = Some(e.reason());
                break;
            }
        };
        if frame.id <= prev || next_base.is_some_and(|n| frame.id >= n) {
            out.damage = Some("record id out of sequence");
            break;
        }
        let (Ok(offset), Ok(len)) = (u32::try_from(off), u32::try_from(frame.len)) else {
            out.damage = Some("segment larger than 4 GiB");
            break;
        };
        if frame.batch_continues() {
            open_batch.get_or_insert((out.records.len(), off));
        } else {
            open_batch = None;
        }
        out.records.push(Found {
            id: frame.id,
            offset,
            len,
            refers_to: frame.refers_to,
        });
        prev = frame.id;
        off += frame.len;
    }
    if let Some((n, start)) = open_batch {
        out.records.truncate(n);
        off = start;
        out.damage.get_or_insert("incomplete batch");
    }
    out.valid_end = off as u64;
    out
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| StoreError::io(path, e))
}

fn remove(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| StoreError::io(path, e))
}

/// Segment bases in the directory, after removing leftover temp files.
fn list(dir: &Path, changed: &mut bool) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_file_name(name) {
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                tracing::warn!(file = name, "not a regular file; ignored");
                continue;
            }
            bases.push(base);
        } else if name
            .strip_suffix(".tmp")
            .and_then(segment::parse_file_name)
            .is_some()
        {
            tracing::info!(
                file = name,
                "removing leftover of an interrupted compaction"
            );
            remove(&entry.path())?;
            *changed = true;
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Drops trailing segments that hold nothing: created just before a crash.
fn drop_empty_tail(dir: &Path, bases: &mut Vec<u64>, changed: &mut bool) -> Result<()> {
    while let Some(&base) = bases.last() {
        let path = segment::path(dir, base);
        let data = read(&path)?;
        let reason = match segment::check_header(&data, base) {
            Header::Unsupported(version) => {
                return Err(StoreError::UnsupportedFormat {
                    path,
                    version,
                    supported: FORMAT_VERSION,
                })
            }
            Header::Torn => "header incomplete",
            Header::Damaged(reason) => reason,
            Header::Valid if scan(&data, base, 0, None).records.is_empty() => "no complete record",
            Header::Valid => return Ok(()),
        };
        tracing::warn!(segment = %path.display(), reason, "removing empty last segment");
        remove(&path)?;
        *changed = true;
        bases.pop();
    }
    Ok(())
}

/// Rebuilds the index from the segment files of `dir`.
pub(crate) fn replay(dir: &Path) -> Result<Index> {
    let mut changed = false;
    let mut bases = list(dir, &mut changed)?;
    drop_empty_tail(dir, &mut bases, &mut changed)?;

    let mut idx = Index::new(1);
    let mut max_id = 0;
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let path = segment::path(dir, base);
        let data = read(&path)?;
        let mut seg = SegmentIndex::new(base, data.len() as u64);
        seg.sealed = true;
        let scanned = match segment::check_header(&data, base) {
            Header::Valid => scan(&data, base, max_id, bases.get(i + 1).copied()),
            Header::Unsupported(version) => {
                return Err(StoreError::UnsupportedFormat {
                    path,
                    version,
                    supported: FORMAT_VERSION,
                })
            }
            Header::Torn | Header::Damaged(_) => {
                tracing::warn!(segment = %path.display(), "segment header unreadable; skipping the segment, later segments are still replayed");
                Scan {
                    valid_end: HEADER_LEN,
                    ..Scan::default()
                }
            }
        };
        if scanned.damage.is_none() && scanned.valid_end < data.len() as u64 {
            // The zeros the writer keeps ahead of its data (a crash before
            // the segment was sealed or the store closed): not damage.
            tracing::debug!(segment = %path.display(), offset = scanned.valid_end, "cutting preallocated zeros");
            truncate(&path, scanned.valid_end)?;
            seg.file_len = scanned.valid_end;
        }
        if let Some(reason) = scanned.damage {
            let dropped = data.len() as u64 - scanned.valid_end;
            if last {
                tracing::warn!(segment = %path.display(), offset = scanned.valid_end, dropped_bytes = dropped, reason, "torn or corrupt tail truncated");
                truncate(&path, scanned.valid_end)?;
                seg.file_len = scanned.valid_end;
            } else {
                tracing::warn!(segment = %path.display(), offset = scanned.valid_end, skipped_bytes = dropped, reason, "corrupt record in a sealed segment; the rest of this segment is skipped, later segments are still replayed");
            }
        }
        seg.file = Some(Arc::new(
            File::open(&path).map_err(|e| StoreError::io(&path, e))?,
        ));
        // Sized once (see `scan`).
        seg.slots.reserve_exact(scanned.records.len());
        idx.segments.insert(base, seg);
        for r in &scanned.records {
            if let Some(seg) = idx.segments.get_mut(&base) {
                seg.push(
                    r.id,
                    Slot::new(r.offset, r.len, r.refers_to != 0),
                    r.refers_to,
                );
            }
            idx.next_id = r.id + 1;
            if r.refers_to != 0 {
                idx.kill(r.refers_to);
            }
            max_id = r.id;
        }
        // Ids must never collide with an existing segment name.
        max_id = max_id.max(base);
    }
    idx.next_id = max_id + 1;
    if changed {
        sync_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    }
    Ok(idx)
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    f.set_len(len).map_err(|e| StoreError::io(path, e))?;
    f.sync_all().map_err(|e| StoreError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode, FLAG_BATCH_CONTINUES};

    fn segment_bytes(records: &[(u64, u8)]) -> Vec<u8> {
        let mut buf = segment::encode_header(records[0].0).to_vec();
        for &(id, flags) in records {
            encode(&mut buf, id, 1, 0, flags, b"abc");
        }
        buf
    }

    #[test]
    fn clean_segment() {
        let data = segment_bytes(&[(1, 0), (2, 0), (3, 0)]);
        let s = scan(&data, 1, 0, None);
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.valid_end, data.len() as u64);
        assert_eq!(s.damage, None);
    }

    #[test]
    fn incomplete_batch_is_dropped_whole() {
        let data = segment_bytes(&[(1, 0), (2, FLAG_BATCH_CONTINUES), (3, FLAG_BATCH_CONTINUES)]);
        let s = scan(&data, 1, 0, None);
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.valid_end,
            s.records[0].offset as u64 + s.records[0].len as u64
        );
        assert_eq!(s.damage, Some("incomplete batch"));
    }

    #[test]
    fn out_of_sequence_ids_are_damage() {
        let data = segment_bytes(&[(5, 0), (6, 0), (6, 0)]);
        assert_eq!(scan(&data, 5, 0, None).records.len(), 2);
        assert_eq!(scan(&data, 5, 0, Some(6)).records.len(), 1);
        assert_eq!(scan(&data, 5, 5, None).records.len(), 0);
    }
}
