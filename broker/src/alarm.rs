//! The memory alarm, RabbitMQ's memory high watermark: while the broker's
//! resident memory is above its limit, connections that publish are not
//! read from (and are told so with connection.blocked when they asked for
//! it); consumers go on, so acks and deliveries bring memory back down.
//!
//! Like RabbitMQ on Linux (`vm_memory_calculation_strategy = rss`), the
//! figure is the process's resident set, read from `/proc/self/status` by a
//! small thread a few times a second: nothing on the publish path counts
//! bytes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Persistence;

/// How often the resident set is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub struct MemoryAlarm {
    /// Bytes; 0 means no limit.
    limit: AtomicU64,
    /// Share of the limit above which transient messages are paged out.
    paging_ratio: f64,
    store: Option<Arc<Persistence>>,
    on: watch::Sender<bool>,
    /// Mirrors `on` for publishers, which read it on every publish: a
    /// plain load, where the watch channel would take a lock.
    on_now: AtomicBool,
    watching: AtomicBool,
    me: Weak<MemoryAlarm>,
}

impl MemoryAlarm {
    /// An alarm for `limit` (bytes; `None`: no limit, until
    /// [`MemoryAlarm::set_limit`]). Memory is watched once there is a
    /// limit, by a thread that ends with the alarm.
    /// Above `paging_ratio` of the limit, `store` is told to page
    /// transient messages out.
    pub fn new(
        limit: Option<u64>,
        paging_ratio: f64,
        store: Option<Arc<Persistence>>,
    ) -> Arc<MemoryAlarm> {
        let alarm = Arc::new_cyclic(|me| MemoryAlarm {
            limit: AtomicU64::new(0),
            paging_ratio,
            store,
            on: watch::Sender::new(false),
            on_now: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            me: me.clone(),
        });
        alarm.set_limit(limit);
        alarm
    }

    /// Changes the limit (bytes; `None` lifts it); the alarm follows
    /// within a sampling interval.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(0), Ordering::Relaxed);
        // At once, so a broker is in the right state from the start.
        self.update(resident_bytes().unwrap_or(0));
        if limit.is_some() && !self.watching.swap(true, Ordering::Relaxed) {
            let weak = self.me.clone();
            let spawned = std::thread::Builder::new()
                .name("warren-memory".into())
                .spawn(move || watch_memory(weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the memory alarm's thread; memory is not watched");
            }
        }
    }

    pub fn is_on(&self) -> bool {
        self.on_now.load(Ordering::Relaxed)
    }

    /// The alarm's state, to wait for changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.on.subscribe()
    }

    /// Waits until the alarm is off.
    pub async fn cleared(&self) {
        let mut rx = self.on.subscribe();
        // Err only when the sender is gone, which it is not while `self` is.
        let _ = rx.wait_for(|on| !*on).await;
    }

    fn update(&self, rss: u64) {
        let limit = self.limit.load(Ordering::Relaxed);
        if let Some(store) = &self.store {
            store.set_paging(limit > 0 && rss as f64 > limit as f64 * self.paging_ratio);
        }
        let on = limit > 0 && rss > limit;
        self.on.send_if_modified(|state| {
            if *state == on {
                return false;
            }
            *state = on;
            self.on_now.store(on, Ordering::Relaxed);
            if on {
                tracing::warn!(
                    rss_mib = rss >> 20,
                    limit_mib = limit >> 20,
                    "memory alarm set: publishers are blocked until memory use falls below the limit"
                );
            } else {
                tracing::info!(rss_mib = rss >> 20, "memory alarm cleared");
            }
            true
        });
    }
}

fn watch_memory(alarm: Weak<MemoryAlarm>) {
    loop {
        let Some(alarm) = alarm.upgrade() else { return };
        if let Some(rss) = resident_bytes() {
            alarm.update(rss);
        }
        drop(alarm);
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// The process's resident set in bytes (`None` where /proc is missing).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Parses a memory limit as given on the command line: bytes, with an
/// optional unit (`kB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`), a fraction of
/// the machine's memory below 1 (`0.4`, RabbitMQ's default watermark), or
/// `none`.
pub fn parse_memory_limit(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "none" | "0" => Ok(None),
        t => parse_limit(t, total_memory()).map(Some),
    }
}

fn parse_limit(text: &str, total_memory: Option<u64>) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("not a memory size: {text:?} (e.g. 512MiB, 2GB or 0.4)");
    if unit.is_empty() && number.contains('.') {
        let fraction: f64 = number.parse().map_err(|_| bad())?;
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(bad());
        }
        let total = total_memory.ok_or("the machine's memory is unknown; give bytes")?;
        return Ok((total as f64 * fraction) as u64);
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// The machine's memory in bytes, from /proc/meminfo.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_parse_like_rabbitmq_s() {
        assert_eq!(parse_limit("1048576", None), Ok(1 << 20));
        assert_eq!(parse_limit("512MiB", None), Ok(512 << 20));
        assert_eq!(parse_limit("2GB", None), Ok(2_000_000_000));
        assert_eq!(parse_limit("64 MB", None), Ok(64_000_000));
        assert_eq!(parse_limit("0.4", Some(1000)), Ok(400));
        for bad in ["", "abc", "1.5", "0.0", "12XB", "-1"] {
            assert!(parse_limit(bad, Some(1000)).is_err(), "{bad}");
        }
        assert!(parse_limit("0.4", None).is_err());
        assert_eq!(parse_memory_limit("none"), Ok(None));
        assert!(parse_memory_limit("0.4").unwrap().is_some_and(|b| b > 0));
    }

    #[test]
    fn the_alarm_follows_the_limit() {
        let alarm = MemoryAlarm::new(None, 0.5, None);
        alarm.update(100);
        assert!(!alarm.is_on());
        alarm.set_limit(Some(50));
        alarm.update(100);
        assert!(alarm.is_on());
        alarm.set_limit(None);
        alarm.update(100);
        assert!(!alarm.is_on());
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
