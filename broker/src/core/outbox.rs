//! What the broker has to send to one connection, in order.
//!
//! Replies, deliveries and confirms for a connection all go through its
//! outbox, so their order on the wire is the order the core produced them.
//! The TCP writer drains it in batches (one socket write for many frames);
//! the in-process API reads the same items without encoding them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;
use warren_protocol::{Method, ShortStr};

use super::message::Message;
use super::queue::Queue;

/// One item for the client.
#[derive(Debug)]
pub enum Outbound {
    /// Boxed: replies are rare next to deliveries, and every item of an
    /// outbox is as large as the largest variant.
    Method {
        channel: u16,
        method: Box<Method>,
    },
    Deliver {
        channel: u16,
        consumer_tag: ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        msg: Arc<Message>,
    },
    GetOk {
        channel: u16,
        delivery_tag: u64,
        redelivered: bool,
        message_count: u32,
        msg: Arc<Message>,
    },
    Return {
        channel: u16,
        reply_code: u16,
        reply_text: ShortStr,
        msg: Arc<Message>,
    },
    /// A publisher confirm; runs of these on one channel are merged into one
    /// `multiple` ack by the writer since confirms are issued in order.
    Confirm {
        channel: u16,
        delivery_tag: u64,
        ack: bool,
    },
    Heartbeat,
}

impl Outbound {
    pub fn method(channel: u16, method: Method) -> Outbound {
        Outbound::Method {
            channel,
            method: Box::new(method),
        }
    }

    fn cost(&self) -> usize {
        match self {
            Outbound::Deliver { msg, .. }
            | Outbound::GetOk { msg, .. }
            | Outbound::Return { msg, .. } => msg.wire_size(),
            _ => 32,
        }
    }
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Outbound>,
    /// What `items` cost: handed to the writer with them.
    queued: usize,
    /// What was queued and is not written yet (`queued` included).
    bytes: usize,
    closed: bool,
    /// Queues that stopped delivering because this outbox was full.
    waiting: Vec<Weak<Queue>>,
}

/// The ordered queue of items for one connection, with a byte budget.
pub struct Outbox {
    inner: Mutex<Inner>,
    /// `inner.bytes`, readable without the lock: queues check it for every
    /// delivery, under their own lock.
    bytes: AtomicUsize,
    notify: Notify,
    high_water: usize,
}

impl Outbox {
    pub fn new(high_water: usize) -> Outbox {
        Outbox {
            inner: Mutex::new(Inner::default()),
            bytes: AtomicUsize::new(0),
            notify: Notify::new(),
            high_water,
        }
    }

    pub fn push(&self, item: Outbound) {
        if self.push_quiet(item) {
            self.wake();
        }
    }

    /// Queues `item` without waking the writer; true when the caller must
    /// [`Outbox::wake`] it (the item was taken).
    pub fn push_quiet(&self, item: Outbound) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed {
            return false;
        }
        let cost = item.cost();
        inner.queued += cost;
        inner.bytes += cost;
        self.bytes.store(inner.bytes, Ordering::Relaxed);
        inner.items.push_back(item);
        true
    }

    /// Bytes that may still be queued before the outbox is full.
    pub fn room(&self) -> usize {
        self.high_water
            .saturating_sub(self.bytes.load(Ordering::Relaxed))
    }

    /// [`Outbox::push_quiet`] for a run of items, with one lock. `items` is
    /// run to its end in any case — whatever making an item does happens —
    /// and the items are dropped if the outbox is closed.
    pub fn push_run_quiet(&self, items: impl IntoIterator<Item = Outbound>) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed {
            items.into_iter().for_each(drop);
            return false;
        }
        for item in items {
            let cost = item.cost();
            inner.queued += cost;
            inner.bytes += cost;
            inner.items.push_back(item);
        }
        self.bytes.store(inner.bytes, Ordering::Relaxed);
        true
    }

    /// Wakes the writer to send what was queued.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// True while the client has not read what was already queued: the
    /// broker then holds further deliveries back instead of buffering them.
    pub fn is_full(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= self.high_water
    }

    /// Remembers a queue to resume when the outbox drains, if it is still
    /// full; false when it is not (any more), and the queue may go on. The
    /// check and the registration are one step under the lock, so the
    /// writer's [`Outbox::written`] cannot slip between them unseen.
    pub fn wait_for_room(&self, queue: Weak<Queue>) -> bool {
        let mut inner = self.inner.lock();
        if inner.bytes < self.high_water {
            return false;
        }
        if !inner.waiting.iter().any(|w| w.ptr_eq(&queue)) {
            inner.waiting.push(queue);
        }
        true
    }

    /// Moves everything queued into `batch` (which the caller reuses);
    /// returns what it costs, for [`Outbox::written`] once it is sent.
    pub fn drain_into(&self, batch: &mut VecDeque<Outbound>) -> usize {
        let mut inner = self.inner.lock();
        std::mem::swap(&mut inner.items, batch);
        std::mem::take(&mut inner.queued)
    }

    /// Called by the writer once a drained batch is written: frees the
    /// budget and wakes queues that were held back.
    pub fn written(&self, bytes: usize) {
        let waiting = {
            let mut inner = self.inner.lock();
            inner.bytes = inner.bytes.saturating_sub(bytes);
            self.bytes.store(inner.bytes, Ordering::Relaxed);
            if inner.bytes < self.high_water / 2 && !inner.waiting.is_empty() {
                std::mem::take(&mut inner.waiting)
            } else {
                Vec::new()
            }
        };
        for q in waiting.into_iter().filter_map(|w| w.upgrade()) {
            q.dispatch();
        }
    }

    /// Waits until something is pushed (or the outbox is closed).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// No more items are accepted; wakes the writer so it can finish.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.notify.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }
}
