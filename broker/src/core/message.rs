//! A published message, shared by every queue it was routed to.

use bytes::Bytes;
use warren_protocol::{BasicProperties, ShortStr};

/// What a publisher sent: the routing it was published with, its properties
/// (parsed, plus the raw bytes so deliveries can forward them unchanged) and
/// its body. Queues hold it in an `Arc`, so fan-out stores it once.
#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: BasicProperties,
    /// The property flags and list as received; empty when `properties`
    /// was built by the broker and must be encoded.
    pub raw_properties: Bytes,
    pub body: Bytes,
}

impl Message {
    /// The property bytes to store or forward: as received, or encoded
    /// when the message was built in-process.
    pub fn raw_properties_or_encoded(&self) -> bytes::Bytes {
        if !self.raw_properties.is_empty() {
            return self.raw_properties.clone();
        }
        let mut buf = bytes::BytesMut::new();
        self.properties.encode(&mut buf);
        buf.freeze()
    }

    pub fn is_persistent(&self) -> bool {
        self.properties.delivery_mode == Some(2)
    }

    /// Rough bytes this message costs in an outbox: body plus frame overhead.
    pub fn wire_size(&self) -> usize {
        self.body.len() + self.raw_properties.len() + 64
    }
}
