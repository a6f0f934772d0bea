//! `warren-persistence`: the storage of Warren, a durable log of opaque
//! records. No tokio and no AMQP in here: the broker decides what records
//! mean (definitions, message bodies, acks) through a small `kind` byte and
//! the payload.
//!
//! # Model
//!
//! - [`Store::append`] returns a [`RecordId`] at once: a log sequence
//!   number, dense and increasing in append order. The write happens on one
//!   writer thread that takes everything queued, writes it with one
//!   `pwrite` and fsyncs once (group commit).
//! - The **durable watermark** ([`Store::durable_lsn`]) says which records
//!   are safe: every id up to it is durable under the [`FsyncPolicy`]. The
//!   [`StoreConfig::on_durable`] callback is told of every advance, which
//!   costs no allocation per record; [`Store::wait_durable`] blocks.
//! - A record appended with `refers_to: Some(target)` is a **tombstone** of
//!   `target`: it kills `target` on append, it is itself never returned by
//!   recovery, and it stays on disk exactly as long as `target` does (so a
//!   crash cannot resurrect an acked message). [`Store::mark_dead`] kills a
//!   record without logging anything: cheap, but the record returns after a
//!   crash unless its space was reclaimed first.
//! - Opening returns the store and a [`Recovered`] iterator over the live
//!   records (neither tombstones nor tombstoned), in id order.
//!
//! Fan-out without storing a body twice: write the body once, plus one small
//! record per queue naming the body's id in its payload; an ack tombstones
//! the queue's record, and when a body has no queue record left the broker
//! tombstones the body too (on recovery, a body without queue records is
//! orphaned and killed the same way).
//!
//! # On disk
//!
//! A data directory holds `LOCK` (an flock held while open) and segment
//! files named by the id of their first record, 20 digits:
//! `00000000000000000001.wlog`. Each segment starts with a 24-byte header
//! (magic `WARRENLG`, format version 1, base id) followed by frames:
//!
//! ```text
//! crc32 u32 | len u32 | flags u8 | kind u8 | id u64 | refers_to u64 | payload
//! ```
//!
//! little-endian, the CRC32 covering everything after itself (length
//! included), `refers_to` 0 meaning none, flag bit 0 "more records of this
//! batch follow". A new segment starts when the next append would grow the
//! current one past `segment_size`; a batch never spans two segments.
//! Unless the policy is `never`, the writer keeps the active segment
//! zero-filled up to 1 MiB (at most the segment size) ahead of its data, so
//! that the fsync of a round does not have to commit a new file size: that
//! makes group commits several times cheaper on journaling file systems.
//! A segment is cut back to its data when it is sealed and at close.
//! Created, renamed and deleted files are followed by an fsync of the
//! directory; compaction writes `<segment>.tmp`, fsyncs it, renames it over
//! the segment and fsyncs the directory ([`replace_file`] does the same for
//! callers' state files).
//!
//! # Recovery rules
//!
//! The store always opens, whatever damage it finds in the data; only I/O
//! errors, a held lock or a segment of an unknown format version stop it.
//!
//! 1. Leftover `.tmp` files are deleted; the segments they were to replace
//!    are complete.
//! 2. Trailing segments with a torn header or no valid record are deleted.
//! 3. Each record's length, CRC and id order is checked. In the **last**
//!    segment the first bad record starts a torn tail: the file is
//!    truncated there, with a `warn!`. In an **earlier, sealed** segment the
//!    rest of that segment is skipped with a `warn!` and replay goes on
//!    with the next segment: a torn write can only hit the tail, so damage
//!    in the middle is media corruption, and the later segments still hold
//!    intact, confirmed records. The broker therefore recovers everything
//!    before the damage and everything after the damaged segment; the cost
//!    is that acks lost in the damaged region can make messages reappear
//!    (at-least-once).
//! 4. A batch whose final record is missing is dropped as a whole.
//!    An all-zero tail is not damage: it is the room the writer keeps
//!    zero-filled ahead of its data (see below), cut without a warning.
//! 5. Tombstones are applied; the rest is returned by [`Recovered`].
//! 6. The first append after open starts a fresh segment: the store never
//!    writes behind a truncated tail.
//!
//! # Reclaiming space
//!
//! A sealed segment none of whose records is needed (live, or a tombstone
//! whose target is still on disk elsewhere) is deleted; one whose needed
//! bytes fall below [`StoreConfig::compact_below`] of its size is rewritten
//! with only those records. A background thread does this as records die;
//! [`Store::reclaim`] does it now. Disk use stays near twice the live data
//! plus the active segment.

// Tests may unwrap; the library itself never does on anything from disk.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod error;
mod file_log;
mod files;
mod index;
mod memory;
mod reclaim;
mod record;
mod recovered;
mod recovery;
mod segment;
mod shared;
mod store;
mod writer;

pub use config::{DurableCallback, FsyncPolicy, ParseFsyncPolicyError, StoreConfig};
pub use error::{Result, StoreError};
pub use file_log::FileLog;
pub use files::{replace_file, sync_dir, LOCK_FILE};
pub use memory::MemoryStore;
pub use record::{IdRange, NewRecord, Record, RecordId, MAX_PAYLOAD};
pub use recovered::Recovered;
pub use store::{Store, StoreStats};
