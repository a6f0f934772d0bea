//! A queue: its ready messages, its consumers, and delivery to them.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use warren_protocol::{FieldTable, ShortStr};

use super::link::{ChannelLink, ConnectionId, Consumer};
use super::message::Message;
use crate::error::{q, AmqpError};
use crate::store::{Persisted, Persistence};

/// A message in a queue: shared body plus per-queue delivery state.
#[derive(Debug, Clone)]
pub struct Entry {
    pub msg: Arc<Message>,
    /// Position in publish order, so requeued messages go back where they were.
    pub seq: u64,
    pub redelivered: bool,
    /// Set for a persistent message in a durable queue.
    pub persisted: Option<Persisted>,
}

/// How a queue was declared; compared on redeclare.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Entry>,
    next_seq: u64,
    consumers: Vec<Arc<Consumer>>,
    /// Where the round robin continues.
    next_consumer: usize,
    /// Set once a consumer was attached: auto-delete applies only after that.
    had_consumer: bool,
    deleted: bool,
}

pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The log, for a durable queue of a broker with one.
    pub store: Option<Arc<Persistence>>,
    /// This queue's QUEUE record, when it is durable.
    pub record: Option<warren_persistence::RecordId>,
    me: Weak<Queue>,
    state: Mutex<State>,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        vhost: String,
        options: QueueOptions,
        store: Option<Arc<Persistence>>,
        record: Option<warren_persistence::RecordId>,
    ) -> Arc<Queue> {
        Arc::new_cyclic(|me| Queue {
            name,
            vhost,
            options,
            store,
            record,
            me: me.clone(),
            state: Mutex::new(State::default()),
        })
    }

    /// Whether persistent messages routed here are written to the log.
    pub fn persists(&self) -> bool {
        self.record.is_some() && self.store.is_some()
    }

    /// Drops messages for good: acked, rejected without requeue, purged.
    pub fn discard<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) {
        if let Some(store) = &self.store {
            for e in entries {
                if let Some(p) = &e.persisted {
                    store.discard(p);
                }
            }
        }
    }

    /// Records the hand-over of `entry` to a client: a delivery marker when
    /// it must be acked, or its end when it was sent without ack.
    fn hand_over(&self, entry: &mut Entry, no_ack: bool) {
        let (Some(store), Some(p)) = (&self.store, entry.persisted.as_mut()) else {
            return;
        };
        if no_ack {
            store.discard(p);
        } else {
            store.delivered(p);
        }
    }

    pub fn describe(&self) -> String {
        format!("queue {} in vhost '{}'", q(&self.name), self.vhost)
    }

    pub fn is_exclusive(&self) -> bool {
        self.options.exclusive_owner.is_some()
    }

    /// Whether `conn` may use this queue (exclusive queues belong to one connection).
    pub fn check_access(&self, conn: ConnectionId) -> Result<(), AmqpError> {
        match self.options.exclusive_owner {
            Some(owner) if owner != conn => Err(self.locked_error()),
            _ => Ok(()),
        }
    }

    pub fn locked_error(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            self.describe()
        ))
    }

    /// Adds a published message and hands it to a consumer if one has room.
    /// False if the queue was deleted meanwhile.
    pub fn push(&self, msg: Arc<Message>, persisted: Option<Persisted>) -> bool {
        let mut st = self.state.lock();
        if st.deleted {
            if let (Some(store), Some(p)) = (&self.store, &persisted) {
                store.discard(p);
            }
            return false;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready.push_back(Entry {
            msg,
            seq,
            redelivered: false,
            persisted,
        });
        if !st.consumers.is_empty() {
            self.dispatch_locked(&mut st);
        }
        true
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(&self) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
    }

    fn dispatch_locked(&self, st: &mut State) {
        let Some(me) = self.me.upgrade() else { return };
        while !st.ready.is_empty() {
            let Some(i) = self.pick_consumer(st) else {
                break;
            };
            let Some(mut entry) = st.ready.pop_front() else {
                break;
            };
            let c = st.consumers[i].clone();
            self.hand_over(&mut entry, c.no_ack);
            c.channel.deliver(&me, &c, entry);
        }
    }

    /// The next consumer in round-robin order that can take a message, among
    /// those of the highest consumer priority that can.
    fn pick_consumer(&self, st: &mut State) -> Option<usize> {
        let n = st.consumers.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (st.next_consumer + k) % n;
            let c = &st.consumers[i];
            if !c.has_credit() {
                continue;
            }
            if c.channel.conn.outbox.is_full() {
                c.channel.conn.outbox.wait_for_room(self.me.clone());
                continue;
            }
            if best.is_none_or(|b| c.priority > st.consumers[b].priority) {
                best = Some(i);
            }
        }
        if let Some(i) = best {
            st.next_consumer = (i + 1) % n;
        }
        best
    }

    /// basic.get: hands the head message to `channel`. False when empty.
    pub fn get(&self, channel: &ChannelLink, no_ack: bool) -> bool {
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        let mut st = self.state.lock();
        let Some(mut entry) = st.ready.pop_front() else {
            return false;
        };
        self.hand_over(&mut entry, no_ack);
        let remaining = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        channel.get_ok(&me, entry, no_ack, remaining);
        true
    }

    /// Puts messages back at their original positions, marked redelivered.
    pub fn requeue(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut st = self.state.lock();
        if st.deleted {
            let entries: Vec<Entry> = entries.into_iter().collect();
            self.discard(&entries);
            return;
        }
        for mut e in entries {
            e.redelivered = true;
            // Requeued messages are nearly always older than everything ready.
            let at = st.ready.partition_point(|r| r.seq < e.seq);
            st.ready.insert(at, e);
        }
        self.dispatch_locked(&mut st);
    }

    /// Attaches a consumer, enforcing exclusive consumers.
    /// `on_added` runs under the queue's lock once the consumer is accepted
    /// and before anything is delivered to it (it queues consume-ok).
    pub fn add_consumer(&self, c: Arc<Consumer>, on_added: impl FnOnce()) -> Result<(), AmqpError> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(AmqpError::not_found(format!("no {}", self.describe())));
        }
        if st.consumers.iter().any(|o| o.exclusive) || (c.exclusive && !st.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!(
                "{} in exclusive use",
                self.describe()
            )));
        }
        st.consumers.push(c);
        st.had_consumer = true;
        on_added();
        self.dispatch_locked(&mut st);
        Ok(())
    }

    /// Detaches a consumer. Returns true when the queue should now be
    /// auto-deleted (it was auto-delete and this was its last consumer).
    pub fn remove_consumer(&self, c: &Arc<Consumer>) -> bool {
        let mut st = self.state.lock();
        st.consumers.retain(|o| !Arc::ptr_eq(o, c));
        if st.next_consumer >= st.consumers.len() {
            st.next_consumer = 0;
        }
        self.options.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
    }

    /// Puts back a message recovered from the log, in log order.
    pub fn restore(&self, msg: Arc<Message>, persisted: Persisted) {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let redelivered = persisted.marker.is_some();
        st.ready.push_back(Entry {
            msg,
            seq,
            redelivered,
            persisted: Some(persisted),
        });
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.state.lock().ready.len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.state.lock().consumers.len()).unwrap_or(u32::MAX)
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.len();
        self.discard(&st.ready);
        st.ready.clear();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn check_delete(&self, if_unused: bool, if_empty: bool) -> Result<(), AmqpError> {
        let st = self.state.lock();
        if if_unused && !st.consumers.is_empty() {
            return Err(AmqpError::precondition(format!(
                "{} in use",
                self.describe()
            )));
        }
        if if_empty && !st.ready.is_empty() {
            return Err(AmqpError::precondition(format!(
                "{} not empty",
                self.describe()
            )));
        }
        Ok(())
    }

    /// Marks the queue deleted; returns its ready-message count and the
    /// consumers that were attached (to be cancelled).
    pub fn mark_deleted(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut st = self.state.lock();
        st.deleted = true;
        let n = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        self.discard(&st.ready);
        st.ready.clear();
        (n, std::mem::take(&mut st.consumers))
    }
}
