//! What the broker writes to the log: one record kind per fact, each with a
//! small binary payload. Tombstones (kind [`TOMBSTONE`]) undo a record.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use warren_persistence::RecordId;
use warren_protocol::{FieldTable, ShortStr, WireProperties};

use crate::core::message::Message;

pub const TOMBSTONE: u8 = 0;
/// A durable exchange.
pub const EXCHANGE: u8 = 1;
/// A durable queue.
pub const QUEUE: u8 = 2;
/// A binding between durable things.
pub const BINDING: u8 = 3;
/// A message body shared by several durable queues (fan-out).
pub const BODY: u8 = 4;
/// A message in one queue whose body is a [`BODY`] record.
pub const ENTRY: u8 = 5;
/// A message in exactly one durable queue, body included.
pub const MESSAGE: u8 = 6;
/// A message was delivered (so it comes back `redelivered` after a restart).
pub const DELIVERED: u8 = 7;
/// A FIFO queue accepted a deduplication id (remembered until it expires).
pub const DEDUP: u8 = 8;
/// A transient message a queue moved out of memory (memory pressure),
/// written as a [`BODY`] is; never recovered.
pub const PAGE: u8 = 9;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeRecord {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub kind: ShortStr,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    pub vhost: ShortStr,
    pub source: ShortStr,
    /// True when the destination is an exchange.
    pub to_exchange: bool,
    pub destination: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// The routing and content of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageContent {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub raw_properties: Bytes,
    pub body: Bytes,
}

/// Why a record could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("malformed {0} record")]
pub struct Malformed(pub &'static str);

struct Writer(BytesMut);

impl Writer {
    fn new(capacity: usize) -> Writer {
        Writer(BytesMut::with_capacity(capacity))
    }
    fn short(&mut self, s: &ShortStr) -> &mut Self {
        // ShortStr guarantees at most 255 bytes.
        self.0.put_u8(s.len() as u8);
        self.0.put_slice(s.as_bytes());
        self
    }
    fn long(&mut self, b: &[u8]) -> &mut Self {
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.put_u8(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.put_u32(v);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.put_u64(v);
        self
    }
    fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

struct Reader {
    buf: Bytes,
    what: &'static str,
}

impl Reader {
    fn new(buf: &Bytes, what: &'static str) -> Reader {
        Reader {
            buf: buf.clone(),
            what,
        }
    }
    fn err(&self) -> Malformed {
        Malformed(self.what)
    }
    fn take(&mut self, n: usize) -> Result<Bytes, Malformed> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        Ok(self.buf.split_to(n))
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(self.take(4)?.get_u32())
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(self.take(8)?.get_u64())
    }
    fn short(&mut self) -> Result<ShortStr, Malformed> {
        let n = usize::from(self.u8()?);
        ShortStr::new(self.take(n)?).map_err(|_| self.err())
    }
    fn long(&mut self) -> Result<Bytes, Malformed> {
        let n = self.take(4)?.get_u32() as usize;
        self.take(n)
    }
    fn table(&mut self) -> Result<FieldTable, Malformed> {
        let raw = self.long()?;
        FieldTable::decode_entries(raw).map_err(|_| self.err())
    }
    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

fn flags(bits: &[bool]) -> u8 {
    bits.iter()
        .enumerate()
        .fold(0, |acc, (i, b)| acc | (u8::from(*b) << i))
}

impl ExchangeRecord {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new(64);
        w.short(&self.vhost).short(&self.name).short(&self.kind);
        w.u8(flags(&[self.auto_delete, self.internal]))
            .long(self.arguments.raw_bytes());
        w.finish()
    }
    pub fn decode(b: &Bytes) -> Result<ExchangeRecord, Malformed> {
        let mut r = Reader::new(b, "exchange");
        let (vhost, name, kind) = (r.short()?, r.short()?, r.short()?);
        let f = r.u8()?;
        Ok(ExchangeRecord {
            vhost,
            name,
            kind,
            auto_delete: f & 1 != 0,
            internal: f & 2 != 0,
            arguments: r.table()?,
        })
    }
}

impl QueueRecord {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new(64);
        w.short(&self.vhost)
            .short(&self.name)
            .u8(flags(&[self.auto_delete]))
            .long(self.arguments.raw_bytes());
        w.finish()
    }
    pub fn decode(b: &Bytes) -> Result<QueueRecord, Malformed> {
        let mut r = Reader::new(b, "queue");
        let (vhost, name) = (r.short()?, r.short()?);
        let f = r.u8()?;
        Ok(QueueRecord {
            vhost,
            name,
            auto_delete: f & 1 != 0,
            arguments: r.table()?,
        })
    }
}

impl BindingRecord {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new(64);
        w.short(&self.vhost)
            .short(&self.source)
            .u8(u8::from(self.to_exchange))
            .short(&self.destination);
        w.short(&self.routing_key).long(self.arguments.raw_bytes());
        w.finish()
    }
    pub fn decode(b: &Bytes) -> Result<BindingRecord, Malformed> {
        let mut r = Reader::new(b, "binding");
        let (vhost, source) = (r.short()?, r.short()?);
        let to_exchange = r.u8()? != 0;
        let (destination, routing_key) = (r.short()?, r.short()?);
        Ok(BindingRecord {
            vhost,
            source,
            to_exchange,
            destination,
            routing_key,
            arguments: r.table()?,
        })
    }
}

impl MessageContent {
    /// The message this content was written from.
    pub fn into_message(self) -> Result<Message, Malformed> {
        let properties =
            WireProperties::decode(self.raw_properties).map_err(|_| Malformed("properties"))?;
        Ok(Message {
            exchange: self.exchange,
            routing_key: self.routing_key,
            properties: properties.into(),
            body: self.body,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.short(&self.exchange)
            .short(&self.routing_key)
            .long(&self.raw_properties);
        w.0.put_slice(&self.body);
    }
    fn read(r: &mut Reader) -> Result<MessageContent, Malformed> {
        let (exchange, routing_key) = (r.short()?, r.short()?);
        let raw_properties = r.long()?;
        Ok(MessageContent {
            exchange,
            routing_key,
            raw_properties,
            body: r.rest(),
        })
    }
    fn size(&self) -> usize {
        self.exchange.len()
            + self.routing_key.len()
            + self.raw_properties.len()
            + self.body.len()
            + 8
    }

    /// A [`BODY`] record.
    pub fn encode_body(&self) -> Bytes {
        let mut w = Writer::new(self.size());
        self.write(&mut w);
        w.finish()
    }
    pub fn decode_body(b: &Bytes) -> Result<MessageContent, Malformed> {
        MessageContent::read(&mut Reader::new(b, "body"))
    }

    /// A [`MESSAGE`] record: the queue's record id, then the content.
    pub fn encode_message(&self, queue: RecordId) -> Bytes {
        let mut w = Writer::new(self.size() + 8);
        w.u64(queue.0);
        self.write(&mut w);
        w.finish()
    }
    /// The queue record a [`MESSAGE`] record names, without decoding the rest.
    pub fn message_queue(b: &Bytes) -> Result<RecordId, Malformed> {
        Ok(RecordId(Reader::new(b, "message").u64()?))
    }

    pub fn decode_message(b: &Bytes) -> Result<(RecordId, MessageContent), Malformed> {
        let mut r = Reader::new(b, "message");
        let queue = RecordId(r.u64()?);
        Ok((queue, MessageContent::read(&mut r)?))
    }
}

/// An [`ENTRY`] record: (queue record, how many records back its body is).
pub fn encode_entry(queue: RecordId, body_back: u64) -> Bytes {
    let mut w = Writer::new(16);
    w.u64(queue.0).u64(body_back);
    w.finish()
}

/// Decodes an [`ENTRY`] record with id `id`: (queue record, body record).
pub fn decode_entry(id: RecordId, b: &Bytes) -> Result<(RecordId, RecordId), Malformed> {
    let mut r = Reader::new(b, "entry");
    let queue = RecordId(r.u64()?);
    let back = r.u64()?;
    let body =
        id.0.checked_sub(back)
            .filter(|b| *b > 0)
            .ok_or(Malformed("entry"))?;
    Ok((queue, RecordId(body)))
}

/// A [`DELIVERED`] record: the message record that was delivered, and how
/// many times it has come back to its queue since (quorum queues count
/// returns for their delivery limit). A count of 0 is left out.
pub fn encode_delivered(target: RecordId, returns: u32) -> Bytes {
    let mut w = Writer::new(12);
    w.u64(target.0);
    if returns > 0 {
        w.u32(returns);
    }
    w.finish()
}

pub fn decode_delivered(b: &Bytes) -> Result<(RecordId, u32), Malformed> {
    let mut r = Reader::new(b, "delivered");
    let target = RecordId(r.u64()?);
    let returns = if b.len() > 8 { r.u32()? } else { 0 };
    Ok((target, returns))
}

/// A [`DEDUP`] record: (queue record, id, expiry in unix ms).
pub fn encode_dedup(queue: RecordId, id: u128, expires_ms: u64) -> Bytes {
    let mut w = Writer::new(32);
    w.u64(queue.0)
        .u64((id >> 64) as u64)
        .u64(id as u64)
        .u64(expires_ms);
    w.finish()
}

pub fn decode_dedup(b: &Bytes) -> Result<(RecordId, u128, u64), Malformed> {
    let mut r = Reader::new(b, "dedup");
    let queue = RecordId(r.u64()?);
    let id = (u128::from(r.u64()?) << 64) | u128::from(r.u64()?);
    Ok((queue, id, r.u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::FieldValue;

    fn s(x: &'static str) -> ShortStr {
        ShortStr::from_static(x)
    }

    #[test]
    fn records_round_trip() {
        let args: FieldTable = [(s("x-max-length"), FieldValue::I32(5))]
            .into_iter()
            .collect();
        let x = ExchangeRecord {
            vhost: s("/"),
            name: s("x"),
            kind: s("topic"),
            auto_delete: true,
            internal: false,
            arguments: args.clone(),
        };
        assert_eq!(ExchangeRecord::decode(&x.encode()).ok(), Some(x));
        let q = QueueRecord {
            vhost: s("/"),
            name: s("q"),
            auto_delete: false,
            arguments: args.clone(),
        };
        assert_eq!(QueueRecord::decode(&q.encode()).ok(), Some(q));
        let b = BindingRecord {
            vhost: s("/"),
            source: s("x"),
            to_exchange: true,
            destination: s("y"),
            routing_key: s("a.#"),
            arguments: args,
        };
        assert_eq!(BindingRecord::decode(&b.encode()).ok(), Some(b));
        let m = MessageContent {
            exchange: s("x"),
            routing_key: s("k"),
            raw_properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from_static(b"hello"),
        };
        assert_eq!(
            MessageContent::decode_body(&m.encode_body()).ok(),
            Some(m.clone())
        );
        assert_eq!(
            MessageContent::decode_message(&m.encode_message(RecordId(9))).ok(),
            Some((RecordId(9), m))
        );
        assert_eq!(
            decode_entry(RecordId(7), &encode_entry(RecordId(1), 2)).ok(),
            Some((RecordId(1), RecordId(5)))
        );
        assert_eq!(
            decode_delivered(&encode_delivered(RecordId(3), 0)).ok(),
            Some((RecordId(3), 0))
        );
        assert_eq!(
            decode_delivered(&encode_delivered(RecordId(3), 4)).ok(),
            Some((RecordId(3), 4))
        );
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let q = QueueRecord {
            vhost: s("/"),
            name: s("q"),
            auto_delete: false,
            arguments: FieldTable::default(),
        };
        let bytes = q.encode();
        for i in 0..bytes.len() {
            assert!(QueueRecord::decode(&bytes.slice(..i)).is_err());
        }
    }
}
