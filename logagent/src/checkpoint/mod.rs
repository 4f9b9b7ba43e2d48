//! Read offsets that survive a crash, and the bookkeeping that decides how far they may go.
//!
//! A checkpoint's `offset` is the byte after the last line Kafka acknowledged such that every
//! earlier line of that file was acknowledged too; a restart resumes there, so a crash
//! re-sends at most the lines acknowledged since the last write (at-least-once).
//!
//! One concern per file: [`file_format`] the JSON file on disk; [`progress`] one file's live
//! progress (identity, size, whether a tailer reads it, and the contiguous acknowledged prefix
//! of its lines in a [`service_kit::ack_window::AckWindow`]); [`claims`] which tailer reads which
//! file and from where; [`store`] the persisted and live checkpoints, folded together on
//! each flush; [`write_spell`] reporting failing writes once per spell.

pub mod claims;
pub mod file_format;
pub mod progress;
pub mod store;
pub mod write_spell;

pub use claims::Claim;
pub use file_format::{CHECKPOINT_FILE, Checkpoint, CheckpointError, CheckpointFile};
pub use progress::{FileProgress, ProgressKey};
pub use store::CheckpointStore;
pub use write_spell::{WriteSpell, WriteSpellReport};

/// What the checkpoint tests set up again and again.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::{CheckpointStore, Claim, FileProgress};

    /// A fresh data directory holding `a.log` with `content`, and a store opened on it.
    pub(crate) fn store_with_log(content: &[u8]) -> (tempfile::TempDir, PathBuf, CheckpointStore) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, content).unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        (dir, log, store)
    }

    /// The progress and start offset of a claim that must be granted.
    pub(crate) fn granted(claim: std::io::Result<Claim>) -> (Arc<FileProgress>, u64) {
        match claim.unwrap() {
            Claim::Granted { progress, offset } => (progress, offset),
            Claim::Busy => panic!("busy"),
        }
    }
}
