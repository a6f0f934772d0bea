//! Segment files: naming, the file header, creation.
//!
//! A segment is named by the id of its first record, zero-padded to 20
//! digits so that names sort like ids: `00000000000000000001.wlog`.
//! Header (little-endian, [`HEADER_LEN`] = 24 bytes):
//!
//! ```text
//! magic    [u8; 8]  b"WARRENLG"
//! version  u32      FORMAT_VERSION
//! reserved u32      0
//! base     u64      id of the first record, equal to the file name
//! ```
//!
//! Records follow back to back (see `record`). Ids inside a segment are
//! increasing; they are dense until the segment is compacted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const MAGIC: [u8; 8] = *b"WARRENLG";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 24;
pub(crate) const EXTENSION: &str = "wlog";

pub(crate) fn file_name(base: u64) -> String {
    format!("{base:020}.{EXTENSION}")
}

pub(crate) fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(file_name(base))
}

/// The base id of a segment file name, `None` for any other file.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&base| base > 0)
}

pub(crate) fn encode_header(base: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    h
}

/// What the first bytes of a segment file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    Valid,
    /// Shorter than a header: the file was created but its header never
    /// (fully) reached the disk.
    Torn,
    /// Not our header, or a header for another base id.
    Damaged(&'static str),
    /// Our magic with a version we do not know.
    Unsupported(u32),
}

pub(crate) fn check_header(buf: &[u8], base: u64) -> Header {
    if buf.len() < HEADER_LEN as usize {
        return Header::Torn;
    }
    if buf[..8] != MAGIC {
        return Header::Damaged("bad magic number");
    }
    let mut v = [0; 4];
    v.copy_from_slice(&buf[8..12]);
    let version = u32::from_le_bytes(v);
    if version != FORMAT_VERSION {
        return Header::Unsupported(version);
    }
    let mut b = [0; 8];
    b.copy_from_slice(&buf[16..24]);
    if u64::from_le_bytes(b) != base {
        return Header::Damaged("base id in header differs from file name");
    }
    Header::Valid
}

/// Creates a new segment file holding only its header. The caller fsyncs
/// the file and the directory before relying on it.
pub(crate) fn create(path: &Path, base: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all_at(&encode_header(base), 0)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_ids() {
        assert_eq!(file_name(1), "00000000000000000001.wlog");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        for bad in [
            "LOCK",
            "1.wlog",
            "00000000000000000001.wlog.tmp",
            "0000000000000000000x.wlog",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert_eq!(parse_file_name(&file_name(0)), None);
    }

    #[test]
    fn header_checks() {
        let h = encode_header(5);
        assert_eq!(check_header(&h, 5), Header::Valid);
        assert_eq!(check_header(&h[..10], 5), Header::Torn);
        assert!(matches!(check_header(&h, 6), Header::Damaged(_)));
        assert!(matches!(check_header(&[0; 24], 5), Header::Damaged(_)));
        let mut v2 = h;
        v2[8] = 2;
        assert_eq!(check_header(&v2, 5), Header::Unsupported(2));
    }
}
