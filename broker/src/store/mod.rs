//! Durability: what the broker writes to the log, and when replies that
//! depend on it may go out.
//!
//! Durable exchanges, queues and bindings, and persistent messages in
//! durable queues, are records in a [`warren_persistence::Store`]. A reply
//! that promises durability (a publisher confirm, declare-ok, commit-ok…)
//! waits in its channel until the log's durable watermark passes the
//! record it depends on; the log's writer thread releases it.

pub mod records;
pub mod recovery;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use warren_persistence::{
    FileLog, FsyncPolicy, MemoryStore, NewRecord, RecordId, Store, StoreConfig, StoreError,
    StoreStats,
};

use crate::core::link::ChannelLink;
use crate::core::message::Message;
use records::{Malformed, MessageContent};

/// Why a message could not be read back from the log.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the queue has no record of where it is")]
    Missing,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// Where and how durable state is kept.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `None` keeps everything in memory (nothing survives a restart).
    pub data_dir: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    /// Size at which the log starts a new segment file.
    pub segment_size: u64,
    /// Ready messages a queue keeps in memory with their bodies;
    /// persistent messages beyond them stay in the log, the queue holding
    /// only their positions, and are read back when delivered. While
    /// memory is short (see `LimitsConfig::memory_paging_ratio`) a queue
    /// keeps an eighth of this, and writes transient messages beyond it out
    /// to the log too. (Only with a data directory: in memory there is
    /// nothing to leave them in.) The default is above the backlog at
    /// which flow control holds publishers back, so a queue whose
    /// consumers keep up never reads its messages back.
    pub queue_in_memory: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: None,
            fsync: FsyncPolicy::Always,
            segment_size: 64 * 1024 * 1024,
            queue_in_memory: 20_480,
        }
    }
}

/// A message body written once for several queues; tombstoned when the
/// last of them is done with it.
#[derive(Debug)]
pub struct SharedBody {
    pub record: RecordId,
    refs: AtomicUsize,
}

impl SharedBody {
    pub fn new(record: RecordId, refs: usize) -> Arc<SharedBody> {
        Arc::new(SharedBody {
            record,
            refs: AtomicUsize::new(refs),
        })
    }
}

/// Where a queued message lives in the log.
#[derive(Debug, Clone)]
pub struct Persisted {
    /// The MESSAGE or ENTRY record that keeps the message in its queue.
    pub record: RecordId,
    pub body: Option<Arc<SharedBody>>,
    /// The DELIVERED marker, once the message was first delivered.
    pub marker: Option<RecordId>,
    /// Returns to the queue the marker records (quorum delivery counts).
    pub returns: u32,
}

/// Channels waiting for the durable watermark.
#[derive(Default)]
struct Waiters {
    durable: AtomicU64,
    channels: Mutex<Vec<Weak<ChannelLink>>>,
}

impl Waiters {
    fn on_durable(&self, lsn: u64) {
        self.durable.fetch_max(lsn, Ordering::SeqCst);
        let lsn = self.durable.load(Ordering::SeqCst);
        self.channels.lock().retain(|w| match w.upgrade() {
            Some(ch) => {
                let pending = ch.release_durable(lsn);
                if !pending {
                    ch.set_watched(false);
                }
                pending
            }
            None => false,
        });
    }
}

pub struct Persistence {
    log: Arc<dyn Store>,
    /// [`StorageConfig::queue_in_memory`], `None` without a data directory.
    queue_in_memory: Option<usize>,
    /// Memory is short (set by the memory alarm): queues move transient
    /// messages behind their first `queue_in_memory` to the log too.
    paging: AtomicBool,
    waiters: Arc<Waiters>,
    /// Highest id appended so far.
    appended: AtomicU64,
    /// Delivery markers of discarded messages, each with the tombstone of
    /// its message: a marker may only go (unlogged) once that tombstone is
    /// durable, or reclamation could delete the marker while a crash can
    /// still bring the message back, without its `redelivered` flag.
    forgets: Mutex<VecDeque<(u64, RecordId)>>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("appended", &self.appended)
            .finish()
    }
}

impl Persistence {
    /// Opens the log (file or memory); [`recovery::restore`] then puts
    /// back what it holds.
    pub fn open(config: &StorageConfig) -> Result<Arc<Persistence>, StoreError> {
        let waiters = Arc::new(Waiters::default());
        let w = waiters.clone();
        let store_config = StoreConfig::default()
            .with_fsync(config.fsync)
            .with_segment_size(config.segment_size)
            .on_durable(move |lsn| w.on_durable(lsn));
        // (Recovery reads the records when it restores them.)
        let log: Arc<dyn Store> = match &config.data_dir {
            Some(dir) => Arc::new(FileLog::open(dir, store_config)?.0),
            None => Arc::new(MemoryStore::new(store_config)),
        };
        let appended = log.stats().durable_lsn;
        waiters
            .durable
            .fetch_max(log.durable_lsn(), Ordering::SeqCst);
        Ok(Arc::new(Persistence {
            log,
            queue_in_memory: config.data_dir.is_some().then_some(config.queue_in_memory),
            paging: AtomicBool::new(false),
            waiters,
            appended: AtomicU64::new(appended),
            forgets: Mutex::new(VecDeque::new()),
        }))
    }

    /// The records live now, in log order, read one segment at a time.
    pub fn live_records(&self) -> warren_persistence::Recovered {
        self.log.live_records()
    }

    fn note(&self, id: RecordId) -> RecordId {
        self.appended.fetch_max(id.0, Ordering::SeqCst);
        id
    }

    pub fn append(&self, kind: u8, payload: Bytes) -> Result<RecordId, StoreError> {
        self.log.append(kind, payload, None).map(|id| self.note(id))
    }

    /// Appends several records together; returns the id of the first.
    pub fn append_batch(&self, records: &[NewRecord]) -> Result<RecordId, StoreError> {
        let range = self.log.append_batch(records)?;
        if let Some(last) = range.last() {
            self.note(last);
        }
        Ok(range.first)
    }

    /// Undoes a record durably.
    pub fn tombstone(&self, target: RecordId) {
        self.tombstone_id(target);
    }

    /// Undoes a record durably; returns the tombstone's id.
    fn tombstone_id(&self, target: RecordId) -> Option<RecordId> {
        match self
            .log
            .append(records::TOMBSTONE, Bytes::new(), Some(target))
        {
            Ok(id) => Some(self.note(id)),
            Err(e) => {
                tracing::error!(error = %e, "cannot write to the log");
                None
            }
        }
    }

    /// Frees the markers whose message's tombstone is durable by now.
    fn release_forgets(&self, durable: u64) {
        let due: Vec<RecordId> = {
            let mut q = self.forgets.lock();
            let mut due = Vec::new();
            while let Some(&(lsn, marker)) = q.front() {
                if lsn > durable {
                    break;
                }
                q.pop_front();
                due.push(marker);
            }
            due
        };
        for marker in due {
            self.forget(marker);
        }
    }

    /// Frees a record's space without logging (for records whose loss after a
    /// crash is harmless, like delivery markers).
    pub fn forget(&self, id: RecordId) {
        if let Err(e) = self.log.mark_dead(id) {
            tracing::error!(error = %e, "cannot update the log");
        }
    }

    /// The highest record id appended so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }

    pub fn durable(&self) -> u64 {
        self.waiters.durable.load(Ordering::SeqCst)
    }

    /// Has `channel` released when the watermark moves.
    pub fn watch(&self, channel: &Arc<ChannelLink>) {
        {
            let mut list = self.waiters.channels.lock();
            if !channel.set_watched(true) {
                list.push(Arc::downgrade(channel));
            }
        }
        // The watermark may have moved before we were listed.
        channel.release_durable(self.durable());
    }

    /// How many ready messages a durable queue keeps in memory (`None`:
    /// all of them).
    pub fn queue_in_memory(&self) -> Option<usize> {
        self.queue_in_memory
    }

    /// Whether memory is short, so that queues keep fewer messages in
    /// memory and move transient ones to the log too (only with a data
    /// directory).
    pub fn memory_is_short(&self) -> bool {
        self.queue_in_memory.is_some() && self.paging.load(Ordering::Relaxed)
    }

    pub fn set_paging(&self, on: bool) {
        if self.paging.swap(on, Ordering::Relaxed) != on && self.queue_in_memory.is_some() {
            tracing::info!(on, "paging of transient messages to the log");
        }
    }

    /// Writes a transient message to the log, to be read back with
    /// [`Persistence::read_page`]. Not waited for, and not durable: a
    /// restart drops it.
    pub fn page_out(&self, msg: &Message) -> Result<RecordId, StoreError> {
        let content = MessageContent {
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            raw_properties: msg.properties.raw_or_encoded(),
            body: msg.body.clone(),
        };
        self.append(records::PAGE, content.encode_body())
    }

    /// Reads a paged-out transient message back (the caller then frees
    /// its record with [`Persistence::forget`]).
    pub fn read_page(&self, record: RecordId) -> Result<Arc<Message>, ReadError> {
        let content = MessageContent::decode_body(&self.log.read(record)?)?;
        Ok(Arc::new(content.into_message()?))
    }

    /// Reads a queued message back from its record (a queue left it in
    /// the log): the shared body of a fan-out, or the queue's own record.
    pub fn read_message(&self, p: &Persisted) -> Result<Arc<Message>, ReadError> {
        let content = match &p.body {
            Some(body) => MessageContent::decode_body(&self.log.read(body.record)?)?,
            None => MessageContent::decode_message(&self.log.read(p.record)?)?.1,
        };
        Ok(Arc::new(content.into_message()?))
    }

    /// A message left its queue for good (acked, dropped, purged).
    pub fn discard(&self, p: &Persisted) {
        let tombstone = self.tombstone_id(p.record);
        if let (Some(marker), Some(t)) = (p.marker, tombstone) {
            self.forgets.lock().push_back((t.0, marker));
        }
        self.release_forgets(self.durable());
        if let Some(body) = &p.body {
            if body.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.tombstone(body.record);
            }
        }
    }

    /// A message was handed to a consumer that must ack it.
    pub fn delivered(&self, p: &mut Persisted) {
        if p.marker.is_none() {
            match self.append(
                records::DELIVERED,
                records::encode_delivered(p.record, p.returns),
            ) {
                Ok(id) => p.marker = Some(id),
                Err(e) => tracing::error!(error = %e, "cannot write to the log"),
            }
        }
    }

    /// A delivered message came back to its queue for the `returns`-th
    /// time: a new marker records the count. The old marker goes only once
    /// the new one is durable, so a crash never finds neither.
    pub fn returned(&self, p: &mut Persisted, returns: u32) {
        p.returns = returns;
        match self.append(
            records::DELIVERED,
            records::encode_delivered(p.record, returns),
        ) {
            Ok(id) => {
                if let Some(old) = p.marker.replace(id) {
                    self.forgets.lock().push_back((id.0, old));
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot write to the log"),
        }
    }

    /// The log's counters (appends, writes, fsyncs, disk and live bytes).
    pub fn stats(&self) -> StoreStats {
        self.log.stats()
    }

    /// Makes everything appended durable and releases the data directory
    /// (at shutdown), then logs the log's counters.
    pub fn close(&self) {
        if let Err(e) = self.log.flush() {
            tracing::error!(error = %e, "cannot flush the log");
        } else {
            self.release_forgets(u64::MAX);
        }
        self.log.close();
        let s = self.log.stats();
        tracing::info!(
            appended = s.appended,
            writes = s.writes,
            fsyncs = s.fsyncs,
            dir_syncs = s.dir_syncs,
            bytes_written = s.bytes_written,
            segments = s.segments,
            disk_bytes = s.disk_bytes,
            live_records = s.live_records,
            live_bytes = s.live_bytes,
            segments_deleted = s.segments_deleted,
            segments_compacted = s.segments_compacted,
            "storage closed"
        );
    }
}
