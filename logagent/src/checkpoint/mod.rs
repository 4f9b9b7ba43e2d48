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
