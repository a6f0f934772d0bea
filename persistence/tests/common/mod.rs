//! Helpers shared by the integration tests: temporary directories and the
//! backends every scenario runs against.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use warren_persistence::{FileLog, MemoryStore, Record, Store, StoreConfig};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "warren-persistence-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store implementation under test, with a way to restart it.
pub trait Backend {
    type S: Store + 'static;
    const IS_FILE: bool;
    fn open(&mut self, config: StoreConfig) -> (Self::S, Vec<Record>);
    fn restart(&mut self, store: Self::S) -> (Self::S, Vec<Record>);
}

pub struct FileBackend {
    pub dir: TempDir,
    config: StoreConfig,
}

impl FileBackend {
    pub fn new(name: &str) -> Self {
        FileBackend {
            dir: TempDir::new(name),
            config: StoreConfig::default(),
        }
    }
}

impl Backend for FileBackend {
    type S = FileLog;
    const IS_FILE: bool = true;

    fn open(&mut self, config: StoreConfig) -> (FileLog, Vec<Record>) {
        self.config = config;
        let (log, rec) = FileLog::open(self.dir.path(), self.config.clone()).unwrap();
        (log, rec.into_vec().unwrap())
    }

    fn restart(&mut self, store: FileLog) -> (FileLog, Vec<Record>) {
        drop(store);
        let (log, rec) = FileLog::open(self.dir.path(), self.config.clone()).unwrap();
        (log, rec.into_vec().unwrap())
    }
}

pub struct MemoryBackend;

impl MemoryBackend {
    pub fn new(_name: &str) -> Self {
        MemoryBackend
    }
}

impl Backend for MemoryBackend {
    type S = MemoryStore;
    const IS_FILE: bool = false;

    fn open(&mut self, config: StoreConfig) -> (MemoryStore, Vec<Record>) {
        (MemoryStore::new(config), Vec::new())
    }

    fn restart(&mut self, store: MemoryStore) -> (MemoryStore, Vec<Record>) {
        let (store, rec) = store.restart();
        (store, rec.into_vec().unwrap())
    }
}

/// Runs each listed scenario (a generic fn over `Backend`) once per backend.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod file_log {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $crate::common::FileBackend::new(stringify!($name)));
                }
            )*
        }
        mod memory {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $crate::common::MemoryBackend::new(stringify!($name)));
                }
            )*
        }
    };
}

/// A payload that says which record it is.
pub fn payload(i: u64, len: usize) -> Bytes {
    let mut v = format!("record-{i}-").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v.truncate(len.max(1));
    Bytes::from(v)
}

pub fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.id.0).collect()
}

/// Total size of the segment files in `dir`.
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wlog"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Segment file paths in `dir`, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wlog"))
        .collect();
    v.sort();
    v
}

/// Copies every file of `from` into the (empty) directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
