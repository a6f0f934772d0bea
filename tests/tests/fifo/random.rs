//! A randomized run against a model of the FIFO queue, over TCP with lapin.
//!
//! Several consumers (different prefetch counts) and one basic.get channel
//! work on many groups with random acks, nacks and rejects (with and
//! without requeue, single and multiple), cancels, re-consumes, channel
//! closes and connection closes, while a publisher adds messages. The seed
//! is printed; `WARREN_FIFO_SEED=<n>` replays the same sequence of actions
//! (the broker's timing may still differ).
//!
//! The model keeps, per group, the messages the broker must still hand out
//! in order (the group's head first). After every step it checks:
//! - every fresh delivery of a group is that group's current head, so each
//!   consumer sees each group in publish order, restarting from the head
//!   when messages were returned (then marked redelivered);
//! - no group is held by two owners (consumers or the basic.get channel);
//! - no consumer holds more than its prefetch;
//! - no message is acked twice, or acked and dead-lettered.
//!
//! At the end every message must be acked exactly once or dead-lettered
//! exactly once (the dead-letter queue holds exactly the rejected ones).
//!
//! When a consumer returns a group (nack/reject with requeue), deliveries
//! of that group already on the wire to it were returned too: a passive
//! declare on the same channel (a fence) brings them in, and they are
//! recognised as stale (any delivery of the group before its head comes
//! again) and not acked.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use crate::*;

const MESSAGES: usize = 600;
const GROUPS: usize = 16;
const CONSUMERS: usize = 4;
const PREFETCHES: [u16; 5] = [1, 2, 3, 5, 10];
const MAX_STEPS: usize = 3000;
const RANDOM_PHASE: Duration = Duration::from_secs(25);
const FINAL_PHASE: Duration = Duration::from_secs(20);
const Q: &str = "fifo-random";
const DLQ: &str = "fifo-random-dlq";

/// splitmix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len())]
    }
}

/// A message delivered to an owner and not settled yet.
struct Held {
    tag: u64,
    id: usize,
    owner: String,
}

#[derive(PartialEq, Clone, Copy, Debug)]
enum State {
    Consuming,
    Cancelled,
    Closed,
}

struct Slot {
    getter: bool,
    conn: Connection,
    ch: Channel,
    consumer: Option<Consumer>,
    /// The owner name of the current consumer (or of the getter channel).
    owner: String,
    prefetch: u16,
    state: State,
    held: Vec<Held>,
    generation: usize,
}

#[derive(Default)]
struct Stats {
    deliveries: usize,
    redelivered: usize,
    stale: usize,
    acks: usize,
    requeues: usize,
    dead: usize,
    cancels: usize,
    closes: usize,
    connection_closes: usize,
    gets: usize,
}

struct Model {
    seed: u64,
    group: Vec<usize>,
    pos: Vec<usize>,
    /// Per group: what the broker still has to hand out, head first.
    queues: Vec<VecDeque<usize>>,
    published: usize,
    returned: HashSet<usize>,
    /// Possibly returned without the client seeing the delivery (it was on
    /// the wire when its channel closed): redelivered may be either.
    maybe_returned: HashSet<usize>,
    acked: HashSet<usize>,
    dead: HashSet<usize>,
    /// Last position seen per (owner, group), for the per-consumer view.
    last_pos: HashMap<(String, usize), usize>,
    stats: Stats,
    log: VecDeque<String>,
}

impl Model {
    fn fail(&self, what: String) -> ! {
        let recent: Vec<&String> = self.log.iter().collect();
        panic!(
            "{what}\nseed {} (replay: WARREN_FIFO_SEED={})\nlast steps:\n  {}",
            self.seed,
            self.seed,
            recent
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }

    fn note(&mut self, s: String) {
        if self.log.len() == 40 {
            self.log.pop_front();
        }
        self.log.push_back(s);
    }

    /// A delivery the broker handed out now (not a stale one).
    fn fresh(
        &mut self,
        slots: &mut [Slot],
        s: usize,
        owner: &str,
        tag: u64,
        id: usize,
        redelivered: bool,
    ) {
        let g = self.group[id];
        self.stats.deliveries += 1;
        if redelivered {
            self.stats.redelivered += 1;
        }
        if self.queues[g].front() != Some(&id) {
            self.fail(format!(
                "{owner} got message {id} (group {g}, #{}) but the head of group {g} is {:?}",
                self.pos[id],
                self.queues[g].front()
            ));
        }
        for (i, slot) in slots.iter().enumerate() {
            if let Some(h) = slot
                .held
                .iter()
                .find(|h| h.owner != owner && self.group[h.id] == g)
            {
                self.fail(format!(
                    "group {g} given to {owner} (message {id}) while {} (slot {i}) holds message {}",
                    h.owner, h.id
                ));
            }
        }
        if self.acked.contains(&id) || self.dead.contains(&id) {
            self.fail(format!("message {id} delivered again after it was settled"));
        }
        if self.returned.contains(&id) && !redelivered {
            self.fail(format!(
                "message {id} came back without the redelivered flag"
            ));
        }
        if !self.returned.contains(&id) && !self.maybe_returned.contains(&id) && redelivered {
            self.fail(format!(
                "message {id} is marked redelivered on its first delivery"
            ));
        }
        let key = (owner.to_string(), g);
        if let Some(last) = self.last_pos.get(&key) {
            if self.pos[id] <= *last && !redelivered {
                self.fail(format!(
                    "{owner} saw group {g} out of order: #{} after #{last}",
                    self.pos[id]
                ));
            }
        }
        self.last_pos.insert(key, self.pos[id]);
        self.queues[g].pop_front();
        slots[s].held.push(Held {
            tag,
            id,
            owner: owner.to_string(),
        });
    }

    /// Messages returned to their queue: back to the head of their groups, in order.
    fn put_back(&mut self, ids: Vec<usize>) {
        let mut by_group: HashMap<usize, Vec<usize>> = HashMap::new();
        for id in ids {
            self.returned.insert(id);
            by_group.entry(self.group[id]).or_default().push(id);
        }
        for (g, mut ids) in by_group {
            ids.sort_by_key(|id| self.pos[*id]);
            for id in ids.into_iter().rev() {
                self.queues[g].push_front(id);
            }
        }
    }

    fn settle_ack(&mut self, id: usize) {
        if !self.acked.insert(id) || self.dead.contains(&id) {
            self.fail(format!("message {id} acked twice or after dead-lettering"));
        }
        self.stats.acks += 1;
    }

    fn settle_dead(&mut self, id: usize) {
        if self.acked.contains(&id) || !self.dead.insert(id) {
            self.fail(format!("message {id} dead-lettered twice or after an ack"));
        }
        self.stats.dead += 1;
    }

    /// The invariants that must hold after every step.
    fn check(&self, slots: &[Slot]) {
        let mut owner_of: HashMap<usize, &str> = HashMap::new();
        for slot in slots {
            for h in &slot.held {
                let g = self.group[h.id];
                match owner_of.get(&g) {
                    Some(o) if *o != h.owner => {
                        self.fail(format!("group {g} is held by {o} and {} at once", h.owner))
                    }
                    _ => {
                        owner_of.insert(g, &h.owner);
                    }
                }
            }
            if !slot.getter && slot.state == State::Consuming {
                let mine = slot.held.iter().filter(|h| h.owner == slot.owner).count();
                if mine > usize::from(slot.prefetch) {
                    self.fail(format!(
                        "{} holds {mine} messages with prefetch {}",
                        slot.owner, slot.prefetch
                    ));
                }
            }
        }
    }
}

fn id_of(d: &Delivery) -> usize {
    text(d).parse().expect("numeric body")
}

async fn open_slot(
    b: &warren_tests::TestBroker,
    i: usize,
    getter: bool,
    prefetch: u16,
    generation: usize,
) -> Slot {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let mut slot = Slot {
        getter,
        conn,
        ch,
        consumer: None,
        owner: format!("get{i}.{generation}"),
        prefetch,
        state: State::Closed,
        held: Vec::new(),
        generation,
    };
    if getter {
        slot.state = State::Consuming;
    } else {
        start_consumer(&mut slot, i, prefetch).await;
    }
    slot
}

async fn start_consumer(slot: &mut Slot, i: usize, prefetch: u16) {
    within(
        "basic.qos",
        slot.ch.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await
    .expect("qos");
    let tag = format!("c{i}.{}", slot.generation);
    slot.generation += 1;
    let c = within(
        "basic.consume",
        slot.ch.basic_consume(
            Q.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    slot.consumer = Some(c);
    slot.owner = tag;
    slot.prefetch = prefetch;
    slot.state = State::Consuming;
}

/// Takes in what slot `s`'s consumer has received (waiting up to `wait`
/// for the first one). `stale`: groups whose deliveries are stale until
/// their head comes again.
async fn drain(
    m: &mut Model,
    slots: &mut [Slot],
    s: usize,
    wait: Duration,
    stale: &mut HashSet<usize>,
) {
    let mut first = true;
    loop {
        let Some(c) = slots[s].consumer.as_mut() else {
            return;
        };
        let item = if first && !wait.is_zero() {
            tokio::time::timeout(wait, c.next()).await.ok()
        } else {
            c.next().now_or_never()
        };
        first = false;
        let d = match item {
            Some(Some(Ok(d))) => d,
            Some(None) => {
                // The stream ended (after a cancel).
                slots[s].consumer = None;
                return;
            }
            Some(Some(Err(e))) => m.fail(format!("slot {s}: consumer error {e}")),
            None => return,
        };
        let id = id_of(&d);
        let g = m.group[id];
        if stale.contains(&g) {
            if m.queues[g].front() == Some(&id) {
                stale.remove(&g);
            } else {
                // On the wire when its group was returned: returned with it.
                if !m.queues[g].contains(&id) {
                    m.fail(format!(
                        "stale delivery of {id} to slot {s} is not in group {g}'s queue"
                    ));
                }
                m.stats.stale += 1;
                m.returned.insert(id);
                m.note(format!("slot {s}: stale {id} (group {g})"));
                continue;
            }
        }
        let owner = slots[s].owner.clone();
        m.note(format!(
            "slot {s} ({owner}): got {id} g{g}#{} tag {} r={}",
            m.pos[id], d.delivery_tag, d.redelivered
        ));
        m.fresh(slots, s, &owner, d.delivery_tag, id, d.redelivered);
    }
}

/// A round trip on the slot's channel: everything the broker sent on it
/// before handling our earlier frames has reached the consumer's buffer.
async fn fence(m: &Model, slot: &Slot) {
    let r = within(
        "fence",
        slot.ch.queue_declare(
            DLQ.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    if let Err(e) = r {
        m.fail(format!("{}: channel failed: {e}", slot.owner));
    }
}

async fn publish_batch(m: &mut Model, ch: &Channel, n: usize) {
    for _ in 0..n {
        if m.published == MESSAGES {
            return;
        }
        let id = m.published;
        let g = m.group[id];
        m.queues[g].push_back(id);
        m.published += 1;
        ch.basic_publish(
            "".into(),
            Q.into(),
            BasicPublishOptions::default(),
            id.to_string().as_bytes(),
            in_group(&format!("g{g}")),
        )
        .await
        .expect("publish");
    }
}

/// Closes slot `s` (channel, or the whole connection) and opens it again.
async fn close_slot(
    m: &mut Model,
    slots: &mut [Slot],
    s: usize,
    b: &warren_tests::TestBroker,
    rng: &mut Rng,
    whole_connection: bool,
) {
    let slot = &mut slots[s];
    if whole_connection {
        let _ = within("connection.close", slot.conn.close(200, "bye".into())).await;
        m.stats.connection_closes += 1;
    } else {
        let _ = within("channel.close", slot.ch.close(200, "bye".into())).await;
        m.stats.closes += 1;
    }
    let held: Vec<usize> = slot.held.drain(..).map(|h| h.id).collect();
    // What was on the wire to it comes back unseen: at most its prefetch,
    // behind what it held.
    let window = if slot.getter {
        0
    } else {
        usize::from(slot.prefetch) + held.len()
    };
    m.note(format!(
        "slot {s}: closed ({}), returned {held:?}",
        if whole_connection {
            "connection"
        } else {
            "channel"
        }
    ));
    m.put_back(held);
    for q in &m.queues {
        for id in q.iter().take(window) {
            m.maybe_returned.insert(*id);
        }
    }
    let getter = slot.getter;
    let generation = slot.generation + 1;
    let prefetch = rng.pick(&PREFETCHES);
    slots[s] = open_slot(b, s, getter, prefetch, generation).await;
}

#[tokio::test]
async fn randomized_consumers_keep_group_order_and_ownership() {
    let Some(b) = warren().await else { return };
    let seed = std::env::var("WARREN_FIFO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fifo randomized test: seed {seed} (replay with WARREN_FIFO_SEED={seed})");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let pub_conn = b.connect().await;
    let pub_ch = pub_conn.create_channel().await.unwrap();
    declare(&pub_ch, DLQ, FieldTable::default()).await;
    declare_fifo(
        &pub_ch,
        Q,
        &[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(DLQ)),
        ],
    )
    .await;

    let mut m = Model {
        seed,
        group: Vec::new(),
        pos: Vec::new(),
        queues: vec![VecDeque::new(); GROUPS],
        published: 0,
        returned: HashSet::new(),
        maybe_returned: HashSet::new(),
        acked: HashSet::new(),
        dead: HashSet::new(),
        last_pos: HashMap::new(),
        stats: Stats::default(),
        log: VecDeque::new(),
    };
    // Skewed group sizes: a few busy groups, many small ones.
    let mut counts = [0usize; GROUPS];
    for _ in 0..MESSAGES {
        let g = if rng.below(2) == 0 {
            rng.below(4)
        } else {
            rng.below(GROUPS)
        };
        m.group.push(g);
        m.pos.push(counts[g]);
        counts[g] += 1;
    }

    let mut slots = Vec::new();
    for i in 0..CONSUMERS {
        let p = rng.pick(&PREFETCHES);
        slots.push(open_slot(&b, i, false, p, 0).await);
    }
    slots.push(open_slot(&b, CONSUMERS, true, 0, 0).await);
    let getter = CONSUMERS;
    let mut no_stale = HashSet::new();

    let mut steps = 0;
    while steps < MAX_STEPS && started.elapsed() < RANDOM_PHASE {
        steps += 1;
        let s = rng.below(slots.len());
        let roll = rng.below(100);
        match roll {
            // Publish a batch.
            0..=11 => {
                let n = 1 + rng.below(25);
                publish_batch(&mut m, &pub_ch, n).await;
            }
            // Receive (consumers) or basic.get (the getter).
            12..=44 => {
                if s == getter {
                    let d = within(
                        "basic.get",
                        slots[s]
                            .ch
                            .basic_get(Q.into(), BasicGetOptions { no_ack: false }),
                    )
                    .await
                    .unwrap_or_else(|e| m.fail(format!("basic.get failed: {e}")));
                    if let Some(d) = d {
                        let d = d.delivery;
                        let id = id_of(&d);
                        let owner = slots[s].owner.clone();
                        m.stats.gets += 1;
                        m.note(format!(
                            "getter: got {id} g{}#{} tag {} r={}",
                            m.group[id], m.pos[id], d.delivery_tag, d.redelivered
                        ));
                        m.fresh(&mut slots, s, &owner, d.delivery_tag, id, d.redelivered);
                    }
                } else {
                    drain(
                        &mut m,
                        &mut slots,
                        s,
                        Duration::from_millis(5),
                        &mut no_stale,
                    )
                    .await;
                }
            }
            // Ack one, or several with multiple.
            45..=66 => {
                if slots[s].held.is_empty() {
                    continue;
                }
                let k = rng.below(slots[s].held.len());
                let multiple = rng.below(4) == 0;
                let tag = slots[s].held[k].tag;
                let taken: Vec<Held> = if multiple {
                    let (done, kept) = std::mem::take(&mut slots[s].held)
                        .into_iter()
                        .partition(|h| h.tag <= tag);
                    slots[s].held = kept;
                    done
                } else {
                    vec![slots[s].held.remove(k)]
                };
                m.note(format!(
                    "slot {s}: ack tag {tag} multiple={multiple}: {:?}",
                    taken.iter().map(|h| h.id).collect::<Vec<_>>()
                ));
                for h in &taken {
                    m.settle_ack(h.id);
                }
                slots[s]
                    .ch
                    .basic_ack(tag, BasicAckOptions { multiple })
                    .await
                    .unwrap_or_else(|e| m.fail(format!("ack failed: {e}")));
            }
            // Nack / reject with requeue: the whole group comes back.
            67..=77 => {
                if slots[s].held.is_empty() {
                    continue;
                }
                let k = rng.below(slots[s].held.len());
                let tag = slots[s].held[k].tag;
                let how = rng.below(3);
                let named: Vec<usize> = if how == 2 {
                    slots[s]
                        .held
                        .iter()
                        .filter(|h| h.tag <= tag)
                        .map(|h| h.id)
                        .collect()
                } else {
                    vec![slots[s].held[k].id]
                };
                let groups: HashSet<usize> = named.iter().map(|id| m.group[*id]).collect();
                let (back, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut slots[s].held)
                    .into_iter()
                    .partition(|h| groups.contains(&m.group[h.id]) || named.contains(&h.id));
                slots[s].held = kept;
                let back: Vec<usize> = back.into_iter().map(|h| h.id).collect();
                m.note(format!(
                    "slot {s}: {} tag {tag} requeue: named {named:?}, returned {back:?}",
                    ["nack", "reject", "nack multiple"][how]
                ));
                m.stats.requeues += 1;
                m.put_back(back);
                let ch = &slots[s].ch;
                let r = match how {
                    0 => {
                        ch.basic_nack(
                            tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            },
                        )
                        .await
                    }
                    1 => {
                        ch.basic_reject(tag, BasicRejectOptions { requeue: true })
                            .await
                    }
                    _ => {
                        ch.basic_nack(
                            tag,
                            BasicNackOptions {
                                multiple: true,
                                requeue: true,
                            },
                        )
                        .await
                    }
                };
                r.unwrap_or_else(|e| m.fail(format!("nack failed: {e}")));
                if !slots[s].getter {
                    fence(&m, &slots[s]).await;
                    let mut stale = groups;
                    drain(&mut m, &mut slots, s, Duration::ZERO, &mut stale).await;
                }
            }
            // Reject / nack without requeue: dead-lettered.
            78..=83 => {
                if slots[s].held.is_empty() {
                    continue;
                }
                let k = rng.below(slots[s].held.len());
                let tag = slots[s].held[k].tag;
                let multiple = rng.below(3) == 0;
                let taken: Vec<Held> = if multiple {
                    let (done, kept) = std::mem::take(&mut slots[s].held)
                        .into_iter()
                        .partition(|h| h.tag <= tag);
                    slots[s].held = kept;
                    done
                } else {
                    vec![slots[s].held.remove(k)]
                };
                m.note(format!(
                    "slot {s}: dead-letter tag {tag} multiple={multiple}: {:?}",
                    taken.iter().map(|h| h.id).collect::<Vec<_>>()
                ));
                for h in &taken {
                    m.settle_dead(h.id);
                }
                let ch = &slots[s].ch;
                let r = if multiple {
                    ch.basic_nack(
                        tag,
                        BasicNackOptions {
                            multiple: true,
                            requeue: false,
                        },
                    )
                    .await
                } else {
                    ch.basic_reject(tag, BasicRejectOptions { requeue: false })
                        .await
                };
                r.unwrap_or_else(|e| m.fail(format!("reject failed: {e}")));
            }
            // Cancel (keeps everything held), or consume again after one.
            84..=90 => {
                if slots[s].getter {
                    continue;
                }
                match slots[s].state {
                    State::Consuming => {
                        let tag = slots[s].owner.clone();
                        within(
                            "basic.cancel",
                            slots[s]
                                .ch
                                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
                        )
                        .await
                        .unwrap_or_else(|e| m.fail(format!("cancel failed: {e}")));
                        m.stats.cancels += 1;
                        m.note(format!("slot {s}: cancelled {tag}"));
                        slots[s].state = State::Cancelled;
                        // What was sent before cancel-ok is in the buffer; then the stream ends.
                        let until = Instant::now() + WAIT;
                        while slots[s].consumer.is_some() {
                            if Instant::now() > until {
                                m.fail(format!(
                                    "slot {s}: the consumer stream did not end after cancel-ok"
                                ));
                            }
                            drain(
                                &mut m,
                                &mut slots,
                                s,
                                Duration::from_millis(50),
                                &mut no_stale,
                            )
                            .await;
                        }
                    }
                    State::Cancelled => {
                        let p = rng.pick(&PREFETCHES);
                        start_consumer(&mut slots[s], s, p).await;
                        m.note(format!(
                            "slot {s}: consuming again as {} prefetch {p}",
                            slots[s].owner
                        ));
                    }
                    State::Closed => {}
                }
            }
            // Close the channel or the connection; open a new one.
            91..=95 => {
                let whole = rng.below(3) == 0;
                close_slot(&mut m, &mut slots, s, &b, &mut rng, whole).await;
            }
            _ => {
                // Let deliveries arrive.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        m.check(&slots);
    }

    // Final phase: publish the rest, then everyone consumes and acks until
    // every message is settled.
    let random_steps = steps;
    publish_batch(&mut m, &pub_ch, MESSAGES).await;
    let deadline = Instant::now() + FINAL_PHASE;
    while m.acked.len() + m.dead.len() < MESSAGES {
        if Instant::now() > deadline {
            let left: Vec<(usize, usize)> = m
                .queues
                .iter()
                .enumerate()
                .map(|(g, q)| (g, q.len()))
                .filter(|x| x.1 > 0)
                .collect();
            m.fail(format!(
                "not settled in time: {} acked, {} dead of {MESSAGES}; left per group {left:?}; held {:?}",
                m.acked.len(),
                m.dead.len(),
                slots.iter().map(|s| (s.owner.clone(), s.held.len())).collect::<Vec<_>>()
            ));
        }
        for s in 0..slots.len() {
            if slots[s].getter {
                while let Some(d) = within(
                    "basic.get",
                    slots[s]
                        .ch
                        .basic_get(Q.into(), BasicGetOptions { no_ack: false }),
                )
                .await
                .unwrap_or_else(|e| m.fail(format!("basic.get failed: {e}")))
                {
                    let d = d.delivery;
                    let owner = slots[s].owner.clone();
                    m.fresh(
                        &mut slots,
                        s,
                        &owner,
                        d.delivery_tag,
                        id_of(&d),
                        d.redelivered,
                    );
                    m.check(&slots);
                }
            } else {
                if slots[s].state == State::Cancelled && slots[s].held.is_empty() {
                    let p = slots[s].prefetch.max(1);
                    start_consumer(&mut slots[s], s, p).await;
                }
                drain(
                    &mut m,
                    &mut slots,
                    s,
                    Duration::from_millis(10),
                    &mut no_stale,
                )
                .await;
                m.check(&slots);
            }
            if let Some(last) = slots[s].held.iter().map(|h| h.tag).max() {
                for h in std::mem::take(&mut slots[s].held) {
                    m.settle_ack(h.id);
                }
                slots[s]
                    .ch
                    .basic_ack(last, BasicAckOptions { multiple: true })
                    .await
                    .unwrap_or_else(|e| m.fail(format!("ack failed: {e}")));
            }
        }
    }

    // Nothing is left, nothing more arrives, and the dead letters are
    // exactly the rejected messages, each once.
    for s in 0..slots.len() {
        if !slots[s].getter {
            drain(
                &mut m,
                &mut slots,
                s,
                Duration::from_millis(50),
                &mut no_stale,
            )
            .await;
            if !slots[s].held.is_empty() {
                m.fail(format!(
                    "{} got more after everything was settled",
                    slots[s].owner
                ));
            }
        }
    }
    assert_eq!(ready(&pub_ch, Q).await, 0);
    let mut dead_seen = Vec::new();
    while let Some(d) = get(&pub_ch, DLQ, true).await {
        dead_seen.push(id_of(&d));
    }
    let dead_set: HashSet<usize> = dead_seen.iter().copied().collect();
    assert_eq!(
        dead_seen.len(),
        dead_set.len(),
        "a message was dead-lettered twice"
    );
    if dead_set != m.dead {
        m.fail(format!(
            "dead-letter queue holds {dead_set:?}, expected {:?}",
            m.dead
        ));
    }
    assert_eq!(m.acked.len() + m.dead.len(), MESSAGES);
    assert!(m.acked.is_disjoint(&m.dead));
    let st = &m.stats;
    eprintln!(
        "fifo randomized test: seed {seed}: {random_steps} random steps, {:.1} s; {} deliveries ({} redelivered, {} stale, {} by basic.get), {} acked, {} dead-lettered, {} requeues, {} cancels, {} channel closes, {} connection closes",
        started.elapsed().as_secs_f64(),
        st.deliveries,
        st.redelivered,
        st.stale,
        st.gets,
        st.acks,
        st.dead,
        st.requeues,
        st.cancels,
        st.closes,
        st.connection_closes
    );
}
