//! The parts of a connection and its channels that queues reach into.
//!
//! A queue delivering a message needs the consumer's channel: to take the
//! next delivery tag, to remember the message as unacked, and to put the
//! delivery in the connection's outbox. Those pieces live here, shared
//! (`Arc`) between the connection that owns the channel and the queues.
//!
//! Lock order: a queue's lock may be held while taking a channel's lock,
//! which may be held while pushing to an outbox. Never the other way round,
//! and never two queue locks at once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use warren_protocol::ShortStr;

use super::message::Message;
use super::outbox::{Outbound, Outbox};
use super::queue::{Entry, Queue};
use crate::store::Persistence;

/// Identifies a connection inside one broker (for exclusive queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// What a connection shares with the core.
pub struct ConnectionLink {
    pub id: ConnectionId,
    pub outbox: Outbox,
    /// The client told us (capabilities) it understands a server-sent basic.cancel.
    pub consumer_cancel_notify: AtomicBool,
}

/// A message delivered on a channel and not yet acknowledged.
pub struct Unacked {
    pub tag: u64,
    pub entry: Entry,
    pub from: Source,
}

/// Where an unacked message came from.
pub enum Source {
    /// A consumer, attached to the message's queue. (The queue is not kept
    /// beside it: every connection would bump and drop the queue's one
    /// reference count for every delivery.)
    Consumer(Arc<Consumer>),
    /// basic.get from this queue.
    Get(Arc<Queue>),
}

impl Unacked {
    /// The queue the message came from.
    pub fn queue(&self) -> &Arc<Queue> {
        match &self.from {
            Source::Consumer(c) => &c.queue,
            Source::Get(q) => q,
        }
    }
}

#[derive(Default)]
struct Deliveries {
    next_tag: u64,
    /// Ordered by tag, since tags are handed out in increasing order.
    unacked: VecDeque<Unacked>,
    consumers: Vec<Arc<Consumer>>,
}

/// A channel as queues see it.
pub struct ChannelLink {
    pub id: u16,
    pub conn: Arc<ConnectionLink>,
    state: Mutex<Deliveries>,
    /// basic.qos global=true: limit on unacked messages across the channel.
    pub global_prefetch: AtomicU32,
    global_unacked: AtomicU32,
    closed: AtomicBool,
    /// Replies waiting for the log to make what they promise durable, in
    /// order, each with the record id it waits for.
    deferred: Mutex<VecDeque<(u64, Outbound)>>,
    /// Listed with the log's waiters.
    watched: AtomicBool,
}

impl ChannelLink {
    pub fn new(id: u16, conn: Arc<ConnectionLink>) -> ChannelLink {
        ChannelLink {
            id,
            conn,
            state: Mutex::new(Deliveries {
                next_tag: 1,
                ..Default::default()
            }),
            global_prefetch: AtomicU32::new(0),
            global_unacked: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            deferred: Mutex::new(VecDeque::new()),
            watched: AtomicBool::new(false),
        }
    }

    /// Sends `item` once record `lsn` is durable (0: depends on nothing),
    /// and never before anything deferred earlier on this channel.
    pub fn send_after(self: &Arc<Self>, lsn: u64, item: Outbound, store: Option<&Persistence>) {
        let Some(store) = store else {
            self.conn.outbox.push(item);
            return;
        };
        {
            let mut d = self.deferred.lock();
            if d.is_empty() && store.durable() >= lsn {
                drop(d);
                self.conn.outbox.push(item);
                return;
            }
            d.push_back((lsn, item));
        }
        store.watch(self);
    }

    /// Sends what the watermark now covers; true if anything still waits.
    pub fn release_durable(&self, durable: u64) -> bool {
        let mut d = self.deferred.lock();
        while d.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, item)) = d.pop_front() {
                self.conn.outbox.push(item);
            }
        }
        !d.is_empty()
    }

    /// Sets the watched flag, returning its previous value.
    pub fn set_watched(&self, on: bool) -> bool {
        self.watched.swap(on, Ordering::SeqCst)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the channel-wide prefetch leaves room for one more delivery.
    fn global_credit(&self) -> bool {
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        limit == 0 || self.global_unacked.load(Ordering::Relaxed) < limit
    }

    /// Sends a message to a consumer: tags it, records it as unacked unless
    /// the consumer is no-ack, and queues the deliver frame. Called with the
    /// lock of the consumer's queue held. `msg` is the entry's message.
    pub fn deliver(&self, consumer: &Arc<Consumer>, entry: Entry, msg: Arc<Message>) {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        let out = self.deliver_item(consumer, tag, entry.redelivered, msg);
        if !consumer.no_ack {
            consumer.unacked.fetch_add(1, Ordering::Relaxed);
            self.global_unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked.push_back(Unacked {
                tag,
                entry,
                from: Source::Consumer(consumer.clone()),
            });
        }
        if self.conn.outbox.push_quiet(out) {
            wake_writer(&self.conn);
        }
    }

    fn deliver_item(
        &self,
        consumer: &Consumer,
        delivery_tag: u64,
        redelivered: bool,
        msg: Arc<Message>,
    ) -> Outbound {
        Outbound::Deliver {
            channel: self.id,
            consumer_tag: consumer.tag.clone(),
            delivery_tag,
            redelivered,
            msg,
        }
    }

    /// [`ChannelLink::deliver`] for a run of messages to one consumer
    /// (`entries` is left empty): one lock of the channel and one of the
    /// outbox for the whole run. The caller keeps the run within
    /// [`Consumer::credit`].
    pub fn deliver_run(&self, consumer: &Arc<Consumer>, entries: &mut Vec<(Entry, Arc<Message>)>) {
        let n = entries.len();
        let mut st = self.state.lock();
        let first = st.next_tag;
        st.next_tag += n as u64;
        if !consumer.no_ack {
            consumer.unacked.fetch_add(n as u32, Ordering::Relaxed);
            self.global_unacked.fetch_add(n as u32, Ordering::Relaxed);
        }
        let items = entries.drain(..).zip(first..).map(|((entry, msg), tag)| {
            let out = self.deliver_item(consumer, tag, entry.redelivered, msg);
            if consumer.no_ack {
                // Nothing keeps the entry.
                return out;
            }
            st.unacked.push_back(Unacked {
                tag,
                entry,
                from: Source::Consumer(consumer.clone()),
            });
            out
        });
        // (Runs `items` even when the connection is going: the unacked
        // entries must be recorded, to be requeued when it is gone.)
        let pushed = self.conn.outbox.push_run_quiet(items);
        drop(st);
        if pushed {
            wake_writer(&self.conn);
        }
    }

    /// Answers a basic.get with a message. Called with the queue's lock held.
    pub fn get_ok(
        &self,
        queue: &Arc<Queue>,
        entry: Entry,
        msg: Arc<Message>,
        no_ack: bool,
        message_count: u32,
    ) {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        let out = Outbound::GetOk {
            channel: self.id,
            delivery_tag: tag,
            redelivered: entry.redelivered,
            message_count,
            msg,
        };
        if !no_ack {
            self.global_unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked.push_back(Unacked {
                tag,
                entry,
                from: Source::Get(queue.clone()),
            });
        }
        if self.conn.outbox.push_quiet(out) {
            wake_writer(&self.conn);
        }
    }

    /// Moves unacked messages by tag into `taken` (a buffer the caller
    /// reuses): the one tag, or with `multiple` every tag up to it (tag 0
    /// with `multiple` means all). False, and nothing moved, when a named
    /// tag is not outstanding, which the client must be told (406).
    pub fn take_unacked_into(&self, tag: u64, multiple: bool, taken: &mut Vec<Unacked>) -> bool {
        let start = taken.len();
        let mut st = self.state.lock();
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            // As in RabbitMQ, the named tag itself must be outstanding.
            if tag != 0 && st.unacked.binary_search_by_key(&tag, |u| u.tag).is_err() {
                return false;
            }
            let n = st.unacked.partition_point(|u| u.tag <= upto);
            taken.extend(st.unacked.drain(..n));
        } else if st.unacked.front().is_some_and(|u| u.tag == tag) {
            // The usual case: consumers ack in the order they were sent.
            taken.extend(st.unacked.pop_front());
        } else {
            let Ok(i) = st.unacked.binary_search_by_key(&tag, |u| u.tag) else {
                return false;
            };
            taken.extend(st.unacked.remove(i));
        }
        drop(st);
        for u in &taken[start..] {
            self.release_credit(u);
        }
        true
    }

    /// The unacked messages matching `pred`, in tag order.
    pub fn take_unacked_where(&self, mut pred: impl FnMut(&Unacked) -> bool) -> Vec<Unacked> {
        let mut st = self.state.lock();
        let mut taken = Vec::new();
        let mut kept = std::collections::VecDeque::with_capacity(st.unacked.len());
        for u in st.unacked.drain(..) {
            if pred(&u) {
                taken.push(u);
            } else {
                kept.push_back(u);
            }
        }
        st.unacked = kept;
        drop(st);
        for u in &taken {
            self.release_credit(u);
        }
        taken
    }

    /// Every unacked message, in tag order (for close and recover).
    pub fn take_all_unacked(&self) -> Vec<Unacked> {
        let taken: Vec<Unacked> = self.state.lock().unacked.drain(..).collect();
        for u in &taken {
            self.release_credit(u);
        }
        taken
    }

    fn release_credit(&self, u: &Unacked) {
        if let Source::Consumer(c) = &u.from {
            c.unacked.fetch_sub(1, Ordering::Relaxed);
        }
        self.global_unacked.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn add_consumer(&self, c: Arc<Consumer>) {
        self.state.lock().consumers.push(c);
    }

    pub fn find_consumer(&self, tag: &ShortStr) -> Option<Arc<Consumer>> {
        self.state
            .lock()
            .consumers
            .iter()
            .find(|c| &c.tag == tag)
            .cloned()
    }

    pub fn remove_consumer(&self, tag: &ShortStr) -> Option<Arc<Consumer>> {
        let mut st = self.state.lock();
        let i = st.consumers.iter().position(|c| &c.tag == tag)?;
        Some(st.consumers.swap_remove(i))
    }

    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.state.lock().consumers.clone()
    }

    /// Marks the channel closed and hands back its consumers so the caller
    /// can detach them from their queues.
    pub fn close(&self) -> Vec<Arc<Consumer>> {
        self.closed.store(true, Ordering::Release);
        self.deferred.lock().clear();
        std::mem::take(&mut self.state.lock().consumers)
    }
}

thread_local! {
    /// Writers to wake once this thread leaves the scope of its outermost
    /// [`DeferWakes`], and how many scopes are open.
    static DEFERRED: RefCell<(usize, Vec<Arc<ConnectionLink>>)> =
        const { RefCell::new((0, Vec::new())) };
}

/// While one is alive, deliveries on this thread wake their connections'
/// writers only when it ends. A queue opens one before taking its lock: a
/// wake-up can hand the writer's task to another thread, and that costs
/// far more than the delivery; done under the lock, every other thread
/// waiting for the queue waits for it too. (Not `Send`: it must end on the
/// thread that opened it, so it cannot be held across an await.)
pub struct DeferWakes(PhantomData<*const ()>);

impl DeferWakes {
    pub fn open() -> DeferWakes {
        DEFERRED.with(|d| d.borrow_mut().0 += 1);
        DeferWakes(PhantomData)
    }
}

impl Drop for DeferWakes {
    fn drop(&mut self) {
        let mut conns = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            d.0 -= 1;
            if d.0 == 0 {
                std::mem::take(&mut d.1)
            } else {
                Vec::new()
            }
        });
        for conn in conns.drain(..) {
            conn.outbox.wake();
        }
        // Hand the (empty) list back so its allocation is reused.
        DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            if d.1.capacity() == 0 {
                d.1 = conns;
            }
        });
    }
}

/// Wakes `conn`'s writer now, or at the end of the open [`DeferWakes`].
fn wake_writer(conn: &Arc<ConnectionLink>) {
    let now = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 == 0 {
            return true;
        }
        if !d.1.iter().any(|c| Arc::ptr_eq(c, conn)) {
            d.1.push(conn.clone());
        }
        false
    });
    if now {
        conn.outbox.wake();
    }
}

/// A consumer attached to a queue.
pub struct Consumer {
    pub tag: ShortStr,
    pub channel: Arc<ChannelLink>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 = none.
    pub prefetch: u32,
    /// `x-priority` from basic.consume; higher goes first.
    pub priority: i32,
    pub queue: Arc<Queue>,
    unacked: AtomicU32,
}

impl Consumer {
    pub fn new(
        tag: ShortStr,
        channel: Arc<ChannelLink>,
        queue: Arc<Queue>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u32,
        priority: i32,
    ) -> Consumer {
        Consumer {
            tag,
            channel,
            no_ack,
            exclusive,
            prefetch,
            priority,
            queue,
            unacked: AtomicU32::new(0),
        }
    }

    /// How many more deliveries the prefetch limits allow now.
    pub fn credit(&self) -> u32 {
        if self.channel.is_closed() {
            return 0;
        }
        if self.no_ack {
            return u32::MAX;
        }
        let own = match self.prefetch {
            0 => u32::MAX,
            p => p.saturating_sub(self.unacked.load(Ordering::Relaxed)),
        };
        let global = match self.channel.global_prefetch.load(Ordering::Relaxed) {
            0 => u32::MAX,
            g => g.saturating_sub(self.channel.global_unacked.load(Ordering::Relaxed)),
        };
        own.min(global)
    }

    /// Whether this consumer may take one more message now.
    pub fn has_credit(&self) -> bool {
        if self.channel.is_closed() {
            return false;
        }
        if !self.no_ack {
            if self.prefetch != 0 && self.unacked.load(Ordering::Relaxed) >= self.prefetch {
                return false;
            }
            if !self.channel.global_credit() {
                return false;
            }
        }
        true
    }
}
