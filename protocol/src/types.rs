//! The AMQP string types. Both hold `Bytes` so that strings decoded from a
//! frame are slices of the read buffer, not copies.

use std::borrow::{Borrow, Cow};
use std::fmt;

use bytes::Bytes;

/// A string longer than its wire type allows.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("string of {len} bytes is longer than the {max} bytes a shortstr holds")]
pub struct LengthError {
    pub len: usize,
    pub max: usize,
}

/// AMQP `shortstr`: at most 255 octets, not necessarily UTF-8 (RabbitMQ
/// does not check; names, keys and tags are compared as bytes).
#[derive(Clone, Default, Eq, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

impl PartialEq for ShortStr {
    fn eq(&self, other: &ShortStr) -> bool {
        same_bytes(&self.0, &other.0)
    }
}

// Equal strings have equal bytes, so hashing the bytes agrees with `eq`.
impl std::hash::Hash for ShortStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

/// Byte equality that never calls `memcmp` for empty slices: an empty
/// `Bytes` may hold a dangling pointer, and glibc's AVX-512 `memcmp` then
/// pays a fault-suppression assist (~100 ns) on its masked load.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

impl ShortStr {
    pub const MAX_LEN: usize = 255;

    pub fn new(bytes: Bytes) -> Result<ShortStr, LengthError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(LengthError {
                len: bytes.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(ShortStr(bytes))
    }

    /// For literals in code. Panics if `s` is longer than 255 bytes, which
    /// is a programming error, never a consequence of input.
    pub const fn from_static(s: &'static str) -> ShortStr {
        assert!(
            s.len() <= Self::MAX_LEN,
            "a shortstr holds at most 255 bytes"
        );
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes the decoder already bounded by a one-octet length.
    pub(crate) fn from_wire(bytes: Bytes) -> ShortStr {
        debug_assert!(bytes.len() <= Self::MAX_LEN);
        ShortStr(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Borrowed when the bytes are UTF-8.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The length as it goes on the wire; the constructor bounds it.
    pub(crate) fn wire_len(&self) -> u8 {
        u8::try_from(self.0.len()).unwrap_or(u8::MAX)
    }
}

impl TryFrom<&str> for ShortStr {
    type Error = LengthError;
    fn try_from(s: &str) -> Result<ShortStr, LengthError> {
        ShortStr::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for ShortStr {
    type Error = LengthError;
    fn try_from(s: String) -> Result<ShortStr, LengthError> {
        ShortStr::new(Bytes::from(s))
    }
}

impl TryFrom<&[u8]> for ShortStr {
    type Error = LengthError;
    fn try_from(s: &[u8]) -> Result<ShortStr, LengthError> {
        ShortStr::new(Bytes::copy_from_slice(s))
    }
}

impl TryFrom<Bytes> for ShortStr {
    type Error = LengthError;
    fn try_from(b: Bytes) -> Result<ShortStr, LengthError> {
        ShortStr::new(b)
    }
}

impl From<ShortStr> for Bytes {
    fn from(s: ShortStr) -> Bytes {
        s.0
    }
}

impl AsRef<[u8]> for ShortStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for ShortStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        same_bytes(self.as_bytes(), other.as_bytes())
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        same_bytes(self.as_bytes(), other.as_bytes())
    }
}

impl PartialEq<ShortStr> for str {
    fn eq(&self, other: &ShortStr) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<ShortStr> for &str {
    fn eq(&self, other: &ShortStr) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

/// AMQP `longstr`: up to 2^32-1 octets of any content (SASL responses,
/// table values).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LongStr(Bytes);

impl LongStr {
    pub const fn from_static(s: &'static str) -> LongStr {
        LongStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Borrowed when the bytes are UTF-8.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Longer values cannot be built in practice: a frame (and so a
    /// decoded value) is bounded by a u32 size.
    pub(crate) fn wire_len(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }
}

impl From<Bytes> for LongStr {
    fn from(b: Bytes) -> LongStr {
        LongStr(b)
    }
}

impl From<&str> for LongStr {
    fn from(s: &str) -> LongStr {
        LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for LongStr {
    fn from(s: String) -> LongStr {
        LongStr(Bytes::from(s))
    }
}

impl From<Vec<u8>> for LongStr {
    fn from(v: Vec<u8>) -> LongStr {
        LongStr(Bytes::from(v))
    }
}

impl From<LongStr> for Bytes {
    fn from(s: LongStr) -> Bytes {
        s.0
    }
}

impl AsRef<[u8]> for LongStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for LongStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for LongStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for LongStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for LongStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

impl fmt::Display for LongStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shortstr_length_is_bounded() {
        assert!(ShortStr::try_from("x".repeat(255)).is_ok());
        assert_eq!(
            ShortStr::try_from("x".repeat(256)),
            Err(LengthError { len: 256, max: 255 })
        );
        assert!(ShortStr::new(Bytes::from(vec![0xff; 256])).is_err());
    }

    #[test]
    fn shortstr_compares_with_str_and_shows_lossy() {
        let s = ShortStr::from_static("amq.direct");
        assert_eq!(s, "amq.direct");
        assert_eq!("amq.direct", s);
        assert_eq!(s.as_str(), Some("amq.direct"));
        assert_eq!(s.len(), 10);
        assert_eq!(format!("{s:?}"), "\"amq.direct\"");
        let bad = ShortStr::try_from(&b"a\xffb"[..]).unwrap();
        assert_eq!(bad.as_str(), None);
        assert_eq!(bad.to_string_lossy(), "a\u{fffd}b");
        assert_eq!(bad.to_string(), "a\u{fffd}b");
        assert!(ShortStr::default().is_empty());
    }

    #[test]
    fn shortstr_looks_up_by_bytes_in_maps() {
        let mut map = std::collections::HashMap::new();
        map.insert(ShortStr::from_static("q"), 1);
        assert_eq!(map.get(&b"q"[..]), Some(&1));
    }

    #[test]
    fn longstr_basics() {
        let s = LongStr::from_static("PLAIN AMQPLAIN");
        assert_eq!(s, "PLAIN AMQPLAIN");
        assert_eq!(s.as_str(), Some("PLAIN AMQPLAIN"));
        assert_eq!(LongStr::from(vec![0xff]).as_str(), None);
        assert_eq!(LongStr::from("x").into_bytes(), Bytes::from_static(b"x"));
    }
}
