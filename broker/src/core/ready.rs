//! The ready messages of a queue, in delivery order: one FIFO list, or one
//! per priority level for a priority queue (highest level first).
//!
//! A plain queue (one level, no byte limit) keeps the messages it left in
//! the log ([`Held::Log`], [`Held::Page`]) in a compact tail behind the
//! list: 8 bytes a message, the log record's id, instead of a whole
//! [`Entry`], which is what makes a backlog of millions cheap. Once the
//! tail has a message, every later one joins it, so that the order stays
//! that of publishing; a message the tail cannot hold in 8 bytes (one that
//! expires, was delivered before, or shares a fan-out body) waits there as
//! a whole entry, in a side list in the same order.

use std::collections::VecDeque;

use warren_persistence::RecordId;

use super::queue::{Entry, Held};
use crate::store::Persisted;

/// A tail slot holding a record id of a [`Held::Page`] (else [`Held::Log`]).
const PAGE: u64 = 1 << 63;
/// A tail slot whose message waits, whole, in `Tail::whole`.
const WHOLE: u64 = u64::MAX;

#[derive(Default)]
struct Tail {
    slots: VecDeque<u64>,
    whole: VecDeque<Entry>,
    /// The sequence number the next message out of the tail gets: tail
    /// messages carry none, and what they get only has to keep them after
    /// everything in the list and in order among themselves.
    next_seq: u64,
}

impl Tail {
    fn push(&mut self, e: Entry) {
        if self.slots.is_empty() {
            self.next_seq = e.seq;
        }
        match compact(&e) {
            Some(slot) => self.slots.push_back(slot),
            None => {
                self.slots.push_back(WHOLE);
                self.whole.push_back(e);
            }
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        let slot = self.slots.pop_front()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        if slot == WHOLE {
            let mut e = self.whole.pop_front()?;
            e.seq = seq;
            return Some(e);
        }
        let (msg, persisted) = if slot & PAGE != 0 {
            let record = RecordId(slot & !PAGE);
            let msg = Held::Page {
                record,
                body_len: 0,
                priority: 0,
            };
            (msg, None)
        } else {
            let persisted = Persisted {
                record: RecordId(slot),
                body: None,
                marker: None,
                returns: 0,
            };
            let msg = Held::Log {
                body_len: 0,
                priority: 0,
            };
            (msg, Some(persisted))
        };
        Some(Entry {
            msg,
            seq,
            redelivered: false,
            persisted,
            expires_at: None,
            returns: 0,
            group: 0,
        })
    }

    /// The front message when it waits whole (only such can expire).
    fn front_whole(&self) -> Option<&Entry> {
        match self.slots.front() {
            Some(&WHOLE) => self.whole.front(),
            _ => None,
        }
    }
}

/// The 8-byte form of an entry that is only in the log and carries nothing
/// else: not delivered before, no expiry, its own record.
fn compact(e: &Entry) -> Option<u64> {
    if e.redelivered || e.expires_at.is_some() || e.returns != 0 {
        return None;
    }
    match (&e.msg, &e.persisted) {
        (Held::Log { .. }, Some(p)) if p.body.is_none() && p.marker.is_none() && p.returns == 0 => {
            Some(p.record.0).filter(|id| id & PAGE == 0)
        }
        (Held::Page { record, .. }, None) => Some(record.0)
            .filter(|id| id & PAGE == 0)
            .map(|id| id | PAGE),
        _ => None,
    }
}

pub struct Ready {
    /// Index 0 is priority 0; a plain queue has one level.
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    /// Body bytes, kept only for a queue with a byte limit: reading a body's
    /// length touches the message, which taking it off the list otherwise
    /// does not (a cache miss per delivery, under the queue lock).
    bytes: Option<u64>,
    /// Messages behind `levels[0]` that are only in the log (a plain queue
    /// without a byte limit only: the tail knows no sizes or priorities).
    tail: Option<Tail>,
}

impl Ready {
    pub fn new(max_priority: Option<u8>, count_bytes: bool) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            levels: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: count_bytes.then_some(0),
            tail: (n == 1 && !count_bytes).then(Tail::default),
        }
    }

    fn add_bytes(&mut self, e: &Entry) {
        if let Some(b) = &mut self.bytes {
            *b += e.body_len();
        }
    }

    fn remove_bytes(&mut self, e: &Entry) {
        if let Some(b) = &mut self.bytes {
            *b -= e.body_len();
        }
    }

    fn level_of(&self, e: &Entry) -> usize {
        if self.levels.len() == 1 {
            return 0;
        }
        let p = usize::from(e.priority());
        p.min(self.levels.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of the ready messages (for x-max-length-bytes; 0 when
    /// not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes.unwrap_or(0)
    }

    /// Makes room for `n` more messages in the list of a plain queue whose
    /// messages all stay in memory (recovery sizes lists once). With a
    /// tail, only the tail grows long, and it is small.
    pub fn reserve(&mut self, n: usize) {
        match (&mut self.tail, &mut self.levels[..]) {
            (Some(tail), _) => tail.slots.reserve(n),
            (None, [level]) => level.reserve(n),
            _ => {}
        }
    }

    pub fn push_back(&mut self, e: Entry) {
        self.len += 1;
        if let Some(tail) = &mut self.tail {
            if !tail.slots.is_empty() || matches!(e.msg, Held::Log { .. } | Held::Page { .. }) {
                tail.push(e);
                return;
            }
        }
        let l = self.level_of(&e);
        self.add_bytes(&e);
        self.levels[l].push_back(e);
    }

    /// Puts a returned message back at its original position: always ahead
    /// of the tail, which holds only messages never delivered.
    pub fn insert_in_order(&mut self, e: Entry) {
        let l = self.level_of(&e);
        self.len += 1;
        self.add_bytes(&e);
        let level = &mut self.levels[l];
        // Requeued messages are nearly always older than everything ready.
        let at = level.partition_point(|r| r.seq < e.seq);
        level.insert(at, e);
    }

    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = match self.levels.iter_mut().rev().find_map(|l| l.pop_front()) {
            Some(e) => {
                self.remove_bytes(&e);
                e
            }
            None => self.tail.as_mut()?.pop()?,
        };
        self.len -= 1;
        Some(e)
    }

    /// The earliest expiry among the heads of the levels (or of the tail
    /// once they are empty): only heads expire on their own, the rest when
    /// they reach the head (as in RabbitMQ).
    pub fn next_expiry(&self) -> Option<u64> {
        let heads = self
            .levels
            .iter()
            .filter_map(|l| l.front()?.expires_at)
            .min();
        if self.levels.iter().all(VecDeque::is_empty) {
            return self.tail.as_ref()?.front_whole()?.expires_at;
        }
        heads
    }

    /// Removes expired messages from the heads of the levels (and of the
    /// tail once they are empty).
    pub fn take_expired(&mut self, now_ms: u64, out: &mut Vec<Entry>) {
        for l in &mut self.levels {
            while l.front().is_some_and(|e| e.expired(now_ms)) {
                if let Some(e) = l.pop_front() {
                    self.len -= 1;
                    if let Some(b) = &mut self.bytes {
                        *b -= e.body_len();
                    }
                    out.push(e);
                }
            }
        }
        if !self.levels.iter().all(VecDeque::is_empty) {
            return;
        }
        if let Some(tail) = &mut self.tail {
            while tail.front_whole().is_some_and(|e| e.expired(now_ms)) {
                if let Some(e) = tail.pop() {
                    self.len -= 1;
                    out.push(e);
                }
            }
        }
    }

    pub fn drain_all(&mut self) -> Vec<Entry> {
        self.len = 0;
        if let Some(b) = &mut self.bytes {
            *b = 0;
        }
        let mut all: Vec<Entry> = self
            .levels
            .iter_mut()
            .rev()
            .flat_map(|l| l.drain(..))
            .collect();
        if let Some(tail) = &mut self.tail {
            while let Some(e) = tail.pop() {
                all.push(e);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::core::message::Message;

    fn entry(seq: u64, held: Held, persisted: Option<u64>) -> Entry {
        Entry {
            msg: held,
            seq,
            redelivered: false,
            persisted: persisted.map(|r| Persisted {
                record: RecordId(r),
                body: None,
                marker: None,
                returns: 0,
            }),
            expires_at: None,
            returns: 0,
            group: 0,
        }
    }

    fn memory() -> Held {
        Held::Memory(Arc::new(Message {
            exchange: Default::default(),
            routing_key: Default::default(),
            properties: Default::default(),
            body: Default::default(),
        }))
    }

    fn logged() -> Held {
        Held::Log {
            body_len: 0,
            priority: 0,
        }
    }

    /// Once a message is in the tail, later ones follow it there, whole
    /// when they are in memory or expire; everything comes out in order,
    /// with sequence numbers that keep that order.
    #[test]
    fn the_tail_keeps_publish_order() {
        let mut r = Ready::new(None, false);
        r.push_back(entry(0, memory(), None));
        r.push_back(entry(1, logged(), Some(11)));
        r.push_back(entry(2, memory(), None));
        let page = Held::Page {
            record: RecordId(13),
            body_len: 0,
            priority: 0,
        };
        r.push_back(entry(3, page, None));
        let mut expiring = entry(4, logged(), Some(14));
        expiring.expires_at = Some(5);
        r.push_back(expiring);
        r.push_back(entry(5, logged(), Some(15)));
        assert_eq!(r.len(), 6);
        let tail = r.tail.as_ref().unwrap();
        assert_eq!((tail.slots.len(), tail.whole.len()), (5, 2));

        let mut out = Vec::new();
        let mut seqs = Vec::new();
        for _ in 0..4 {
            let e = r.pop_front().unwrap();
            seqs.push(e.seq);
            out.push(e);
        }
        assert!(matches!(out[0].msg, Held::Memory(_)));
        assert_eq!(out[1].persisted.as_ref().unwrap().record, RecordId(11));
        assert!(matches!(out[2].msg, Held::Memory(_)));
        assert!(matches!(
            out[3].msg,
            Held::Page {
                record: RecordId(13),
                ..
            }
        ));
        assert_eq!(seqs, [0, 1, 2, 3]);
        // The whole entry at the front of the tail expires on its own.
        assert_eq!(r.next_expiry(), Some(5));
        let mut expired = Vec::new();
        r.take_expired(6, &mut expired);
        assert_eq!(expired.len(), 1);
        // A requeued message goes ahead of the tail.
        r.insert_in_order(out.remove(1));
        let drained = r.drain_all();
        let records: Vec<_> = drained
            .iter()
            .map(|e| e.persisted.as_ref().unwrap().record.0)
            .collect();
        assert_eq!(records, [11, 15]);
        assert!(r.is_empty() && r.pop_front().is_none());
    }

    #[test]
    fn priority_and_byte_counting_queues_have_no_tail() {
        assert!(Ready::new(Some(3), false).tail.is_none());
        assert!(Ready::new(None, true).tail.is_none());
    }
}
