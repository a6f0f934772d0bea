//! FIFO queues: per-group order, one owner per group, and deduplication.
//!
//! Messages are kept per message group (`x-group-id`, or the default group).
//! A group whose messages are delivered and not yet acked belongs to the
//! consumer (or basic.get channel) holding them: only it gets the group's
//! next messages. Free groups go to whoever asks first, oldest head first.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use warren_persistence::RecordId;
use warren_protocol::{FieldValue, LongStr, ShortStr};

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

enum GroupKey {
    Str(LongStr),
    Other(String),
    Default,
}

impl GroupKey {
    fn as_bytes(&self) -> &[u8] {
        match self {
            GroupKey::Str(s) => s.as_bytes(),
            GroupKey::Other(s) => s.as_bytes(),
            GroupKey::Default => b"",
        }
    }
}

/// The group a message belongs to: its `x-group-id` header, or "" (the
/// default group). A non-string header value is named by its text form.
fn group_key(msg: &Message) -> GroupKey {
    match msg
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-group-id"))
    {
        Some(FieldValue::LongStr(s)) => GroupKey::Str(s),
        Some(other) => GroupKey::Other(format!("{other:?}")),
        None => GroupKey::Default,
    }
}

/// A group's slot in [`Fifo::groups`].
type GroupId = u32;

/// A hasher for integer keys (sequence numbers, owner addresses), which
/// clients do not choose.
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
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

struct Group {
    name: Bytes,
    msgs: VecDeque<Entry>,
    owner: Option<Owner>,
    /// Messages of this group delivered to the owner and not yet settled.
    held: u32,
    /// Where the group is indexed: (head seq, owner key or 0 when free).
    indexed: Option<(u64, usize)>,
}

/// The ready messages of a FIFO queue, by group, and who holds which group.
#[derive(Default)]
pub struct Fifo {
    /// Groups by id; `None` marks a vacant slot (listed in `vacant`).
    groups: Vec<Option<Group>>,
    vacant: Vec<GroupId>,
    by_name: HashMap<Bytes, GroupId>,
    /// Free groups with messages, by head (oldest first).
    free: BTreeSet<(u64, GroupId)>,
    /// Owned groups with messages, per owner key, by head.
    owned: IntMap<usize, BTreeSet<(u64, GroupId)>>,
    /// The group of every message delivered with ack and not settled, by seq.
    held: IntMap<u64, GroupId>,
    len: usize,
    bytes: u64,
}

impl Fifo {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn group(&mut self, id: GroupId) -> Option<&mut Group> {
        self.groups.get_mut(id as usize)?.as_mut()
    }

    /// The id of a message's group, creating the group if needed.
    fn group_id(&mut self, msg: &Message) -> GroupId {
        let key = group_key(msg);
        if let Some(id) = self.by_name.get(key.as_bytes()) {
            return *id;
        }
        let name = Bytes::copy_from_slice(key.as_bytes());
        let group = Group {
            name: name.clone(),
            msgs: VecDeque::new(),
            owner: None,
            held: 0,
            indexed: None,
        };
        let id = match self.vacant.pop() {
            Some(id) => {
                self.groups[id as usize] = Some(group);
                id
            }
            None => {
                self.groups.push(Some(group));
                GroupId::try_from(self.groups.len() - 1).unwrap_or(GroupId::MAX)
            }
        };
        self.by_name.insert(name, id);
        id
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
        if let Some((seq, key)) = g.indexed.take() {
            if key == 0 {
                self.free.remove(&(seq, id));
            } else if let Some(set) = self.owned.get_mut(&key) {
                set.remove(&(seq, id));
                if set.is_empty() {
                    self.owned.remove(&key);
                }
            }
        }
        match want {
            Some((seq, 0)) => {
                self.free.insert((seq, id));
            }
            Some((seq, key)) => {
                self.owned.entry(key).or_default().insert((seq, id));
            }
            None if g.owner.is_none() => {
                let name = g.name.clone();
                self.by_name.remove(&name);
                self.groups[id as usize] = None;
                self.vacant.push(id);
                return;
            }
            None => {}
        }
        if let Some(g) = self.group(id) {
            g.indexed = want;
        }
    }

    pub fn push(&mut self, e: Entry) {
        let id = self.group_id(&e.msg);
        self.len += 1;
        self.bytes += e.msg.body.len() as u64;
        if let Some(g) = self.group(id) {
            let was_empty = g.msgs.is_empty();
            g.msgs.push_back(e);
            if was_empty {
                self.reindex(id);
            }
        }
    }

    /// The group `owner` should take from next: one it already holds, else
    /// the free group with the oldest head.
    pub fn next_group_for(&self, owner_key: usize) -> Option<GroupId> {
        if let Some((_, id)) = self.owned.get(&owner_key).and_then(|s| s.first()) {
            return Some(*id);
        }
        self.free.first().map(|(_, id)| *id)
    }

    /// Takes the head of a group for `owner` (`None`: delivered without ack,
    /// so nothing is held).
    pub fn take(&mut self, id: GroupId, owner: Option<Owner>) -> Option<Entry> {
        let g = self.group(id)?;
        let e = g.msgs.pop_front()?;
        if let Some(o) = owner {
            if g.owner.as_ref().is_none_or(|cur| cur.key() != o.key()) {
                g.owner = Some(o);
            }
            g.held += 1;
            self.held.insert(e.seq, id);
        }
        self.len -= 1;
        self.bytes -= e.msg.body.len() as u64;
        self.reindex(id);
        Some(e)
    }

    /// A held message was acked or dropped; its group is free again once
    /// its owner holds none. (Messages not held are ignored.)
    pub fn settle(&mut self, e: &Entry) {
        let Some(id) = self.held.remove(&e.seq) else {
            return;
        };
        if let Some(g) = self.group(id) {
            g.held = g.held.saturating_sub(1);
            if g.held == 0 {
                g.owner = None;
                self.reindex(id);
            }
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
        let mut by_group: Vec<(GroupId, Vec<Entry>)> = Vec::new();
        for e in entries {
            let id = match self.held.get(&e.seq) {
                Some(id) => *id,
                None => self.group_id(&e.msg),
            };
            match by_group.iter_mut().find(|(g, _)| *g == id) {
                Some((_, v)) => v.push(e),
                None => by_group.push((id, vec![e])),
            }
        }
        for (id, mut list) in by_group {
            let owner = self.group(id).and_then(|g| g.owner.clone());
            if let Some(owner) = owner {
                let held = &self.held;
                let of_group = |e: &Entry| held.get(&e.seq) == Some(&id);
                list.extend(more(&owner, &of_group));
            }
            self.put_back(id, list);
        }
    }

    /// Returned messages go back to the head of their group in their
    /// original order, and the group is released.
    fn put_back(&mut self, id: GroupId, mut entries: Vec<Entry>) {
        entries.sort_by_key(|e| e.seq);
        for e in &entries {
            self.held.remove(&e.seq);
        }
        self.len += entries.len();
        self.bytes += entries.iter().map(|e| e.msg.body.len() as u64).sum::<u64>();
        let Some(g) = self.group(id) else { return };
        for mut e in entries.into_iter().rev() {
            e.redelivered = true;
            g.msgs.push_front(e);
        }
        g.owner = None;
        g.held = 0;
        self.reindex(id);
    }

    #[cfg(test)]
    fn owner_of(&self, name: &str) -> Option<&Owner> {
        let id = self.by_name.get(name.as_bytes())?;
        self.groups.get(*id as usize)?.as_ref()?.owner.as_ref()
    }

    /// The oldest message overall (for x-max-length drop-head).
    pub fn pop_oldest(&mut self) -> Option<Entry> {
        let (_, id) = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((g.as_ref()?.msgs.front()?.seq, i)))
            .min()?;
        let id = GroupId::try_from(id).ok()?;
        let e = self.group(id)?.msgs.pop_front()?;
        self.len -= 1;
        self.bytes -= e.msg.body.len() as u64;
        self.reindex(id);
        Some(e)
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.groups
            .iter()
            .filter_map(|g| g.as_ref()?.msgs.front()?.expires_at)
            .min()
    }

    /// Removes expired messages from the heads of the groups.
    pub fn take_expired(&mut self, now_ms: u64, out: &mut Vec<Entry>) {
        for i in 0..self.groups.len() {
            let id = GroupId::try_from(i).unwrap_or(GroupId::MAX);
            let Some(g) = self.group(id) else { continue };
            let before = out.len();
            while g.msgs.front().is_some_and(|e| e.expired(now_ms)) {
                out.extend(g.msgs.pop_front());
            }
            if out.len() > before {
                for e in &out[before..] {
                    self.len -= 1;
                    self.bytes -= e.msg.body.len() as u64;
                }
                self.reindex(id);
            }
        }
    }

    /// Takes every ready message (purge, delete). Groups whose owner still
    /// holds unacked messages stay owned: purge leaves unacked messages
    /// alone, so their group must not go to anyone else meanwhile.
    pub fn drain_all(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = Vec::with_capacity(self.len);
        for g in self.groups.iter_mut().flatten() {
            all.extend(g.msgs.drain(..));
        }
        all.sort_by_key(|e| e.seq);
        self.len = 0;
        self.bytes = 0;
        for i in 0..self.groups.len() {
            self.reindex(GroupId::try_from(i).unwrap_or(GroupId::MAX));
        }
        all
    }
}

/// Deduplication ids accepted within the window, oldest first.
#[derive(Default)]
pub struct Dedup {
    seen: HashMap<u128, u64>,
    /// (expiry in unix ms, id, its DEDUP record in the log)
    order: VecDeque<(u64, u128, Option<RecordId>)>,
}

impl Dedup {
    /// Forgets ids whose window has passed; `on_forget` gets their records.
    pub fn prune(&mut self, now_ms: u64, mut on_forget: impl FnMut(RecordId)) {
        while self.order.front().is_some_and(|(exp, _, _)| *exp <= now_ms) {
            if let Some((exp, id, record)) = self.order.pop_front() {
                if self.seen.get(&id) == Some(&exp) {
                    self.seen.remove(&id);
                }
                if let Some(r) = record {
                    on_forget(r);
                }
            }
        }
    }

    pub fn is_duplicate(&self, id: u128, now_ms: u64) -> bool {
        self.seen.get(&id).is_some_and(|exp| *exp > now_ms)
    }

    pub fn remember(&mut self, id: u128, expires_ms: u64, record: Option<RecordId>) {
        self.seen.insert(id, expires_ms);
        self.order.push_back((expires_ms, id, record));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }
}

fn hash128(kind: u8, bytes: &[u8]) -> u128 {
    // SipHash with fixed keys: stable across restarts, which the dedup
    // state of a durable queue needs.
    let mut a = DefaultHasher::new();
    (kind, 0u8, bytes).hash(&mut a);
    let mut b = DefaultHasher::new();
    (kind, 1u8, bytes).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The deduplication id of a message: `x-deduplication-id`, else
/// `message-id`, else (when enabled) a hash of the body.
pub fn dedup_id(msg: &Message, content_based: bool) -> Option<u128> {
    if let Some(v) = msg
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-deduplication-id"))
    {
        return Some(match &v {
            FieldValue::LongStr(s) => hash128(0, s.as_bytes()),
            other => hash128(0, format!("{other:?}").as_bytes()),
        });
    }
    if let Some(id) = &msg.properties.message_id {
        return Some(hash128(0, id.as_bytes()));
    }
    content_based.then(|| hash128(1, &msg.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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
            },
            raw_properties: Bytes::new(),
            body: Bytes::from_static(b"x"),
        })
    }

    fn entry(seq: u64, group: &str) -> Entry {
        Entry {
            msg: msg(group),
            seq,
            redelivered: false,
            persisted: None,
            expires_at: None,
            returns: 0,
        }
    }

    fn name(s: &str) -> ShortStr {
        ShortStr::try_from(s).unwrap_or_default()
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

    #[test]
    fn free_groups_go_oldest_head_first_and_owned_groups_to_their_owner_only() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "b"));
        f.push(entry(2, "a"));
        let (x, y, z) = (owner(1), owner(2), owner(3));
        // x asks first: the free group with the oldest head, a.
        assert_eq!(f.next_group_for(x.key()), Some(name("a")));
        assert_eq!(f.take(&name("a"), Some(x.clone())).map(|e| e.seq), Some(0));
        // a is x's now: y gets b, and x keeps getting a.
        assert_eq!(f.next_group_for(y.key()), Some(name("b")));
        assert_eq!(f.take(&name("b"), Some(y.clone())).map(|e| e.seq), Some(1));
        assert_eq!(f.next_group_for(z.key()), None, "every group is owned");
        assert_eq!(f.next_group_for(x.key()), Some(name("a")));
        assert_eq!(f.take(&name("a"), Some(x.clone())).map(|e| e.seq), Some(2));
        assert_eq!(f.len(), 0);
        // New messages of an owned group wait for its owner.
        f.push(entry(3, "a"));
        assert_eq!(f.next_group_for(z.key()), None);
        assert_eq!(f.next_group_for(x.key()), Some(name("a")));
        // x holds two messages of a: one ack is not enough to free it.
        f.settle(&name("a"), 1);
        assert_eq!(f.next_group_for(z.key()), None);
        f.settle(&name("a"), 1);
        assert_eq!(f.next_group_for(z.key()), Some(name("a")));
        assert!(f.owner_of(&name("a")).is_none());
        assert!(f.owner_of(&name("b")).is_some_and(|o| o.key() == y.key()));
    }

    #[test]
    fn a_delivery_without_ack_owns_nothing() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "a"));
        assert!(f.take(&name("a"), None).is_some());
        assert!(f.owner_of(&name("a")).is_none());
        assert_eq!(f.next_group_for(owner(9).key()), Some(name("a")));
    }

    #[test]
    fn put_back_releases_the_group_with_its_messages_first() {
        let mut f = Fifo::default();
        for i in 0..4 {
            f.push(entry(i, "g"));
        }
        f.push(entry(4, "h"));
        let (x, y) = (owner(1), owner(2));
        let taken: Vec<Entry> = (0..3)
            .filter_map(|_| f.take(&name("g"), Some(x.clone())))
            .collect();
        assert_eq!(seqs(&taken), [0, 1, 2]);
        // Returned in any order: back at the head in publish order, free.
        let mut back = taken;
        back.reverse();
        f.put_back(&name("g"), back);
        assert!(f.owner_of(&name("g")).is_none());
        assert_eq!(
            f.next_group_for(y.key()),
            Some(name("g")),
            "g's head (0) is older than h's"
        );
        assert_eq!(f.take(&name("g"), Some(y)).map(|e| e.seq), Some(0));
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn purge_keeps_the_ownership_of_groups_with_unacked_messages() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "a"));
        f.push(entry(2, "b"));
        let (x, y) = (owner(1), owner(2));
        assert!(f.take(&name("a"), Some(x.clone())).is_some());
        assert_eq!(seqs(&f.drain_all()), [1, 2]);
        assert_eq!((f.len(), f.bytes()), (0, 0));
        // x still holds a message of a: a new one waits for x.
        f.push(entry(3, "a"));
        f.push(entry(4, "b"));
        assert_eq!(f.next_group_for(y.key()), Some(name("b")));
        assert!(f.take(&name("b"), Some(y.clone())).is_some());
        assert_eq!(f.next_group_for(y.key()), None);
        assert_eq!(f.next_group_for(x.key()), Some(name("a")));
        f.settle(&name("a"), 1);
        f.settle(&name("b"), 1);
        assert_eq!(f.next_group_for(y.key()), Some(name("a")));
        // Empty free groups are forgotten.
        assert_eq!(seqs(&f.drain_all()), [3]);
        assert!(f.groups.is_empty());
    }

    #[test]
    fn drop_head_takes_the_oldest_message_of_all_groups() {
        let mut f = Fifo::default();
        f.push(entry(0, "a"));
        f.push(entry(1, "b"));
        f.push(entry(2, "a"));
        let order: Vec<u64> = std::iter::from_fn(|| f.pop_oldest().map(|e| e.seq)).collect();
        assert_eq!(order, [0, 1, 2]);
        assert!(f.groups.is_empty() && f.free.is_empty());
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
    fn put_back_restores_order_at_the_head() {
        let mut f = Fifo::default();
        for i in 0..4 {
            f.push(entry(i, "g"));
        }
        let a = f.take(&name("g"), None);
        let b = f.take(&name("g"), None);
        f.put_back(
            &name("g"),
            vec![
                b.unwrap_or_else(|| entry(99, "g")),
                a.unwrap_or_else(|| entry(98, "g")),
            ],
        );
        let order: Vec<u64> = f.drain_all().iter().map(|e| e.seq).collect();
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    #[test]
    fn dedup_forgets_in_expiry_order_and_hands_back_log_records() {
        let mut d = Dedup::default();
        let (a, b) = (hash128(0, b"a"), hash128(0, b"b"));
        d.remember(a, 100, Some(RecordId(7)));
        d.remember(b, 200, None);
        let mut forgotten = Vec::new();
        d.prune(150, |r| forgotten.push(r));
        assert_eq!(forgotten, [RecordId(7)]);
        assert!(!d.is_duplicate(a, 150) && d.is_duplicate(b, 150));
        // Accepted again after its window: remembered anew.
        d.remember(a, 300, None);
        d.prune(250, |_| {});
        assert!(d.is_duplicate(a, 250) && !d.is_duplicate(b, 250));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn dedup_ids_are_stable_and_distinguish_headers_from_bodies() {
        // The same text as an id and as a body are different ids.
        assert_ne!(hash128(0, b"x"), hash128(1, b"x"));
        // Stable across runs (a durable queue's ids are in the log).
        assert_eq!(hash128(0, b"order-1"), hash128(0, b"order-1"));
        assert_ne!(hash128(0, b"order-1"), hash128(0, b"order-2"));
    }

    #[test]
    fn dedup_remembers_ids_for_the_window_only() {
        let mut d = Dedup::default();
        let id = hash128(0, b"order-1");
        assert!(!d.is_duplicate(id, 1000));
        d.remember(id, 1000 + 300, None);
        assert!(d.is_duplicate(id, 1100));
        d.prune(1300, |_| {});
        assert!(!d.is_duplicate(id, 1300));
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn dedup_ids_prefer_the_header_then_message_id_then_body() {
        let m = msg("");
        assert_eq!(dedup_id(&m, false), None);
        assert!(dedup_id(&m, true).is_some());
        let mut with_id = (*m).clone();
        with_id.properties.message_id = Some(ShortStr::from_static("m-1"));
        assert_eq!(dedup_id(&with_id, true), Some(hash128(0, b"m-1")));
    }
}
