//! Replacing a small file (the checkpoints, the cached collect config) so that a crash at
//! any moment leaves either the old or the new version on disk, never a torn mix.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A step of an atomic write that failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: {action} failed: {source}; check that the directory exists, is writable and its disk has free space"
)]
pub struct AtomicWriteError {
    /// The file or directory involved.
    pub path: PathBuf,
    /// What was being done.
    pub action: &'static str,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes`: temp file beside it, fsync, rename, fsync of the directory.
/// The temp file is `path` with `.tmp` appended, in the same directory so that the rename
/// stays on one file system and is atomic.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| AtomicWriteError {
            path: p,
            action,
            source,
        }
    };
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp).map_err(io("create temp file", &tmp))?;
        f.write_all(bytes).map_err(io("write temp file", &tmp))?;
        f.sync_all().map_err(io("fsync temp file", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io("rename temp file over", path))?;
    // Without this the rename itself may be lost in a crash, bringing the old file back.
    if let Some(dir) = path.parent() {
        let d = File::open(dir).map_err(io("open directory", dir))?;
        d.sync_all().map_err(io("fsync directory", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn a_failed_step_names_the_file_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // A directory where the file goes: the rename over it fails like a full disk would.
        std::fs::create_dir(&path).unwrap();
        let e = write(&path, b"x").unwrap_err();
        assert_eq!(e.action, "rename temp file over");
        assert_eq!(e.path, path);
    }
}
