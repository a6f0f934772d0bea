//! A virtual host: its exchanges and queues, and the operations that change them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::exchange::{Destination, Exchange, ExchangeKind, ExchangeOptions, RouteScratch};
use super::link::ConnectionId;
use super::queue::{Queue, QueueOptions};
use super::queue_args::{DeclareFlags, QueueArgs, EQUIVALENCE_CHECKED};
use crate::error::{q, AmqpError};
use crate::store::records::{self, BindingRecord, ExchangeRecord, QueueRecord};
use crate::store::Persistence;

pub struct VHost {
    pub name: String,
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
    /// The log durable definitions go to.
    pub store: Option<Arc<Persistence>>,
    me: std::sync::Weak<VHost>,
}

fn log_failed(e: warren_persistence::StoreError) -> AmqpError {
    tracing::error!(error = %e, "cannot write to the log");
    AmqpError::internal("cannot write to the message store")
}

/// The exchanges every vhost starts with.
const BUILT_IN: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Default),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl VHost {
    pub fn new(name: &str, store: Option<Arc<Persistence>>) -> Arc<VHost> {
        let mut exchanges = HashMap::new();
        for (n, kind) in BUILT_IN {
            let name = ShortStr::from_static(n);
            let opts = ExchangeOptions {
                kind: *kind,
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::default(),
            };
            exchanges.insert(name.clone(), Exchange::new(name, opts, None));
        }
        Arc::new_cyclic(|me| VHost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::default(),
            store,
            me: me.clone(),
        })
    }

    pub fn exchange(&self, name: &ShortStr) -> Result<Arc<Exchange>, AmqpError> {
        self.exchanges.read().get(name).cloned().ok_or_else(|| {
            AmqpError::not_found(format!("no exchange {} in vhost '{}'", q(name), self.name))
        })
    }

    pub fn queue(&self, name: &ShortStr) -> Result<Arc<Queue>, AmqpError> {
        self.queues.read().get(name).cloned().ok_or_else(|| {
            AmqpError::not_found(format!("no queue {} in vhost '{}'", q(name), self.name))
        })
    }

    pub fn find_queue(&self, name: &ShortStr) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    fn exchanges_snapshot(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    fn describe_exchange(&self, name: &ShortStr) -> String {
        format!("exchange {} in vhost '{}'", q(name), self.name)
    }

    /// exchange.declare (active). Passive declares use [`VHost::exchange`].
    pub fn declare_exchange(
        &self,
        name: ShortStr,
        opts: ExchangeOptions,
    ) -> Result<Arc<Exchange>, AmqpError> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let mut map = self.exchanges.write();
        if let Some(x) = map.get(&name) {
            self.check_equivalent_exchange(x, &opts)?;
            return Ok(x.clone());
        }
        if name.as_bytes().starts_with(b"amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name {} contains reserved prefix 'amq.*'",
                q(&name)
            )));
        }
        if let Some(v) = opts.arguments.get("alternate-exchange") {
            if v.as_str().is_none() {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'alternate-exchange' for {}: expected a string",
                    self.describe_exchange(&name)
                )));
            }
        }
        let record = match (&self.store, opts.durable) {
            (Some(store), true) => {
                let rec = ExchangeRecord {
                    vhost: short_name(&self.name),
                    name: name.clone(),
                    kind: ShortStr::from_static(opts.kind.name()),
                    auto_delete: opts.auto_delete,
                    internal: opts.internal,
                    arguments: opts.arguments.clone(),
                };
                Some(
                    store
                        .append(records::EXCHANGE, rec.encode())
                        .map_err(log_failed)?,
                )
            }
            _ => None,
        };
        let x = Exchange::new(name.clone(), opts, record);
        map.insert(name, x.clone());
        Ok(x)
    }

    /// Puts back a durable exchange recovered from the log.
    pub fn restore_exchange(&self, x: Arc<Exchange>) {
        self.exchanges.write().insert(x.name.clone(), x);
    }

    /// Puts back a durable queue recovered from the log.
    pub fn restore_queue(
        &self,
        name: ShortStr,
        opts: QueueOptions,
        record: warren_persistence::RecordId,
    ) -> Arc<Queue> {
        let flags = DeclareFlags {
            durable: true,
            exclusive: false,
            auto_delete: opts.auto_delete,
        };
        let args =
            QueueArgs::parse(&opts.arguments, "a recovered queue", flags).unwrap_or_default();
        let queue = Queue::new(
            name,
            self.name.clone(),
            opts,
            args,
            self.store.clone(),
            Some(record),
            self.me.clone(),
        );
        self.queues
            .write()
            .insert(queue.name.clone(), queue.clone());
        queue
    }

    fn tombstone_all(&self, records: impl IntoIterator<Item = warren_persistence::RecordId>) {
        if let Some(store) = &self.store {
            for r in records {
                store.tombstone(r);
            }
        }
    }

    fn forget_exchange(&self, x: &Arc<Exchange>) {
        x.mark_deleted();
        self.tombstone_all(x.binding_records());
        self.tombstone_all(x.record);
    }

    /// Binds `destination` to `source`, logging the binding when both ends are durable.
    pub fn bind(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let durable_dest = match &destination {
            Destination::Queue(queue) => queue.record.map(|_| (false, queue.name.clone())),
            Destination::Exchange(x) => x.options.durable.then(|| (true, x.name.clone())),
        };
        let mut failed = None;
        let persist = || {
            let store = self.store.as_ref()?;
            let (to_exchange, dest) = durable_dest?;
            if !source.options.durable {
                return None;
            }
            let rec = BindingRecord {
                vhost: short_name(&self.name),
                source: source.name.clone(),
                to_exchange,
                destination: dest,
                routing_key: routing_key.clone(),
                arguments: arguments.clone(),
            };
            match store.append(records::BINDING, rec.encode()) {
                Ok(id) => Some(id),
                Err(e) => {
                    failed = Some(log_failed(e));
                    None
                }
            }
        };
        source.bind(
            destination.clone(),
            routing_key.clone(),
            arguments.clone(),
            persist,
        );
        failed.map_or(Ok(()), Err)
    }

    /// Puts back a binding recovered from the log.
    pub fn restore_binding(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
        record: warren_persistence::RecordId,
    ) {
        source.bind(destination, routing_key, arguments, || Some(record));
    }

    /// Removes a binding (no error if it did not exist, as in RabbitMQ).
    pub fn unbind(
        &self,
        source: &Arc<Exchange>,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) {
        if let Some(record) = source.unbind(destination, routing_key, arguments) {
            self.tombstone_all(record);
            self.maybe_auto_delete(source);
        }
    }

    fn check_equivalent_exchange(
        &self,
        x: &Exchange,
        opts: &ExchangeOptions,
    ) -> Result<(), AmqpError> {
        let d = self.describe_exchange(&x.name);
        let cur = &x.options;
        if cur.kind != opts.kind {
            return Err(AmqpError::precondition(format!(
                "inequivalent arg 'type' for {d}: received '{}' but current is '{}'",
                opts.kind.name(),
                cur.kind.name()
            )));
        }
        for (arg, received, current) in [
            ("durable", opts.durable, cur.durable),
            ("auto_delete", opts.auto_delete, cur.auto_delete),
            ("internal", opts.internal, cur.internal),
        ] {
            if received != current {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{arg}' for {d}: received '{}' but current is '{}'",
                    bool_text(received),
                    bool_text(current)
                )));
            }
        }
        check_equivalent_args(&d, &cur.arguments, &opts.arguments, &["alternate-exchange"])
    }

    /// exchange.delete.
    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() || name.as_bytes().starts_with(b"amq.") {
            return Err(AmqpError::access_refused(if name.is_empty() {
                "operation not permitted on the default exchange".to_string()
            } else {
                format!(
                    "deletion of system {} not allowed",
                    self.describe_exchange(name)
                )
            }));
        }
        let x = {
            let mut map = self.exchanges.write();
            let Some(x) = map.get(name).cloned() else {
                // Deleting what is not there succeeds, as in RabbitMQ.
                return Ok(());
            };
            if if_unused && x.has_bindings() {
                return Err(AmqpError::precondition(format!(
                    "{} in use",
                    self.describe_exchange(name)
                )));
            }
            map.remove(name);
            x
        };
        self.forget_exchange(&x);
        let dest = Destination::Exchange(x);
        for other in self.exchanges_snapshot() {
            if let Some(records) = other.unbind_all(&dest) {
                self.tombstone_all(records);
                self.maybe_auto_delete(&other);
            }
        }
        Ok(())
    }

    /// queue.declare (active) of a named queue. Returns the queue and whether
    /// it was created now.
    pub fn declare_queue(
        &self,
        name: ShortStr,
        opts: QueueOptions,
        args: QueueArgs,
        conn: ConnectionId,
    ) -> Result<(Arc<Queue>, bool), AmqpError> {
        let mut map = self.queues.write();
        if let Some(existing) = map.get(&name) {
            // The exclusive flag must match, and only the owner may redeclare.
            match (existing.options.exclusive_owner, opts.exclusive_owner) {
                (Some(owner), Some(_)) if owner == conn => {}
                (None, None) => {}
                _ => return Err(existing.locked_error()),
            }
            self.check_equivalent_queue(existing, &opts)?;
            existing.touch();
            return Ok((existing.clone(), false));
        }
        let (store, record) = match &self.store {
            Some(store) if opts.durable && opts.exclusive_owner.is_none() => {
                let rec = QueueRecord {
                    vhost: short_name(&self.name),
                    name: name.clone(),
                    auto_delete: opts.auto_delete,
                    arguments: opts.arguments.clone(),
                };
                let id = store
                    .append(records::QUEUE, rec.encode())
                    .map_err(log_failed)?;
                (Some(store.clone()), Some(id))
            }
            // (Still given the log: a queue may page transient messages
            // out to it under memory pressure.)
            _ => (self.store.clone(), None),
        };
        let queue = Queue::new(
            name.clone(),
            self.name.clone(),
            opts,
            args,
            store,
            record,
            self.me.clone(),
        );
        map.insert(name, queue.clone());
        Ok((queue, true))
    }

    fn check_equivalent_queue(&self, queue: &Queue, opts: &QueueOptions) -> Result<(), AmqpError> {
        let d = queue.describe();
        let cur = &queue.options;
        for (arg, received, current) in [
            ("durable", opts.durable, cur.durable),
            ("auto_delete", opts.auto_delete, cur.auto_delete),
        ] {
            if received != current {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{arg}' for {d}: received '{}' but current is '{}'",
                    bool_text(received),
                    bool_text(current)
                )));
            }
        }
        check_equivalent_args(&d, &cur.arguments, &opts.arguments, EQUIVALENCE_CHECKED)
    }

    /// Removes a queue: its bindings go, its consumers are returned so the
    /// caller can cancel them. Returns the number of messages it held.
    pub fn delete_queue(&self, queue: &Arc<Queue>) -> u32 {
        {
            let mut map = self.queues.write();
            if map.get(&queue.name).is_some_and(|x| Arc::ptr_eq(x, queue)) {
                map.remove(&queue.name);
            }
        }
        let dest = Destination::Queue(queue.clone());
        for x in self.exchanges_snapshot() {
            if let Some(records) = x.unbind_all(&dest) {
                self.tombstone_all(records);
                self.maybe_auto_delete(&x);
            }
        }
        let (count, consumers) = queue.mark_deleted();
        self.tombstone_all(queue.record);
        for c in consumers {
            cancel_from_server(&c);
        }
        count
    }

    /// An auto-delete exchange goes when it loses its last binding.
    pub fn maybe_auto_delete(&self, x: &Arc<Exchange>) {
        if x.options.auto_delete && !x.has_bindings() {
            let mut map = self.exchanges.write();
            if map.get(&x.name).is_some_and(|y| Arc::ptr_eq(x, y)) {
                map.remove(&x.name);
                drop(map);
                self.forget_exchange(x);
            }
        }
    }

    /// Routes a message published to `exchange`, following exchange-to-exchange
    /// bindings and alternate exchanges. Adds to `scratch.queues` (each queue
    /// once); the caller clears it between messages.
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        key: &ShortStr,
        headers: Option<&FieldTable>,
        scratch: &mut RouteScratch,
    ) {
        if exchange.kind() == ExchangeKind::Default {
            if let Some(queue) = self.queues.read().get(key) {
                if !scratch.queues.iter().any(|x| Arc::ptr_eq(x, queue)) {
                    scratch.queues.push(queue.clone());
                }
            }
            return;
        }
        let before = scratch.queues.len();
        exchange.route(key, headers, scratch);
        // Unroutable: try the alternate exchange chain (at most a few hops, no loops).
        let mut current = exchange.clone();
        let mut hops = 0;
        while scratch.queues.len() == before && hops < 8 {
            let Some(alt) = current
                .alternate
                .as_ref()
                .and_then(|n| self.exchange(n).ok())
            else {
                break;
            };
            if Arc::ptr_eq(&alt, exchange) {
                break;
            }
            alt.route(key, headers, scratch);
            current = alt;
            hops += 1;
        }
    }
}

/// Tells a consumer's client that the server cancelled it (queue deleted),
/// if the client said it understands that.
pub fn cancel_from_server(c: &Arc<super::link::Consumer>) {
    c.channel.remove_consumer(&c.tag);
    let link = &c.channel.conn;
    if link
        .consumer_cancel_notify
        .load(std::sync::atomic::Ordering::Relaxed)
        && !c.channel.is_closed()
    {
        link.outbox.push(super::outbox::Outbound::method(
            c.channel.id,
            warren_protocol::Method::BasicCancel(warren_protocol::BasicCancel {
                consumer_tag: c.tag.clone(),
                no_wait: true,
            }),
        ));
    }
}

/// Compares the declare arguments in `keys` as RabbitMQ does: integers by
/// value whatever their width, anything else exactly; other arguments may
/// differ between declares.
fn check_equivalent_args(
    what: &str,
    current: &FieldTable,
    received: &FieldTable,
    keys: &[&str],
) -> Result<(), AmqpError> {
    for key in keys {
        let (rec, cur) = (received.get(key), current.get(key));
        let same = match (&rec, &cur) {
            (None, None) => true,
            (Some(a), Some(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
            _ => false,
        };
        if same {
            continue;
        }
        let detail = match (&rec, &cur) {
            (Some(a), Some(b)) if value_class(a) == value_class(b) => {
                format!(
                    "received '{}' but current is '{}'",
                    plain_value(a),
                    plain_value(b)
                )
            }
            _ => format!(
                "received {} but current is {}",
                describe_value(rec.as_ref()),
                describe_value(cur.as_ref())
            ),
        };
        return Err(AmqpError::precondition(format!(
            "inequivalent arg '{key}' for {what}: {detail}"
        )));
    }
    Ok(())
}

fn value_class(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Bool(_) => "bool",
        v if v.as_i64().is_some() => "signedint",
        _ => "other",
    }
}

fn plain_value(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        FieldValue::Bool(b) => bool_text(*b).to_string(),
        v => v
            .as_i64()
            .map_or_else(|| format!("{v:?}"), |n| n.to_string()),
    }
}

fn describe_value(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(v) => format!(
            "the value '{}' of type '{}'",
            plain_value(v),
            value_class(v)
        ),
    }
}

/// Vhost names are at most 255 bytes like every AMQP name.
fn short_name(name: &str) -> ShortStr {
    ShortStr::try_from(name).unwrap_or_default()
}
