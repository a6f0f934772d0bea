//! The one error type of the crate.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::record::RecordId;

/// Everything that can go wrong in a [`Store`](crate::Store).
///
/// Damaged data found on open is *not* an error: it is truncated or skipped
/// and reported through `tracing` (see the crate docs), so that the broker
/// always starts.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on `path` failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process (or another store in this process) holds the lock of
    /// the data directory.
    #[error("data directory {0} is in use by another store (lock file held)")]
    Locked(PathBuf),
    /// A segment was written by a newer, unknown format version. We refuse to
    /// open rather than risk reclaiming data we do not understand.
    #[error(
        "segment {path} has format version {version}, this build reads only version {supported}"
    )]
    UnsupportedFormat {
        path: PathBuf,
        version: u32,
        supported: u32,
    },
    /// The record was never appended, is dead, or its space was reclaimed.
    #[error("record {0} not found (never appended, dead or reclaimed)")]
    NotFound(RecordId),
    /// `refers_to` must name an earlier record.
    #[error("record {id} refers to {target}, which is not an earlier record")]
    InvalidReference { id: RecordId, target: RecordId },
    /// The payload does not fit in one record.
    #[error("payload of {len} bytes exceeds the maximum record payload of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    /// A record read back from disk failed its checksum or framing.
    #[error("record {id} in {path} is corrupt: {reason}")]
    Corrupt {
        id: RecordId,
        path: PathBuf,
        reason: &'static str,
    },
    /// A write or fsync failed earlier; the store accepts no more writes
    /// (an fsync error cannot be retried safely: the kernel may have dropped
    /// the dirty pages).
    #[error("the store failed and accepts no more writes: {0}")]
    Failed(Arc<str>),
    /// The configuration is unusable.
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
