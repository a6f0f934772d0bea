//! A published message, shared by every queue it was routed to.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_protocol::{BasicProperties, FieldTable, ShortStr, WireProperties};

/// What a publisher sent: the routing it was published with, its properties
/// and its body. Queues hold it in an `Arc`, so fan-out stores it once.
#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: MessageProperties,
    pub body: Bytes,
}

impl Message {
    pub fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == Some(2)
    }

    /// A copy that shares no buffer with this one, for a message that is
    /// a slice of a much larger buffer (a segment read at recovery) and is
    /// kept for long.
    pub fn detached(&self) -> Message {
        let short = |s: &ShortStr| {
            ShortStr::new(Bytes::copy_from_slice(s.as_bytes())).unwrap_or_else(|_| s.clone())
        };
        let properties = match &self.properties {
            MessageProperties::Wire(w) => WireProperties::decode(Bytes::copy_from_slice(w.raw()))
                .map_or_else(|_| self.properties.clone(), MessageProperties::Wire),
            MessageProperties::Built(_) => self.properties.clone(),
        };
        Message {
            exchange: short(&self.exchange),
            routing_key: short(&self.routing_key),
            properties,
            body: Bytes::copy_from_slice(&self.body),
        }
    }

    /// Rough bytes this message costs in an outbox: body plus frame overhead.
    pub fn wire_size(&self) -> usize {
        self.body.len() + self.properties.wire_len() + 64
    }
}

/// A message's properties, in the form they arrived in.
///
/// From a client they stay as received: the broker reads the few it needs
/// (delivery mode, priority, expiration, headers...) straight from the
/// bytes and forwards the bytes unchanged, so a queued message carries
/// some 70 bytes of index rather than fourteen parsed properties. An
/// in-process publisher hands over a [`BasicProperties`], which is kept as
/// given: encoding it would cost the publish time, and an in-process
/// consumer wants it back in that form.
#[derive(Debug, Clone)]
pub enum MessageProperties {
    Wire(WireProperties),
    /// Behind a pointer so that a message is no larger for it; shared, so
    /// the messages of a batch publish carry one copy.
    Built(Arc<BasicProperties>),
}

/// What `BasicProperties::default()` is, for handing out a reference.
pub(crate) static NO_PROPERTIES: BasicProperties = BasicProperties {
    content_type: None,
    content_encoding: None,
    headers: None,
    delivery_mode: None,
    priority: None,
    correlation_id: None,
    reply_to: None,
    expiration: None,
    message_id: None,
    timestamp: None,
    kind: None,
    user_id: None,
    app_id: None,
    cluster_id: None,
};

impl Default for MessageProperties {
    fn default() -> MessageProperties {
        MessageProperties::Wire(WireProperties::empty())
    }
}

impl From<BasicProperties> for MessageProperties {
    /// No properties at all (what most in-process publishers pass) have a
    /// static wire form, so they cost no allocation.
    fn from(properties: BasicProperties) -> MessageProperties {
        if properties.flags() == 0 {
            return MessageProperties::default();
        }
        MessageProperties::Built(Arc::new(properties))
    }
}

impl From<WireProperties> for MessageProperties {
    fn from(properties: WireProperties) -> MessageProperties {
        MessageProperties::Wire(properties)
    }
}

fn bytes_of(s: &Option<ShortStr>) -> Option<&[u8]> {
    s.as_ref().map(ShortStr::as_bytes)
}

impl MessageProperties {
    pub fn delivery_mode(&self) -> Option<u8> {
        match self {
            MessageProperties::Wire(w) => w.delivery_mode(),
            MessageProperties::Built(b) => b.delivery_mode,
        }
    }

    pub fn priority(&self) -> Option<u8> {
        match self {
            MessageProperties::Wire(w) => w.priority(),
            MessageProperties::Built(b) => b.priority,
        }
    }

    pub fn expiration(&self) -> Option<&[u8]> {
        match self {
            MessageProperties::Wire(w) => w.expiration(),
            MessageProperties::Built(b) => bytes_of(&b.expiration),
        }
    }

    pub fn user_id(&self) -> Option<&[u8]> {
        match self {
            MessageProperties::Wire(w) => w.user_id(),
            MessageProperties::Built(b) => bytes_of(&b.user_id),
        }
    }

    pub fn reply_to(&self) -> Option<&[u8]> {
        match self {
            MessageProperties::Wire(w) => w.reply_to(),
            MessageProperties::Built(b) => bytes_of(&b.reply_to),
        }
    }

    pub fn message_id(&self) -> Option<&[u8]> {
        match self {
            MessageProperties::Wire(w) => w.message_id(),
            MessageProperties::Built(b) => bytes_of(&b.message_id),
        }
    }

    /// The headers table (from received bytes: a slice of them, one
    /// reference count).
    pub fn headers(&self) -> Option<Cow<'_, FieldTable>> {
        match self {
            MessageProperties::Wire(w) => w.headers().map(Cow::Owned),
            MessageProperties::Built(b) => b.headers.as_ref().map(Cow::Borrowed),
        }
    }

    /// The headers table's entries as encoded, to scan for one header
    /// without building anything.
    pub fn headers_raw(&self) -> Option<&[u8]> {
        match self {
            MessageProperties::Wire(w) => w.headers_raw(),
            MessageProperties::Built(b) => b.headers.as_ref().map(|h| &h.raw_bytes()[..]),
        }
    }

    /// Every property, owned: for the few places that change properties or
    /// hand them all to a caller.
    pub fn to_basic(&self) -> BasicProperties {
        match self {
            MessageProperties::Wire(w) => w.to_basic_properties(),
            MessageProperties::Built(b) => (**b).clone(),
        }
    }

    /// Changes some properties. Received properties are re-encoded once
    /// here, so deliveries and the log still forward bytes.
    pub fn modify(&mut self, change: impl FnOnce(&mut BasicProperties)) {
        match self {
            MessageProperties::Wire(w) => {
                let mut owned = w.to_basic_properties();
                change(&mut owned);
                *w = WireProperties::from(&owned);
            }
            MessageProperties::Built(b) => change(Arc::make_mut(b)),
        }
    }

    /// The encoded properties when the message has them as received.
    pub fn raw(&self) -> Option<&Bytes> {
        match self {
            MessageProperties::Wire(w) => Some(w.raw()),
            MessageProperties::Built(_) => None,
        }
    }

    /// The property bytes to store or forward: as received, or encoded
    /// when the message was built in-process.
    pub fn raw_or_encoded(&self) -> Bytes {
        match self {
            MessageProperties::Wire(w) => w.raw().clone(),
            MessageProperties::Built(b) => {
                let mut buf = BytesMut::new();
                b.encode(&mut buf);
                buf.freeze()
            }
        }
    }

    /// Encoded size when known without encoding (0 otherwise); an estimate
    /// for accounting.
    fn wire_len(&self) -> usize {
        self.raw().map_or(0, Bytes::len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use warren_protocol::{FieldValue, LongStr};

    fn props() -> BasicProperties {
        BasicProperties {
            headers: Some(FieldTable::from_entries([(
                ShortStr::from_static("x-group-id"),
                FieldValue::LongStr(LongStr::from("g")),
            )])),
            delivery_mode: Some(2),
            priority: Some(3),
            reply_to: Some(ShortStr::from_static("r")),
            expiration: Some(ShortStr::from_static("60000")),
            message_id: Some(ShortStr::from_static("m")),
            user_id: Some(ShortStr::from_static("guest")),
            ..Default::default()
        }
    }

    /// Issue 8 counts bytes per queued message; keep the properties small.
    #[test]
    fn a_message_is_small() {
        let size = std::mem::size_of::<Message>();
        assert!(size <= 200, "Message is {size} bytes");
        assert_eq!(NO_PROPERTIES, BasicProperties::default());
    }

    #[test]
    fn received_and_built_properties_read_the_same() {
        let built = MessageProperties::from(props());
        let received = MessageProperties::from(WireProperties::decode(props().to_bytes()).unwrap());
        assert!(matches!(built, MessageProperties::Built(_)));
        for p in [&built, &received] {
            assert_eq!(p.delivery_mode(), Some(2));
            assert_eq!(p.priority(), Some(3));
            assert_eq!(p.reply_to(), Some(&b"r"[..]));
            assert_eq!(p.expiration(), Some(&b"60000"[..]));
            assert_eq!(p.message_id(), Some(&b"m"[..]));
            assert_eq!(p.user_id(), Some(&b"guest"[..]));
            assert_eq!(p.headers().as_deref(), props().headers.as_ref());
            assert_eq!(
                p.headers_raw(),
                props().headers.as_ref().map(|h| &h.raw_bytes()[..])
            );
            assert_eq!(p.to_basic(), props());
            assert_eq!(p.raw_or_encoded(), props().to_bytes());
        }
        assert!(matches!(
            MessageProperties::from(BasicProperties::default()),
            MessageProperties::Wire(ref w) if w.is_empty()
        ));
    }

    #[test]
    fn modified_properties_are_re_encoded() {
        let mut p = MessageProperties::from(WireProperties::decode(props().to_bytes()).unwrap());
        p.modify(|p| p.reply_to = Some(ShortStr::from_static("amq.gen-1")));
        let mut expected = props();
        expected.reply_to = Some(ShortStr::from_static("amq.gen-1"));
        assert_eq!(p.raw(), Some(&expected.to_bytes()));
        assert_eq!(p.reply_to(), Some(&b"amq.gen-1"[..]));
        assert_eq!(p.priority(), Some(3));
    }
}
