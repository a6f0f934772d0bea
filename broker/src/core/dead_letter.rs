//! Dead-lettering: the message a queue republishes to its dead-letter
//! exchange, with RabbitMQ's `x-death` history in its headers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use warren_protocol::{FieldArray, FieldTable, FieldValue, LongStr, ShortStr};

use super::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

fn key(k: &'static str) -> ShortStr {
    ShortStr::from_static(k)
}

fn text(s: &ShortStr) -> FieldValue {
    FieldValue::LongStr(LongStr::from(Bytes::copy_from_slice(s.as_bytes())))
}

/// The routing keys a message was published with: its key plus any `CC`.
pub fn routing_keys(msg: &Message) -> Vec<ShortStr> {
    let mut keys = vec![msg.routing_key.clone()];
    if let Some(FieldValue::Array(cc)) = msg.properties.headers().and_then(|h| h.get("CC")) {
        keys.extend(
            cc.iter()
                .filter_map(|v| v.as_str().and_then(|s| ShortStr::try_from(s).ok())),
        );
    }
    keys
}

/// Whether dead-lettering `msg` into `queue` would go round a cycle with no
/// rejection on the way; RabbitMQ drops such a message.
pub fn is_cycle(msg: &Message, queue: &ShortStr) -> bool {
    let Some(FieldValue::Array(deaths)) = msg.properties.headers().and_then(|h| h.get("x-death"))
    else {
        return false;
    };
    let mut seen_queue = false;
    for d in deaths.iter() {
        let Some(t) = d.as_table() else { continue };
        if t.get("reason").as_ref().and_then(FieldValue::as_str) == Some("rejected") {
            return false;
        }
        if t.get("queue").as_ref().and_then(FieldValue::as_str) == queue.as_str() {
            seen_queue = true;
        }
    }
    seen_queue
}

/// The message as it leaves `queue` for `reason`, to be published to the
/// dead-letter exchange `dlx` with `routing_key`: `x-death` updated (the
/// entry for this queue and reason counted up and moved first, or a new one
/// in front), `x-first-death-*` set once, `expiration` and the quorum
/// `x-delivery-count` removed.
pub fn dead_lettered(
    msg: &Message,
    reason: Reason,
    queue: &ShortStr,
    dlx: &ShortStr,
    routing_key: &ShortStr,
) -> Arc<Message> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut headers = msg
        .properties
        .headers()
        .map(Cow::into_owned)
        .unwrap_or_default();
    headers.remove("x-delivery-count");
    let mut deaths: Vec<FieldValue> = match headers.get("x-death") {
        Some(FieldValue::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    };
    let same = |d: &FieldValue| {
        d.as_table().is_some_and(|t| {
            t.get("queue").as_ref().and_then(FieldValue::as_str) == queue.as_str()
                && t.get("reason").as_ref().and_then(FieldValue::as_str) == Some(reason.as_str())
        })
    };
    let keys: FieldArray = routing_keys(msg).iter().map(text).collect();
    let entry = match deaths.iter().position(same) {
        Some(i) => {
            let old = deaths.remove(i);
            let mut t = old.as_table().cloned().unwrap_or_default();
            let count = t.get("count").and_then(|c| c.as_i64()).unwrap_or(0);
            t.insert(key("count"), FieldValue::I64(count + 1));
            t.insert(key("time"), FieldValue::Timestamp(now));
            FieldValue::Table(t)
        }
        None => {
            let mut t: FieldTable = [
                (key("count"), FieldValue::I64(1)),
                (
                    key("reason"),
                    FieldValue::LongStr(LongStr::from(reason.as_str())),
                ),
                (key("queue"), text(queue)),
                (key("time"), FieldValue::Timestamp(now)),
                (key("exchange"), text(&msg.exchange)),
                (key("routing-keys"), FieldValue::Array(keys)),
            ]
            .into_iter()
            .collect();
            if let Some(exp) = msg.properties.expiration() {
                t.insert(
                    key("original-expiration"),
                    FieldValue::LongStr(LongStr::from(Bytes::copy_from_slice(exp))),
                );
            }
            FieldValue::Table(t)
        }
    };
    deaths.insert(0, entry);
    headers.insert(
        key("x-death"),
        FieldValue::Array(deaths.into_iter().collect()),
    );
    if !headers.contains_key("x-first-death-reason") {
        headers.insert(
            key("x-first-death-reason"),
            FieldValue::LongStr(LongStr::from(reason.as_str())),
        );
        headers.insert(key("x-first-death-queue"), text(queue));
        headers.insert(key("x-first-death-exchange"), text(&msg.exchange));
    }
    let mut properties = msg.properties.clone();
    properties.modify(|p| {
        p.expiration = None;
        p.headers = Some(headers);
    });
    Arc::new(Message {
        exchange: dlx.clone(),
        routing_key: routing_key.clone(),
        properties,
        body: msg.body.clone(),
    })
}

/// A copy of `msg` with one header set (for `x-delivery-count`).
pub fn with_header(msg: &Message, name: &'static str, value: FieldValue) -> Arc<Message> {
    let mut properties = msg.properties.clone();
    properties.modify(|p| {
        let mut headers = p.headers.take().unwrap_or_default();
        headers.insert(key(name), value);
        p.headers = Some(headers);
    });
    Arc::new(Message {
        exchange: msg.exchange.clone(),
        routing_key: msg.routing_key.clone(),
        properties,
        body: msg.body.clone(),
    })
}
