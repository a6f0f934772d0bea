//! [`FileLog`]: the [`Store`] on segment files.

use std::fmt;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::files::{sync_dir, DirLock};
use crate::index::{Index, Killed, SegmentIndex, Slot};
use crate::reclaim;
use crate::record::{
    self, frame_len, IdRange, NewRecord, RecordId, FLAG_BATCH_CONTINUES, FRAME_HEADER, MAX_PAYLOAD,
};
use crate::recovered::Recovered;
use crate::recovery;
use crate::segment::{self, HEADER_LEN};
use crate::shared::{lock, lock as lock_mutex, Counters, Shared};
use crate::store::{Store, StoreStats};
use crate::writer::{self, Command, Pending};
use std::sync::Mutex;

/// A durable log in a directory of segment files (see the crate docs for
/// the format and the recovery rules).
///
/// Dropping it stops the writer after it has written and fsynced
/// everything appended, then releases the directory lock.
pub struct FileLog {
    shared: Arc<Shared>,
    /// `None` once closed; dropping the sender lets the writer drain and exit.
    tx: Mutex<Option<Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reclaimer: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    dir_lock: Mutex<Option<DirLock>>,
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir` and replays it. Damaged
    /// data is truncated or skipped, never fatal; open fails only on I/O
    /// errors, a held lock, or an unknown format version.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<(FileLog, Recovered)> {
        config.validate().map_err(StoreError::Config)?;
        let dir = dir.as_ref().to_path_buf();
        create_dir(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let index = recovery::replay(&dir)?;
        let background = config.background_reclaim;
        let shared = Arc::new(Shared::new(dir.clone(), config, index));

        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = writer::spawn(shared.clone(), rx).map_err(|e| StoreError::io(&dir, e))?;
        let log = FileLog {
            shared: shared.clone(),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reclaimer: Mutex::new(None),
            dir_lock: Mutex::new(Some(lock)),
        };
        if background {
            let (kick, kicked) = crossbeam_channel::bounded(1);
            let handle =
                spawn_reclaimer(shared.clone(), kicked).map_err(|e| StoreError::io(&dir, e))?;
            *lock_mutex(&log.reclaimer) = Some((kick, handle));
            // Replay may have found segments that are already all dead.
            log.kick_reclaimer();
        }
        Ok((log, Recovered::from_file(shared)))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn sender(&self) -> Result<Sender<Command>> {
        lock_mutex(&self.tx)
            .clone()
            .ok_or_else(|| StoreError::Failed(Arc::from("store closed")))
    }

    /// Writes and fsyncs everything appended, stops the writer and the
    /// reclaimer, and releases the directory lock. Later calls fail.
    fn shut_down(&self) {
        // Closing the channel lets the writer drain, fsync and exit.
        drop(lock_mutex(&self.tx).take());
        if let Some(writer) = lock_mutex(&self.writer).take() {
            if writer.join().is_err() {
                tracing::error!("log writer thread panicked");
            }
        }
        if let Some((kick, handle)) = lock_mutex(&self.reclaimer).take() {
            drop(kick);
            if handle.join().is_err() {
                tracing::error!("log reclaimer thread panicked");
            }
        }
        drop(lock_mutex(&self.dir_lock).take());
    }

    fn kick_reclaimer(&self) {
        if let Some((kick, _)) = lock_mutex(&self.reclaimer).as_ref() {
            // A full channel means a run is already due.
            if let Err(TrySendError::Disconnected(())) = kick.try_send(()) {
                tracing::debug!("reclaimer thread is gone");
            }
        }
    }

    /// Reserves `bytes` in the active segment, starting a new one if the
    /// active one has records and would grow past the segment size.
    /// Returns whether a segment was started and whether a sealed one
    /// should be looked at by the reclaimer.
    fn make_room(&self, idx: &mut Index, bytes: u64) -> (bool, bool) {
        let limit = self.shared.config.segment_size;
        let full = match idx.active.and_then(|b| idx.segments.get(&b)) {
            None => true,
            Some(s) => s.file_len > HEADER_LEN && s.file_len + bytes > limit,
        };
        if !full {
            return (false, false);
        }
        let mut kick = false;
        if let Some(seg) = idx.active.and_then(|b| idx.segments.get_mut(&b)) {
            seg.sealed = true;
            kick = seg.reclaim_candidate(self.shared.config.compact_below);
        }
        let base = idx.next_id;
        idx.segments
            .insert(base, SegmentIndex::new(base, HEADER_LEN));
        idx.active = Some(base);
        (true, kick)
    }

    /// Puts one record into the active segment of the index; returns
    /// whether the reclaimer should look at the segment of a killed target.
    fn index_record(&self, idx: &mut Index, id: u64, frame: u64, refers_to: u64) -> bool {
        if let Some(seg) = idx.active.and_then(|b| idx.segments.get_mut(&b)) {
            let offset = seg.file_len as u32;
            seg.file_len += frame;
            seg.push(
                id,
                Slot::new(offset, frame as u32, refers_to != 0),
                refers_to,
            );
        }
        idx.next_id = id + 1;
        if refers_to == 0 {
            return false;
        }
        let killed = idx.kill(refers_to);
        self.killed_worth_a_look(idx, killed)
    }

    fn killed_worth_a_look(&self, idx: &Index, killed: Killed) -> bool {
        match killed {
            Killed::Now { base } => idx
                .segments
                .get(&base)
                .is_some_and(|s| s.sealed && s.reclaim_candidate(self.shared.config.compact_below)),
            Killed::Already | Killed::Unknown => false,
        }
    }

    fn check_payload(len: usize) -> Result<()> {
        if len > MAX_PAYLOAD {
            return Err(StoreError::RecordTooLarge {
                len,
                max: MAX_PAYLOAD,
            });
        }
        Ok(())
    }

    fn check_reference(id: u64, refers_to: Option<RecordId>) -> Result<u64> {
        match refers_to {
            None => Ok(0),
            Some(t) if t.0 > 0 && t.0 < id => Ok(t.0),
            Some(t) => Err(StoreError::InvalidReference {
                id: RecordId(id),
                target: t,
            }),
        }
    }

    fn closed_error(&self) -> StoreError {
        self.shared
            .failure()
            .unwrap_or_else(|| StoreError::Failed(Arc::from("writer thread is gone")))
    }
}

impl Store for FileLog {
    fn append(&self, kind: u8, payload: Bytes, refers_to: Option<RecordId>) -> Result<RecordId> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        Self::check_payload(payload.len())?;
        let frame = frame_len(payload.len()) as u64;
        let tx = self.sender()?;
        let (id, kick) = {
            let mut idx = lock(&self.shared.index);
            let id = idx.next_id;
            let refers_to = Self::check_reference(id, refers_to)?;
            let (new_segment, sealed_kick) = self.make_room(&mut idx, frame);
            let killed_kick = self.index_record(&mut idx, id, frame, refers_to);
            let pending = Pending {
                id,
                kind,
                refers_to,
                flags: 0,
                payload,
                new_segment,
            };
            // Sent under the index lock: channel order is id order.
            tx.send(Command::One(pending))
                .map_err(|_| self.closed_error())?;
            (id, sealed_kick || killed_kick)
        };
        Counters::add(&self.shared.counters.appended, 1);
        if kick {
            self.kick_reclaimer();
        }
        Ok(RecordId(id))
    }

    fn append_batch(&self, records: &[NewRecord]) -> Result<IdRange> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        let mut total = 0u64;
        for r in records {
            Self::check_payload(r.payload.len())?;
            total += frame_len(r.payload.len()) as u64;
        }
        let tx = self.sender()?;
        let (first, kick) = {
            let mut idx = lock(&self.shared.index);
            let first = idx.next_id;
            if records.is_empty() {
                return Ok(IdRange {
                    first: RecordId(first),
                    count: 0,
                });
            }
            let mut refs = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                refs.push(Self::check_reference(first + i as u64, r.refers_to)?);
            }
            // The whole batch goes into one segment, so that recovery can
            // tell a complete batch from a torn one within a single file.
            let (mut new_segment, mut kick) = self.make_room(&mut idx, total);
            let mut pending = Vec::with_capacity(records.len());
            for (i, (r, &refers_to)) in records.iter().zip(&refs).enumerate() {
                let id = first + i as u64;
                let frame = frame_len(r.payload.len()) as u64;
                kick |= self.index_record(&mut idx, id, frame, refers_to);
                let last = i + 1 == records.len();
                pending.push(Pending {
                    id,
                    kind: r.kind,
                    refers_to,
                    flags: if last { 0 } else { FLAG_BATCH_CONTINUES },
                    payload: r.payload.clone(),
                    new_segment,
                });
                new_segment = false;
            }
            tx.send(Command::Batch(pending))
                .map_err(|_| self.closed_error())?;
            (first, kick)
        };
        Counters::add(&self.shared.counters.appended, records.len() as u64);
        if kick {
            self.kick_reclaimer();
        }
        Ok(IdRange {
            first: RecordId(first),
            count: records.len() as u64,
        })
    }

    fn read(&self, id: RecordId) -> Result<Bytes> {
        let lookup = || -> Result<_> {
            let idx = lock(&self.shared.index);
            match idx.slot(id.0) {
                Some((seg, slot)) if slot.is_live() => Ok((seg.file.clone(), slot)),
                _ => Err(StoreError::NotFound(id)),
            }
        };
        let (mut file, mut slot) = lookup()?;
        if self.shared.written_lsn.load(Ordering::Acquire) < id.0 {
            self.shared.wait_for(id.0, |p| p.written)?;
            (file, slot) = lookup()?;
        }
        let Some(file) = file else {
            return Err(StoreError::NotFound(id));
        };
        let mut buf = vec![0u8; slot.len() as usize];
        let path = || {
            let idx = lock(&self.shared.index);
            idx.segment_of(id.0).map_or_else(
                || self.shared.dir.clone(),
                |s| segment::path(&self.shared.dir, s.base),
            )
        };
        file.read_exact_at(&mut buf, u64::from(slot.offset()))
            .map_err(|e| StoreError::io(path(), e))?;
        let frame = record::decode(&buf).map_err(|e| StoreError::Corrupt {
            id,
            path: path(),
            reason: e.reason(),
        })?;
        if frame.id != id.0 {
            return Err(StoreError::Corrupt {
                id,
                path: path(),
                reason: "record at the indexed offset has another id",
            });
        }
        let len = frame.len;
        Counters::add(&self.shared.counters.reads, 1);
        Ok(Bytes::from(buf).slice(FRAME_HEADER..len))
    }

    fn live_records(&self) -> Recovered {
        Recovered::from_file(self.shared.clone())
    }

    fn mark_dead(&self, id: RecordId) -> Result<()> {
        let kick = {
            let mut idx = lock(&self.shared.index);
            let killed = idx.kill(id.0);
            if killed == Killed::Unknown {
                return Err(StoreError::NotFound(id));
            }
            self.killed_worth_a_look(&idx, killed)
        };
        if kick {
            self.kick_reclaimer();
        }
        Ok(())
    }

    fn durable_lsn(&self) -> u64 {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    fn wait_durable(&self, id: RecordId) -> Result<()> {
        if id.0 >= lock(&self.shared.index).next_id {
            return Err(StoreError::NotFound(id));
        }
        self.shared.wait_for(id.0, |p| p.durable)
    }

    fn flush(&self) -> Result<()> {
        let target = lock(&self.shared.index).next_id - 1;
        self.shared.wait_for(target, |p| p.durable)
    }

    fn sync(&self) -> Result<()> {
        let target = {
            let idx = lock(&self.shared.index);
            // Under the lock, so the command lands after every record counted.
            self.sender()?
                .send(Command::Sync)
                .map_err(|_| self.closed_error())?;
            idx.next_id - 1
        };
        self.shared.wait_for(target, |p| p.synced)
    }

    fn reclaim(&self) -> Result<()> {
        reclaim::run(&self.shared)
    }

    fn close(&self) {
        self.shut_down();
    }

    fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let idx = lock(&self.shared.index);
        let (live_records, live_bytes) = idx.live_totals();
        StoreStats {
            appended: get(&c.appended),
            bytes_written: get(&c.bytes_written),
            writes: get(&c.writes),
            fsyncs: get(&c.fsyncs),
            dir_syncs: get(&c.dir_syncs),
            segments: idx.segments.len() as u64,
            disk_bytes: idx.segments.values().map(|s| s.file_len).sum::<u64>()
                + self.shared.prealloc.load(Ordering::Relaxed),
            live_records,
            live_bytes,
            segments_deleted: get(&c.segments_deleted),
            segments_compacted: get(&c.segments_compacted),
            durable_lsn: self.shared.durable_lsn.load(Ordering::Acquire),
            reads: get(&c.reads),
        }
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl fmt::Debug for FileLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.shared.dir)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

fn create_dir(dir: &PathBuf) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    // The new directory's own entry must survive a power loss too.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    Ok(())
}

/// Runs reclamation whenever kicked, at most every few milliseconds so
/// that a burst of acks costs one run rather than thousands.
fn spawn_reclaimer(shared: Arc<Shared>, kicked: Receiver<()>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("warren-log-reclaim".into())
        .spawn(move || {
            while kicked.recv().is_ok() {
                if let Err(e) = reclaim::run(&shared) {
                    tracing::warn!(error = %e, "space reclamation failed; will retry on the next trigger");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
}
