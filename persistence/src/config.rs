//! Store configuration: fsync policy, segment size, durability callback.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// When data reaches stable storage, and so what the durable watermark means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Every record is fsynced before the watermark covers it. Appends that
    /// queue up while an fsync runs share the next one (group commit).
    /// Loss window: none, even on power loss.
    #[default]
    Always,
    /// Data is written at once and fsynced at most once per interval (all
    /// files written since the last fsync, then the directory). The watermark advances when the data is
    /// *written*, so a confirmed record survives a process crash but up to
    /// one interval of confirmed records may be lost on power loss or a
    /// kernel crash.
    Interval(Duration),
    /// Data is written at once and never fsynced by the store (except by an
    /// explicit [`sync`](crate::Store::sync) and on close); the kernel decides
    /// (on Linux typically within ~30 s, `vm.dirty_expire_centisecs`). The
    /// watermark advances on write. Loss window on power loss: whatever the
    /// kernel had not yet written back.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// A string that is not `always`, `interval:<ms>` or `never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fsync policy {0:?}: expected \"always\", \"interval:<ms>\" (ms > 0) or \"never\"")]
pub struct ParseFsyncPolicyError(String);

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("always") {
            return Ok(FsyncPolicy::Always);
        }
        if t.eq_ignore_ascii_case("never") {
            return Ok(FsyncPolicy::Never);
        }
        let lower = t.to_ascii_lowercase();
        if let Some(ms) = lower.strip_prefix("interval:") {
            if let Ok(ms) = ms.trim().parse::<u64>() {
                if ms > 0 {
                    return Ok(FsyncPolicy::Interval(Duration::from_millis(ms)));
                }
            }
        }
        Err(ParseFsyncPolicyError(s.to_owned()))
    }
}

/// Called with the durable watermark whenever it advances.
///
/// It runs on the store's writer thread (the appending thread for
/// [`MemoryStore`](crate::MemoryStore)) with no store lock held. It should
/// be quick: waking tasks is what it is for. It may call methods that do
/// not wait (`append`, `mark_dead`, `durable_lsn`, `stats`), but must not
/// call `flush`, `sync`, `wait_durable` or `read` of a record not yet
/// written: those wait for the writer thread the callback is running on.
/// The argument is a lower bound of the watermark at the time of the call;
/// re-read [`durable_lsn`](crate::Store::durable_lsn) for the latest value.
pub type DurableCallback = Arc<dyn Fn(u64) + Send + Sync>;

/// Configuration of a store.
#[derive(Clone)]
pub struct StoreConfig {
    /// See [`FsyncPolicy`]. Default: `Always`.
    pub fsync: FsyncPolicy,
    /// A new segment starts when the next append would make the current one
    /// larger than this (a single larger record gets a segment of its own).
    /// Default: 32 MiB. Range: 64 bytes to 1 GiB.
    pub segment_size: u64,
    /// Compact a sealed segment when the bytes it still needs fall below
    /// this fraction of its size. Default: 0.5, which bounds disk use at
    /// about twice the live data plus the active segment.
    pub compact_below: f64,
    /// Run reclamation (segment deletion and compaction) on a background
    /// thread as records die. Default: true. When false, call
    /// [`reclaim`](crate::Store::reclaim).
    pub background_reclaim: bool,
    /// Upper bound of bytes gathered into one write before it is issued.
    /// Default: 4 MiB.
    pub max_batch_bytes: usize,
    /// Told about every advance of the durable watermark.
    pub on_durable: Option<DurableCallback>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fsync: FsyncPolicy::Always,
            segment_size: 32 << 20,
            compact_below: 0.5,
            background_reclaim: true,
            max_batch_bytes: 4 << 20,
            on_durable: None,
        }
    }
}

impl StoreConfig {
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }

    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    pub fn with_background_reclaim(mut self, on: bool) -> Self {
        self.background_reclaim = on;
        self
    }

    pub fn on_durable(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.on_durable = Some(Arc::new(f));
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(64..=1 << 30).contains(&self.segment_size) {
            return Err(format!(
                "segment_size {} is outside 64 bytes ..= 1 GiB",
                self.segment_size
            ));
        }
        if !(0.0..=1.0).contains(&self.compact_below) {
            return Err(format!(
                "compact_below {} is outside 0.0 ..= 1.0",
                self.compact_below
            ));
        }
        if let FsyncPolicy::Interval(d) = self.fsync {
            if d.is_zero() {
                return Err("fsync interval must be positive".into());
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("fsync", &self.fsync)
            .field("segment_size", &self.segment_size)
            .field("compact_below", &self.compact_below)
            .field("background_reclaim", &self.background_reclaim)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("on_durable", &self.on_durable.as_ref().map(|_| "Fn(u64)"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_policies() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!(" Never ".parse(), Ok(FsyncPolicy::Never));
        assert_eq!(
            "interval:250".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        for bad in [
            "",
            "sometimes",
            "interval:",
            "interval:0",
            "interval:-5",
            "interval:x",
        ] {
            let err = bad.parse::<FsyncPolicy>().unwrap_err();
            assert!(err.to_string().contains("interval:<ms>"), "{err}");
        }
    }

    #[test]
    fn display_roundtrips() {
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Never,
            FsyncPolicy::Interval(Duration::from_millis(10)),
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }

    #[test]
    fn validate_rejects_silly_sizes() {
        assert!(StoreConfig::default().validate().is_ok());
        assert!(StoreConfig::default()
            .with_segment_size(10)
            .validate()
            .is_err());
    }
}
