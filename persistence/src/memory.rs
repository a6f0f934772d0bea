//! [`MemoryStore`]: the [`Store`] semantics without a disk, for tests and
//! for brokers embedded without a data directory.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::record::{frame_len, IdRange, NewRecord, Record, RecordId, MAX_PAYLOAD};
use crate::recovered::Recovered;
use crate::shared::lock;
use crate::store::{Store, StoreStats};

/// Records kept in a map. Every append is "durable" at once (the watermark
/// advances before `append` returns, and the callback runs on the appending
/// thread). Dead records are dropped at once, so reclamation has nothing
/// left to do; [`restart`](MemoryStore::restart) simulates a restart and
/// returns what a [`FileLog`](crate::FileLog) would recover.
pub struct MemoryStore {
    state: Mutex<State>,
    durable: AtomicU64,
    config: StoreConfig,
}

#[derive(Debug)]
struct State {
    records: BTreeMap<u64, (u8, Bytes)>,
    next_id: u64,
    appended: u64,
    bytes: u64,
}

impl State {
    /// Every live record, in id order.
    fn live(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|(&id, (kind, payload))| Record {
                id: RecordId(id),
                kind: *kind,
                payload: payload.clone(),
            })
            .collect()
    }
}

impl MemoryStore {
    /// An empty store. Only `on_durable` of the configuration matters.
    pub fn new(config: StoreConfig) -> Self {
        Self::with_state(
            config,
            State {
                records: BTreeMap::new(),
                next_id: 1,
                appended: 0,
                bytes: 0,
            },
        )
    }

    fn with_state(config: StoreConfig, state: State) -> Self {
        let durable = state.next_id - 1;
        MemoryStore {
            state: Mutex::new(state),
            durable: AtomicU64::new(durable),
            config,
        }
    }

    /// Consumes the store and returns a fresh one holding the same records,
    /// with the records a restart would recover.
    pub fn restart(self) -> (MemoryStore, Recovered) {
        let config = self.config.clone();
        let mut state = self
            .state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = state.live();
        state.appended = 0;
        (
            Self::with_state(config, state),
            Recovered::from_records(live),
        )
    }

    fn advanced(&self, last: u64) {
        let before = self.durable.fetch_max(last, Ordering::AcqRel);
        if before < last {
            if let Some(cb) = &self.config.on_durable {
                cb(self.durable.load(Ordering::Acquire));
            }
        }
    }
}

fn check(id: u64, r: Option<RecordId>, len: usize) -> Result<()> {
    if len > MAX_PAYLOAD {
        return Err(StoreError::RecordTooLarge {
            len,
            max: MAX_PAYLOAD,
        });
    }
    match r {
        Some(t) if t.0 == 0 || t.0 >= id => Err(StoreError::InvalidReference {
            id: RecordId(id),
            target: t,
        }),
        _ => Ok(()),
    }
}

impl State {
    fn put(&mut self, kind: u8, payload: Bytes, refers_to: Option<RecordId>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.appended += 1;
        self.bytes += frame_len(payload.len()) as u64;
        match refers_to {
            // A tombstone's target is gone at once, so the tombstone itself
            // is not needed either.
            Some(t) => {
                self.records.remove(&t.0);
            }
            None => {
                self.records.insert(id, (kind, payload));
            }
        }
        id
    }
}

impl Store for MemoryStore {
    fn append(&self, kind: u8, payload: Bytes, refers_to: Option<RecordId>) -> Result<RecordId> {
        let id = {
            let mut s = lock(&self.state);
            check(s.next_id, refers_to, payload.len())?;
            s.put(kind, payload, refers_to)
        };
        self.advanced(id);
        Ok(RecordId(id))
    }

    fn append_batch(&self, records: &[NewRecord]) -> Result<IdRange> {
        let first = {
            let mut s = lock(&self.state);
            let first = s.next_id;
            for (i, r) in records.iter().enumerate() {
                check(first + i as u64, r.refers_to, r.payload.len())?;
            }
            for r in records {
                s.put(r.kind, r.payload.clone(), r.refers_to);
            }
            first
        };
        let range = IdRange {
            first: RecordId(first),
            count: records.len() as u64,
        };
        if let Some(last) = range.last() {
            self.advanced(last.0);
        }
        Ok(range)
    }

    fn read(&self, id: RecordId) -> Result<Bytes> {
        lock(&self.state)
            .records
            .get(&id.0)
            .map(|(_, p)| p.clone())
            .ok_or(StoreError::NotFound(id))
    }

    fn live_records(&self) -> Recovered {
        Recovered::from_records(lock(&self.state).live())
    }

    fn mark_dead(&self, id: RecordId) -> Result<()> {
        let mut s = lock(&self.state);
        if id.0 == 0 || id.0 >= s.next_id {
            return Err(StoreError::NotFound(id));
        }
        s.records.remove(&id.0);
        Ok(())
    }

    fn durable_lsn(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    fn wait_durable(&self, id: RecordId) -> Result<()> {
        if id.0 >= lock(&self.state).next_id {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn reclaim(&self) -> Result<()> {
        Ok(())
    }

    fn close(&self) {}

    fn stats(&self) -> StoreStats {
        let s = lock(&self.state);
        StoreStats {
            appended: s.appended,
            bytes_written: s.bytes,
            live_records: s.records.len() as u64,
            live_bytes: s
                .records
                .values()
                .map(|(_, p)| frame_len(p.len()) as u64)
                .sum(),
            durable_lsn: self.durable_lsn(),
            ..StoreStats::default()
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("durable_lsn", &self.durable_lsn())
            .finish_non_exhaustive()
    }
}
