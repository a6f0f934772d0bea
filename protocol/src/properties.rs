//! The 14 properties of a `basic` content header.

use bytes::{BufMut, Bytes, BytesMut};

use std::fmt;

use crate::error::DecodeError;
use crate::table::{validate_entries, FieldTable};
use crate::types::ShortStr;
use crate::wire::{Wire, Writer};

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

/// The flag bit of each property, by property number (flag order).
const BITS: [u16; 14] = [
    CONTENT_TYPE,
    CONTENT_ENCODING,
    HEADERS,
    DELIVERY_MODE,
    PRIORITY,
    CORRELATION_ID,
    REPLY_TO,
    EXPIRATION,
    MESSAGE_ID,
    TIMESTAMP,
    TYPE,
    USER_ID,
    APP_ID,
    CLUSTER_ID,
];

/// A property's wire type.
#[derive(Clone, Copy)]
enum Kind {
    ShortStr,
    Table,
    Octet,
    LongLong,
}

const KINDS: [Kind; 14] = [
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::Table,
    Kind::Octet,
    Kind::Octet,
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::LongLong,
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::ShortStr,
    Kind::ShortStr,
];

/// Properties numbered below this (content-type, content-encoding,
/// headers) are located from the start of the property list, the others
/// from the end of the headers table. Either way the distance is bounded
/// by a few short strings, so it fits a `u16` whatever the table's size.
const HEAD: usize = 3;
/// Not a property: tells [`BasicProperties::encode_noting`]'s callback
/// where the properties after the headers begin.
const TAIL: usize = 14;

/// Writes `value` if set, first telling `note` its property number and
/// where it starts in the buffer.
fn write_some<T: Wire>(
    w: &mut Writer<'_>,
    value: &Option<T>,
    number: usize,
    note: &mut impl FnMut(usize, usize),
) {
    if let Some(value) = value {
        note(number, w.buf().len());
        value.write(w);
    }
}

impl BasicProperties {
    /// Decodes property flags and the property list, e.g. the
    /// properties of a [`ContentHeader`](crate::ContentHeader).
    ///
    /// Continuation flag words are accepted and their bits ignored: 0-9-1
    /// defines no property past the 14th. Bit 1 (undefined) is ignored, as
    /// RabbitMQ does. The checks (and so the errors) are
    /// [`WireProperties::decode`]'s.
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, DecodeError> {
        WireProperties::decode(raw.clone()).map(|p| p.to_basic_properties())
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
        self.encode_noting(buf, |_, _| {});
    }

    /// [`BasicProperties::encode`], telling `note` the property number
    /// and buffer position of each property written, and [`TAIL`] with
    /// the position where the properties after `headers` begin.
    fn encode_noting(&self, buf: &mut BytesMut, mut note: impl FnMut(usize, usize)) {
        buf.put_u16(self.flags());
        let mut w = Writer::new(buf);
        let n = &mut note;
        write_some(&mut w, &self.content_type, 0, n);
        write_some(&mut w, &self.content_encoding, 1, n);
        write_some(&mut w, &self.headers, 2, n);
        n(TAIL, w.buf().len());
        write_some(&mut w, &self.delivery_mode, 3, n);
        write_some(&mut w, &self.priority, 4, n);
        write_some(&mut w, &self.correlation_id, 5, n);
        write_some(&mut w, &self.reply_to, 6, n);
        write_some(&mut w, &self.expiration, 7, n);
        write_some(&mut w, &self.message_id, 8, n);
        write_some(&mut w, &self.timestamp, 9, n);
        write_some(&mut w, &self.kind, 10, n);
        write_some(&mut w, &self.user_id, 11, n);
        write_some(&mut w, &self.app_id, 12, n);
        write_some(&mut w, &self.cluster_id, 13, n);
    }

    /// The encoded properties as `Bytes`, e.g. to keep beside a message.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// Message properties as received: the flag words and property list
/// exactly as on the wire, plus where each present property starts.
///
/// [`WireProperties::decode`] checks the whole list once (lengths, and the
/// structure of the headers table) and records positions without copying
/// or slicing anything; the accessors then read a property straight from
/// the bytes. So a broker that only looks at a few properties of a message
/// pays for those few, keeps the bytes to forward them unchanged, and
/// holds some 70 bytes per message instead of a parsed
/// [`BasicProperties`]. [`WireProperties::to_basic_properties`] gives the
/// owned form.
#[derive(Clone)]
pub struct WireProperties {
    /// Flag words and property list.
    raw: Bytes,
    /// The first flags word (the only one 0-9-1 gives meaning to).
    flags: u16,
    /// Where the property list starts, after the flag words.
    list_at: u32,
    /// Where the properties after the headers table start.
    tail_at: u32,
    /// Each present property's start: from `list_at` for the first
    /// [`HEAD`] properties, from `tail_at` for the others.
    offsets: [u16; 14],
}

/// The wire form of "no properties": a zero flags word.
static NO_PROPERTIES: &[u8] = &[0, 0];

fn be_u16_at(bytes: &[u8], at: usize) -> Result<u16, DecodeError> {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(DecodeError::Truncated),
    }
}

/// Checks the property of type `kind` at `at` and returns where it ends.
#[inline(always)]
fn skip_property(bytes: &[u8], at: usize, kind: Kind) -> Result<usize, DecodeError> {
    let end = match kind {
        Kind::Octet => at + 1,
        Kind::LongLong => at + 8,
        Kind::ShortStr => {
            let len = bytes.get(at).ok_or(DecodeError::Truncated)?;
            at + 1 + usize::from(*len)
        }
        Kind::Table => {
            let len = match bytes.get(at..at + 4) {
                Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
                _ => return Err(DecodeError::Truncated),
            };
            let entries_at = at + 4;
            let entries = usize::try_from(len)
                .ok()
                .and_then(|len| entries_at.checked_add(len))
                .and_then(|end| bytes.get(entries_at..end))
                .ok_or(DecodeError::Truncated)?;
            validate_entries(entries, 0)?;
            entries_at + entries.len()
        }
    };
    if end > bytes.len() {
        return Err(DecodeError::Truncated);
    }
    Ok(end)
}

impl WireProperties {
    /// Checks property flags and list (what follows class id, weight and
    /// body size in a content header) and records where each property is.
    ///
    /// Continuation flag words are accepted and their bits ignored: 0-9-1
    /// defines no property past the 14th. Bit 1 (undefined) is ignored, as
    /// RabbitMQ does. A list that ends too soon is
    /// [`DecodeError::Truncated`], one that goes on after the last property
    /// [`DecodeError::TrailingBytes`], and a malformed headers table gives
    /// the error that decoding the table would.
    #[inline(always)]
    pub fn decode(raw: Bytes) -> Result<WireProperties, DecodeError> {
        let bytes: &[u8] = &raw;
        // Positions are kept as u32: a frame's payload fits one.
        if u32::try_from(bytes.len()).is_err() {
            return Err(DecodeError::FrameTooLarge {
                size: bytes.len() as u64,
                max: u32::MAX,
            });
        }
        let flags = be_u16_at(bytes, 0)?;
        let mut at = 2;
        let mut word = flags;
        while word & CONTINUATION != 0 {
            word = be_u16_at(bytes, at)?;
            at += 2;
        }
        let list_at = at;
        let mut offsets = [0u16; 14];
        for number in 0..HEAD {
            if flags & BITS[number] != 0 {
                // At most two short strings in: fits (see HEAD).
                offsets[number] = (at - list_at) as u16;
                at = skip_property(bytes, at, KINDS[number])?;
            }
        }
        let tail_at = at;
        for number in HEAD..BITS.len() {
            if flags & BITS[number] != 0 {
                offsets[number] = (at - tail_at) as u16;
                at = skip_property(bytes, at, KINDS[number])?;
            }
        }
        if at != bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(WireProperties {
            flags,
            list_at: list_at as u32,
            tail_at: tail_at as u32,
            offsets,
            raw,
        })
    }

    /// No properties (a zero flags word); allocates nothing.
    pub fn empty() -> WireProperties {
        WireProperties {
            raw: Bytes::from_static(NO_PROPERTIES),
            flags: 0,
            list_at: 2,
            tail_at: 2,
            offsets: [0; 14],
        }
    }

    /// The flag words and property list as received (or as encoded, for
    /// properties built from a [`BasicProperties`]), to forward unchanged.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// The first property flags word: bit 15 for content-type down to bit
    /// 2 for cluster-id.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// No property is set.
    pub fn is_empty(&self) -> bool {
        self.flags & !(CONTINUATION | 2) == 0
    }

    /// Where property `number` starts, if it is present.
    #[inline]
    fn start(&self, number: usize) -> Option<usize> {
        if self.flags & BITS[number] == 0 {
            return None;
        }
        let base = if number < HEAD {
            self.list_at
        } else {
            self.tail_at
        };
        Some(base as usize + usize::from(self.offsets[number]))
    }

    #[inline]
    fn short_bytes(&self, number: usize) -> Option<&[u8]> {
        let at = self.start(number)?;
        let len = usize::from(*self.raw.get(at)?);
        self.raw.get(at + 1..at + 1 + len)
    }

    fn short_str(&self, number: usize) -> Option<ShortStr> {
        self.short_bytes(number)
            .map(|s| ShortStr::from_wire(self.raw.slice_ref(s)))
    }

    fn octet(&self, number: usize) -> Option<u8> {
        self.raw.get(self.start(number)?).copied()
    }

    pub fn content_type(&self) -> Option<&[u8]> {
        self.short_bytes(0)
    }

    pub fn content_encoding(&self) -> Option<&[u8]> {
        self.short_bytes(1)
    }

    /// The headers table's entries as on the wire (without the length
    /// prefix), e.g. to look one header up without decoding the others.
    pub fn headers_raw(&self) -> Option<&[u8]> {
        let at = self.start(2)? + 4;
        let len = self.raw.get(at - 4..at)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        self.raw.get(at..at.checked_add(len)?)
    }

    /// The headers table, a slice of these bytes (validated at decode).
    pub fn headers(&self) -> Option<FieldTable> {
        self.headers_raw()
            .map(|entries| FieldTable::from_validated(self.raw.slice_ref(entries)))
    }

    pub fn delivery_mode(&self) -> Option<u8> {
        self.octet(3)
    }

    pub fn priority(&self) -> Option<u8> {
        self.octet(4)
    }

    pub fn correlation_id(&self) -> Option<&[u8]> {
        self.short_bytes(5)
    }

    pub fn reply_to(&self) -> Option<&[u8]> {
        self.short_bytes(6)
    }

    pub fn expiration(&self) -> Option<&[u8]> {
        self.short_bytes(7)
    }

    pub fn message_id(&self) -> Option<&[u8]> {
        self.short_bytes(8)
    }

    pub fn timestamp(&self) -> Option<u64> {
        let at = self.start(9)?;
        let bytes = self.raw.get(at..at + 8)?;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The spec's `type`.
    pub fn kind(&self) -> Option<&[u8]> {
        self.short_bytes(10)
    }

    pub fn user_id(&self) -> Option<&[u8]> {
        self.short_bytes(11)
    }

    pub fn app_id(&self) -> Option<&[u8]> {
        self.short_bytes(12)
    }

    pub fn cluster_id(&self) -> Option<&[u8]> {
        self.short_bytes(13)
    }

    /// All properties in owned form; strings and the table are slices of
    /// these bytes.
    pub fn to_basic_properties(&self) -> BasicProperties {
        BasicProperties {
            content_type: self.short_str(0),
            content_encoding: self.short_str(1),
            headers: self.headers(),
            delivery_mode: self.delivery_mode(),
            priority: self.priority(),
            correlation_id: self.short_str(5),
            reply_to: self.short_str(6),
            expiration: self.short_str(7),
            message_id: self.short_str(8),
            timestamp: self.timestamp(),
            kind: self.short_str(10),
            user_id: self.short_str(11),
            app_id: self.short_str(12),
            cluster_id: self.short_str(13),
        }
    }
}

impl Default for WireProperties {
    fn default() -> WireProperties {
        WireProperties::empty()
    }
}

/// Encodes the properties (one allocation) and records their positions as
/// [`WireProperties::decode`] would.
impl From<&BasicProperties> for WireProperties {
    fn from(properties: &BasicProperties) -> WireProperties {
        if properties.flags() == 0 {
            return WireProperties::empty();
        }
        let mut buf = BytesMut::new();
        let list_at = 2;
        let mut tail_at = list_at;
        let mut offsets = [0u16; 14];
        properties.encode_noting(&mut buf, |number, at| {
            if number == TAIL {
                tail_at = at;
            } else if number < HEAD {
                offsets[number] = (at - list_at) as u16;
            } else {
                offsets[number] = (at - tail_at) as u16;
            }
        });
        WireProperties {
            raw: buf.freeze(),
            flags: properties.flags(),
            list_at: list_at as u32,
            // Headers of 4 GiB cannot be sent in a frame anyway.
            tail_at: u32::try_from(tail_at).unwrap_or(u32::MAX),
            offsets,
        }
    }
}

impl From<BasicProperties> for WireProperties {
    fn from(properties: BasicProperties) -> WireProperties {
        WireProperties::from(&properties)
    }
}

/// The same properties, however they were encoded (continuation words,
/// the undefined bit 1 and table entry order may differ).
impl PartialEq for WireProperties {
    fn eq(&self, other: &WireProperties) -> bool {
        self.raw == other.raw || self.to_basic_properties() == other.to_basic_properties()
    }
}

impl PartialEq<BasicProperties> for WireProperties {
    fn eq(&self, other: &BasicProperties) -> bool {
        self.to_basic_properties() == *other
    }
}

/// Shown as the [`BasicProperties`] they hold.
impl fmt::Debug for WireProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_basic_properties(), f)
    }
}
