//! The writer thread: the only code that writes to the active segment.
//!
//! Appenders encode nothing; they send their records (id already assigned,
//! position already reserved in the index) over a channel. The writer takes
//! everything queued, encodes it into one buffer, issues one `pwrite`, and
//! under `FsyncPolicy::Always` one fsync per touched file, then advances the
//! watermarks: appends that arrive during an fsync share the next one
//! (group commit).
//!
//! Unless the policy is `never`, the active segment is kept zero-filled
//! [`PREALLOC`] bytes ahead of the write position (capped at the segment
//! size): an fdatasync of a write that does not grow the file has no file
//! size to commit to the journal, which makes it several times cheaper on
//! ext4 and XFS. One round in a megabyte pays for the growth. Recovery
//! treats an all-zero tail as the clean end of a segment, and a segment is
//! cut back to its data when it is sealed and when the store closes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::FsyncPolicy;
use crate::files::sync_dir;
use crate::record;
use crate::segment::{self, HEADER_LEN};
use crate::shared::{lock, Counters, Shared};

/// A record on its way to disk.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: u64,
    pub kind: u8,
    pub refers_to: u64,
    pub flags: u8,
    pub payload: Bytes,
    /// This record is the first of a new segment named after its id.
    pub new_segment: bool,
}

#[derive(Debug)]
pub(crate) enum Command {
    One(Pending),
    Batch(Vec<Pending>),
    /// Fsync everything written so far, whatever the policy.
    Sync,
}

/// Zero-filled room kept ahead of the write position.
pub(crate) const PREALLOC: u64 = 1 << 20;

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

pub(crate) fn spawn(shared: Arc<Shared>, rx: Receiver<Command>) -> std::io::Result<JoinHandle<()>> {
    let preallocate = shared.config.fsync != FsyncPolicy::Never;
    let writer = Writer {
        shared,
        rx,
        file: None,
        offset: 0,
        file_end: 0,
        preallocate,
        buf: Vec::new(),
        last_id: 0,
        written: 0,
        synced: 0,
        dirty: Vec::new(),
        dir_dirty: false,
        last_sync: Instant::now(),
        sync_requested: false,
    };
    std::thread::Builder::new()
        .name("warren-log-writer".into())
        .spawn(move || writer.run())
}

struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    /// The active segment and where its next byte goes.
    file: Option<Arc<File>>,
    offset: u64,
    /// Size of the active segment file: `offset` plus the zeros ahead.
    file_end: u64,
    preallocate: bool,
    buf: Vec<u8>,
    /// Highest id encoded into `buf` or written.
    last_id: u64,
    written: u64,
    synced: u64,
    /// Files written since their last fsync.
    dirty: Vec<Arc<File>>,
    /// A segment was created since the last directory fsync.
    dir_dirty: bool,
    last_sync: Instant,
    sync_requested: bool,
}

enum Next {
    Command(Command),
    /// The fsync interval elapsed with unsynced data.
    Tick,
    Closed,
}

type Outcome = Result<(), String>;

impl Writer {
    fn run(mut self) {
        let start = self
            .shared
            .written_lsn
            .load(std::sync::atomic::Ordering::Acquire);
        (self.last_id, self.written, self.synced) = (start, start, start);
        loop {
            let outcome = match self.next() {
                Next::Command(first) => self.round(first),
                Next::Tick => self.sync_now(),
                Next::Closed => break,
            };
            if let Err(reason) = outcome {
                self.shared.fail(reason);
                return;
            }
            self.publish();
        }
        // Clean close: cut the zeros ahead of the data, and whatever the
        // policy, leave nothing in the page cache.
        match self.trim_active().and_then(|()| self.sync_now()) {
            Ok(()) => self.publish(),
            Err(reason) => self.shared.fail(reason),
        }
    }

    fn next(&mut self) -> Next {
        let unsynced = !self.dirty.is_empty() || self.dir_dirty;
        let received = match self.shared.config.fsync {
            FsyncPolicy::Interval(every) if unsynced => {
                match self.rx.recv_deadline(self.last_sync + every) {
                    Ok(cmd) => Ok(cmd),
                    Err(RecvTimeoutError::Timeout) => return Next::Tick,
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            }
            _ => self.rx.recv().map_err(|_| ()),
        };
        match received {
            Ok(cmd) => Next::Command(cmd),
            Err(()) => Next::Closed,
        }
    }

    /// One group commit: everything queued now, one write, the fsyncs the
    /// policy asks for.
    fn round(&mut self, first: Command) -> Outcome {
        self.take(first)?;
        while self.buf.len() < self.shared.config.max_batch_bytes {
            match self.rx.try_recv() {
                Ok(cmd) => self.take(cmd)?,
                Err(_) => break,
            }
        }
        self.write_buf()?;
        Counters::add(&self.shared.counters.writes, 1);
        let due = match self.shared.config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        if due || self.sync_requested {
            self.sync_requested = false;
            self.sync_now()?;
        }
        Ok(())
    }

    fn take(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::One(p) => self.encode(p),
            Command::Batch(records) => records.into_iter().try_for_each(|p| self.encode(p)),
            Command::Sync => {
                self.sync_requested = true;
                Ok(())
            }
        }
    }

    fn encode(&mut self, p: Pending) -> Outcome {
        if p.new_segment {
            self.write_buf()?;
            self.start_segment(p.id)?;
        }
        record::encode(
            &mut self.buf,
            p.id,
            p.kind,
            p.refers_to,
            p.flags,
            &p.payload,
        );
        self.last_id = p.id;
        Ok(())
    }

    /// Cuts the active segment back to its data (before it is sealed, and
    /// at close). The size change is fsynced with the next round.
    fn trim_active(&mut self) -> Outcome {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.file_end > self.offset {
            file.set_len(self.offset)
                .map_err(|e| format!("trimming a segment to {} bytes: {e}", self.offset))?;
            self.file_end = self.offset;
            self.shared.set_prealloc(0);
            if !self.dirty.iter().any(|d| Arc::ptr_eq(d, file)) {
                self.dirty.push(file.clone());
            }
        }
        Ok(())
    }

    /// Makes sure the file has zeros up to well past `end`.
    fn preallocate(&mut self, end: u64) -> Outcome {
        if end <= self.file_end {
            return Ok(());
        }
        if !self.preallocate {
            self.file_end = end;
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        let target = (end + PREALLOC).min(self.shared.config.segment_size.max(end));
        let mut at = self.file_end.max(end);
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            file.write_all_at(&ZEROS[..n as usize], at)
                .map_err(|e| format!("preallocating a segment at offset {at}: {e}"))?;
            at += n;
        }
        self.file_end = at.max(end);
        Ok(())
    }

    fn start_segment(&mut self, base: u64) -> Outcome {
        self.trim_active()?;
        let path = segment::path(&self.shared.dir, base);
        let file = segment::create(&path, base)
            .map_err(|e| format!("creating segment {}: {e}", path.display()))?;
        let file = Arc::new(file);
        Counters::add(&self.shared.counters.bytes_written, HEADER_LEN);
        if let Some(seg) = lock(&self.shared.index).segments.get_mut(&base) {
            seg.file = Some(file.clone());
        }
        self.dirty.push(file.clone());
        self.dir_dirty = true;
        self.file = Some(file);
        self.offset = HEADER_LEN;
        self.file_end = HEADER_LEN;
        Ok(())
    }

    fn write_buf(&mut self) -> Outcome {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            return Err("record queued before any segment was started".into());
        }
        self.preallocate(self.offset + self.buf.len() as u64)?;
        let Some(file) = &self.file else {
            return Err("record queued before any segment was started".into());
        };
        file.write_all_at(&self.buf, self.offset)
            .map_err(|e| format!("writing segment at offset {}: {e}", self.offset))?;
        let n = self.buf.len() as u64;
        self.offset += n;
        self.shared
            .set_prealloc(self.file_end.saturating_sub(self.offset));
        Counters::add(&self.shared.counters.bytes_written, n);
        if !self.dirty.last().is_some_and(|d| Arc::ptr_eq(d, file)) {
            self.dirty.push(file.clone());
        }
        self.written = self.last_id;
        self.buf.clear();
        // A huge record must not pin a huge buffer forever.
        let cap = self.shared.config.max_batch_bytes.max(1 << 16);
        if self.buf.capacity() > 2 * cap {
            self.buf.shrink_to(cap);
        }
        Ok(())
    }

    /// Fsyncs every file written since the last fsync, then the directory if
    /// a segment was created: file data first, so that a segment's name
    /// never becomes durable before the records the watermark promises.
    fn sync_now(&mut self) -> Outcome {
        for f in self.dirty.drain(..) {
            f.sync_data()
                .map_err(|e| format!("fsync of a segment: {e}"))?;
            Counters::add(&self.shared.counters.fsyncs, 1);
        }
        if self.dir_dirty {
            sync_dir(&self.shared.dir).map_err(|e| format!("fsync of the data directory: {e}"))?;
            Counters::add(&self.shared.counters.dir_syncs, 1);
            self.dir_dirty = false;
        }
        self.synced = self.written;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn publish(&self) {
        let durable = match self.shared.config.fsync {
            FsyncPolicy::Always => self.synced,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => self.written,
        };
        self.shared.publish(self.written, durable, self.synced);
    }
}
