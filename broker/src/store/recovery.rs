//! Rebuilding durable state from the records the log recovered.

use std::collections::HashMap;
use std::sync::Arc;

use warren_persistence::{RecordId, StoreError};
use warren_protocol::ShortStr;

use super::records::{self, BindingRecord, ExchangeRecord, MessageContent, QueueRecord};
use super::{Persisted, Persistence, SharedBody};
use crate::core::exchange::{Destination, Exchange, ExchangeKind, ExchangeOptions};
use crate::core::message::Message;
use crate::core::queue::{Queue, QueueOptions};
use crate::core::vhost::VHost;

/// What recovery found, for the log line at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    pub messages: usize,
    /// Records that made no sense any more (their queue is gone, say) or
    /// could not be decoded; they are tombstoned or skipped.
    pub dropped: usize,
}

fn message(content: MessageContent) -> Option<Arc<Message>> {
    content.into_message().ok().map(Arc::new)
}

/// Restores exchanges, queues, bindings and queued messages into `vhosts`,
/// in log order, so every queue gets its messages back in publish order.
///
/// Two passes over the log, each reading one segment at a time, so that a
/// backlog is never in memory as records: the first gathers what is
/// recorded after what it describes, the second restores.
pub fn restore(
    store: &Arc<Persistence>,
    vhosts: &HashMap<String, Arc<VHost>>,
) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    // Delivery markers and fan-out reference counts come after what they
    // describe; gather them first.
    // A message's latest marker (with its return count) wins; older ones
    // are freed.
    let mut markers: HashMap<u64, (RecordId, u32)> = HashMap::new();
    let mut body_refs: HashMap<u64, usize> = HashMap::new();
    // Messages per queue record, so each queue's list is allocated once:
    // grown by doubling, a long backlog would leave the heap holding every
    // smaller list it outgrew.
    let mut per_queue: HashMap<u64, usize> = HashMap::new();
    for r in store.live_records() {
        let r = r?;
        match r.kind {
            records::MESSAGE => {
                if let Ok(queue) = MessageContent::message_queue(&r.payload) {
                    *per_queue.entry(queue.0).or_default() += 1;
                }
            }
            records::DELIVERED => {
                if let Ok((target, returns)) = records::decode_delivered(&r.payload) {
                    if let Some((old, _)) = markers.insert(target.0, (r.id, returns)) {
                        store.forget(old);
                    }
                }
            }
            records::ENTRY => {
                if let Ok((queue, body)) = records::decode_entry(r.id, &r.payload) {
                    *body_refs.entry(body.0).or_default() += 1;
                    *per_queue.entry(queue.0).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    let vhost_of = |name: &ShortStr| vhosts.get(name.as_str().unwrap_or_default()).cloned();
    let mut queues: HashMap<u64, Arc<Queue>> = HashMap::new();
    let mut bodies: HashMap<u64, (Arc<Message>, Arc<SharedBody>)> = HashMap::new();

    for r in store.live_records() {
        let mut r = r?;
        if matches!(
            r.kind,
            records::EXCHANGE | records::QUEUE | records::BINDING
        ) {
            // Names and arguments decoded from the payload live as long as
            // what they name: they must not hold a whole segment's buffer.
            r.payload = bytes::Bytes::copy_from_slice(&r.payload);
        }
        let ok = match r.kind {
            records::EXCHANGE => ExchangeRecord::decode(&r.payload).ok().and_then(|x| {
                let vhost = vhost_of(&x.vhost)?;
                let kind = ExchangeKind::parse(&x.kind).ok()?;
                let opts = ExchangeOptions {
                    kind,
                    durable: true,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: x.arguments,
                };
                vhost.restore_exchange(Exchange::new(x.name, opts, Some(r.id)));
                out.exchanges += 1;
                Some(())
            }),
            records::QUEUE => QueueRecord::decode(&r.payload).ok().and_then(|q| {
                let vhost = vhost_of(&q.vhost)?;
                let opts = QueueOptions {
                    durable: true,
                    exclusive_owner: None,
                    auto_delete: q.auto_delete,
                    arguments: q.arguments,
                };
                let queue = vhost.restore_queue(q.name, opts, r.id);
                queue.reserve(per_queue.get(&r.id.0).copied().unwrap_or(0));
                queues.insert(r.id.0, queue);
                out.queues += 1;
                Some(())
            }),
            records::BINDING => BindingRecord::decode(&r.payload).ok().and_then(|b| {
                let vhost = vhost_of(&b.vhost)?;
                let source = vhost.exchange(&b.source).ok()?;
                let dest = if b.to_exchange {
                    Destination::Exchange(vhost.exchange(&b.destination).ok()?)
                } else {
                    Destination::Queue(vhost.find_queue(&b.destination)?)
                };
                vhost.restore_binding(&source, dest, b.routing_key, b.arguments, r.id);
                out.bindings += 1;
                Some(())
            }),
            records::BODY => MessageContent::decode_body(&r.payload)
                .ok()
                .and_then(message)
                .map(|msg| {
                    let refs = body_refs.get(&r.id.0).copied().unwrap_or(0);
                    bodies.insert(r.id.0, (msg, SharedBody::new(r.id, refs)));
                }),
            records::ENTRY => {
                records::decode_entry(r.id, &r.payload)
                    .ok()
                    .and_then(|(qrec, brec)| {
                        let (msg, body) = bodies.get(&brec.0)?;
                        let (marker, returns) = markers.remove(&r.id.0).unzip();
                        let persisted = Persisted {
                            record: r.id,
                            body: Some(body.clone()),
                            marker,
                            returns: returns.unwrap_or(0),
                        };
                        let Some(queue) = queues.get(&qrec.0) else {
                            // Its queue is gone (deleted while this copy
                            // was unacked): drop this copy like an ack
                            // would, so the body goes with its last copy.
                            store.discard(&persisted);
                            out.dropped += 1;
                            return Some(());
                        };
                        queue.restore(msg.clone(), persisted);
                        out.messages += 1;
                        Some(())
                    })
            }
            records::MESSAGE => {
                MessageContent::decode_message(&r.payload)
                    .ok()
                    .and_then(|(qrec, content)| {
                        let queue = queues.get(&qrec.0)?;
                        let msg = message(content)?;
                        let (marker, returns) = markers.remove(&r.id.0).unzip();
                        queue.restore(
                            msg,
                            Persisted {
                                record: r.id,
                                body: None,
                                marker,
                                returns: returns.unwrap_or(0),
                            },
                        );
                        out.messages += 1;
                        Some(())
                    })
            }
            records::DELIVERED => Some(()),
            records::PAGE => {
                // A transient message paged out before the restart.
                store.forget(r.id);
                Some(())
            }
            records::DEDUP => {
                records::decode_dedup(&r.payload)
                    .ok()
                    .and_then(|(qrec, id, expires)| {
                        let queue = queues.get(&qrec.0)?;
                        queue.restore_dedup(id, expires, r.id).then_some(())
                    })
            }
            _ => None,
        };
        if ok.is_none() {
            // A definition whose vhost is gone stays in the log untouched;
            // anything else that no longer applies is undone.
            out.dropped += 1;
            match r.kind {
                records::EXCHANGE | records::QUEUE => {
                    tracing::warn!(
                        id = r.id.0,
                        kind = r.kind,
                        "skipping a definition that cannot be restored"
                    )
                }
                _ => store.tombstone(r.id),
            }
        }
    }
    // Markers left are those of messages that are gone (a restored message
    // took its own); then bodies no queue holds any more.
    for (marker, _) in markers.into_values() {
        store.forget(marker);
    }
    for (id, _) in bodies.iter().filter(|(id, _)| !body_refs.contains_key(id)) {
        store.tombstone(RecordId(*id));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::{Bytes, BytesMut};
    use warren_persistence::NewRecord;
    use warren_protocol::{BasicProperties, FieldTable};

    use super::*;
    use crate::store::StorageConfig;

    fn open(dir: &std::path::Path) -> Arc<Persistence> {
        let config = StorageConfig {
            data_dir: Some(dir.to_path_buf()),
            ..StorageConfig::default()
        };
        Persistence::open(&config).unwrap()
    }

    fn queue(name: &'static str) -> Bytes {
        QueueRecord {
            vhost: ShortStr::from_static("/"),
            name: ShortStr::from_static(name),
            auto_delete: false,
            arguments: FieldTable::default(),
        }
        .encode()
    }

    /// A fan-out copy whose queue was deleted while it was unacked (so only
    /// the queue's record was tombstoned before the crash) is dropped on
    /// recovery, and the shared body goes once the last copy is acked.
    #[test]
    fn an_orphaned_fan_out_copy_does_not_pin_its_body() {
        let dir = std::env::temp_dir().join(format!("warren-recovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = open(&dir);
        let qa = store.append(records::QUEUE, queue("qa")).unwrap();
        let qb = store.append(records::QUEUE, queue("qb")).unwrap();
        let mut props = BytesMut::new();
        BasicProperties::default().encode(&mut props);
        let content = MessageContent {
            exchange: ShortStr::from_static("amq.fanout"),
            routing_key: ShortStr::from_static(""),
            raw_properties: props.freeze(),
            body: Bytes::from_static(b"shared"),
        };
        store
            .append_batch(&[
                NewRecord::new(records::BODY, content.encode_body()),
                NewRecord::new(records::ENTRY, records::encode_entry(qa, 1)),
                NewRecord::new(records::ENTRY, records::encode_entry(qb, 2)),
            ])
            .unwrap();
        store.tombstone(qa);
        store.close();
        drop(store);

        let store = open(&dir);
        let vhosts: HashMap<String, Arc<VHost>> =
            [("/".to_string(), VHost::new("/", Some(store.clone())))].into();
        let found = restore(&store, &vhosts).unwrap();
        assert_eq!((found.queues, found.messages, found.dropped), (1, 1, 1));
        let vhost = &vhosts["/"];
        assert!(vhost.find_queue(&ShortStr::from_static("qa")).is_none());
        let qb = vhost.find_queue(&ShortStr::from_static("qb")).unwrap();
        assert_eq!(qb.purge(), 1);
        // Only qb's own record is left: the body went with its last copy.
        assert_eq!(store.stats().live_records, 1, "{:?}", store.stats());
        store.close();
        drop(store);
        assert_eq!(open(&dir).live_records().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
