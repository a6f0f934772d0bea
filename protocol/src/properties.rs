//! The 14 properties of a `basic` content header.

use bytes::{BufMut, Bytes, BytesMut};
use nom::number::complete::be_u16;

use crate::error::DecodeError;
use crate::table::FieldTable;
use crate::types::ShortStr;
use crate::wire::{Reader, Wire, Writer};

/// Message properties, in property-flag order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as a decimal string.
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    /// The spec's `type`.
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

// Bit 15 of the first flags word is the first property.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
/// Set in a flags word that another flags word follows.
const CONTINUATION: u16 = 1;

fn read_if<T: Wire>(r: &mut Reader<'_>, flags: u16, bit: u16) -> Result<Option<T>, DecodeError> {
    if flags & bit == 0 {
        return Ok(None);
    }
    T::read(r).map(Some)
}

fn write_some<T: Wire>(w: &mut Writer<'_>, value: &Option<T>) {
    if let Some(value) = value {
        value.write(w);
    }
}

impl BasicProperties {
    /// Decodes property flags and the property list, e.g. the
    /// `raw_properties` of a [`ContentHeader`](crate::ContentHeader).
    ///
    /// Continuation flag words are accepted and their bits ignored: 0-9-1
    /// defines no property past the 14th. Bit 1 (undefined) is ignored, as
    /// RabbitMQ does.
    #[inline(always)]
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, DecodeError> {
        let mut r = Reader::new(raw);
        let flags = r.run(be_u16)?;
        let mut word = flags;
        while word & CONTINUATION != 0 {
            word = r.run(be_u16)?;
        }
        let props = BasicProperties {
            content_type: read_if(&mut r, flags, CONTENT_TYPE)?,
            content_encoding: read_if(&mut r, flags, CONTENT_ENCODING)?,
            headers: read_if(&mut r, flags, HEADERS)?,
            delivery_mode: read_if(&mut r, flags, DELIVERY_MODE)?,
            priority: read_if(&mut r, flags, PRIORITY)?,
            correlation_id: read_if(&mut r, flags, CORRELATION_ID)?,
            reply_to: read_if(&mut r, flags, REPLY_TO)?,
            expiration: read_if(&mut r, flags, EXPIRATION)?,
            message_id: read_if(&mut r, flags, MESSAGE_ID)?,
            timestamp: read_if(&mut r, flags, TIMESTAMP)?,
            kind: read_if(&mut r, flags, TYPE)?,
            user_id: read_if(&mut r, flags, USER_ID)?,
            app_id: read_if(&mut r, flags, APP_ID)?,
            cluster_id: read_if(&mut r, flags, CLUSTER_ID)?,
        };
        r.finish()?;
        Ok(props)
    }

    /// The property flags word for the properties that are set.
    pub fn flags(&self) -> u16 {
        let bit = |set: bool, bit: u16| if set { bit } else { 0 };
        bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.content_encoding.is_some(), CONTENT_ENCODING)
            | bit(self.headers.is_some(), HEADERS)
            | bit(self.delivery_mode.is_some(), DELIVERY_MODE)
            | bit(self.priority.is_some(), PRIORITY)
            | bit(self.correlation_id.is_some(), CORRELATION_ID)
            | bit(self.reply_to.is_some(), REPLY_TO)
            | bit(self.expiration.is_some(), EXPIRATION)
            | bit(self.message_id.is_some(), MESSAGE_ID)
            | bit(self.timestamp.is_some(), TIMESTAMP)
            | bit(self.kind.is_some(), TYPE)
            | bit(self.user_id.is_some(), USER_ID)
            | bit(self.app_id.is_some(), APP_ID)
            | bit(self.cluster_id.is_some(), CLUSTER_ID)
    }

    /// Writes the flags word and the property list (never a continuation
    /// word).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags());
        let mut w = Writer::new(buf);
        write_some(&mut w, &self.content_type);
        write_some(&mut w, &self.content_encoding);
        write_some(&mut w, &self.headers);
        write_some(&mut w, &self.delivery_mode);
        write_some(&mut w, &self.priority);
        write_some(&mut w, &self.correlation_id);
        write_some(&mut w, &self.reply_to);
        write_some(&mut w, &self.expiration);
        write_some(&mut w, &self.message_id);
        write_some(&mut w, &self.timestamp);
        write_some(&mut w, &self.kind);
        write_some(&mut w, &self.user_id);
        write_some(&mut w, &self.app_id);
        write_some(&mut w, &self.cluster_id);
    }

    /// The encoded properties as `Bytes`, e.g. to keep beside a message.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}
