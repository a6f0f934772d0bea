//! State shared by a [`FileLog`](crate::FileLog) handle, its writer thread
//! and its reclaimer thread.
//!
//! Lock rules: `index` and `progress` are never held together, and no lock
//! is held while calling the durability callback or doing file I/O, except
//! that appends send to the writer channel (which never blocks) while
//! holding `index`, so that channel order is id order. `reclaim` is held
//! for a whole reclamation run and taken before `index`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::index::Index;

/// Locks a mutex, ignoring poisoning: every critical section leaves its
/// data consistent before anything that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Watermarks published by the writer.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Highest id handed to the kernel.
    pub written: u64,
    /// Highest id durable under the policy.
    pub durable: u64,
    /// Highest id fsynced.
    pub synced: u64,
    /// Set when the writer stopped after an I/O error.
    pub failed: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appended: AtomicU64,
    pub bytes_written: AtomicU64,
    pub writes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub segments_compacted: AtomicU64,
    pub reads: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: StoreConfig,
    pub index: Mutex<Index>,
    pub progress: Mutex<Progress>,
    pub progress_changed: Condvar,
    /// Mirrors of `progress` readable without a lock (updated before it).
    pub written_lsn: AtomicU64,
    pub durable_lsn: AtomicU64,
    pub failed: AtomicBool,
    pub counters: Counters,
    pub reclaim: Mutex<()>,
    /// Zero-filled bytes past the data of the active segment (for stats).
    pub prealloc: AtomicU64,
}

impl Shared {
    pub fn new(dir: PathBuf, config: StoreConfig, index: Index) -> Self {
        let recovered = index.next_id - 1;
        Shared {
            dir,
            config,
            index: Mutex::new(index),
            progress: Mutex::new(Progress {
                written: recovered,
                durable: recovered,
                synced: recovered,
                failed: None,
            }),
            progress_changed: Condvar::new(),
            written_lsn: AtomicU64::new(recovered),
            durable_lsn: AtomicU64::new(recovered),
            failed: AtomicBool::new(false),
            counters: Counters::default(),
            reclaim: Mutex::new(()),
            prealloc: AtomicU64::new(0),
        }
    }

    pub fn set_prealloc(&self, bytes: u64) {
        self.prealloc.store(bytes, Ordering::Relaxed);
    }

    /// The error appends return once the writer has failed.
    pub fn failure(&self) -> Option<StoreError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let reason = lock(&self.progress).failed.clone();
        Some(StoreError::Failed(
            reason.unwrap_or_else(|| Arc::from("writer stopped")),
        ))
    }

    /// Publishes new watermarks: first the atomics and the callback, then
    /// the waiters, so that when `flush`/`wait_durable` return the callback
    /// has already seen the new watermark (and a callback that re-reads
    /// `durable_lsn` never sees an older value than it was given).
    pub fn publish(&self, written: u64, durable: u64, synced: u64) {
        self.written_lsn.fetch_max(written, Ordering::AcqRel);
        let before = self.durable_lsn.fetch_max(durable, Ordering::AcqRel);
        if durable > before {
            if let Some(cb) = &self.config.on_durable {
                cb(durable);
            }
        }
        {
            let mut p = lock(&self.progress);
            p.written = p.written.max(written);
            p.durable = p.durable.max(durable);
            p.synced = p.synced.max(synced);
        }
        self.progress_changed.notify_all();
    }

    /// Records a fatal writer error and wakes everyone waiting.
    pub fn fail(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "log writer failed; the store accepts no more writes");
        let durable = {
            let mut p = lock(&self.progress);
            p.failed.get_or_insert_with(|| Arc::from(reason));
            p.durable
        };
        self.failed.store(true, Ordering::Release);
        // Let a callback-driven caller notice (it re-reads the state); as in
        // `publish`, before the waiters wake, so a woken waiter knows the
        // callback has run.
        if let Some(cb) = &self.config.on_durable {
            cb(durable);
        }
        self.progress_changed.notify_all();
    }

    /// Blocks until `pick(progress) >= id`, or the writer failed.
    pub fn wait_for(&self, id: u64, pick: impl Fn(&Progress) -> u64) -> Result<()> {
        let mut p = lock(&self.progress);
        loop {
            if pick(&p) >= id {
                return Ok(());
            }
            if let Some(reason) = &p.failed {
                return Err(StoreError::Failed(reason.clone()));
            }
            p = self
                .progress_changed
                .wait(p)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
