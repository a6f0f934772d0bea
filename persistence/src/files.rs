//! File-system helpers that make changes survive power loss: directory
//! fsync, atomic replacement of a file, and the data-directory lock.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Name of the lock file in a data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Makes the directory entries of `dir` (created, renamed and deleted
/// files) durable. A new file is not durable until this has run, however
/// often the file itself was fsynced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `contents` so that after a crash the file holds
/// either the old or the new contents, never a mix: write a temporary file,
/// fsync it, rename it over `path`, fsync the directory.
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = temp_path(path);
    let mut f = File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// `<path>.tmp`: where a replacement of `path` is prepared. Leftovers are
/// removed when a store opens.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// An exclusive advisory lock (flock) on `<dir>/LOCK`, held while the
/// store is open and released by the kernel when the process dies, so a
/// stale lock file never blocks a restart.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("warren-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state");
        replace_file(&p, b"one").unwrap();
        replace_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!temp_path(&p).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
