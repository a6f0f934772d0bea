//! The [`Store`] trait the broker programs against, and its statistics.

use bytes::Bytes;

use crate::error::Result;
use crate::record::{IdRange, NewRecord, RecordId};
use crate::recovered::Recovered;

/// A durable log of opaque records.
///
/// Implemented by [`FileLog`](crate::FileLog) (segment files) and
/// [`MemoryStore`](crate::MemoryStore) (same semantics, nothing on disk).
/// All methods take `&self`: share a store as `Arc<dyn Store>`.
///
/// Records are identified by [`RecordId`]s assigned in append order. A
/// record appended with `refers_to: Some(target)` is a *tombstone* of
/// `target`: appending it kills `target`, it is itself never returned by
/// recovery, and it stays on disk exactly as long as `target` does, so a
/// crash cannot bring `target` back.
pub trait Store: Send + Sync {
    /// Appends one record and returns its id at once; the write happens in
    /// the background. Use the durable watermark to learn when it is safe.
    fn append(&self, kind: u8, payload: Bytes, refers_to: Option<RecordId>) -> Result<RecordId>;

    /// Appends records with contiguous ids, written together in one segment.
    /// After a crash either all of them are recovered or none.
    fn append_batch(&self, records: &[NewRecord]) -> Result<IdRange>;

    /// The payload of a live record (blocks until it has been written if it
    /// was appended a moment ago).
    fn read(&self, id: RecordId) -> Result<Bytes>;

    /// The records live now, in id order, read as lazily as on open: a
    /// caller that needs two passes over what it recovered (the first for
    /// facts recorded after what they describe) makes the second with this
    /// instead of holding every record in memory.
    fn live_records(&self) -> Recovered;

    /// Declares a record dead so its space can be reclaimed. Not logged:
    /// unless its space is reclaimed before a crash, the record comes back
    /// on recovery, where the caller kills it again. To make a death
    /// durable, append a tombstone instead. Killing a dead record is a no-op.
    fn mark_dead(&self, id: RecordId) -> Result<()>;

    /// Every record with an id up to this is durable under the fsync policy.
    fn durable_lsn(&self) -> u64;

    /// Blocks until record `id` is durable.
    fn wait_durable(&self, id: RecordId) -> Result<()>;

    /// Blocks until everything appended before the call is durable under the
    /// fsync policy (written, for `interval` and `never`).
    fn flush(&self) -> Result<()>;

    /// Blocks until everything appended before the call is fsynced,
    /// whatever the policy.
    fn sync(&self) -> Result<()>;

    /// Deletes and compacts sealed segments now, instead of waiting for the
    /// background reclaimer.
    fn reclaim(&self) -> Result<()>;

    /// Counters, mostly for tests and benchmarks.
    fn stats(&self) -> StoreStats;

    /// Makes everything appended durable, stops background work and
    /// releases the data directory; later appends fail.
    fn close(&self);
}

/// A snapshot of a store's counters. Counters of activity count since open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records appended.
    pub appended: u64,
    /// Bytes handed to write(2) for segment files (headers included).
    pub bytes_written: u64,
    /// Write rounds of the writer thread (each a group of appends).
    pub writes: u64,
    /// fsync calls on segment files.
    pub fsyncs: u64,
    /// fsync calls on the data directory.
    pub dir_syncs: u64,
    /// Segment files now.
    pub segments: u64,
    /// Their total size in bytes.
    pub disk_bytes: u64,
    /// Live records and their size on disk.
    pub live_records: u64,
    pub live_bytes: u64,
    /// Segment files deleted and rewritten by reclamation.
    pub segments_deleted: u64,
    pub segments_compacted: u64,
    /// The durable watermark.
    pub durable_lsn: u64,
    /// Records read back with [`Store::read`].
    pub reads: u64,
}
