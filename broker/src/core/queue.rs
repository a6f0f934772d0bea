//! A queue: its ready messages, its consumers, and delivery to them, with
//! the RabbitMQ features that act on messages inside a queue: TTL, length
//! limits, dead-lettering, priorities, single active consumer and delivery
//! limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::dead_letter::{self, Reason};
use super::exchange::RouteScratch;
use super::fifo::{self, Dedup, Fifo, GroupHasher, GroupHint, Owner};
use super::link::{ChannelLink, ConnectionId, Consumer, DeferWakes};
use super::message::Message;
use super::queue_args::{Overflow, QueueArgs, QueueKind};
use super::ready::Ready;
use super::vhost::VHost;
use crate::error::{q, AmqpError};
use crate::store::{records, Persisted, Persistence, ReadError};
use warren_persistence::RecordId;

/// Where a queued message is. A persistent message of a durable queue
/// that joins a long backlog is left in the log: the queue keeps its
/// position ([`Entry::persisted`]) and what routing within the queue needs,
/// and reads it back when it leaves (design: "Where messages live"). Under
/// memory pressure a transient message behind a long backlog is written
/// out to the log (`records::PAGE`) the same way.
#[derive(Debug, Clone)]
pub enum Held {
    Memory(Arc<Message>),
    Log {
        body_len: u32,
        priority: u8,
    },
    Page {
        record: RecordId,
        body_len: u32,
        priority: u8,
    },
}

impl Held {
    /// What a queue keeps of a message it leaves in the log: the body's
    /// size and the priority; `page` is the record a transient message was
    /// written out to.
    fn in_log(msg: &Message, page: Option<RecordId>) -> Held {
        let body_len = u32::try_from(msg.body.len()).unwrap_or(u32::MAX);
        let priority = msg.properties.priority().unwrap_or(0);
        match page {
            None => Held::Log { body_len, priority },
            Some(record) => Held::Page {
                record,
                body_len,
                priority,
            },
        }
    }
}

/// A message in a queue: shared body plus per-queue delivery state.
#[derive(Debug, Clone)]
pub struct Entry {
    pub msg: Held,
    /// Position in publish order, so requeued messages go back where they were.
    pub seq: u64,
    pub redelivered: bool,
    /// Set for a persistent message in a durable queue.
    pub persisted: Option<Persisted>,
    /// When the message expires, in ms since the queue's epoch.
    pub expires_at: Option<u64>,
    /// Times the message came back to the queue (quorum delivery limits).
    pub returns: u32,
    /// FIFO: the message's group in its queue (set when the queue takes it in).
    pub group: u32,
}

impl Entry {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|t| now_ms > t)
    }

    /// The message, when it is in memory.
    pub fn in_memory(&self) -> Option<&Arc<Message>> {
        match &self.msg {
            Held::Memory(m) => Some(m),
            Held::Log { .. } | Held::Page { .. } => None,
        }
    }

    pub fn body_len(&self) -> u64 {
        match &self.msg {
            Held::Memory(m) => m.body.len() as u64,
            Held::Log { body_len, .. } | Held::Page { body_len, .. } => u64::from(*body_len),
        }
    }

    pub fn priority(&self) -> u8 {
        match &self.msg {
            Held::Memory(m) => m.properties.priority().unwrap_or(0),
            Held::Log { priority, .. } | Held::Page { priority, .. } => *priority,
        }
    }
}

/// How a queue was declared; compared on redeclare.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// A message about to enter a queue: when it expires and, for a FIFO
/// queue, its deduplication id and group.
struct Incoming {
    expires_at: Option<u64>,
    dedup_id: Option<u128>,
    group: Option<GroupHint>,
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Refused by `x-overflow = reject-publish(-dlx)`: the publisher is nacked.
    Rejected,
    /// The queue was deleted meanwhile.
    Gone,
}

struct State {
    ready: Ready,
    next_seq: u64,
    consumers: Vec<Arc<Consumer>>,
    /// Where the round robin continues.
    next_consumer: usize,
    /// Set once a consumer was attached: auto-delete applies only after that.
    had_consumer: bool,
    deleted: bool,
    /// Last time the queue was used, for `x-expires`.
    last_used: Instant,
    /// Messages to dead-letter once the lock is released.
    dead: Vec<(Entry, Reason)>,
    janitor: bool,
    /// For a FIFO queue, the messages by group (then `ready` stays empty).
    fifo: Option<Fifo>,
    /// FIFO: whether the last dispatch left a consumer with credit and
    /// nothing it may take. Unless one did, a publish needs no dispatch:
    /// every other consumer was out of credit then, and credit comes back
    /// with a dispatch of its queue to follow (acks, rejects and requeues
    /// schedule one, and so do qos changes and outbox room). Publishing
    /// then leaves groups alone, and the publisher does not deliver,
    /// message by message and from its own core, what a consumer's own
    /// dispatch delivers a moment later in a batch.
    starved: bool,
    dedup: Dedup,
    /// A run of deliveries being handed to a no-ack consumer (kept for its
    /// allocation).
    run: Vec<(Entry, Arc<Message>)>,
}

impl State {
    fn len(&self) -> usize {
        self.fifo.as_ref().map_or(self.ready.len(), Fifo::len)
    }

    fn bytes(&self) -> u64 {
        self.fifo.as_ref().map_or(self.ready.bytes(), Fifo::bytes)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `group`: for a FIFO queue, the message's group if found already.
    fn push_ready(&mut self, e: Entry, group: Option<&GroupHint>) {
        match (&mut self.fifo, group) {
            (Some(f), Some(g)) => f.push_hinted(e, g),
            (Some(f), None) => f.push(e),
            (None, _) => self.ready.push_back(e),
        }
    }

    fn pop_oldest(&mut self) -> Option<Entry> {
        match &mut self.fifo {
            Some(f) => f.pop_oldest(),
            None => self.ready.pop_front(),
        }
    }

    fn drain_all(&mut self) -> Vec<Entry> {
        match &mut self.fifo {
            Some(f) => f.drain_all(),
            None => self.ready.drain_all(),
        }
    }

    fn next_expiry(&mut self) -> Option<u64> {
        match &mut self.fifo {
            Some(f) => f.next_expiry(),
            None => self.ready.next_expiry(),
        }
    }

    fn take_expired(&mut self, now_ms: u64, out: &mut Vec<Entry>) {
        match &mut self.fifo {
            Some(f) => f.take_expired(now_ms, out),
            None => self.ready.take_expired(now_ms, out),
        }
    }
}

/// Ready messages above which a queue with consumers holds its publishers
/// back, and below which it lets them go again (publishers never wait on a
/// queue nobody consumes from: a backlog there is what was asked for).
/// A length-limited queue never grows that far, so for it "far behind"
/// means full ([`FlowMarks`]).
const FLOW_HIGH: usize = 20_000;
const FLOW_LOW: usize = 10_000;

/// When a queue counts as congested and when it stops: without this, a
/// publisher feeding a full length-limited queue runs unchecked and takes
/// the CPU its consumers need, and they see a trickle of what it drops.
#[derive(Clone, Copy)]
struct FlowMarks {
    high: usize,
    low: usize,
    /// With `x-max-length-bytes`: congested at 3/4 of it, free at 1/2.
    high_bytes: u64,
    low_bytes: u64,
}

impl FlowMarks {
    fn for_args(args: &QueueArgs) -> FlowMarks {
        let (high, low) = match args.max_length {
            // Nothing is ever ready in a zero-length queue.
            Some(0) => (usize::MAX, usize::MAX),
            Some(max) if (max as usize) < FLOW_HIGH => (max as usize, max as usize / 2),
            _ => (FLOW_HIGH, FLOW_LOW),
        };
        let (high_bytes, low_bytes) = match args.max_length_bytes {
            Some(max) if max > 0 => (max - max / 4, max / 2),
            _ => (u64::MAX, u64::MAX),
        };
        FlowMarks {
            high,
            low,
            high_bytes,
            low_bytes,
        }
    }

    fn above_high(&self, st: &State) -> bool {
        st.len() >= self.high || st.bytes() >= self.high_bytes
    }

    fn below_low(&self, st: &State) -> bool {
        st.len() <= self.low && st.bytes() <= self.low_bytes
    }
}

pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    pub args: QueueArgs,
    /// The log, for a durable queue of a broker with one.
    pub store: Option<Arc<Persistence>>,
    /// This queue's QUEUE record, when it is durable.
    pub record: Option<warren_persistence::RecordId>,
    vhost_ref: Weak<VHost>,
    epoch: Instant,
    /// Wakes the expiry task when deadlines change or the queue goes.
    wake: Arc<Notify>,
    /// Wakes publishers held back by flow control.
    flow: Notify,
    flow_marks: FlowMarks,
    /// Ready messages kept in memory with their bodies; persistent ones
    /// beyond that stay in the log, and transient ones are written out
    /// while memory is short. `None`: all in memory (no data directory).
    in_memory: Option<usize>,
    /// Set (under the state lock) by a publisher about to wait on `flow`,
    /// so that dispatch only pays for a wake-up when someone waits.
    flow_waiting: AtomicBool,
    /// Whether the backlog is above the high mark with consumers attached,
    /// as of the last operation under the state lock: kept there
    /// ([`Queue::note_flow`]) so that publishers check it, once per
    /// message, without taking that lock.
    congested: AtomicBool,
    /// The connections of the attached consumers (changed with `consumers`,
    /// under the state lock), read by publishers only while `congested`.
    consumer_conns: Mutex<Vec<ConnectionId>>,
    /// FIFO: groups of acked messages, applied under the state lock by the
    /// next operation that looks at ownership (the dispatch after an ack).
    /// Acks then take the busy state lock once instead of twice.
    settles: Mutex<Vec<u32>>,
    /// Set when `settles` may hold something (saves taking its lock).
    settles_pending: AtomicBool,
    /// FIFO: hashes group names, outside the state lock ([`GroupHint`]).
    group_hasher: GroupHasher,
    /// Mirrors `deleted` without the lock, for channels' lookup caches.
    gone: AtomicBool,
    me: Weak<Queue>,
    state: Mutex<State>,
}

impl Queue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: ShortStr,
        vhost: String,
        options: QueueOptions,
        args: QueueArgs,
        store: Option<Arc<Persistence>>,
        record: Option<warren_persistence::RecordId>,
        vhost_ref: Weak<VHost>,
    ) -> Arc<Queue> {
        let ready = Ready::new(args.max_priority, args.max_length_bytes.is_some());
        let group_hasher = GroupHasher::new();
        let fifo = (args.kind == QueueKind::Fifo)
            .then(|| Fifo::new(args.max_length_bytes.is_some(), group_hasher.clone()));
        let dedup = Dedup::new(store.is_some() && record.is_some());
        let flow_marks = FlowMarks::for_args(&args);
        // A lazy queue keeps none.
        let in_memory =
            store
                .as_ref()
                .and_then(|s| s.queue_in_memory())
                .map(|n| if args.lazy { 0 } else { n });
        let queue = Arc::new_cyclic(|me| Queue {
            name,
            vhost,
            options,
            args,
            store,
            record,
            vhost_ref,
            epoch: Instant::now(),
            wake: Arc::new(Notify::new()),
            flow: Notify::new(),
            flow_marks,
            in_memory,
            flow_waiting: AtomicBool::new(false),
            congested: AtomicBool::new(false),
            consumer_conns: Mutex::new(Vec::new()),
            settles: Mutex::new(Vec::new()),
            settles_pending: AtomicBool::new(false),
            group_hasher,
            gone: AtomicBool::new(false),
            me: me.clone(),
            state: Mutex::new(State {
                ready,
                next_seq: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                had_consumer: false,
                deleted: false,
                last_used: Instant::now(),
                dead: Vec::new(),
                janitor: false,
                fifo,
                starved: true,
                dedup,
                run: Vec::new(),
            }),
        });
        if queue.args.message_ttl.is_some() || queue.args.expires.is_some() {
            queue.start_janitor(&mut queue.state.lock());
        }
        queue
    }

    /// Whether the queue was deleted (lock-free, possibly a moment late).
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Whether persistent messages routed here are written to the log.
    pub fn persists(&self) -> bool {
        self.record.is_some() && self.store.is_some()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops messages for good: acked, rejected without requeue, purged.
    pub fn discard<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) {
        if let Some(store) = &self.store {
            for e in entries {
                if let Some(p) = &e.persisted {
                    store.discard(p);
                }
                if let Held::Page { record, .. } = e.msg {
                    store.forget(record);
                }
            }
        }
    }

    /// Rejected without requeue by a client: dead-lettered if the queue has
    /// a dead-letter exchange, else dropped.
    pub fn reject(&self, entries: Vec<Entry>) {
        self.dead_letter(entries.into_iter().map(|e| (e, Reason::Rejected)).collect());
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

    /// Whether a publisher on connection `conn` should wait: consumers exist
    /// but lag far behind. Never for a connection that consumes from the
    /// queue itself: holding back its reads would hold back its own acks.
    /// Lock-free: it reads what the last operation under the state lock
    /// found ([`Queue::note_flow`]), as the state lock would a moment later.
    pub fn is_congested_for(&self, conn: ConnectionId) -> bool {
        self.congested.load(Ordering::Relaxed) && !self.consumer_conns.lock().contains(&conn)
    }

    /// Brings `congested` up to date; called under the state lock after
    /// anything that changes the backlog or the consumers.
    fn note_flow(&self, st: &State) {
        let congested = !st.consumers.is_empty() && self.flow_marks.above_high(st);
        // Written only on a change: publishers on other cores read it.
        if self.congested.load(Ordering::Relaxed) != congested {
            self.congested.store(congested, Ordering::Relaxed);
        }
    }

    /// Waits (at most `limit`) until the backlog falls to the low mark or
    /// the queue loses its consumers.
    pub async fn wait_uncongested(&self, limit: Duration) {
        let notified = self.flow.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = self.state.lock();
            if st.consumers.is_empty() || self.flow_marks.below_low(&st) || st.deleted {
                return;
            }
            self.flow_waiting.store(true, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// Lets publishers held back by flow control go on once the backlog is
    /// down to the low mark. Called under the state lock, as the waiters
    /// check and set `flow_waiting` under it.
    fn release_publishers(&self, st: &State) {
        if self.flow_waiting.load(Ordering::Relaxed) && self.flow_marks.below_low(st) {
            self.flow_waiting.store(false, Ordering::Relaxed);
            self.flow.notify_waiters();
        }
    }

    /// Marks the queue as used now (for `x-expires`).
    pub fn touch(&self) {
        self.state.lock().last_used = Instant::now();
    }

    /// When a message published now expires: the lower of the queue's TTL
    /// and the message's `expiration`.
    fn expiry_for(&self, msg: &Message) -> Option<u64> {
        let per_message = msg
            .properties
            .expiration()
            .and_then(|e| std::str::from_utf8(e).ok())
            .and_then(|s| s.parse::<u64>().ok());
        let ttl = match (
            self.args.message_ttl.map(|d| d.as_millis() as u64),
            per_message,
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.now_ms().saturating_add(ttl))
    }

    /// Adds a published message and hands it to a consumer if one has room.
    pub fn push(&self, msg: Arc<Message>, persisted: Option<Persisted>) -> PushOutcome {
        let incoming = self.incoming(&msg);
        let _wakes = DeferWakes::open();
        let (outcome, dead) = {
            let mut st = self.state.lock();
            let outcome = self.push_locked(&mut st, msg, persisted, incoming, true);
            self.note_flow(&st);
            (outcome, std::mem::take(&mut st.dead))
        };
        self.dead_letter(dead);
        outcome
    }

    /// [`Queue::push`] for a publish read off a connection. A standard
    /// queue leaves the delivery to its consumers for the end of the batch
    /// of frames, so a run of publishes reaches a consumer in one run, with
    /// one lock of its channel and outbox. `true` in the answer: the caller
    /// must have the queue dispatch then ([`SessionCtx::dispatch_later`]).
    /// Where waiting would change the outcome (a TTL of 0 is now or never; a
    /// length limit drops or refuses what a consumer could have taken) and
    /// for FIFO queues, which dispatch only when a consumer starves, the
    /// push dispatches at once as [`Queue::push`] does.
    ///
    /// [`SessionCtx::dispatch_later`]: super::session::SessionCtx::dispatch_later
    pub fn push_deferred(&self, msg: Arc<Message>) -> (PushOutcome, bool) {
        let incoming = self.incoming(&msg);
        let now = incoming.expires_at.is_some()
            || incoming.group.is_some()
            || self.args.max_length.is_some()
            || self.args.max_length_bytes.is_some();
        let _wakes = DeferWakes::open();
        let (outcome, later, dead) = {
            let mut st = self.state.lock();
            let outcome = self.push_locked(&mut st, msg, None, incoming, now);
            self.note_flow(&st);
            let later = !now && !st.consumers.is_empty();
            (outcome, later, std::mem::take(&mut st.dead))
        };
        self.dead_letter(dead);
        (outcome, later)
    }

    /// What a publish needs to know of a message, found before taking the
    /// queue's lock.
    fn incoming(&self, msg: &Message) -> Incoming {
        let (dedup_id, group) = match self.args.kind {
            QueueKind::Fifo => (
                fifo::dedup_id(msg, self.args.content_based_dedup),
                Some(GroupHint::of(msg, &self.group_hasher)),
            ),
            _ => (None, None),
        };
        Incoming {
            expires_at: self.expiry_for(msg),
            dedup_id,
            group,
        }
    }

    /// Puts transient messages (or ones for a broker without a log) in the
    /// queue with one lock and one dispatch for the whole run: what an
    /// in-process batch publish costs per message is the push alone.
    pub fn push_batch(&self, msgs: &[Arc<Message>]) -> PushOutcome {
        let mut outcome = PushOutcome::Gone;
        let _wakes = DeferWakes::open();
        let dead = {
            let mut st = self.state.lock();
            for msg in msgs {
                let incoming = self.incoming(msg);
                // Where waiting changes the outcome, each message is
                // dispatched at once as a single push would be: a TTL of 0
                // is now or never, and a length limit drops or refuses what
                // a consumer could have taken.
                let dispatch = incoming.expires_at.is_some()
                    || self.args.max_length.is_some()
                    || self.args.max_length_bytes.is_some();
                match self.push_locked(&mut st, msg.clone(), None, incoming, dispatch) {
                    PushOutcome::Gone => {}
                    PushOutcome::Rejected => outcome = PushOutcome::Rejected,
                    PushOutcome::Queued => {
                        if let PushOutcome::Gone = outcome {
                            outcome = PushOutcome::Queued;
                        }
                    }
                }
            }
            if !st.consumers.is_empty() {
                self.dispatch_locked(&mut st);
            }
            self.note_flow(&st);
            std::mem::take(&mut st.dead)
        };
        self.dead_letter(dead);
        outcome
    }

    /// `dispatch`: hand ready messages to consumers now (a batch push does
    /// it once at the end instead).
    fn push_locked(
        &self,
        st: &mut State,
        msg: Arc<Message>,
        persisted: Option<Persisted>,
        incoming: Incoming,
        dispatch: bool,
    ) -> PushOutcome {
        let Incoming {
            expires_at,
            dedup_id,
            group,
        } = incoming;
        if st.deleted {
            if let (Some(store), Some(p)) = (&self.store, &persisted) {
                store.discard(p);
            }
            return PushOutcome::Gone;
        }
        // FIFO: the deduplication id, remembered once the message is accepted.
        let mut dedup = None;
        if st.fifo.is_some() {
            if let Some(id) = dedup_id {
                let now = unix_ms();
                let store = self.store.as_ref().filter(|_| self.persists());
                st.dedup.prune(now, |r| {
                    if let Some(s) = store {
                        s.tombstone(r)
                    }
                });
                if st.dedup.is_duplicate(id) {
                    // Dropped, yet confirmed to the publisher, as a cloud FIFO queue does.
                    if let (Some(store), Some(p)) = (&self.store, &persisted) {
                        store.discard(p);
                    }
                    return PushOutcome::Queued;
                }
                dedup = Some((id, now));
            }
        }
        let size = msg.body.len() as u64;
        let seq = st.next_seq;
        st.next_seq += 1;
        let mut entry = Entry {
            msg: Held::Memory(msg),
            seq,
            redelivered: false,
            persisted,
            expires_at,
            returns: 0,
            group: 0,
        };
        if self.over_limit(st, 1, size) {
            match self.args.overflow {
                Overflow::DropHead => {
                    // Make room from the head, then take the new message.
                    while self.over_limit(st, 1, size) {
                        match st.pop_oldest() {
                            Some(old) => st.dead.push((old, Reason::MaxLen)),
                            None => break,
                        }
                    }
                    if self.over_limit(st, 1, size) {
                        // A message larger than the byte limit by itself.
                        self.remember_dedup(st, dedup);
                        st.dead.push((entry, Reason::MaxLen));
                        return PushOutcome::Queued;
                    }
                }
                // Refused: the publisher is nacked and may retry, so the id
                // is not remembered.
                Overflow::RejectPublish => {
                    self.discard([&entry]);
                    return PushOutcome::Rejected;
                }
                Overflow::RejectPublishDlx => {
                    st.dead.push((entry, Reason::MaxLen));
                    return PushOutcome::Rejected;
                }
            }
        }
        self.remember_dedup(st, dedup);
        if expires_at.is_some() {
            if !st.janitor {
                self.start_janitor(st);
            }
            if st.is_empty() {
                self.wake.notify_one();
            }
        }
        self.page_if_behind(st, &mut entry);
        st.push_ready(entry, group.as_ref());
        // A TTL of 0 means "now or never": what no consumer took at once expires.
        let due = expires_at.filter(|t| *t <= self.now_ms());
        if dispatch
            && !st.consumers.is_empty()
            && (st.fifo.is_none() || st.starved || due.is_some())
        {
            self.dispatch_locked(st);
        }
        if let Some(t) = due {
            let mut expired = Vec::new();
            st.take_expired(t + 1, &mut expired);
            st.dead
                .extend(expired.into_iter().map(|e| (e, Reason::Expired)));
        }
        PushOutcome::Queued
    }

    /// Leaves a persistent message in the log, keeping only its position,
    /// when it joins a backlog longer than the queue keeps in memory; while
    /// memory is short, the queue keeps an eighth of that and writes
    /// transient messages out too (a lazy queue keeps none, and always
    /// writes them out). Only standard queues of a broker with a
    /// data directory do: a FIFO queue reads its messages' groups when it
    /// files and hands them out.
    fn page_if_behind(&self, st: &State, entry: &mut Entry) {
        let (Some(keep), Some(store)) = (self.in_memory, &self.store) else {
            return;
        };
        if st.fifo.is_some() || st.ready.len() < keep / 8 {
            return;
        }
        let short = store.memory_is_short();
        if st.ready.len() < keep && !short {
            return;
        }
        let Held::Memory(m) = &entry.msg else { return };
        if entry.persisted.is_some() {
            entry.msg = Held::in_log(m, None);
        } else if short || self.args.lazy {
            match store.page_out(m) {
                Ok(record) => entry.msg = Held::in_log(m, Some(record)),
                // Kept in memory then.
                Err(e) => tracing::error!(error = %e, "cannot page a message out to the log"),
            }
        }
    }

    /// FIFO: remembers the deduplication id (accepted at `now`) of a
    /// message the queue accepted, in the log too for a durable queue.
    fn remember_dedup(&self, st: &mut State, dedup: Option<(u128, u64)>) {
        let Some((id, now)) = dedup else { return };
        let expires = now.saturating_add(self.args.dedup_window.as_millis() as u64);
        let record = match (&self.store, self.record) {
            (Some(s), Some(q)) => s
                .append(records::DEDUP, records::encode_dedup(q, id, expires))
                .ok(),
            _ => None,
        };
        st.dedup.remember(id, expires, record);
    }

    /// Whether adding `count` messages of `bytes` would break a length limit.
    fn over_limit(&self, st: &State, count: u64, bytes: u64) -> bool {
        self.args
            .max_length
            .is_some_and(|max| st.len() as u64 + count > max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| st.bytes() + bytes > max)
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(&self) {
        let _wakes = DeferWakes::open();
        let dead = {
            let mut st = self.state.lock();
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.dead_letter(dead);
    }

    fn dispatch_locked(&self, st: &mut State) {
        if st.fifo.is_some() {
            self.dispatch_fifo(st);
        } else {
            self.dispatch_standard(st);
        }
        self.note_flow(st);
    }

    fn dispatch_standard(&self, st: &mut State) {
        let mut now = None;
        while !st.ready.is_empty() {
            let Some(i) = self.pick_consumer(st) else {
                break;
            };
            if st.consumers.len() == 1 {
                self.deliver_run(st, &mut now);
                continue;
            }
            let no_ack = st.consumers[i].no_ack;
            let Some((mut entry, msg)) = self.pop_unexpired(st, &mut now, no_ack) else {
                break;
            };
            let c = &st.consumers[i];
            self.hand_over(&mut entry, c.no_ack);
            c.channel.deliver(c, entry, msg);
            self.release_publishers(st);
        }
    }

    /// The next ready message of a standard queue, with its message (see
    /// [`Queue::take_message`] for `no_ack`); expired ones on the way go to
    /// `st.dead`. `now` is read once, on the first message with a TTL.
    fn pop_unexpired(
        &self,
        st: &mut State,
        now: &mut Option<u64>,
        no_ack: bool,
    ) -> Option<(Entry, Arc<Message>)> {
        while let Some(mut entry) = st.ready.pop_front() {
            if entry.expires_at.is_some()
                && entry.expired(*now.get_or_insert_with(|| self.now_ms()))
            {
                st.dead.push((entry, Reason::Expired));
                continue;
            }
            if let Some(msg) = self.take_message(&mut entry, no_ack) {
                return Some((entry, msg));
            }
        }
        None
    }

    /// The message of an entry that leaves the ready list, read back from
    /// the log if it was left there. With `no_ack` the entry is about to
    /// end, and the message is moved out of it; otherwise the entry keeps
    /// it in memory while unacked (so a requeue need not read it again).
    /// `None` when the log cannot give it back (an I/O error or damage,
    /// logged): the message is dropped, since nothing can deliver it.
    fn take_message(&self, entry: &mut Entry, no_ack: bool) -> Option<Arc<Message>> {
        let read = match (&entry.msg, &self.store) {
            (Held::Memory(m), _) if !no_ack => return Some(m.clone()),
            (Held::Memory(_), _) => {
                // Moved out: the entry ends with the delivery. (What is left
                // in it is never read.)
                let left = Held::Log {
                    body_len: 0,
                    priority: 0,
                };
                return match std::mem::replace(&mut entry.msg, left) {
                    Held::Memory(m) => Some(m),
                    _ => None,
                };
            }
            (Held::Log { .. }, Some(store)) => match &entry.persisted {
                Some(p) => store.read_message(p),
                None => Err(ReadError::Missing),
            },
            (Held::Page { record, .. }, Some(store)) => {
                let read = store.read_page(*record);
                if read.is_ok() {
                    store.forget(*record);
                }
                read
            }
            (_, None) => Err(ReadError::Missing),
        };
        match read {
            Ok(m) => {
                entry.msg = if no_ack {
                    Held::in_log(&m, None)
                } else {
                    Held::Memory(m.clone())
                };
                Some(m)
            }
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "cannot read a queued message back from the log; dropped");
                self.discard([&*entry]);
                None
            }
        }
    }

    /// A queue with one consumer hands it a run of messages — as many as
    /// its prefetch and the outbox allow — with one lock of its channel and
    /// of its outbox, in the order single deliveries would have had.
    fn deliver_run(&self, st: &mut State, now: &mut Option<u64>) {
        let c = st.consumers[0].clone();
        let mut room = c.channel.conn.outbox.room();
        // Bounded so a long backlog is not held under the lock in one go.
        // A channel-wide prefetch is shared with other queues' dispatches,
        // which may run meanwhile: one at a time then, as before runs.
        let most = if c.channel.global_prefetch.load(Ordering::Relaxed) != 0 {
            1
        } else {
            256
        };
        let credit = c.credit().min(most) as usize;
        let mut run = std::mem::take(&mut st.run);
        while run.len() < credit && room > 0 {
            let Some((mut entry, msg)) = self.pop_unexpired(st, now, c.no_ack) else {
                break;
            };
            self.hand_over(&mut entry, c.no_ack);
            room = room.saturating_sub(msg.wire_size());
            run.push((entry, msg));
        }
        if !run.is_empty() {
            c.channel.deliver_run(&c, &mut run);
        }
        st.run = run;
        self.release_publishers(st);
    }

    /// FIFO delivery: each consumer with credit, in turn, gets the oldest
    /// message it may have: the head of one of its groups or of a free one
    /// ([`Fifo::next_group_for`]).
    fn dispatch_fifo(&self, st: &mut State) {
        self.apply_settles(st);
        let mut now = None;
        loop {
            let n = if self.args.single_active_consumer {
                st.consumers.len().min(1)
            } else {
                st.consumers.len()
            };
            let mut delivered = false;
            // (Meaningful after a pass that delivers nothing.)
            st.starved = false;
            for k in 0..n {
                let i = (st.next_consumer + k) % n;
                // Cheapest checks first: has it room, is there a group it may take.
                if !st.consumers[i].has_credit() {
                    continue;
                }
                let c = &st.consumers[i];
                let key = Owner::consumer_key(c);
                let Some(f) = st.fifo.as_mut() else { return };
                let Some(group) = f.next_group_for(key) else {
                    st.starved = true;
                    continue;
                };
                if c.channel.conn.outbox.is_full()
                    && c.channel.conn.outbox.wait_for_room(self.me.clone())
                {
                    continue;
                }
                let owner = (!c.no_ack).then_some((key, || Owner::Consumer(c.clone())));
                let Some(mut entry) = f.take_for(group, owner) else {
                    continue;
                };
                if entry.expires_at.is_some()
                    && entry.expired(*now.get_or_insert_with(|| self.now_ms()))
                {
                    if !c.no_ack {
                        f.settle(&entry);
                    }
                    st.dead.push((entry, Reason::Expired));
                    delivered = true;
                    break;
                }
                let Some(msg) = self.take_message(&mut entry, c.no_ack) else {
                    continue;
                };
                self.hand_over(&mut entry, c.no_ack);
                c.channel.deliver(c, entry, msg);
                self.release_publishers(st);
                st.next_consumer = (i + 1) % n;
                delivered = true;
                break;
            }
            if !delivered {
                break;
            }
            if st.is_empty() {
                // Consumers were not all asked: assume one has credit left.
                st.starved = true;
                break;
            }
        }
        // With a channel-wide prefetch, an ack from another queue on the
        // channel gives credit back and dispatches only that queue: such
        // consumers count as waiting. (A qos change dispatches this queue.)
        if !st.starved {
            st.starved = st
                .consumers
                .iter()
                .any(|c| c.channel.global_prefetch.load(Ordering::Relaxed) != 0);
        }
    }

    /// Messages delivered with ack ended (acked or dropped): a FIFO queue
    /// releases their groups once the owner holds none.
    pub fn settled<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) {
        if self.args.kind != QueueKind::Fifo {
            // Nothing to do, and no lock to take, for other queues.
            return;
        }
        // Recorded here, applied by the next operation under the state
        // lock (`apply_settles`): held counts may lag, which only delays a
        // group's release, never hastens it.
        self.settles
            .lock()
            .extend(entries.into_iter().map(|e| e.group));
        // Written only when not set yet: every dispatch reads this flag, and
        // a write takes its cache line away from the core that does. (Seen
        // set, it is cleared by a dispatch that takes `settles` after our
        // push: see `apply_settles`.)
        if !self.settles_pending.load(Ordering::Acquire) {
            self.settles_pending.store(true, Ordering::Release);
        }
    }

    /// Applies the settles recorded by [`Queue::settled`]; every FIFO
    /// operation that looks at group ownership calls it first.
    fn apply_settles(&self, st: &mut State) {
        let Some(f) = st.fifo.as_mut() else { return };
        // (A settle recorded after this check is applied by the dispatch
        // that follows it.) Read first: most dispatches find nothing, and
        // a swap would take the cache line from the acking cores each time.
        if !self.settles_pending.load(Ordering::Acquire)
            || !self.settles_pending.swap(false, Ordering::AcqRel)
        {
            return;
        }
        let mut pending = self.settles.lock();
        for g in pending.drain(..) {
            f.settle_group(g);
        }
    }

    /// The next consumer in round-robin order that can take a message, among
    /// those of the highest consumer priority that can. With a single active
    /// consumer, only the first one registered.
    fn pick_consumer(&self, st: &mut State) -> Option<usize> {
        let n = if self.args.single_active_consumer {
            st.consumers.len().min(1)
        } else {
            st.consumers.len()
        };
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (st.next_consumer + k) % n;
            let c = &st.consumers[i];
            if !c.has_credit() {
                continue;
            }
            if c.channel.conn.outbox.is_full()
                && c.channel.conn.outbox.wait_for_room(self.me.clone())
            {
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
    pub fn get(&self, channel: &Arc<ChannelLink>, no_ack: bool) -> bool {
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        let _wakes = DeferWakes::open();
        let (found, dead) = {
            let mut st = self.state.lock();
            st.last_used = Instant::now();
            let now = self.now_ms();
            let mut found = false;
            while let Some(mut entry) = self.pop_for_get(&mut st, channel, no_ack) {
                if entry.expired(now) {
                    st.dead.push((entry, Reason::Expired));
                    continue;
                }
                let Some(mut msg) = self.take_message(&mut entry, no_ack) else {
                    continue;
                };
                self.hand_over(&mut entry, no_ack);
                if self.args.kind == QueueKind::Quorum && entry.returns == 0 {
                    // RabbitMQ's quorum queues count from 0 on basic.get
                    // (consumers see the header only on redeliveries).
                    msg = dead_letter::with_header(&msg, "x-delivery-count", FieldValue::I64(0));
                    if !no_ack {
                        entry.msg = Held::Memory(msg.clone());
                    }
                }
                let remaining = u32::try_from(st.len()).unwrap_or(u32::MAX);
                channel.get_ok(&me, entry, msg, no_ack, remaining);
                found = true;
                break;
            }
            self.note_flow(&st);
            (found, std::mem::take(&mut st.dead))
        };
        self.dead_letter(dead);
        found
    }

    /// The next message for basic.get: the head, or for a FIFO queue the
    /// next of a group this channel holds or of the oldest free group.
    fn pop_for_get(
        &self,
        st: &mut State,
        channel: &Arc<ChannelLink>,
        no_ack: bool,
    ) -> Option<Entry> {
        if st.fifo.is_none() {
            return st.ready.pop_front();
        }
        self.apply_settles(st);
        let f = st.fifo.as_mut()?;
        let owner = Owner::Get(channel.clone());
        let group = f.next_group_for(owner.key())?;
        f.take(group, (!no_ack).then_some(owner))
    }

    /// Puts messages back at their original positions, marked redelivered.
    /// A quorum queue counts the return and enforces its delivery limit.
    pub fn requeue(&self, entries: impl IntoIterator<Item = Entry>) {
        let _wakes = DeferWakes::open();
        let dead = {
            let mut st = self.state.lock();
            if st.deleted {
                let entries: Vec<Entry> = entries.into_iter().collect();
                self.discard(&entries);
                return;
            }
            if st.fifo.is_some() {
                self.requeue_fifo(&mut st, entries.into_iter().collect());
                self.dispatch_locked(&mut st);
                // Dispatch may have found expired messages: dead-letter
                // them now, without the lock.
                let dead = std::mem::take(&mut st.dead);
                drop(st);
                self.dead_letter(dead);
                return;
            }
            for mut e in entries {
                e.redelivered = true;
                if self.args.kind == QueueKind::Quorum {
                    e.returns += 1;
                    if self
                        .args
                        .delivery_limit
                        .is_some_and(|limit| u64::from(e.returns) > limit)
                    {
                        st.dead.push((e, Reason::DeliveryLimit));
                        continue;
                    }
                    let count = FieldValue::I64(i64::from(e.returns));
                    if let Held::Memory(m) = &e.msg {
                        e.msg =
                            Held::Memory(dead_letter::with_header(m, "x-delivery-count", count));
                    }
                    if let (Some(store), Some(p)) = (&self.store, e.persisted.as_mut()) {
                        store.returned(p, e.returns);
                    }
                }
                st.ready.insert_in_order(e);
            }
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.dead_letter(dead);
    }

    /// FIFO requeue: every unacked message of an affected group held by its
    /// owner comes back too, all at the head of the group in order, and the
    /// group is released.
    fn requeue_fifo(&self, st: &mut State, entries: Vec<Entry>) {
        self.apply_settles(st);
        let me = self.me.as_ptr();
        let Some(f) = st.fifo.as_mut() else { return };
        f.give_back(entries, |owner, of_group| {
            owner
                .channel()
                .take_unacked_where(|u| {
                    std::ptr::eq(Arc::as_ptr(u.queue()), me) && of_group(&u.entry)
                })
                .into_iter()
                .map(|u| u.entry)
                .collect()
        });
    }

    /// Puts back a deduplication id recovered from the log.
    pub fn restore_dedup(
        &self,
        id: u128,
        expires_ms: u64,
        record: warren_persistence::RecordId,
    ) -> bool {
        if expires_ms <= unix_ms() {
            return false;
        }
        self.state
            .lock()
            .dedup
            .remember(id, expires_ms, Some(record));
        true
    }

    /// Attaches a consumer, enforcing exclusive consumers.
    /// `on_added` runs under the queue's lock once the consumer is accepted
    /// and before anything is delivered to it (it queues consume-ok).
    pub fn add_consumer(&self, c: Arc<Consumer>, on_added: impl FnOnce()) -> Result<(), AmqpError> {
        let _wakes = DeferWakes::open();
        let dead = {
            let mut st = self.state.lock();
            if st.deleted {
                return Err(AmqpError::not_found(format!("no {}", self.describe())));
            }
            if st.consumers.iter().any(|o| o.exclusive) || (c.exclusive && !st.consumers.is_empty())
            {
                return Err(AmqpError::access_refused(format!(
                    "{} in exclusive use",
                    self.describe()
                )));
            }
            self.consumer_conns.lock().push(c.channel.conn.id);
            st.consumers.push(c);
            st.had_consumer = true;
            st.last_used = Instant::now();
            on_added();
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.dead_letter(dead);
        Ok(())
    }

    /// Detaches a consumer. Returns true when the queue should now be
    /// auto-deleted (it was auto-delete and this was its last consumer).
    pub fn remove_consumer(&self, c: &Arc<Consumer>) -> bool {
        let _wakes = DeferWakes::open();
        let mut st = self.state.lock();
        let was_active = st.consumers.first().is_some_and(|f| Arc::ptr_eq(f, c));
        let before = st.consumers.len();
        st.consumers.retain(|o| !Arc::ptr_eq(o, c));
        if st.consumers.len() < before {
            let mut conns = self.consumer_conns.lock();
            if let Some(i) = conns.iter().position(|id| *id == c.channel.conn.id) {
                conns.swap_remove(i);
            }
        }
        self.note_flow(&st);
        if st.next_consumer >= st.consumers.len() {
            st.next_consumer = 0;
        }
        if st.consumers.is_empty() {
            self.flow.notify_waiters();
        }
        st.last_used = Instant::now();
        if st.consumers.is_empty() && self.args.expires.is_some() {
            self.wake.notify_one();
        }
        let auto_delete =
            self.options.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted;
        if was_active && self.args.single_active_consumer && !st.consumers.is_empty() {
            // The next consumer takes over.
            self.dispatch_locked(&mut st);
        }
        auto_delete
    }

    /// Puts back a message recovered from the log, in log order.
    pub fn restore(&self, msg: Arc<Message>, persisted: Persisted) {
        let expires_at = self.expiry_for(&msg);
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let redelivered = persisted.marker.is_some();
        let returns = persisted.returns;
        let mut entry = Entry {
            msg: Held::Memory(msg),
            seq,
            redelivered,
            persisted: Some(persisted),
            expires_at,
            returns,
            group: 0,
        };
        if self.args.kind == QueueKind::Quorum && returns > 0 {
            // Kept in memory: its delivery count is a header the log lacks.
            let count = FieldValue::I64(i64::from(returns));
            if let Held::Memory(m) = &entry.msg {
                entry.msg = Held::Memory(dead_letter::with_header(m, "x-delivery-count", count));
            }
        } else {
            self.page_if_behind(&st, &mut entry);
        }
        if let Held::Memory(m) = &entry.msg {
            // What recovery read is a slice of a whole segment: a message
            // that stays must not hold on to that.
            entry.msg = Held::Memory(Arc::new(m.detached()));
        }
        // (A FIFO queue files it under its group.)
        st.push_ready(entry, None);
    }

    /// Makes room for `n` more ready messages (recovery knows how many).
    pub fn reserve(&self, n: usize) {
        let mut st = self.state.lock();
        if st.fifo.is_none() {
            st.ready.reserve(n);
        }
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.state.lock().len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.state.lock().consumers.len()).unwrap_or(u32::MAX)
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let all = st.drain_all();
        self.note_flow(&st);
        self.discard(&all);
        u32::try_from(all.len()).unwrap_or(u32::MAX)
    }

    pub fn check_delete(&self, if_unused: bool, if_empty: bool) -> Result<(), AmqpError> {
        let st = self.state.lock();
        if if_unused && !st.consumers.is_empty() {
            return Err(AmqpError::precondition(format!(
                "{} in use",
                self.describe()
            )));
        }
        if if_empty && !st.is_empty() {
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
        self.gone.store(true, Ordering::Release);
        self.flow.notify_waiters();
        let all = st.drain_all();
        self.discard(&all);
        self.wake.notify_one();
        self.consumer_conns.lock().clear();
        let consumers = std::mem::take(&mut st.consumers);
        self.note_flow(&st);
        (u32::try_from(all.len()).unwrap_or(u32::MAX), consumers)
    }

    /// Republishes messages to the dead-letter exchange (or drops them when
    /// there is none). Called without the queue's lock.
    fn dead_letter(&self, dead: Vec<(Entry, Reason)>) {
        if dead.is_empty() {
            return;
        }
        let target = self
            .args
            .dead_letter_exchange
            .as_ref()
            .and_then(|name| Some((self.vhost_ref.upgrade()?, name)))
            .and_then(|(vhost, name)| Some((vhost.exchange(name).ok()?, vhost)));
        let Some((exchange, vhost)) = target else {
            // No dead-letter exchange (or it is gone): the messages are dropped.
            for (entry, _) in &dead {
                self.discard([entry]);
            }
            return;
        };
        let mut scratch = RouteScratch::default();
        for (mut entry, reason) in dead {
            // (Moved out: the entry ends here, discarded below.)
            let Some(original) = self.take_message(&mut entry, true) else {
                continue;
            };
            let key = self
                .args
                .dead_letter_routing_key
                .clone()
                .unwrap_or_else(|| original.routing_key.clone());
            let msg =
                dead_letter::dead_lettered(&original, reason, &self.name, &exchange.name, &key);
            // Every key the message was published with (or the queue's
            // dead-letter key), each matching queue once.
            scratch.queues.clear();
            for key in self.dead_letter_keys(&original) {
                vhost.route(
                    &exchange,
                    &key,
                    msg.properties.headers().as_deref(),
                    &mut scratch,
                );
            }
            scratch
                .queues
                .retain(|q| !dead_letter::is_cycle(&msg, &q.name));
            if scratch.queues.is_empty() {
                tracing::debug!(queue = %self.name, "dead letter routed nowhere; dropped");
            } else {
                match (&vhost.store, msg.is_persistent()) {
                    (Some(store), true) => {
                        if let Err(e) =
                            super::channel::persist_and_push(store, &msg, &scratch.queues)
                        {
                            tracing::warn!(error = %e, "dead-lettering failed");
                        }
                    }
                    _ => {
                        super::channel::push_all(&msg, &scratch.queues);
                    }
                }
            }
            self.discard([&entry]);
        }
    }

    /// The keys a dead letter is routed with: the queue's
    /// `x-dead-letter-routing-key`, else the keys it was published with.
    fn dead_letter_keys(&self, msg: &Message) -> Vec<ShortStr> {
        match &self.args.dead_letter_routing_key {
            Some(k) => vec![k.clone()],
            None => dead_letter::routing_keys(msg),
        }
    }

    fn start_janitor(&self, st: &mut State) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        st.janitor = true;
        handle.spawn(janitor(self.me.clone(), self.wake.clone()));
    }

    /// When the expiry task must next look: the first head expiry, or when
    /// an unused queue expires.
    fn next_deadline(&self) -> Option<Instant> {
        let mut st = self.state.lock();
        let head = st
            .next_expiry()
            .map(|ms| self.epoch + Duration::from_millis(ms.saturating_add(1)));
        let unused = match (self.args.expires, st.consumers.is_empty()) {
            (Some(ttl), true) => Some(st.last_used + ttl),
            _ => None,
        };
        match (head, unused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires head messages whose time has come, and deletes the queue
    /// if it went unused for `x-expires`. False once the queue is gone.
    fn expire_now(&self) -> bool {
        let now = self.now_ms();
        let (dead, delete) = {
            let mut st = self.state.lock();
            if st.deleted {
                return false;
            }
            let mut expired = Vec::new();
            st.take_expired(now, &mut expired);
            st.dead
                .extend(expired.into_iter().map(|e| (e, Reason::Expired)));
            self.note_flow(&st);
            let delete = self
                .args
                .expires
                .is_some_and(|ttl| st.consumers.is_empty() && st.last_used.elapsed() >= ttl);
            (std::mem::take(&mut st.dead), delete)
        };
        self.dead_letter(dead);
        if delete {
            if let (Some(vhost), Some(me)) = (self.vhost_ref.upgrade(), self.me.upgrade()) {
                vhost.delete_queue(&me);
            }
            return false;
        }
        true
    }
}

/// Per-queue task for time-based behaviour: expires messages that reach
/// their TTL even when nobody consumes, and deletes unused queues.
async fn janitor(queue: Weak<Queue>, wake: Arc<Notify>) {
    loop {
        let deadline = match queue.upgrade() {
            Some(q) => q.next_deadline(),
            None => return,
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
        match queue.upgrade() {
            Some(q) if q.expire_now() => {}
            _ => return,
        }
    }
}

/// Wall-clock milliseconds, for state that must outlive a restart.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::link::ConnectionLink;
    use crate::core::outbox::Outbox;

    fn queue(args: QueueArgs) -> Arc<Queue> {
        Queue::new(
            ShortStr::from_static("q"),
            "/".to_string(),
            QueueOptions {
                durable: false,
                exclusive_owner: None,
                auto_delete: false,
                arguments: FieldTable::new(),
            },
            args,
            None,
            None,
            Weak::new(),
        )
    }

    fn consumer(q: &Arc<Queue>, conn: u64, tag: &'static str, no_ack: bool, prefetch: u32) {
        let link = Arc::new(ConnectionLink {
            id: ConnectionId(conn),
            outbox: Outbox::new(1 << 20),
            consumer_cancel_notify: AtomicBool::new(false),
        });
        let channel = Arc::new(ChannelLink::new(1, link));
        let tag = ShortStr::from_static(tag);
        let c = Consumer::new(tag, channel, q.clone(), no_ack, false, prefetch, 0);
        assert!(q.add_consumer(Arc::new(c), || {}).is_ok());
    }

    fn publish(q: &Queue, n: usize) {
        for _ in 0..n {
            let msg = Message {
                exchange: ShortStr::from_static(""),
                routing_key: ShortStr::from_static("q"),
                properties: Default::default(),
                body: bytes::Bytes::from_static(b"m"),
            };
            q.push(Arc::new(msg), None);
        }
    }

    fn max_length(n: u64) -> QueueArgs {
        QueueArgs {
            max_length: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_to_a_connection_that_is_going_stays_unacked_for_the_requeue() {
        let q = queue(QueueArgs::default());
        let link = Arc::new(ConnectionLink {
            id: ConnectionId(1),
            outbox: Outbox::new(1 << 20),
            consumer_cancel_notify: AtomicBool::new(false),
        });
        let channel = Arc::new(ChannelLink::new(1, link.clone()));
        let tag = ShortStr::from_static("going");
        let c = Consumer::new(tag, channel.clone(), q.clone(), false, false, 10, 0);
        assert!(q.add_consumer(Arc::new(c), || {}).is_ok());
        // The socket is gone; the session has not released the channel yet.
        link.outbox.close();
        publish(&q, 3);
        assert_eq!(q.message_count(), 0);
        let mut taken = Vec::new();
        assert!(channel.take_unacked_into(0, true, &mut taken));
        let tags: Vec<u64> = taken.iter().map(|u| u.tag).collect();
        assert_eq!(tags, vec![1, 2, 3]);
    }

    #[test]
    fn a_full_length_limited_queue_holds_back_publishers_of_other_connections() {
        let q = queue(max_length(10));
        consumer(&q, 1, "stalled", false, 1);
        publish(&q, 10);
        assert!(!q.is_congested_for(ConnectionId(2)), "9 ready of 10");
        publish(&q, 5);
        assert_eq!(q.message_count(), 10);
        assert!(q.is_congested_for(ConnectionId(2)));
        assert!(
            !q.is_congested_for(ConnectionId(1)),
            "never the consumer's own connection"
        );
    }

    #[test]
    fn an_unlimited_queue_is_congested_only_far_behind() {
        let q = queue(QueueArgs::default());
        consumer(&q, 1, "stalled", false, 1);
        publish(&q, 1_000);
        assert!(!q.is_congested_for(ConnectionId(2)));
        publish(&q, FLOW_HIGH);
        assert!(q.is_congested_for(ConnectionId(2)));
    }

    #[test]
    fn a_byte_limited_queue_is_congested_when_three_quarters_full() {
        let q = queue(QueueArgs {
            max_length_bytes: Some(8),
            ..Default::default()
        });
        consumer(&q, 1, "stalled", false, 1);
        publish(&q, 6);
        assert!(!q.is_congested_for(ConnectionId(2)), "5 bytes ready of 8");
        publish(&q, 1);
        assert!(q.is_congested_for(ConnectionId(2)));
    }

    #[tokio::test]
    async fn a_held_back_publisher_goes_on_once_consumers_drain_to_the_low_mark() {
        let q = queue(max_length(100));
        consumer(&q, 1, "stalled", false, 1);
        publish(&q, 101);
        assert!(q.is_congested_for(ConnectionId(2)));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.wait_uncongested(Duration::from_secs(600)).await })
        };
        // The waiter has registered once the flag is up.
        while !q.flow_waiting.load(Ordering::Relaxed) {
            tokio::task::yield_now().await;
        }
        consumer(&q, 1, "fast", true, 0);
        let released = tokio::time::timeout(Duration::from_secs(30), waiter).await;
        assert!(
            matches!(released, Ok(Ok(()))),
            "the publisher was not released"
        );
        assert_eq!(q.message_count(), 0);
    }
}
