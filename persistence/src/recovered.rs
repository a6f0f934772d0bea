//! [`Recovered`]: the live records found on open, handed out in id order.

use std::collections::VecDeque;
use std::fmt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::record::{self, Record, RecordId, FRAME_HEADER};
use crate::segment;
use crate::shared::{lock, Shared};

/// The records that were live when the store opened, in id order: every
/// record that is neither a tombstone nor tombstoned. Records killed with
/// [`mark_dead`](crate::Store::mark_dead) before the restart are among them
/// unless their space had been reclaimed; the caller kills them again.
///
/// For a [`FileLog`](crate::FileLog) records are read lazily, one segment at
/// a time, so a large backlog is never in memory all at once: the payloads
/// of one segment share one buffer, which lives as long as any of them.
/// A record killed before the iterator reaches it is skipped.
pub struct Recovered {
    inner: Inner,
    remaining: usize,
}

enum Inner {
    Memory(std::vec::IntoIter<Record>),
    File {
        shared: Arc<Shared>,
        bases: VecDeque<u64>,
        ready: VecDeque<Record>,
    },
}

impl Recovered {
    pub(crate) fn from_records(records: Vec<Record>) -> Self {
        Recovered {
            remaining: records.len(),
            inner: Inner::Memory(records.into_iter()),
        }
    }

    pub(crate) fn from_file(shared: Arc<Shared>) -> Self {
        let (bases, remaining) = {
            let idx = lock(&shared.index);
            let bases = idx
                .segments
                .values()
                .filter(|s| s.live > 0)
                .map(|s| s.base)
                .collect();
            (bases, idx.live_totals().0 as usize)
        };
        Recovered {
            remaining,
            inner: Inner::File {
                shared,
                bases,
                ready: VecDeque::new(),
            },
        }
    }

    /// Records still to come (fewer if some die before they are reached).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Reads everything into memory (handy in tests and for small logs).
    pub fn into_vec(self) -> Result<Vec<Record>> {
        self.collect()
    }
}

impl fmt::Debug for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovered")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Iterator for Recovered {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            Inner::Memory(it) => it.next().map(Ok),
            Inner::File {
                shared,
                bases,
                ready,
            } => loop {
                if let Some(r) = ready.pop_front() {
                    break Some(Ok(r));
                }
                let base = bases.pop_front()?;
                match read_segment(shared, base) {
                    Ok(records) => ready.extend(records),
                    Err(e) => break Some(Err(e)),
                }
            },
        };
        if item.is_some() {
            self.remaining = self.remaining.saturating_sub(1);
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// The live records of one segment, read with one pread of the span
/// holding them.
fn read_segment(shared: &Shared, base: u64) -> Result<Vec<Record>> {
    let (file, live) = {
        let idx = lock(&shared.index);
        let Some(seg) = idx.segments.get(&base) else {
            return Ok(Vec::new());
        };
        // Sized once (see `recovery::scan`).
        let mut live = Vec::with_capacity(usize::try_from(seg.live).unwrap_or(0));
        live.extend(
            seg.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_live())
                .map(|(i, s)| (seg.base + i as u64, s.offset(), s.len())),
        );
        match (&seg.file, live.is_empty()) {
            (Some(f), false) => (f.clone(), live),
            _ => return Ok(Vec::new()),
        }
    };
    let path = || segment::path(&shared.dir, base);
    let start = u64::from(live[0].1);
    let end = live
        .iter()
        .map(|&(_, off, len)| u64::from(off) + u64::from(len))
        .max()
        .unwrap_or(start);
    let mut buf = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| StoreError::io(path(), e))?;
    let buf = Bytes::from(buf);
    let mut out = Vec::with_capacity(live.len());
    for (id, off, len) in live {
        let at = (u64::from(off) - start) as usize;
        let bytes = buf.slice(at..at + len as usize);
        let frame = record::decode(&bytes).map_err(|e| StoreError::Corrupt {
            id: RecordId(id),
            path: path(),
            reason: e.reason(),
        })?;
        out.push(Record {
            id: RecordId(id),
            kind: frame.kind,
            payload: bytes.slice(FRAME_HEADER..frame.len),
        });
    }
    Ok(out)
}
