//! FIFO queues: per-group order, one owner per group, and deduplication.
//!
//! Messages are kept per message group (`x-group-id`, or the default group).
//! A group whose messages are delivered and not yet acked belongs to the
//! consumer (or basic.get channel) holding them: only it gets the group's
//! next messages. A consumer with room gets the oldest message it may have:
//! the head of one of its own groups or of a free group, whichever is older.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use bytes::Bytes;
use warren_persistence::RecordId;
use warren_protocol::{FieldValue, ShortStr};

use super::link::{ChannelLink, Consumer};
use super::message::Message;
use super::queue::Entry;

/// Who holds a group.
#[derive(Clone)]
pub enum Owner {
    Consumer(Arc<Consumer>),
    /// A channel that fetched with basic.get and has not acked yet.
    Get(Arc<ChannelLink>),
}

impl Owner {
    /// Identity for indexing (never 0: 0 marks free groups).
    pub fn key(&self) -> usize {
        match self {
            Owner::Consumer(c) => Self::consumer_key(c),
            Owner::Get(ch) => Arc::as_ptr(ch) as usize | 1,
        }
    }

    /// The key of `Owner::Consumer(c)`, without making one.
    pub fn consumer_key(c: &Arc<Consumer>) -> usize {
        Arc::as_ptr(c) as usize
    }

    pub fn channel(&self) -> &Arc<ChannelLink> {
        match self {
            Owner::Consumer(c) => &c.channel,
            Owner::Get(ch) => ch,
        }
    }
}

enum GroupKey<'a> {
    Str(&'a [u8]),
    Owned(Vec<u8>),
    Default,
}

impl GroupKey<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            GroupKey::Str(s) => s,
            GroupKey::Owned(s) => s,
            GroupKey::Default => b"",
        }
    }
}

/// An entry's message. A FIFO queue keeps its messages in memory (only
/// standard queues leave them in the log), so the stand-in, which puts a
/// message in the default group, is never used.
fn message(e: &Entry) -> &Message {
    static NONE: std::sync::LazyLock<Message> = std::sync::LazyLock::new(|| Message {
        exchange: ShortStr::from_static(""),
        routing_key: ShortStr::from_static(""),
        properties: Default::default(),
        body: Bytes::new(),
    });
    e.in_memory().map_or(&NONE, |m| m)
}

/// The group a message belongs to: its `x-group-id` header, or "" (the
/// default group). A non-string header value is named by its text form.
fn group_key(msg: &Message) -> GroupKey<'_> {
    let Some(entries) = msg.properties.headers_raw() else {
        return GroupKey::Default;
    };
    match raw_long_str(entries, b"x-group-id") {
        Raw::Str(s) => GroupKey::Str(s),
        Raw::Absent => GroupKey::Default,
        Raw::Other => match msg.properties.headers().and_then(|h| h.get("x-group-id")) {
            Some(FieldValue::LongStr(s)) => GroupKey::Owned(s.as_bytes().to_vec()),
            Some(other) => GroupKey::Owned(format!("{other:?}").into_bytes()),
            None => GroupKey::Default,
        },
    }
}

/// A message's group as found before taking the queue lock: the header
/// scan and the hash of the name are most of the cost of a group lookup,
/// and the publisher can pay it while consumers hold the lock.
pub struct GroupHint {
    /// The name's hash under the queue's [`GroupHasher`].
    hash: u64,
    name: HintName,
}

enum HintName {
    /// `start..end` of the message's encoded header entries.
    Header(usize, usize),
    Owned(Vec<u8>),
    Default,
}

/// Hashes group names. Keyed at random per queue: names come from clients,
/// and the map of groups by hash must not be made to collide.
pub type GroupHasher = RandomState;

impl GroupHint {
    pub fn of(msg: &Message, hasher: &GroupHasher) -> GroupHint {
        let name = match group_key(msg) {
            GroupKey::Str(s) => match msg.properties.headers_raw() {
                // (`s` is a slice of these bytes.)
                Some(raw) => {
                    let start = (s.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
                    HintName::Header(start, start + s.len())
                }
                None => HintName::Owned(s.to_vec()),
            },
            GroupKey::Owned(v) => HintName::Owned(v),
            GroupKey::Default => HintName::Default,
        };
        let mut hint = GroupHint { hash: 0, name };
        hint.hash = hasher.hash_one(hint.name(msg));
        hint
    }

    /// The group's name; `msg` is the message the hint was made for.
    fn name<'a>(&'a self, msg: &'a Message) -> &'a [u8] {
        match &self.name {
            HintName::Header(start, end) => msg
                .properties
                .headers_raw()
                .and_then(|raw| raw.get(*start..*end))
                .unwrap_or_default(),
            HintName::Owned(v) => v,
            HintName::Default => b"",
        }
    }
}

/// What [`raw_long_str`] found.
enum Raw<'a> {
    Str(&'a [u8]),
    Absent,
    /// Some other type, or bytes this scan does not know: decode properly.
    Other,
}

/// Looks up `key` in encoded table entries without decoding anything (a
/// header lookup per message is on the publish path). Only a long-string
/// value is returned as such.
fn raw_long_str<'a>(mut entries: &'a [u8], key: &[u8]) -> Raw<'a> {
    loop {
        let Some((&key_len, rest)) = entries.split_first() else {
            return Raw::Absent;
        };
        let key_len = usize::from(key_len);
        let Some((&letter, rest)) = rest.get(key_len..).and_then(<[u8]>::split_first) else {
            return Raw::Other;
        };
        let this_key = &entries[1..=key_len];
        let width = match letter {
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'V' => 0,
            b'S' | b'x' | b'F' | b'A' => match rest.get(..4) {
                Some(n) => 4 + u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize,
                None => return Raw::Other,
            },
            _ => return Raw::Other,
        };
        let Some(value) = rest.get(..width) else {
            return Raw::Other;
        };
        if this_key == key {
            return match letter {
                b'S' => Raw::Str(&value[4..]),
                _ => Raw::Other,
            };
        }
        entries = &rest[width..];
    }
}

/// Most messages [`Fifo::incoming`] holds before a publish files them.
const FILE_AT: usize = 4096;

/// How many emptied heaps [`Fifo::spare`] keeps, and the largest it keeps.
const SPARE_HEAPS: usize = 16;
const SPARE_CAPACITY: usize = 4096;

/// A group's slot in [`Fifo::groups`].
type GroupId = u32;

/// A hasher for integer keys (sequence numbers, owner addresses), which
/// clients do not choose.
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        // Fold the high bits down: the table indexes by the low bits, and
        // addresses (owner keys) have zero low bits.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Groups by head seq, oldest first, as a min-heap of hints: an entry
/// `(seq, id)` counts only while group `id` is indexed at `(seq, this
/// owner)`; the others are dropped when they come to the top (or when the
/// heap is rebuilt). A head moving on costs one push instead of a remove
/// and an insert, and the old entry is usually at the top already.
#[derive(Default)]
struct Heads {
    heap: BinaryHeap<Reverse<(u64, GroupId)>>,
    /// How many groups are indexed here (valid entries).
    live: usize,
}

impl Heads {
    fn push(&mut self, seq: u64, id: GroupId) {
        self.heap.push(Reverse((seq, id)));
    }

    /// The oldest valid entry, dropping stale ones on the way.
    fn first(&mut self, groups: &[Option<Group>], key: usize) -> Option<(u64, GroupId)> {
        while let Some(Reverse((seq, id))) = self.heap.peek().copied() {
            let valid = groups
                .get(id as usize)
                .and_then(Option::as_ref)
                .is_some_and(|g| g.indexed == Some((seq, key)));
            if valid {
                return Some((seq, id));
            }
            self.heap.pop();
        }
        None
    }

    /// Drops the stale entries once they outnumber the live ones.
    fn compact(&mut self, groups: &[Option<Group>], key: usize) {
        if self.heap.len() > 2 * self.live + 64 {
            let mut all = std::mem::take(&mut self.heap).into_vec();
            all.retain(|Reverse((seq, id))| {
                groups
                    .get(*id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|g| g.indexed == Some((*seq, key)))
            });
            self.heap = BinaryHeap::from(all);
        }
    }
}

struct Group {
    msgs: VecDeque<Entry>,
    owner: Option<Owner>,
    /// Messages of this group delivered to the owner and not yet settled.
    held: u32,
    /// Where the group is indexed: (head seq, owner key or 0 when free).
    indexed: Option<(u64, usize)>,
}

/// A group's name, kept apart from the rest of its state: publishers read
/// names, consumers write the rest.
struct Name {
    /// The name's hash (its key in [`Fifo::by_hash`] unless it collided).
    hash: u64,
    name: Bytes,
}

/// The ready messages of a FIFO queue, by group, and who holds which group.
///
/// A published message waits in `incoming` until the next operation that
/// looks at groups files it under its group. Publishing then writes only
/// to the end of that one list, as with a standard queue, instead of to
/// the group, whose state the consumers' deliveries write on other cores:
/// every publish moved a group's cache lines from one core to the other.
#[derive(Default)]
pub struct Fifo {
    /// Groups by id; `None` marks a vacant slot (listed in `vacant`).
    groups: Vec<Option<Group>>,
    /// Names of the groups by id (set where `groups` is).
    names: Vec<Option<Name>>,
    vacant: Vec<GroupId>,
    /// Published messages not yet filed, their group ids set. A group
    /// with messages here is not forgotten: every operation that can
    /// forget a group files them first.
    incoming: VecDeque<Entry>,
    hasher: GroupHasher,
    /// Groups by the hash of their name: one probe of an integer map per
    /// publish, with the hash computed outside the lock ([`GroupHint`]).
    by_hash: IntMap<u64, GroupId>,
    /// Groups whose hash another group had taken in `by_hash` (rare).
    collided: HashMap<Bytes, GroupId>,
    /// Free groups with messages, by head (oldest first).
    free: Heads,
    /// Owned groups with messages, per owner key, by head.
    owned: IntMap<usize, Heads>,
    /// Emptied heaps of `owned`, kept for the next owner: groups move
    /// between owners all the time, and growing a new heap each time cost
    /// a reallocation or more per delivery.
    spare: Vec<Heads>,
    /// Messages filed in groups (the others are in `incoming`).
    filed: usize,
    bytes: u64,
    /// Whether `bytes` is kept (only a byte limit needs it, and reading a
    /// body's length touches the message when it is likely out of cache).
    track_bytes: bool,
}

impl Fifo {
    /// `track_bytes`: keep the ready bytes (for `x-max-length-bytes`);
    /// `hasher`: the one [`GroupHint`]s for this queue are made with.
    pub fn new(track_bytes: bool, hasher: GroupHasher) -> Fifo {
        Fifo {
            track_bytes,
            hasher,
            ..Fifo::default()
        }
    }

    fn size(&self, e: &Entry) -> u64 {
        if self.track_bytes {
            e.body_len()
        } else {
            0
        }
    }

    pub fn len(&self) -> usize {
        self.filed + self.incoming.len()
    }

    /// Body bytes of the ready messages (0 unless tracked).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn group(&mut self, id: GroupId) -> Option<&mut Group> {
        self.groups.get_mut(id as usize)?.as_mut()
    }

    /// The id of a message's group, creating the group if needed.
    fn group_id(&mut self, msg: &Message) -> GroupId {
        let hint = GroupHint::of(msg, &self.hasher);
        self.group_id_hinted(msg, &hint)
    }

    /// [`Fifo::group_id`] with the lookup's costly part done already.
    fn group_id_hinted(&mut self, msg: &Message, hint: &GroupHint) -> GroupId {
        let name = hint.name(msg);
        if let Some(&id) = self.by_hash.get(&hint.hash) {
            if self.is_named(id, name) {
                return id;
            }
        }
        if !self.collided.is_empty() {
            if let Some(&id) = self.collided.get(name) {
                return id;
            }
        }
        let name = Bytes::copy_from_slice(name);
        let group = Group {
            msgs: VecDeque::new(),
            owner: None,
            held: 0,
            indexed: None,
        };
        let named = Name {
            hash: hint.hash,
            name: name.clone(),
        };
        let id = match self.vacant.pop() {
            Some(id) => {
                self.groups[id as usize] = Some(group);
                self.names[id as usize] = Some(named);
                id
            }
            None => {
                self.groups.push(Some(group));
                self.names.push(Some(named));
                GroupId::try_from(self.groups.len() - 1).unwrap_or(GroupId::MAX)
            }
        };
        match self.by_hash.entry(hint.hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(name, id);
            }
        }
        id
    }

    fn is_named(&self, id: GroupId, name: &[u8]) -> bool {
        self.names
            .get(id as usize)
            .and_then(Option::as_ref)
            .is_some_and(|n| n.name == name)
    }

    /// Drops a group from the name indexes.
    fn unname(&mut self, id: GroupId) {
        let Some(n) = self.names.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        if self.by_hash.get(&n.hash) == Some(&id) {
            self.by_hash.remove(&n.hash);
        } else {
            self.collided.remove(&n.name);
        }
    }

    /// The id of the group named `name`, if it exists.
    #[cfg(test)]
    fn find(&self, name: &[u8]) -> Option<GroupId> {
        let hash = self.hasher.hash_one(name);
        (self.by_hash.get(&hash).copied())
            .filter(|id| self.is_named(*id, name))
            .or_else(|| self.collided.get(name).copied())
    }

    /// Files the messages waiting in `incoming` under their groups.
    fn file_incoming(&mut self) {
        while let Some(mut e) = self.incoming.pop_front() {
            let id = match self.group(e.group) {
                Some(_) => e.group,
                // (Not expected: groups with messages waiting are kept.)
                None => self.group_id(message(&e)),
            };
            e.group = id;
            let Some(g) = self.group(id) else { continue };
            let was_empty = g.msgs.is_empty();
            g.msgs.push_back(e);
            self.filed += 1;
            if was_empty {
                self.reindex(id);
            }
        }
    }

    /// Keeps the group's index entry in step with its head and owner, and
    /// forgets a group that is empty and free.
    fn reindex(&mut self, id: GroupId) {
        let Some(g) = self.groups.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let want = g
            .msgs
            .front()
            .map(|head| (head.seq, g.owner.as_ref().map_or(0, Owner::key)));
        if want == g.indexed && (want.is_some() || g.owner.is_some()) {
            return;
        }
        let before = g.indexed.take().map(|(_, key)| key);
        let after = want.map(|(_, key)| key);
        g.indexed = want;
        let forget = want.is_none() && g.owner.is_none();
        // Live counts change only when the group moves between heaps.
        if before != after {
            match before {
                Some(0) => self.free.live -= 1,
                Some(key) => {
                    if let Some(h) = self.owned.get_mut(&key) {
                        h.live -= 1;
                        if h.live == 0 {
                            // Its entries are all stale now.
                            if let Some(h) = self.owned.remove(&key) {
                                self.recycle(h);
                            }
                        }
                    }
                }
                None => {}
            }
            match after {
                Some(0) => self.free.live += 1,
                Some(key) => {
                    let spare = &mut self.spare;
                    let h = self
                        .owned
                        .entry(key)
                        .or_insert_with(|| spare.pop().unwrap_or_default());
                    h.live += 1;
                }
                None => {}
            }
        }
        match want {
            Some((seq, 0)) => {
                self.free.push(seq, id);
                self.free.compact(&self.groups, 0);
            }
            Some((seq, key)) => {
                if let Some(h) = self.owned.get_mut(&key) {
                    h.push(seq, id);
                    h.compact(&self.groups, key);
                }
            }
            None => {}
        }
        if forget {
            debug_assert!(
                self.incoming.is_empty(),
                "a group forgotten with messages waiting"
            );
            self.groups[id as usize] = None;
            self.unname(id);
            self.vacant.push(id);
        }
    }

    /// Keeps an emptied heap of `owned` for reuse (a few, not too large).
    fn recycle(&mut self, mut h: Heads) {
        if self.spare.len() < SPARE_HEAPS && h.heap.capacity() <= SPARE_CAPACITY {
            h.heap.clear();
            h.live = 0;
            self.spare.push(h);
        }
    }

    pub fn push(&mut self, e: Entry) {
        let hint = GroupHint::of(message(&e), &self.hasher);
        self.push_hinted(e, &hint);
    }

    /// [`Fifo::push`] with the message's group found already.
    pub fn push_hinted(&mut self, mut e: Entry, hint: &GroupHint) {
        e.group = self.group_id_hinted(message(&e), hint);
        self.bytes += self.size(&e);
        self.incoming.push_back(e);
        // Bounded, so that no single operation files a whole backlog
        // under the lock (one published while nobody consumed).
        if self.incoming.len() >= FILE_AT {
            self.file_incoming();
        }
    }

    /// The group `owner` should take from next: of the groups it may take
    /// from (its own and the free ones), the one with the oldest head. So
    /// messages go out in publish order as far as group ownership allows,
    /// a free group never waits behind newer messages of owned groups, and
    /// an owner that keeps busy with free groups lets its own go.
    pub fn next_group_for(&mut self, owner_key: usize) -> Option<GroupId> {
        self.file_incoming();
        let own = match self.owned.get_mut(&owner_key) {
            Some(h) => h.first(&self.groups, owner_key),
            None => None,
        };
        match (own, self.free.first(&self.groups, 0)) {
            (Some(a), Some(b)) => Some(a.min(b).1),
            (a, b) => a.or(b).map(|(_, id)| id),
        }
    }

    /// Takes the head of a group for `owner` (`None`: delivered without ack,
    /// so nothing is held).
    pub fn take(&mut self, id: GroupId, owner: Option<Owner>) -> Option<Entry> {
        self.take_for(id, owner.map(|o| (o.key(), move || o)))
    }

    /// [`Fifo::take`] for the owner with key `key`, made by `make` only if
    /// it becomes the group's owner (its reference count is shared).
    pub fn take_for(
        &mut self,
        id: GroupId,
        owner: Option<(usize, impl FnOnce() -> Owner)>,
    ) -> Option<Entry> {
        self.file_incoming();
        let g = self.group(id)?;
        let e = g.msgs.pop_front()?;
        if let Some((key, make)) = owner {
            if g.owner.as_ref().is_none_or(|cur| cur.key() != key) {
                g.owner = Some(make());
            }
            g.held += 1;
        }
        self.filed -= 1;
        self.bytes -= self.size(&e);
        self.reindex(id);
        Some(e)
    }

    /// A message delivered with ack (so held) was acked or dropped; its
    /// group is free again once its owner holds none.
    pub fn settle(&mut self, e: &Entry) {
        self.settle_group(e.group);
    }

    /// [`Fifo::settle`] by the entry's group.
    pub fn settle_group(&mut self, id: GroupId) {
        // (Releasing a group can forget it.)
        self.file_incoming();
        if let Some(g) = self.group(id) {
            g.held = g.held.saturating_sub(1);
            if g.held == 0 {
                g.owner = None;
                self.reindex(id);
            }
        }
    }

    /// The group an entry came back to: the one it was filed under, while
    /// that group is still there (it is, while the entry is held).
    fn group_of_entry(&mut self, e: &Entry) -> GroupId {
        if self.is_named(e.group, group_key(message(e)).as_bytes()) {
            e.group
        } else {
            self.group_id(message(e))
        }
    }

    /// Messages given back (nack or reject with requeue, or their channel
    /// went away). For each group concerned, `more(owner, is_of_group)`
    /// hands back the owner's other unacked messages of that group; all of
    /// them return to the head of the group in publish order, marked
    /// redelivered, and the group is released.
    pub fn give_back(
        &mut self,
        entries: Vec<Entry>,
        mut more: impl FnMut(&Owner, &dyn Fn(&Entry) -> bool) -> Vec<Entry>,
    ) {
        self.file_incoming();
        let mut by_group: Vec<(GroupId, Vec<Entry>)> = Vec::new();
        for e in entries {
            let id = self.group_of_entry(&e);
            match by_group.iter_mut().find(|(g, _)| *g == id) {
                Some((_, v)) => v.push(e),
                None => by_group.push((id, vec![e])),
            }
        }
        for (id, mut list) in by_group {
            let owner = self.group(id).and_then(|g| g.owner.clone());
            if let Some(owner) = owner {
                let of_group = |e: &Entry| e.group == id;
                list.extend(more(&owner, &of_group));
            }
            self.put_back(id, list);
        }
    }

    /// Returned messages go back to the head of their group in their
    /// original order, and the group is released.
    fn put_back(&mut self, id: GroupId, mut entries: Vec<Entry>) {
        entries.sort_by_key(|e| e.seq);
        self.filed += entries.len();
        self.bytes += entries.iter().map(|e| self.size(e)).sum::<u64>();
        let Some(g) = self.group(id) else { return };
        for mut e in entries.into_iter().rev() {
            e.redelivered = true;
            e.group = id;
            g.msgs.push_front(e);
        }
        g.owner = None;
        g.held = 0;
        self.reindex(id);
    }

    #[cfg(test)]
    fn owner_of(&self, name: &str) -> Option<&Owner> {
        let id = self.find(name.as_bytes())?;
        self.groups.get(id as usize)?.as_ref()?.owner.as_ref()
    }

    /// How many groups exist.
    #[cfg(test)]
    fn group_count(&self) -> usize {
        self.groups.iter().flatten().count()
    }

    /// The oldest message overall (for x-max-length drop-head).
    pub fn pop_oldest(&mut self) -> Option<Entry> {
        self.file_incoming();
        let (_, id) = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((g.as_ref()?.msgs.front()?.seq, i)))
            .min()?;
        let id = GroupId::try_from(id).ok()?;
        let e = self.group(id)?.msgs.pop_front()?;
        self.filed -= 1;
        self.bytes -= self.size(&e);
        self.reindex(id);
        Some(e)
    }

    pub fn next_expiry(&mut self) -> Option<u64> {
        self.file_incoming();
        self.groups
            .iter()
            .filter_map(|g| g.as_ref()?.msgs.front()?.expires_at)
            .min()
    }

    /// Removes expired messages from the heads of the groups.
    pub fn take_expired(&mut self, now_ms: u64, out: &mut Vec<Entry>) {
        self.file_incoming();
        for i in 0..self.groups.len() {
            let id = GroupId::try_from(i).unwrap_or(GroupId::MAX);
            let Some(g) = self.group(id) else { continue };
            let before = out.len();
            while g.msgs.front().is_some_and(|e| e.expired(now_ms)) {
                out.extend(g.msgs.pop_front());
            }
            if out.len() > before {
                for e in &out[before..] {
                    self.filed -= 1;
                    self.bytes -= self.size(e);
                }
                self.reindex(id);
            }
        }
    }

    /// Takes every ready message (purge, delete). Groups whose owner still
    /// holds unacked messages stay owned: purge leaves unacked messages
    /// alone, so their group must not go to anyone else meanwhile.
    pub fn drain_all(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = Vec::with_capacity(self.len());
        all.extend(self.incoming.drain(..));
        for g in self.groups.iter_mut().flatten() {
            all.extend(g.msgs.drain(..));
        }
        all.sort_by_key(|e| e.seq);
        self.filed = 0;
        self.bytes = 0;
        for i in 0..self.groups.len() {
            self.reindex(GroupId::try_from(i).unwrap_or(GroupId::MAX));
        }
        all
    }
}

/// Deduplication ids accepted within the window, oldest first.
///
/// About 60 bytes per remembered id (a 16-byte id in a hash set kept at
/// most 7/8 full, and 24 bytes in the expiry order), plus 16 for the log
/// record of a durable queue.
#[derive(Default)]
pub struct Dedup {
    seen: HashSet<[u64; 2]>,
    /// (expiry in unix ms, id), in the order accepted.
    order: VecDeque<(u64, [u64; 2])>,
    /// For a durable queue: each id's DEDUP record, in step with `order`.
    records: VecDeque<Option<RecordId>>,
    durable: bool,
}

fn split(id: u128) -> [u64; 2] {
    [(id >> 64) as u64, id as u64]
}

impl Dedup {
    /// `durable`: ids come with their log records.
    pub fn new(durable: bool) -> Dedup {
        Dedup {
            durable,
            ..Dedup::default()
        }
    }

    /// Forgets ids whose window has passed; `on_forget` gets their records.
    /// Call it before [`Dedup::is_duplicate`] and [`Dedup::remember`]: an id
    /// is remembered anew only after its old entry is gone.
    pub fn prune(&mut self, now_ms: u64, mut on_forget: impl FnMut(RecordId)) {
        while self.order.front().is_some_and(|(exp, _)| *exp <= now_ms) {
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
            if let Some(Some(r)) = self.records.pop_front() {
                on_forget(r);
            }
        }
    }

    /// Whether `id` was accepted within the window (after [`Dedup::prune`]).
    pub fn is_duplicate(&self, id: u128) -> bool {
        self.seen.contains(&split(id))
    }

    pub fn remember(&mut self, id: u128, expires_ms: u64, record: Option<RecordId>) {
        let id = split(id);
        // (Already there only if the log held it twice; its first expiry
        // then ends it, and both records are handed back in turn.)
        self.seen.insert(id);
        self.order.push_back((expires_ms, id));
        if self.durable {
            self.records.push_back(record);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Keys of [`hash128`], one per kind of input, so that the same text as
/// an id and as a body are different ids.
const DEDUP_KEYS: [[u8; 16]; 2] = [*b"warren:dedup:id:", *b"warren:dedup:bdy"];

/// A deduplication id: SipHash-2-4 with 128-bit output (Aumasson and
/// Bernstein's specification) of `bytes` under the fixed key
/// `DEDUP_KEYS[kind]`, its 16-byte tag read big-endian. Fixed by
/// specification, unlike `std`'s `DefaultHasher`: a durable queue's ids are
/// in the log and must mean the same to the next build.
fn hash128(kind: u8, bytes: &[u8]) -> u128 {
    let key = DEDUP_KEYS[usize::from(kind.min(1))];
    u128::from_be_bytes(siphash_2_4_128(&key, bytes))
}

/// SipHash-2-4 with a 128-bit tag.
fn siphash_2_4_128(key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
    fn word(b: &[u8]) -> u64 {
        // Little-endian, as the specification reads words; `b` holds at
        // most 8 bytes.
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    }
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    fn compress(v: &mut [u64; 4], m: u64) {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    }
    let (k0, k1) = (word(&key[..8]), word(&key[8..]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut blocks = msg.chunks_exact(8);
    for b in &mut blocks {
        compress(&mut v, word(b));
    }
    // The last block: the remaining bytes and the length's low byte.
    compress(
        &mut v,
        word(blocks.remainder()) | ((msg.len() as u64) << 56),
    );
    let mut tag = [0u8; 16];
    v[2] ^= 0xee;
    for _ in 0..4 {
        round(&mut v);
    }
    tag[..8].copy_from_slice(&(v[0] ^ v[1] ^ v[2] ^ v[3]).to_le_bytes());
    v[1] ^= 0xdd;
    for _ in 0..4 {
        round(&mut v);
    }
    tag[8..].copy_from_slice(&(v[0] ^ v[1] ^ v[2] ^ v[3]).to_le_bytes());
    tag
}

/// The deduplication id of a message: `x-deduplication-id`, else
/// `message-id`, else (when enabled) a hash of the body.
pub fn dedup_id(msg: &Message, content_based: bool) -> Option<u128> {
    if let Some(entries) = msg.properties.headers_raw() {
        match raw_long_str(entries, b"x-deduplication-id") {
            Raw::Str(s) => return Some(hash128(0, s)),
            Raw::Absent => {}
            Raw::Other => match msg
                .properties
                .headers()
                .and_then(|h| h.get("x-deduplication-id"))
            {
                Some(FieldValue::LongStr(s)) => return Some(hash128(0, s.as_bytes())),
                Some(other) => return Some(hash128(0, format!("{other:?}").as_bytes())),
                None => {}
            },
        }
    }
    if let Some(id) = msg.properties.message_id() {
        return Some(hash128(0, id));
    }
    content_based.then(|| hash128(1, &msg.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::queue::Held;
    use warren_protocol::{BasicProperties, FieldTable, LongStr};

    fn msg(group: &str) -> Arc<Message> {
        let headers: FieldTable = if group.is_empty() {
            FieldTable::default()
        } else {
            [(
                ShortStr::from_static("x-group-id"),
                FieldValue::LongStr(LongStr::from(group)),
            )]
            .into_iter()
            .collect()
        };
        Arc::new(Message {
            exchange: ShortStr::default(),
            routing_key: ShortStr::default(),
            properties: BasicProperties {
                headers: Some(headers),
                ..Default::default()
            }
            .into(),
            body: Bytes::from_static(b"x"),
        })
    }

    fn entry(seq: u64, group: &str) -> Entry {
        Entry {
            msg: Held::Memory(msg(group)),
            seq,
            redelivered: false,
            persisted: None,
            expires_at: None,
            returns: 0,
            group: 0,
        }
    }

    /// The id of the group named `name` (which must exist).
    fn gid(f: &Fifo, name: &str) -> GroupId {
        f.find(name.as_bytes()).unwrap_or(GroupId::MAX)
    }

    /// An owner for tests: a channel fetching with basic.get.
    fn owner(id: u16) -> Owner {
        use super::super::link::{ConnectionId, ConnectionLink};
        use super::super::outbox::Outbox;
        let conn = Arc::new(ConnectionLink {
            id: ConnectionId(u64::from(id)),
            outbox: Outbox::new(1 << 20),
            consumer_cancel_notify: std::sync::atomic::AtomicBool::new(false),
        });
        Owner::Get(Arc::new(ChannelLink::new(id, conn)))
    }

    fn expiring(seq: u64, group: &str, at: u64) -> Entry {
        Entry {
            expires_at: Some(at),
            ..entry(seq, group)
        }
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    /// What `owner` gets next (taking it), as a seq.
    fn next_for(f: &mut Fifo, owner: &Owner) -> Option<Entry> {
        let g = f.next_group_for(owner.key())?;
        f.take(g, Some(owner.clone()))
    }

    #[test]
    fn free_groups_go_oldest_head_first_and_owned_groups_to_their_owner_only() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "b"));
        f.push(entry(2, "a"));
        let (x, y, z) = (owner(1), owner(2), owner(3));
        // x asks first: the free group with the oldest head, a.
        assert_eq!(f.next_group_for(x.key()), Some(gid(&f, "a")));
        let a0 = next_for(&mut f, &x);
        assert_eq!(a0.as_ref().map(|e| e.seq), Some(0));
        // a is x's now: y gets b, and x keeps getting a.
        assert_eq!(f.next_group_for(y.key()), Some(gid(&f, "b")));
        assert_eq!(next_for(&mut f, &y).map(|e| e.seq), Some(1));
        assert_eq!(f.next_group_for(z.key()), None, "every group is owned");
        let a2 = next_for(&mut f, &x);
        assert_eq!(a2.as_ref().map(|e| e.seq), Some(2));
        assert_eq!(f.len(), 0);
        // New messages of an owned group wait for its owner.
        f.push(entry(3, "a"));
        assert_eq!(f.next_group_for(z.key()), None);
        assert_eq!(f.next_group_for(x.key()), Some(gid(&f, "a")));
        // x holds two messages of a: one ack is not enough to free it.
        f.settle(&a0.unwrap_or_else(|| entry(99, "a")));
        assert_eq!(f.next_group_for(z.key()), None);
        f.settle(&a2.unwrap_or_else(|| entry(99, "a")));
        assert_eq!(f.next_group_for(z.key()), Some(gid(&f, "a")));
        assert!(f.owner_of("a").is_none());
        assert!(f.owner_of("b").is_some_and(|o| o.key() == y.key()));
    }

    #[test]
    fn a_delivery_without_ack_owns_nothing() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "a"));
        assert!(f.take(gid(&f, "a"), None).is_some());
        assert!(f.owner_of("a").is_none());
        assert!(f.groups.iter().flatten().all(|g| g.held == 0));
        assert_eq!(f.next_group_for(owner(9).key()), Some(gid(&f, "a")));
    }

    #[test]
    fn give_back_returns_the_owners_whole_group_to_the_head_in_order() {
        let mut f = Fifo::default();
        for i in 0..4 {
            f.push(entry(i, "g"));
        }
        f.push(entry(4, "h"));
        let (x, y) = (owner(1), owner(2));
        let mut taken: Vec<Entry> = (0..3).filter_map(|_| next_for(&mut f, &x)).collect();
        assert_eq!(seqs(&taken), [0, 1, 2]);
        // x gives back 1 alone: the owner's other held messages of g (0 and
        // 2, handed over by the callback) come back with it.
        let one = taken.remove(1);
        let mut asked = Vec::new();
        f.give_back(vec![one], |o, of_group| {
            asked.push(o.key());
            let (mine, _): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut taken)
                .into_iter()
                .partition(|e| of_group(e));
            mine
        });
        assert_eq!(asked, [x.key()]);
        assert!(f.owner_of("g").is_none());
        assert_eq!(f.len(), 5);
        // y gets g from its head, in order, redelivered.
        let again: Vec<Entry> = (0..4).filter_map(|_| next_for(&mut f, &y)).collect();
        assert_eq!(seqs(&again), [0, 1, 2, 3]);
        assert_eq!(
            again.iter().map(|e| e.redelivered).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn a_group_is_forgotten_once_empty_and_free() {
        let mut f = Fifo::default();
        let x = owner(1);
        f.push(entry(0, "a"));
        let a0 = next_for(&mut f, &x).unwrap_or_else(|| entry(99, "a"));
        assert_eq!(f.group_count(), 1, "kept while owned");
        f.settle(&a0);
        assert!(f.group_count() == 0 && f.free.live == 0 && f.owned.is_empty());
        // Its slot is used again.
        f.push(entry(1, "b"));
        assert_eq!(f.groups.len(), 1);
        assert_eq!(gid(&f, "b"), 0);
    }

    #[test]
    fn a_released_group_with_a_message_waiting_is_kept() {
        let mut f = Fifo::default();
        let (x, y) = (owner(1), owner(2));
        f.push(entry(0, "a"));
        let a0 = next_for(&mut f, &x).unwrap_or_else(|| entry(99, "a"));
        // 1 waits to be filed when x's ack releases a (and would forget it
        // if a had no message).
        f.push(entry(1, "a"));
        f.settle(&a0);
        assert_eq!(f.len(), 1);
        assert!(f.owner_of("a").is_none());
        assert_eq!(next_for(&mut f, &y).map(|e| e.seq), Some(1));
        assert_eq!(f.group_count(), 1);
    }

    #[test]
    fn purge_keeps_the_ownership_of_groups_with_unacked_messages() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "a"));
        f.push(entry(2, "b"));
        let (x, y) = (owner(1), owner(2));
        let held = next_for(&mut f, &x).unwrap_or_else(|| entry(99, "a"));
        assert_eq!(seqs(&f.drain_all()), [1, 2]);
        assert_eq!((f.len(), f.bytes()), (0, 0));
        // x still holds a message of a: a new one waits for x.
        f.push(entry(3, "a"));
        f.push(entry(4, "b"));
        assert_eq!(f.next_group_for(y.key()), Some(gid(&f, "b")));
        let b4 = next_for(&mut f, &y).unwrap_or_else(|| entry(99, "b"));
        assert_eq!(f.next_group_for(y.key()), None);
        assert_eq!(f.next_group_for(x.key()), Some(gid(&f, "a")));
        f.settle(&held);
        f.settle(&b4);
        assert_eq!(f.next_group_for(y.key()), Some(gid(&f, "a")));
        // Empty free groups are forgotten.
        assert_eq!(seqs(&f.drain_all()), [3]);
        assert!(f.group_count() == 0);
    }

    #[test]
    fn the_head_indexes_stay_small() {
        let mut f = Fifo::default();
        let x = owner(1);
        for i in 0..10_000 {
            f.push(entry(i, ["a", "b", "c"][(i % 3) as usize]));
        }
        let mut held = Vec::new();
        while let Some(e) = next_for(&mut f, &x) {
            held.push(e);
            assert!(f.owned.values().all(|h| h.heap.len() <= 2 * h.live + 65));
            assert!(f.free.heap.len() <= 2 * f.free.live + 65);
        }
        assert_eq!(seqs(&held), (0..10_000).collect::<Vec<_>>(), "oldest first");
        for e in &held {
            f.settle(e);
        }
        assert!(f.owned.is_empty() && f.group_count() == 0);
    }

    #[test]
    fn drop_head_takes_the_oldest_message_of_all_groups() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "b"));
        f.push(entry(2, "a"));
        let order: Vec<u64> = std::iter::from_fn(|| f.pop_oldest().map(|e| e.seq)).collect();
        assert_eq!(order, [0, 1, 2]);
        assert!(f.group_count() == 0 && f.free.live == 0);
    }

    #[test]
    fn only_group_heads_expire() {
        let mut f = Fifo::default();
        f.push(expiring(0, "a", 10));
        f.push(entry(1, "a"));
        f.push(expiring(2, "a", 10));
        f.push(expiring(3, "b", 10));
        f.push(expiring(4, "b", 50));
        assert_eq!(f.next_expiry(), Some(10));
        let mut out = Vec::new();
        f.take_expired(20, &mut out);
        out.sort_by_key(|e| e.seq);
        assert_eq!(seqs(&out), [0, 3], "2 waits behind 1; 4 is not due");
        assert_eq!(f.next_expiry(), Some(50));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn non_string_group_ids_are_groups_too() {
        let mut m = (*msg("")).clone();
        m.properties.modify(|p| {
            p.headers = Some(
                [(ShortStr::from_static("x-group-id"), FieldValue::I32(7))]
                    .into_iter()
                    .collect(),
            )
        });
        let mut f = Fifo::default();
        f.push(Entry {
            msg: Held::Memory(Arc::new(m)),
            ..entry(0, "")
        });
        f.push(entry(1, ""));
        assert_eq!(f.group_count(), 2, "7 is not the default group");
    }

    #[test]
    fn header_lookup_without_decoding_agrees_with_the_decoder() {
        let table: FieldTable = [
            (ShortStr::from_static("a"), FieldValue::I32(-4)),
            (
                ShortStr::from_static("b"),
                FieldValue::LongStr(LongStr::from("x-group-id")),
            ),
            (ShortStr::from_static("c"), FieldValue::Bool(true)),
            (ShortStr::from_static("d"), FieldValue::F64(1.5)),
            (ShortStr::from_static("e"), FieldValue::Void),
            (
                ShortStr::from_static("f"),
                FieldValue::Bytes(bytes::Bytes::from_static(b"zz")),
            ),
            (
                ShortStr::from_static("g"),
                FieldValue::Table(
                    [(ShortStr::from_static("x-group-id"), FieldValue::I8(1))]
                        .into_iter()
                        .collect(),
                ),
            ),
            (
                ShortStr::from_static("x-group-id"),
                FieldValue::LongStr(LongStr::from("orders-7")),
            ),
        ]
        .into_iter()
        .collect();
        let raw = table.raw_bytes();
        assert!(matches!(
            raw_long_str(raw, b"x-group-id"),
            Raw::Str(b"orders-7")
        ));
        assert!(matches!(raw_long_str(raw, b"x-other"), Raw::Absent));
        assert!(
            matches!(raw_long_str(raw, b"a"), Raw::Other),
            "not a string"
        );
        assert!(matches!(
            raw_long_str(&raw[..raw.len() - 3], b"x-group-id"),
            Raw::Other
        ));
        assert!(matches!(raw_long_str(b"", b"x-group-id"), Raw::Absent));
        // A group id that is not a string still names a group.
        let mut m = (*msg("")).clone();
        m.properties.modify(|p| {
            p.headers = Some(
                [(ShortStr::from_static("x-group-id"), FieldValue::I32(7))]
                    .into_iter()
                    .collect(),
            )
        });
        assert_eq!(group_key(&m).as_bytes(), b"I32(7)");
        assert_eq!(group_key(&msg("g")).as_bytes(), b"g");
        assert_eq!(group_key(&msg("")).as_bytes(), b"");
    }

    #[test]
    fn dedup_forgets_in_expiry_order_and_hands_back_log_records() {
        let mut d = Dedup::new(true);
        let (a, b) = (hash128(0, b"a"), hash128(0, b"b"));
        d.remember(a, 100, Some(RecordId(7)));
        d.remember(b, 200, None);
        let mut forgotten = Vec::new();
        d.prune(150, |r| forgotten.push(r));
        assert_eq!(forgotten, [RecordId(7)]);
        assert!(!d.is_duplicate(a) && d.is_duplicate(b));
        // Accepted again after its window: remembered anew.
        d.remember(a, 300, None);
        d.prune(250, |_| {});
        assert!(d.is_duplicate(a) && !d.is_duplicate(b));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn dedup_ids_are_stable_and_distinguish_headers_from_bodies() {
        // The same text as an id and as a body are different ids.
        assert_ne!(hash128(0, b"x"), hash128(1, b"x"));
        assert_ne!(hash128(0, b"order-1"), hash128(0, b"order-2"));
        // Pinned: a durable queue's ids are in the log, so these values
        // must never change (tests/tests/fifo/dedup.rs pins one too).
        assert_eq!(hash128(0, b"order-1"), ORDER_1);
        assert_eq!(hash128(1, b""), EMPTY_BODY);
    }

    const ORDER_1: u128 = 0xd871_91a6_1a6b_30de_f27e_e237_6e0d_cfc3;
    const EMPTY_BODY: u128 = 0xb010_8828_d5c4_8d4f_d23c_17f9_6e41_0695;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // From the reference implementation's vectors.h (SipHash-2-4-128):
        // key 00..0f, message 00..(n-1).
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0u8..64).collect();
        let want: [(usize, [u8; 16]); 6] = [
            (
                0,
                [
                    0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7,
                    0x55, 0x02, 0x93,
                ],
            ),
            (
                1,
                [
                    0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b,
                    0x22, 0xfc, 0x45,
                ],
            ),
            (
                2,
                [
                    0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6,
                    0x0a, 0xff, 0xe4,
                ],
            ),
            (
                8,
                [
                    0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3,
                    0x14, 0x97, 0xb4,
                ],
            ),
            (
                15,
                [
                    0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97,
                    0xcf, 0xc3, 0xd9,
                ],
            ),
            (
                63,
                [
                    0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97,
                    0x3f, 0xbd, 0x7c,
                ],
            ),
        ];
        for (n, tag) in want {
            assert_eq!(siphash_2_4_128(&key, &msg[..n]), tag, "{n} bytes");
        }
    }

    #[test]
    fn dedup_remembers_ids_for_the_window_only() {
        let mut d = Dedup::default();
        let id = hash128(0, b"order-1");
        assert!(!d.is_duplicate(id));
        d.remember(id, 1000 + 300, None);
        assert!(d.is_duplicate(id));
        d.prune(1300, |_| {});
        assert!(!d.is_duplicate(id));
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn dedup_ids_prefer_the_header_then_message_id_then_body() {
        let m = msg("");
        assert_eq!(dedup_id(&m, false), None);
        assert!(dedup_id(&m, true).is_some());
        let mut with_id = (*m).clone();
        with_id
            .properties
            .modify(|p| p.message_id = Some(ShortStr::from_static("m-1")));
        assert_eq!(dedup_id(&with_id, true), Some(hash128(0, b"m-1")));
    }
}
