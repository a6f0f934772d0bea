//! Field tables and arrays, kept as their wire bytes.
//!
//! A table is validated once when it is decoded (a walk that allocates
//! nothing) and read lazily afterwards, so the publish path pays for
//! headers only when something looks at them. Nested tables, arrays and
//! strings are slices of the parent's `Bytes`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{
    be_f32, be_f64, be_i16, be_i32, be_i64, be_i8, be_u16, be_u32, be_u64, be_u8,
};
use nom::Parser;

use crate::error::DecodeError;
use crate::types::{LongStr, ShortStr};
use crate::wire::{fail, finish, long_bytes, short_bytes, PResult};

/// How deep tables and arrays may nest in decoded input, so that a hostile
/// frame cannot exhaust the stack of the validating walk.
pub const MAX_NESTING_DEPTH: usize = 64;

/// A field value, with RabbitMQ's type letters (its errata, which pika,
/// lapin and the Java client follow, not the 0-9-1 spec's table).
///
/// Equality compares floats by their bits, so a NaN equals the same NaN
/// and `0.0 != -0.0`: two values are equal when they encode the same.
#[derive(Clone, Debug)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s` (a short *string* in the spec's table; RabbitMQ says i16)
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`; RabbitMQ also reads `L` as a signed 64-bit value, and so do we
    /// (it is written back as `l`).
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: `value / 10^scale`, with an unsigned value as RabbitMQ reads it.
    Decimal { scale: u8, value: u32 },
    /// `S`
    LongStr(LongStr),
    /// `A`
    Array(FieldArray),
    /// `T`: seconds since the epoch.
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`: a byte array with a u32 length.
    Bytes(Bytes),
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        use FieldValue::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a == b,
            (I8(a), I8(b)) => a == b,
            (U8(a), U8(b)) => a == b,
            (I16(a), I16(b)) => a == b,
            (U16(a), U16(b)) => a == b,
            (I32(a), I32(b)) => a == b,
            (U32(a), U32(b)) => a == b,
            (I64(a), I64(b)) => a == b,
            (F32(a), F32(b)) => a.to_bits() == b.to_bits(),
            (F64(a), F64(b)) => a.to_bits() == b.to_bits(),
            (
                Decimal {
                    scale: sa,
                    value: va,
                },
                Decimal {
                    scale: sb,
                    value: vb,
                },
            ) => sa == sb && va == vb,
            (LongStr(a), LongStr(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Table(a), Table(b)) => a == b,
            (Void, Void) => true,
            (Bytes(a), Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl FieldValue {
    /// The type letter this value is written with.
    pub fn type_letter(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::Bytes(_) => b'x',
        }
    }

    /// A long string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(s) => s.as_str(),
            _ => None,
        }
    }

    /// Any integer type (not timestamps, not decimals) whose value fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&FieldArray> {
        match self {
            FieldValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Writes the type letter and the value.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.type_letter());
        match self {
            FieldValue::Bool(v) => buf.put_u8(u8::from(*v)),
            FieldValue::I8(v) => buf.put_i8(*v),
            FieldValue::U8(v) => buf.put_u8(*v),
            FieldValue::I16(v) => buf.put_i16(*v),
            FieldValue::U16(v) => buf.put_u16(*v),
            FieldValue::I32(v) => buf.put_i32(*v),
            FieldValue::U32(v) => buf.put_u32(*v),
            FieldValue::I64(v) => buf.put_i64(*v),
            FieldValue::F32(v) => buf.put_f32(*v),
            FieldValue::F64(v) => buf.put_f64(*v),
            FieldValue::Decimal { scale, value } => {
                buf.put_u8(*scale);
                buf.put_u32(*value);
            }
            FieldValue::LongStr(s) => {
                buf.put_u32(s.wire_len());
                buf.put_slice(s.as_bytes());
            }
            FieldValue::Array(a) => put_long(buf, &a.raw),
            FieldValue::Timestamp(v) => buf.put_u64(*v),
            FieldValue::Table(t) => put_long(buf, &t.raw),
            FieldValue::Void => {}
            FieldValue::Bytes(b) => put_long(buf, b),
        }
    }
}

fn put_long(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    buf.put_slice(bytes);
}

/// Skips one value of type `letter`. With `depth`, nested tables and
/// arrays are validated too; without, the input is trusted (it was
/// validated when decoded) and only their lengths are read.
fn skip_value(letter: u8, input: &[u8], depth: Option<usize>) -> PResult<'_, ()> {
    let width: usize = match letter {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'V' => 0,
        b'S' | b'x' => return long_bytes(input).map(|(rest, _)| (rest, ())),
        b'F' | b'A' => {
            let (rest, body) = long_bytes(input)?;
            if let Some(depth) = depth {
                let checked = if letter == b'F' {
                    validate_entries(body, depth + 1)
                } else {
                    validate_values(body, depth + 1)
                };
                if let Err(e) = checked {
                    return fail(e);
                }
            }
            return Ok((rest, ()));
        }
        other => return fail(DecodeError::InvalidFieldType(other)),
    };
    take(width).map(|_| ()).parse_complete(input)
}

/// Checks the entries of a table (without its length prefix) at nesting
/// level `depth`, allocating nothing.
pub(crate) fn validate_entries(mut input: &[u8], depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(DecodeError::TableTooDeep);
    }
    while !input.is_empty() {
        let (rest, _key) = finish(short_bytes(input))?;
        let (rest, letter) = finish(be_u8(rest))?;
        (input, _) = finish(skip_value(letter, rest, Some(depth)))?;
    }
    Ok(())
}

/// Checks the values of an array (without its length prefix).
fn validate_values(mut input: &[u8], depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(DecodeError::TableTooDeep);
    }
    while !input.is_empty() {
        let (rest, letter) = finish(be_u8(input))?;
        (input, _) = finish(skip_value(letter, rest, Some(depth)))?;
    }
    Ok(())
}

/// Reads one value from validated input; `base` holds `input`.
fn read_value<'a>(base: &Bytes, input: &'a [u8]) -> PResult<'a, FieldValue> {
    let (input, letter) = be_u8(input)?;
    let value = match letter {
        b't' => be_u8
            .map(|v| FieldValue::Bool(v != 0))
            .parse_complete(input),
        b'b' => be_i8.map(FieldValue::I8).parse_complete(input),
        b'B' => be_u8.map(FieldValue::U8).parse_complete(input),
        b's' => be_i16.map(FieldValue::I16).parse_complete(input),
        b'u' => be_u16.map(FieldValue::U16).parse_complete(input),
        b'I' => be_i32.map(FieldValue::I32).parse_complete(input),
        b'i' => be_u32.map(FieldValue::U32).parse_complete(input),
        b'l' | b'L' => be_i64.map(FieldValue::I64).parse_complete(input),
        b'f' => be_f32.map(FieldValue::F32).parse_complete(input),
        b'd' => be_f64.map(FieldValue::F64).parse_complete(input),
        b'D' => (be_u8, be_u32)
            .map(|(scale, value)| FieldValue::Decimal { scale, value })
            .parse_complete(input),
        b'S' => long_bytes
            .map(|s| FieldValue::LongStr(LongStr::from(base.slice_ref(s))))
            .parse_complete(input),
        b'A' => long_bytes
            .map(|s| {
                FieldValue::Array(FieldArray {
                    raw: base.slice_ref(s),
                })
            })
            .parse_complete(input),
        b'T' => be_u64.map(FieldValue::Timestamp).parse_complete(input),
        b'F' => long_bytes
            .map(|s| {
                FieldValue::Table(FieldTable {
                    raw: base.slice_ref(s),
                })
            })
            .parse_complete(input),
        b'V' => Ok((input, FieldValue::Void)),
        b'x' => long_bytes
            .map(|s| FieldValue::Bytes(base.slice_ref(s)))
            .parse_complete(input),
        other => fail(DecodeError::InvalidFieldType(other)),
    };
    value
}

/// A field table: the wire bytes of its entries (without the length
/// prefix), validated when decoded so that reading them cannot fail.
///
/// Lookups scan linearly; duplicate keys are kept as received, and
/// lookups see the first, as RabbitMQ's `table_lookup` does.
#[derive(Clone, Default)]
pub struct FieldTable {
    raw: Bytes,
}

impl FieldTable {
    pub fn new() -> FieldTable {
        FieldTable::default()
    }

    /// Decodes table entries given without the u32 length prefix (as in an
    /// AMQPLAIN response), validating them.
    pub fn decode_entries(raw: Bytes) -> Result<FieldTable, DecodeError> {
        validate_entries(&raw, 0)?;
        Ok(FieldTable { raw })
    }

    pub(crate) fn from_validated(raw: Bytes) -> FieldTable {
        FieldTable { raw }
    }

    /// Encodes entries in order; of several entries with one key the last
    /// wins, as when collecting into a map.
    pub fn from_entries(entries: impl IntoIterator<Item = (ShortStr, FieldValue)>) -> FieldTable {
        let entries: Vec<(ShortStr, FieldValue)> = entries.into_iter().collect();
        let mut buf = BytesMut::new();
        for (i, (key, value)) in entries.iter().enumerate() {
            if entries[i + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            put_entry(&mut buf, key, value);
        }
        FieldTable { raw: buf.freeze() }
    }

    /// The entries' wire bytes, without the length prefix.
    pub fn raw_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// Writes the table as a method argument: u32 length, then entries.
    pub fn encode(&self, buf: &mut BytesMut) {
        put_long(buf, &self.raw);
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The number of entries (duplicates included); walks the table.
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    pub fn get(&self, key: &str) -> Option<FieldValue> {
        self.entries()
            .find(|e| e.key == key.as_bytes())
            .and_then(|e| e.value(&self.raw))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries().any(|e| e.key == key.as_bytes())
    }

    pub fn iter(&self) -> impl Iterator<Item = (ShortStr, FieldValue)> + '_ {
        self.entries().filter_map(|e| {
            let value = e.value(&self.raw)?;
            Some((ShortStr::from_wire(self.raw.slice_ref(e.key)), value))
        })
    }

    /// Sets `key`, replacing any entry with that key; re-encodes the table.
    pub fn insert(&mut self, key: ShortStr, value: FieldValue) {
        let mut buf = BytesMut::with_capacity(self.raw.len() + key.len() + 16);
        for e in self.entries().filter(|e| e.key != key.as_bytes()) {
            buf.put_slice(e.whole);
        }
        put_entry(&mut buf, &key, &value);
        self.raw = buf.freeze();
    }

    /// Removes every entry with `key` and returns the first one's value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let removed = self.get(key)?;
        let mut buf = BytesMut::with_capacity(self.raw.len());
        for e in self.entries().filter(|e| e.key != key.as_bytes()) {
            buf.put_slice(e.whole);
        }
        self.raw = buf.freeze();
        Some(removed)
    }

    /// The entries as a map (for a duplicated key, the first one).
    pub fn to_btree(&self) -> BTreeMap<ShortStr, FieldValue> {
        let mut map = BTreeMap::new();
        for (key, value) in self.iter() {
            map.entry(key).or_insert(value);
        }
        map
    }

    fn entries(&self) -> Entries<'_> {
        Entries { rest: &self.raw }
    }
}

fn put_entry(buf: &mut BytesMut, key: &ShortStr, value: &FieldValue) {
    buf.put_u8(key.wire_len());
    buf.put_slice(key.as_bytes());
    value.encode(buf);
}

/// One entry of validated table bytes, not yet decoded.
struct Entry<'a> {
    key: &'a [u8],
    /// The value, starting at its type letter.
    value: &'a [u8],
    /// Key and value as they are on the wire.
    whole: &'a [u8],
}

impl Entry<'_> {
    fn value(&self, base: &Bytes) -> Option<FieldValue> {
        read_value(base, self.value).ok().map(|(_, v)| v)
    }
}

struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let start = self.rest;
        let (after_key, key) = short_bytes(start).ok()?;
        let (after_letter, letter) = be_u8::<_, crate::wire::WireError>(after_key).ok()?;
        let (rest, ()) = skip_value(letter, after_letter, None).ok()?;
        self.rest = rest;
        let value_len = after_key.len() - rest.len();
        let whole_len = start.len() - rest.len();
        Some(Entry {
            key,
            value: &after_key[..value_len],
            whole: &start[..whole_len],
        })
    }
}

impl PartialEq for FieldTable {
    /// Same keys with the same values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw || self.to_btree() == other.to_btree()
    }
}

impl fmt::Debug for FieldTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: I) -> Self {
        FieldTable::from_entries(iter)
    }
}

/// A field array: the wire bytes of its values (without the length
/// prefix), validated when decoded.
#[derive(Clone, Default)]
pub struct FieldArray {
    raw: Bytes,
}

impl FieldArray {
    pub fn new() -> FieldArray {
        FieldArray::default()
    }

    /// The values' wire bytes, without the length prefix.
    pub fn raw_bytes(&self) -> &Bytes {
        &self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn iter(&self) -> impl Iterator<Item = FieldValue> + '_ {
        let mut rest: &[u8] = &self.raw;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (next, value) = read_value(&self.raw, rest).ok()?;
            rest = next;
            Some(value)
        })
    }

    pub fn push(&mut self, value: FieldValue) {
        let mut buf = BytesMut::with_capacity(self.raw.len() + 16);
        buf.put_slice(&self.raw);
        value.encode(&mut buf);
        self.raw = buf.freeze();
    }
}

impl PartialEq for FieldArray {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw || self.iter().eq(other.iter())
    }
}

impl fmt::Debug for FieldArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<FieldValue> for FieldArray {
    fn from_iter<I: IntoIterator<Item = FieldValue>>(iter: I) -> Self {
        let mut buf = BytesMut::new();
        for value in iter {
            value.encode(&mut buf);
        }
        FieldArray { raw: buf.freeze() }
    }
}
