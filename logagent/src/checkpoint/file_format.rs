//! The checkpoint file, `<data_dir>/checkpoints.json`:
//!
//! ```json
//! {"version":1,"checkpoints":[{"topic":"app","path":"/var/log/app.log",
//!   "identity":{"dev":2049,"ino":131,"fingerprint_len":1024,"fingerprint":123},
//!   "offset":52344,"updated":1795000000}]}
//! ```
//!
//! It is replaced atomically ([`crate::atomic_file`]): a crash leaves the previous version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, AtomicWriteError};
use crate::identity::FileIdentity;

/// Name of the checkpoint file inside `data_dir`.
pub const CHECKPOINT_FILE: &str = "checkpoints.json";

/// Why checkpoints could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing, syncing or renaming failed.
    #[error(
        "checkpoint file {path}: {action} failed: {source}; check that data_dir exists, is writable and its disk has free space"
    )]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a checkpoint file.
    #[error(
        "checkpoint file {path} is corrupt: {source}; move it away to start every file from the beginning"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
}

impl From<AtomicWriteError> for CheckpointError {
    fn from(e: AtomicWriteError) -> Self {
        CheckpointError::Io {
            path: e.path,
            action: e.action,
            source: e.source,
        }
    }
}

/// One persisted read position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Kafka topic the file goes to.
    pub topic: String,
    /// Path the file was read under (informational; identity decides).
    pub path: String,
    /// The file the offset belongs to.
    pub identity: FileIdentity,
    /// Resume here: everything before was acknowledged by Kafka.
    pub offset: u64,
    /// Unix seconds of the last update.
    pub updated: i64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointDoc {
    version: u32,
    checkpoints: Vec<Checkpoint>,
}

/// Atomically written checkpoint file.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint file in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        CheckpointFile {
            path: data_dir.join(CHECKPOINT_FILE),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads all checkpoints; a missing file means none.
    pub fn load(&self) -> Result<Vec<Checkpoint>, CheckpointError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.path.clone(),
                    action: "read",
                    source,
                });
            }
        };
        let doc: CheckpointDoc =
            serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(doc.checkpoints)
    }

    /// Replaces the file with `checkpoints`, atomically.
    pub fn save(&self, checkpoints: Vec<Checkpoint>) -> Result<(), CheckpointError> {
        let doc = CheckpointDoc {
            version: 1,
            checkpoints,
        };
        let bytes = serde_json::to_vec(&doc).map_err(|source| CheckpointError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        Ok(atomic_file::write(&self.path, &bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_file_and_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::in_dir(dir.path());
        file.save(Vec::new()).unwrap();
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
        assert_eq!(file.load().unwrap(), Vec::new());
        std::fs::write(file.path(), b"{garbage").unwrap();
        assert!(file.load().unwrap_err().to_string().contains("corrupt"));
    }
}
