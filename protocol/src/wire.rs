//! The nom layer and the field codec shared by methods, properties and
//! tables.
//!
//! Parsers run over `&[u8]` slices of a frame's `Bytes`; a [`Reader`]
//! keeps that `Bytes` at hand so a parsed string becomes a
//! `Bytes::slice_ref` of it (a reference count, not a copy).

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_u16, be_u32, be_u64, be_u8};
use nom::{IResult, Parser};

use crate::error::DecodeError;
use crate::table::FieldTable;
use crate::types::{LongStr, ShortStr};

/// The nom error type: carries the [`DecodeError`] to report.
#[derive(Debug)]
pub(crate) struct WireError(pub DecodeError);

impl<'a> ParseError<&'a [u8]> for WireError {
    // All parsers run in complete mode over a whole frame payload, and
    // the only ways the primitives fail are running out of input.
    fn from_error_kind(_input: &'a [u8], _kind: ErrorKind) -> Self {
        WireError(DecodeError::Truncated)
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, WireError>;

pub(crate) fn fail<'a, T>(error: DecodeError) -> PResult<'a, T> {
    Err(nom::Err::Failure(WireError(error)))
}

/// Turns a nom result into ours; `Incomplete` cannot happen in complete
/// mode but is a truncation all the same.
pub(crate) fn finish<T>(result: PResult<'_, T>) -> Result<(&[u8], T), DecodeError> {
    match result {
        Ok(ok) => Ok(ok),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.0),
        Err(nom::Err::Incomplete(_)) => Err(DecodeError::Truncated),
    }
}

// Written out rather than `length_data`, whose closure plumbing costs a
// measurable share of decoding a publish.

/// A shortstr's octets.
#[inline]
pub(crate) fn short_bytes(input: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, len) = be_u8(input)?;
    take(len)(rest)
}

/// A longstr's (or table's, or array's) octets.
#[inline]
pub(crate) fn long_bytes(input: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, len) = be_u32(input)?;
    take(len)(rest)
}

/// Walks a method's or a property list's fields in order, packing
/// consecutive bits into octets as the spec says.
pub(crate) struct Reader<'a> {
    base: &'a Bytes,
    rest: &'a [u8],
    bits: u8,
    /// Index of the next unread bit of `bits`; 8 when a new octet is due.
    next_bit: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(base: &'a Bytes) -> Reader<'a> {
        Reader {
            base,
            rest: base.as_ref(),
            bits: 0,
            next_bit: 8,
        }
    }

    /// Runs a parser on what is left; any non-bit field ends a bit run.
    pub(crate) fn run<T>(
        &mut self,
        mut parser: impl Parser<&'a [u8], Output = T, Error = WireError>,
    ) -> Result<T, DecodeError> {
        self.next_bit = 8;
        let (rest, value) = finish(parser.parse_complete(self.rest))?;
        self.rest = rest;
        Ok(value)
    }

    /// A sub-slice of the input as shared `Bytes`.
    pub(crate) fn bytes(&self, slice: &[u8]) -> Bytes {
        self.base.slice_ref(slice)
    }

    pub(crate) fn bit(&mut self) -> Result<bool, DecodeError> {
        if self.next_bit >= 8 {
            self.bits = self.run(be_u8)?;
            self.next_bit = 0;
        }
        let bit = (self.bits >> self.next_bit) & 1 == 1;
        self.next_bit += 1;
        Ok(bit)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// The write-side twin of [`Reader`].
pub(crate) struct Writer<'a> {
    buf: &'a mut BytesMut,
    bit_octet: usize,
    next_bit: u8,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Writer<'a> {
        Writer {
            buf,
            bit_octet: 0,
            next_bit: 8,
        }
    }

    /// The buffer, for a non-bit field (which ends a bit run).
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        self.next_bit = 8;
        self.buf
    }

    pub(crate) fn bit(&mut self, value: bool) {
        if self.next_bit >= 8 {
            self.bit_octet = self.buf.len();
            self.buf.put_u8(0);
            self.next_bit = 0;
        }
        if value {
            if let Some(octet) = self.buf.get_mut(self.bit_octet) {
                *octet |= 1 << self.next_bit;
            }
        }
        self.next_bit += 1;
    }
}

/// A field type of a method argument list or property list.
pub(crate) trait Wire: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write(&self, w: &mut Writer<'_>);
}

impl Wire for u8 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.run(be_u8)
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.buf().put_u8(*self);
    }
}

impl Wire for u16 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.run(be_u16)
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.buf().put_u16(*self);
    }
}

impl Wire for u32 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.run(be_u32)
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.buf().put_u32(*self);
    }
}

impl Wire for u64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.run(be_u64)
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.buf().put_u64(*self);
    }
}

/// `bool` is the spec's `bit`.
impl Wire for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bit()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.bit(*self);
    }
}

impl Wire for ShortStr {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slice = r.run(short_bytes)?;
        Ok(ShortStr::from_wire(r.bytes(slice)))
    }
    fn write(&self, w: &mut Writer<'_>) {
        let buf = w.buf();
        buf.put_u8(self.wire_len());
        buf.put_slice(self.as_bytes());
    }
}

impl Wire for LongStr {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slice = r.run(long_bytes)?;
        Ok(LongStr::from(r.bytes(slice)))
    }
    fn write(&self, w: &mut Writer<'_>) {
        let buf = w.buf();
        buf.put_u32(self.wire_len());
        buf.put_slice(self.as_bytes());
    }
}

impl Wire for FieldTable {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slice = r.run(long_bytes)?;
        crate::table::validate_entries(slice, 0)?;
        Ok(FieldTable::from_validated(r.bytes(slice)))
    }
    fn write(&self, w: &mut Writer<'_>) {
        self.encode(w.buf());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bits_pack_lsb_first_and_spill_into_a_new_octet_after_eight() {
        let bits = [
            true, false, true, true, false, false, false, false, true, true,
        ];
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        for bit in bits {
            w.bit(bit);
        }
        7u8.write(&mut w);
        w.bit(true);
        assert_eq!(&buf[..], &[0b0000_1101, 0b0000_0011, 7, 1]);

        let bytes = buf.freeze();
        let mut r = Reader::new(&bytes);
        for bit in bits {
            assert_eq!(r.bit().unwrap(), bit);
        }
        assert_eq!(u8::read(&mut r).unwrap(), 7);
        assert!(r.bit().unwrap());
        r.finish().unwrap();
    }
}
