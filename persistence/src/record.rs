//! Record identity, the records callers append and read, and the on-disk
//! frame of one record.
//!
//! Frame layout (little-endian), [`FRAME_HEADER`] = 26 bytes before the payload:
//!
//! ```text
//! crc32     u32   CRC32 (crc32fast) of every byte after this field
//! len       u32   number of bytes after this field: 18 + payload length
//! flags     u8    bit 0: BATCH_CONTINUES (a later record of the same batch follows)
//! kind      u8    caller-defined
//! id        u64   RecordId, never 0
//! refers_to u64   0 = none, else the id of the record this one tombstones
//! payload   [u8]
//! ```
//!
//! The length is covered by the CRC so that a corrupted length is caught
//! like any other corrupted byte.

use std::fmt;

use bytes::Bytes;

/// Position of a record in the log: a monotonic log sequence number.
///
/// Ids start at 1 and are assigned densely in append order; 0 means "none"
/// on disk and as a watermark ("nothing durable yet").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

impl RecordId {
    /// The raw sequence number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A record handed back by recovery.
///
/// Recovery returns only records that are neither tombstones nor
/// tombstoned, so there is no `refers_to` here: it would always be `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub kind: u8,
    pub payload: Bytes,
}

/// One record of an [`append_batch`](crate::Store::append_batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub kind: u8,
    pub payload: Bytes,
    /// When set, this record is a tombstone of the referred record (see the
    /// crate docs).
    pub refers_to: Option<RecordId>,
}

impl NewRecord {
    /// A plain record.
    pub fn new(kind: u8, payload: Bytes) -> Self {
        NewRecord {
            kind,
            payload,
            refers_to: None,
        }
    }

    /// A tombstone of `target`.
    pub fn tombstone(kind: u8, payload: Bytes, target: RecordId) -> Self {
        NewRecord {
            kind,
            payload,
            refers_to: Some(target),
        }
    }
}

/// The contiguous ids assigned to a batch: `first`, `first + 1`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: RecordId,
    pub count: u64,
}

impl IdRange {
    /// The last id of the range, `None` for an empty batch.
    pub fn last(&self) -> Option<RecordId> {
        (self.count > 0).then(|| RecordId(self.first.0 + self.count - 1))
    }

    /// Every id of the range in order.
    pub fn iter(&self) -> impl Iterator<Item = RecordId> {
        (self.first.0..self.first.0 + self.count).map(RecordId)
    }
}

/// Bytes of a frame before its payload.
pub(crate) const FRAME_HEADER: usize = 26;
/// Bytes covered by `len` besides the payload (flags, kind, id, refers_to).
const LEN_OVERHEAD: usize = 18;
/// The index keeps a frame's length in 29 bits (see `index::Slot`).
pub(crate) const MAX_FRAME: usize = (1 << 29) - 1;
/// Largest payload a record may carry.
pub const MAX_PAYLOAD: usize = MAX_FRAME - FRAME_HEADER;

pub(crate) const FLAG_BATCH_CONTINUES: u8 = 0x01;
const KNOWN_FLAGS: u8 = FLAG_BATCH_CONTINUES;

/// Size on disk of a record with a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER + payload_len
}

/// Appends the frame of one record to `buf`.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    id: u64,
    kind: u8,
    refers_to: u64,
    flags: u8,
    payload: &[u8],
) {
    let start = buf.len();
    let len = (LEN_OVERHEAD + payload.len()) as u32;
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.push(flags);
    buf.push(kind);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&refers_to.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A frame decoded from a buffer; the payload is `buf[payload]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub id: u64,
    pub kind: u8,
    pub refers_to: u64,
    pub flags: u8,
    /// Total bytes of the frame, header included.
    pub len: usize,
    pub payload_start: usize,
}

impl Frame {
    pub fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }

    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.payload_start..self.len]
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The buffer ends inside the frame (a torn write, or the end of a
    /// partially read range).
    Truncated,
    /// The bytes are not a valid frame.
    Corrupt(&'static str),
}

impl FrameError {
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::Truncated => "truncated frame",
            FrameError::Corrupt(reason) => reason,
        }
    }
}

fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes the frame at the start of `buf` and verifies its CRC.
///
/// Never panics on arbitrary input: every length is checked before use.
pub(crate) fn decode(buf: &[u8]) -> Result<Frame, FrameError> {
    if buf.len() < FRAME_HEADER {
        return Err(FrameError::Truncated);
    }
    let crc = le_u32(buf, 0);
    let len = le_u32(buf, 4) as usize;
    if !(LEN_OVERHEAD..=MAX_FRAME - 8).contains(&len) {
        return Err(FrameError::Corrupt("frame length out of range"));
    }
    let total = 8 + len;
    if buf.len() < total {
        return Err(FrameError::Truncated);
    }
    if crc32fast::hash(&buf[4..total]) != crc {
        return Err(FrameError::Corrupt("checksum mismatch"));
    }
    let flags = buf[8];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::Corrupt("unknown flags"));
    }
    let id = le_u64(buf, 10);
    if id == 0 {
        return Err(FrameError::Corrupt("record id 0"));
    }
    let refers_to = le_u64(buf, 18);
    if refers_to >= id {
        return Err(FrameError::Corrupt("refers to a later record"));
    }
    Ok(Frame {
        id,
        kind: buf[9],
        refers_to,
        flags,
        len: total,
        payload_start: FRAME_HEADER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 3, 5, FLAG_BATCH_CONTINUES, payload);
        buf
    }

    #[test]
    fn roundtrip() {
        let buf = frame(b"hello");
        assert_eq!(buf.len(), frame_len(5));
        let f = decode(&buf).unwrap();
        assert_eq!((f.id, f.kind, f.refers_to), (7, 3, 5));
        assert!(f.batch_continues());
        assert_eq!(f.payload(&buf), b"hello");
        assert_eq!(f.len, buf.len());
    }

    #[test]
    fn every_truncation_is_truncated() {
        let buf = frame(b"payload bytes");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Err(FrameError::Truncated), "cut {cut}");
        }
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let buf = frame(b"payload bytes");
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn zeros_are_not_a_frame() {
        assert!(decode(&[0; 64]).is_err());
    }

    #[test]
    fn id_range() {
        let r = IdRange {
            first: RecordId(4),
            count: 3,
        };
        assert_eq!(r.last(), Some(RecordId(6)));
        assert_eq!(r.iter().map(|i| i.0).collect::<Vec<_>>(), vec![4, 5, 6]);
        let empty = IdRange {
            first: RecordId(4),
            count: 0,
        };
        assert_eq!(empty.last(), None);
    }
}
