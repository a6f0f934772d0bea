//! Exchanges and their bindings: where a published message goes.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use warren_protocol::{FieldTable, ShortStr};

use warren_persistence::RecordId;

use super::headers::HeadersPattern;
use super::queue::Queue;
use super::topic::{TopicKey, TopicPattern};
use crate::error::{q, AmqpError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// The nameless default exchange: routes to the queue named by the key.
    Default,
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(kind: &ShortStr) -> Result<ExchangeKind, AmqpError> {
        match kind.as_bytes() {
            b"direct" => Ok(ExchangeKind::Direct),
            b"fanout" => Ok(ExchangeKind::Fanout),
            b"topic" => Ok(ExchangeKind::Topic),
            b"headers" => Ok(ExchangeKind::Headers),
            _ => Err(AmqpError::command_invalid(format!(
                "unknown exchange type {}",
                q(kind)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Default | ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    fn same(&self, other: &Destination) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
    topic: Option<TopicPattern>,
    headers: Option<HeadersPattern>,
    /// The BINDING record, when the binding is durable.
    record: Option<RecordId>,
}

impl Binding {
    fn same(&self, d: &Destination, key: &ShortStr, args: &FieldTable) -> bool {
        self.destination.same(d) && &self.routing_key == key && &self.arguments == args
    }
}

#[derive(Default)]
struct Bindings {
    /// Direct exchanges look up by key; everything else scans `all`.
    by_key: HashMap<ShortStr, Vec<Binding>>,
    all: Vec<Binding>,
}

/// How an exchange was declared; compared on redeclare.
#[derive(Debug, Clone)]
pub struct ExchangeOptions {
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

pub struct Exchange {
    pub name: ShortStr,
    pub options: ExchangeOptions,
    /// The `alternate-exchange` argument: where unroutable messages go.
    pub alternate: Option<ShortStr>,
    /// The EXCHANGE record of a durable, user-declared exchange.
    pub record: Option<RecordId>,
    bindings: RwLock<Bindings>,
    /// Set once deleted, so channels holding it in a cache look it up again.
    deleted: std::sync::atomic::AtomicBool,
}

/// Reusable scratch space for routing, so a publish allocates nothing.
#[derive(Default)]
pub struct RouteScratch {
    pub queues: Vec<Arc<Queue>>,
    exchanges: Vec<Arc<Exchange>>,
    /// The routing key's words, for topic exchanges.
    topic_words: Vec<(u8, u8)>,
}

impl Exchange {
    pub fn new(
        name: ShortStr,
        options: ExchangeOptions,
        record: Option<RecordId>,
    ) -> Arc<Exchange> {
        let alternate = options
            .arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str().and_then(|s| ShortStr::try_from(s).ok()));
        Arc::new(Exchange {
            name,
            options,
            alternate,
            record,
            bindings: RwLock::new(Bindings::default()),
            deleted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn mark_deleted(&self) {
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn kind(&self) -> ExchangeKind {
        self.options.kind
    }

    /// Adds a binding; binding twice is a no-op, as in RabbitMQ. `persist`
    /// writes the binding's record and runs only for a new binding.
    pub fn bind(
        &self,
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
        persist: impl FnOnce() -> Option<RecordId>,
    ) {
        let mut b = self.bindings.write();
        if b.all
            .iter()
            .any(|x| x.same(&destination, &routing_key, &arguments))
        {
            return;
        }
        let record = persist();
        let topic = (self.kind() == ExchangeKind::Topic).then(|| TopicPattern::new(&routing_key));
        let headers =
            (self.kind() == ExchangeKind::Headers).then(|| HeadersPattern::new(&arguments));
        let binding = Binding {
            destination,
            routing_key: routing_key.clone(),
            arguments,
            topic,
            headers,
            record,
        };
        if self.kind() == ExchangeKind::Direct {
            b.by_key
                .entry(routing_key)
                .or_default()
                .push(binding.clone());
        }
        b.all.push(binding);
    }

    /// Removes a binding. `None` if there was no such binding, else its
    /// record (if durable).
    pub fn unbind(
        &self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Option<Option<RecordId>> {
        let mut b = self.bindings.write();
        let i = b
            .all
            .iter()
            .position(|x| x.same(destination, routing_key, arguments))?;
        let removed = b.all.remove(i);
        if let Some(v) = b.by_key.get_mut(routing_key) {
            v.retain(|x| !x.same(destination, routing_key, arguments));
            if v.is_empty() {
                b.by_key.remove(routing_key);
            }
        }
        Some(removed.record)
    }

    /// Removes every binding to `destination` (it is being deleted). `None`
    /// if there was none, else the records of the durable ones.
    pub fn unbind_all(&self, destination: &Destination) -> Option<Vec<RecordId>> {
        let mut b = self.bindings.write();
        if !b.all.iter().any(|x| x.destination.same(destination)) {
            return None;
        }
        let mut records = Vec::new();
        b.all.retain(|x| {
            let keep = !x.destination.same(destination);
            if !keep {
                records.extend(x.record);
            }
            keep
        });
        b.by_key.retain(|_, v| {
            v.retain(|x| !x.destination.same(destination));
            !v.is_empty()
        });
        Some(records)
    }

    /// Records of every durable binding from this exchange (it is being deleted).
    pub fn binding_records(&self) -> Vec<RecordId> {
        self.bindings
            .read()
            .all
            .iter()
            .filter_map(|x| x.record)
            .collect()
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().all.is_empty()
    }

    /// Adds to `out` the queues this exchange (and exchanges bound to it)
    /// routes a message to. Each queue appears once; exchange cycles end.
    pub fn route(
        self: &Arc<Exchange>,
        key: &ShortStr,
        headers: Option<&FieldTable>,
        out: &mut RouteScratch,
    ) {
        out.exchanges.clear();
        out.exchanges.push(self.clone());
        let mut i = 0;
        while i < out.exchanges.len() {
            let x = out.exchanges[i].clone();
            x.route_one(key, headers, out);
            i += 1;
        }
    }

    fn route_one(&self, key: &ShortStr, headers: Option<&FieldTable>, out: &mut RouteScratch) {
        let b = self.bindings.read();
        // Split once for all of a topic exchange's bindings.
        let mut topic_words = std::mem::take(&mut out.topic_words);
        let mut add = |d: &Destination| match d {
            Destination::Queue(q) => {
                if !out.queues.iter().any(|x| Arc::ptr_eq(x, q)) {
                    out.queues.push(q.clone());
                }
            }
            Destination::Exchange(x) => {
                if !out.exchanges.iter().any(|y| Arc::ptr_eq(x, y)) {
                    out.exchanges.push(x.clone());
                }
            }
        };
        match self.kind() {
            ExchangeKind::Default => {}
            ExchangeKind::Direct => {
                for binding in b.by_key.get(key).into_iter().flatten() {
                    add(&binding.destination);
                }
            }
            ExchangeKind::Fanout => b.all.iter().for_each(|x| add(&x.destination)),
            ExchangeKind::Topic => {
                let key = TopicKey::split(key.as_bytes(), &mut topic_words);
                for x in &b.all {
                    if x.topic.as_ref().is_some_and(|t| t.matches(&key)) {
                        add(&x.destination);
                    }
                }
            }
            ExchangeKind::Headers => {
                for x in &b.all {
                    if x.headers.as_ref().is_some_and(|h| h.matches(headers)) {
                        add(&x.destination);
                    }
                }
            }
        }
        out.topic_words = topic_words;
    }
}
