//! The ready messages of a queue, in delivery order: one FIFO list, or one
//! per priority level for a priority queue (highest level first).

use std::collections::VecDeque;

use super::queue::Entry;

pub struct Ready {
    /// Index 0 is priority 0; a plain queue has one level.
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    /// Body bytes, kept only for a queue with a byte limit: reading a body's
    /// length touches the message, which taking it off the list otherwise
    /// does not (a cache miss per delivery, under the queue lock).
    bytes: Option<u64>,
}

impl Ready {
    pub fn new(max_priority: Option<u8>, count_bytes: bool) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            levels: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: count_bytes.then_some(0),
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

    /// Makes room for `n` more messages (a priority queue, whose messages
    /// spread over its levels, grows as it goes).
    pub fn reserve(&mut self, n: usize) {
        if let [level] = &mut self.levels[..] {
            level.reserve(n);
        }
    }

    pub fn push_back(&mut self, e: Entry) {
        let l = self.level_of(&e);
        self.len += 1;
        self.add_bytes(&e);
        self.levels[l].push_back(e);
    }

    /// Puts a returned message back at its original position.
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
        let e = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        self.remove_bytes(&e);
        Some(e)
    }

    /// The earliest expiry among the heads of the levels: only heads expire
    /// on their own, the rest when they reach the head (as in RabbitMQ).
    pub fn next_expiry(&self) -> Option<u64> {
        self.levels
            .iter()
            .filter_map(|l| l.front()?.expires_at)
            .min()
    }

    /// Removes expired messages from the heads of the levels.
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
    }

    pub fn drain_all(&mut self) -> Vec<Entry> {
        self.len = 0;
        if let Some(b) = &mut self.bytes {
            *b = 0;
        }
        self.levels
            .iter_mut()
            .rev()
            .flat_map(|l| l.drain(..))
            .collect()
    }
}
