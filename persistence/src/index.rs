//! The in-memory index of a [`FileLog`](crate::FileLog): where each record
//! is and whether it is still needed.
//!
//! Ids in a segment are dense when it is written, so a segment keeps one
//! 8-byte [`Slot`] per id (`slots[id - base]`), also after compaction (a
//! removed record keeps its slot, flagged `REMOVED`): lookups stay O(1)
//! and there is no per-record allocation.
//!
//! Liveness rules (see the crate docs): a record is *live* until it is
//! tombstoned or marked dead. A record must stay on disk (is *needed*)
//! while it is live, or while it is a tombstone whose target is still on
//! disk in another segment (a tombstone in the same segment as its target
//! disappears in the same atomic delete or rename).

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

/// Position and state of one record, packed: offset in the segment file,
/// frame length (29 bits) and three flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    offset: u32,
    bits: u32,
}

const DEAD: u32 = 1 << 31;
const REMOVED: u32 = 1 << 30;
const TOMBSTONE: u32 = 1 << 29;
const LEN_MASK: u32 = TOMBSTONE - 1;

impl Slot {
    pub fn new(offset: u32, frame_len: u32, tombstone: bool) -> Slot {
        let mut bits = frame_len & LEN_MASK;
        if tombstone {
            bits |= TOMBSTONE | DEAD;
        }
        Slot { offset, bits }
    }

    /// A slot for an id that is not in the file (compacted away, or lost to
    /// damage).
    pub fn removed() -> Slot {
        Slot {
            offset: 0,
            bits: DEAD | REMOVED,
        }
    }

    pub fn offset(self) -> u32 {
        self.offset
    }
    pub fn len(self) -> u32 {
        self.bits & LEN_MASK
    }
    pub fn is_dead(self) -> bool {
        self.bits & DEAD != 0
    }
    pub fn is_removed(self) -> bool {
        self.bits & REMOVED != 0
    }
    pub fn is_tombstone(self) -> bool {
        self.bits & TOMBSTONE != 0
    }
    /// Live and readable.
    pub fn is_live(self) -> bool {
        !self.is_dead()
    }
    /// The same record at another offset (after compaction).
    pub fn with_offset(self, offset: u32) -> Slot {
        Slot { offset, ..self }
    }
}

/// One segment file as the index sees it.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    pub base: u64,
    /// Shared by readers (pread) and, for the active segment, the writer
    /// (pwrite). `None` until the writer has created the file.
    pub file: Option<Arc<File>>,
    pub slots: Vec<Slot>,
    /// `(id, target)` of the tombstones still in the file, in id order.
    pub tombstones: Vec<(u64, u64)>,
    /// Size of the file once the writer has caught up.
    pub file_len: u64,
    /// Live records and their frame bytes.
    pub live: u64,
    pub live_bytes: u64,
    /// Frame bytes of the tombstones still in the file.
    pub tombstone_bytes: u64,
    /// No record will be appended to it any more.
    pub sealed: bool,
}

impl SegmentIndex {
    pub fn new(base: u64, file_len: u64) -> Self {
        SegmentIndex {
            base,
            file: None,
            slots: Vec::new(),
            tombstones: Vec::new(),
            file_len,
            live: 0,
            live_bytes: 0,
            tombstone_bytes: 0,
            sealed: false,
        }
    }

    /// Id of the last slot, `base - 1` when there is none.
    pub fn last_id(&self) -> u64 {
        self.base + self.slots.len() as u64 - 1
    }

    pub fn slot(&self, id: u64) -> Option<Slot> {
        let i = id.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?).copied()
    }

    /// Adds the record `id`, filling any gap (ids lost to compaction or
    /// damage) with removed slots.
    pub fn push(&mut self, id: u64, slot: Slot, refers_to: u64) {
        while self.base + (self.slots.len() as u64) < id {
            self.slots.push(Slot::removed());
        }
        self.slots.push(slot);
        if slot.is_tombstone() {
            self.tombstones.push((id, refers_to));
            self.tombstone_bytes += u64::from(slot.len());
        } else {
            self.live += 1;
            self.live_bytes += u64::from(slot.len());
        }
    }

    /// Marks the record `id` as gone from the file.
    pub fn mark_removed(&mut self, id: u64) {
        let seg = self;
        let Some(i) = id
            .checked_sub(seg.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let Some(slot) = seg.slots.get_mut(i) else {
            return;
        };
        if slot.is_removed() {
            return;
        }
        let len = u64::from(slot.len());
        if !slot.is_dead() {
            // Only a record that failed its checksum during compaction is
            // removed while live: it is lost, account for it.
            seg.live -= 1;
            seg.live_bytes -= len;
        } else if slot.is_tombstone() {
            seg.tombstone_bytes -= len;
        }
        *slot = Slot::removed();
    }

    /// Whether the segment holds so little of what it needs that it is
    /// worth a look by reclamation: cheap, from counters only.
    pub fn reclaim_candidate(&self, compact_below: f64) -> bool {
        if self.live == 0 {
            return true;
        }
        let body = self.file_len.saturating_sub(crate::segment::HEADER_LEN) as f64;
        ((self.live_bytes + self.tombstone_bytes) as f64) < compact_below * body
    }
}

/// Every segment, by base id.
#[derive(Debug)]
pub(crate) struct Index {
    pub segments: BTreeMap<u64, SegmentIndex>,
    /// Id the next append gets.
    pub next_id: u64,
    /// Base of the segment appends go to; `None` until the first append
    /// after open (a store always starts a fresh segment, so it never
    /// appends behind a truncated tail).
    pub active: Option<u64>,
}

/// What [`Index::kill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Killed {
    /// The record was live and is now dead; its segment is `base`.
    Now { base: u64 },
    /// Already dead, removed, or a tombstone.
    Already,
    /// No such id was ever assigned.
    Unknown,
}

impl Index {
    pub fn new(next_id: u64) -> Self {
        Index {
            segments: BTreeMap::new(),
            next_id,
            active: None,
        }
    }

    pub fn segment_of(&self, id: u64) -> Option<&SegmentIndex> {
        self.segments.range(..=id).next_back().map(|(_, s)| s)
    }

    pub fn slot(&self, id: u64) -> Option<(&SegmentIndex, Slot)> {
        let seg = self.segment_of(id)?;
        Some((seg, seg.slot(id)?))
    }

    /// Whether record `id` is still in a segment file.
    pub fn on_disk(&self, id: u64) -> bool {
        self.slot(id).is_some_and(|(_, s)| !s.is_removed())
    }

    pub fn kill(&mut self, id: u64) -> Killed {
        if id == 0 || id >= self.next_id {
            return Killed::Unknown;
        }
        let Some((_, seg)) = self.segments.range_mut(..=id).next_back() else {
            return Killed::Already;
        };
        let Some(i) = id
            .checked_sub(seg.base)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < seg.slots.len())
        else {
            return Killed::Already;
        };
        let slot = &mut seg.slots[i];
        if slot.is_dead() {
            return Killed::Already;
        }
        slot.bits |= DEAD;
        let len = u64::from(slot.len());
        seg.live -= 1;
        seg.live_bytes -= len;
        Killed::Now { base: seg.base }
    }

    /// Live records and their bytes over all segments.
    pub fn live_totals(&self) -> (u64, u64) {
        self.segments
            .values()
            .fold((0, 0), |(n, b), s| (n + s.live, b + s.live_bytes))
    }

    /// Whether a slot of `seg` must stay on disk (see module docs).
    pub fn needed(&self, seg: &SegmentIndex, slot: Slot, target: Option<u64>) -> bool {
        if slot.is_removed() {
            return false;
        }
        if !slot.is_dead() {
            return true;
        }
        match target {
            Some(t) if slot.is_tombstone() => t < seg.base && self.on_disk(t),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_with(records: &[(u64, u64)]) -> Index {
        // (base of a new segment or 0, refers_to) per record, ids from 1.
        let mut idx = Index::new(1);
        let mut base = 0;
        for (i, &(new_seg, refers)) in records.iter().enumerate() {
            let id = i as u64 + 1;
            if new_seg != 0 {
                if let Some(s) = idx.segments.get_mut(&base) {
                    s.sealed = true;
                }
                base = id;
                idx.segments.insert(base, SegmentIndex::new(base, 24));
            }
            let seg = idx.segments.get_mut(&base).unwrap();
            let off = seg.file_len as u32;
            seg.file_len += 30;
            seg.push(id, Slot::new(off, 30, refers != 0), refers);
            idx.next_id = id + 1;
            if refers != 0 {
                idx.kill(refers);
            }
        }
        idx
    }

    #[test]
    fn slot_packing() {
        let s = Slot::new(100, 12345, false);
        assert_eq!((s.offset(), s.len(), s.is_live()), (100, 12345, true));
        let t = Slot::new(0, 26, true);
        assert!(t.is_dead() && t.is_tombstone() && !t.is_removed());
        assert!(Slot::removed().is_removed());
    }

    #[test]
    fn tombstone_kills_and_is_needed_while_target_on_disk() {
        // Segment 1: records 1, 2. Segment 3: tombstone of 1.
        let mut idx = index_with(&[(1, 0), (0, 0), (1, 1)]);
        let (_, s1) = idx.slot(1).unwrap();
        assert!(s1.is_dead());
        let seg3 = idx.segments.get(&3).unwrap();
        let (_, t) = idx.slot(3).unwrap();
        assert!(idx.needed(seg3, t, Some(1)));
        let seg1 = idx.segments.get_mut(&1).unwrap();
        seg1.mark_removed(1);
        let seg3 = idx.segments.get(&3).unwrap();
        assert!(!idx.needed(seg3, t, Some(1)));
    }

    #[test]
    fn kill_counts_once() {
        let mut idx = index_with(&[(1, 0), (0, 0)]);
        assert_eq!(idx.kill(2), Killed::Now { base: 1 });
        assert_eq!(idx.kill(2), Killed::Already);
        assert_eq!(idx.kill(9), Killed::Unknown);
        assert_eq!(idx.live_totals(), (1, 30));
    }
}
