//! Read offsets that survive a crash, and the bookkeeping that decides how far they may go.
//!
//! One file, `<data_dir>/checkpoints.json`:
//!
//! ```json
//! {"version":1,"checkpoints":[{"topic":"app","path":"/var/log/app.log",
//!   "identity":{"dev":2049,"ino":131,"fingerprint_len":1024,"fingerprint":123},
//!   "offset":52344,"updated":1795000000}]}
//! ```
//!
//! `offset` is the byte after the last line Kafka acknowledged such that every earlier line
//! of that file was acknowledged too; a restart resumes there, so a crash re-sends at most
//! the lines acknowledged since the last write (at-least-once). The file is written
//! atomically ([`crate::atomic_file`]).
//!
//! Per file the producer acknowledges lines out of order (retries, several partitions in
//! flight), so [`FileProgress`] keeps the unacknowledged lines in send order and advances the
//! committed offset only over a fully acknowledged prefix.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, AtomicWriteError};
use crate::identity::FileIdentity;

/// Name of the checkpoint file inside `data_dir`.
pub const CHECKPOINT_FILE: &str = "checkpoints.json";
/// Checkpoints of files not seen for this long are forgotten.
const FORGET_AFTER_SECS: i64 = 7 * 24 * 3600;

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

/// Which file for which topic: the same file collected into two topics has two checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProgressKey {
    /// Kafka topic.
    pub topic: String,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl ProgressKey {
    /// The key of the file with `identity`, read for `topic`.
    pub fn of(topic: &str, identity: &FileIdentity) -> Self {
        ProgressKey {
            topic: topic.to_string(),
            dev: identity.dev,
            ino: identity.ino,
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

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Send-order bookkeeping of one file's lines.
#[derive(Debug)]
pub struct FileProgress {
    key: ProgressKey,
    path: String,
    inner: Mutex<ProgressInner>,
}

#[derive(Debug)]
struct ProgressInner {
    identity: FileIdentity,
    /// Sequence number of `pending[0]`.
    base_seq: u64,
    /// End offset of each sent, not yet committed line, and whether it was acknowledged.
    pending: VecDeque<(u64, bool)>,
    committed: u64,
    sent: u64,
    claimed: bool,
    size: u64,
}

impl FileProgress {
    fn new(key: ProgressKey, path: String, identity: FileIdentity, offset: u64) -> Self {
        FileProgress {
            key,
            path,
            inner: Mutex::new(ProgressInner {
                identity,
                base_seq: 0,
                pending: VecDeque::new(),
                committed: offset,
                sent: offset,
                claimed: true,
                size: offset,
            }),
        }
    }

    /// Records a line that is about to be sent and ends at `end_offset`; returns its
    /// sequence number for [`FileProgress::ack`].
    pub fn register(&self, end_offset: u64) -> u64 {
        let mut g = self.inner.lock();
        let seq = g.base_seq + g.pending.len() as u64;
        g.pending.push_back((end_offset, false));
        g.sent = end_offset;
        seq
    }

    /// Kafka acknowledged line `seq`: advance the committed offset over the acknowledged
    /// prefix.
    pub fn ack(&self, seq: u64) {
        let mut g = self.inner.lock();
        let Some(idx) = seq.checked_sub(g.base_seq) else {
            return;
        };
        if let Some(slot) = g.pending.get_mut(idx as usize) {
            slot.1 = true;
        }
        while let Some(&(end, true)) = g.pending.front() {
            g.committed = end;
            g.pending.pop_front();
            g.base_seq += 1;
        }
    }

    /// Takes back line `seq` that was registered but never handed to the sink (shutdown
    /// while the sink was full). Only the last registered line can be taken back.
    pub fn abandon(&self, seq: u64) {
        let mut g = self.inner.lock();
        if g.base_seq + g.pending.len() as u64 == seq + 1 {
            g.pending.pop_back();
            g.sent = g.pending.back().map(|p| p.0).unwrap_or(g.committed);
        }
    }

    /// The identity and committed offset to persist.
    pub fn committed(&self) -> (FileIdentity, u64) {
        let g = self.inner.lock();
        (g.identity, g.committed)
    }

    /// Byte after the last line handed to the sink.
    pub fn sent(&self) -> u64 {
        self.inner.lock().sent
    }

    /// Lines sent but not yet committed.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// Updates the identity (the fingerprint grows as the file does) and the last seen size.
    pub fn observe(&self, identity: FileIdentity, size: u64) {
        let mut g = self.inner.lock();
        g.identity = identity;
        g.size = size;
    }

    /// The file was truncated (or replaced) and every earlier line is committed: restart at 0.
    pub fn reset(&self, identity: FileIdentity) {
        let mut g = self.inner.lock();
        g.identity = identity;
        g.committed = 0;
        g.sent = 0;
        g.size = 0;
    }

    /// Bytes in the file not yet acknowledged (for the lag metric).
    pub fn lag_bytes(&self) -> u64 {
        let g = self.inner.lock();
        g.size.saturating_sub(g.committed)
    }

    /// Path of the file (informational).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What [`CheckpointStore::claim`] answered.
#[derive(Debug)]
pub enum Claim {
    /// The file is yours; start reading at `offset`.
    Granted {
        /// Shared with the sink's acknowledgements.
        progress: Arc<FileProgress>,
        /// Where to start reading.
        offset: u64,
    },
    /// Another tailer reads this file (for example under its pre-rename name); try later.
    Busy,
}

/// All checkpoints, persisted and live.
#[derive(Debug)]
pub struct CheckpointStore {
    file: CheckpointFile,
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    saved: HashMap<ProgressKey, Checkpoint>,
    live: HashMap<ProgressKey, Arc<FileProgress>>,
    dirty: bool,
}

impl StoreInner {
    /// Starts following `key` at `offset`.
    fn start(
        &mut self,
        key: ProgressKey,
        path: &str,
        identity: FileIdentity,
        offset: u64,
    ) -> Claim {
        let progress = Arc::new(FileProgress::new(
            key.clone(),
            path.to_string(),
            identity,
            offset,
        ));
        self.live.insert(key, Arc::clone(&progress));
        Claim::Granted { progress, offset }
    }
}

impl CheckpointStore {
    /// Loads `<data_dir>/checkpoints.json`.
    pub fn open(data_dir: &Path) -> Result<Self, CheckpointError> {
        let file = CheckpointFile::in_dir(data_dir);
        let saved = file
            .load()?
            .into_iter()
            .map(|c| (ProgressKey::of(&c.topic, &c.identity), c))
            .collect();
        Ok(CheckpointStore {
            file,
            inner: Mutex::new(StoreInner {
                saved,
                live: HashMap::new(),
                dirty: false,
            }),
        })
    }

    /// Claims an open file for a topic. The start offset is, in order: where a previous
    /// tailer of this process stopped handing lines over; the persisted checkpoint if the
    /// fingerprint still matches and the file is long enough; else 0.
    pub fn claim(&self, topic: &str, path: &str, file: &File) -> std::io::Result<Claim> {
        let (identity, size) = FileIdentity::of(file)?;
        let key = ProgressKey::of(topic, &identity);
        let mut g = self.inner.lock();
        if let Some(p) = g.live.get(&key) {
            let mut pi = p.inner.lock();
            if pi.claimed {
                return Ok(Claim::Busy);
            }
            let same = pi.identity.head_matches(file).unwrap_or(false) && size >= pi.sent;
            if same || !pi.pending.is_empty() {
                // Resume a released file; when it changed meanwhile the tailer notices the
                // truncation itself and waits for the pending lines before restarting at 0.
                pi.claimed = true;
                let offset = pi.sent;
                drop(pi);
                return Ok(Claim::Granted {
                    progress: Arc::clone(p),
                    offset,
                });
            }
        }
        let offset = match g.saved.get(&key) {
            Some(c) if c.identity.head_matches(file).unwrap_or(false) && size >= c.offset => {
                c.offset
            }
            Some(_) => {
                log::info!(
                    "{path}: inode reused or file rewritten since the checkpoint; reading from the start"
                );
                0
            }
            None => 0,
        };
        Ok(g.start(key, path, identity, offset))
    }

    /// Checkpoints of content last read under `path` for `topic` that is no longer the file
    /// at `path` (`current`) and is not being read: the file was rotated (renamed, or copied
    /// and truncated) while the agent was not running, so the unread rest of that content
    /// is in a sibling now. Call before [`CheckpointStore::claim`] of `current`.
    pub fn leftovers(&self, topic: &str, path: &str, current: &File) -> Vec<Checkpoint> {
        let Ok(meta) = current.metadata() else {
            return Vec::new();
        };
        let g = self.inner.lock();
        g.saved
            .iter()
            .filter(|(key, c)| {
                key.topic == topic
                    && c.path == path
                    // Nothing read yet (or an empty fingerprint, which matches any file):
                    // there is no content to recognise, and nothing was skipped.
                    && c.offset > 0
                    && c.identity.fingerprint_len > 0
                    && !g.live.contains_key(key)
                    && !(c.identity.dev == meta.dev()
                        && c.identity.ino == meta.ino()
                        && c.identity.head_matches(current).unwrap_or(true))
            })
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Claims `file`, which holds the rest of a [`CheckpointStore::leftovers`] entry, to be
    /// read from `offset`. Its progress is recorded under `path` (where the content was
    /// written), so a crash while it is read resumes it on the next start.
    pub fn claim_leftover(
        &self,
        topic: &str,
        path: &str,
        file: &File,
        offset: u64,
    ) -> std::io::Result<Claim> {
        let (identity, _) = FileIdentity::of(file)?;
        let key = ProgressKey::of(topic, &identity);
        let mut g = self.inner.lock();
        if g.live.contains_key(&key) {
            return Ok(Claim::Busy);
        }
        // The copy of a copytruncate has its own checkpoint once its reading started.
        let offset = match g.saved.get(&key) {
            Some(c) if c.identity.head_matches(file).unwrap_or(false) => c.offset.max(offset),
            _ => offset,
        };
        Ok(g.start(key, path, identity, offset))
    }

    /// The tailer stopped reading; lines in flight still commit through the same progress.
    pub fn release(&self, progress: &FileProgress) {
        progress.inner.lock().claimed = false;
    }

    /// Folds live progress into the persisted map and writes the file if anything moved.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        let docs = {
            let mut g = self.inner.lock();
            let now = now_secs();
            let live: Vec<Arc<FileProgress>> = g.live.values().cloned().collect();
            for p in &live {
                let (identity, offset) = p.committed();
                let changed = match g.saved.get(&p.key) {
                    Some(c) => c.offset != offset || c.identity != identity,
                    None => true,
                };
                if changed {
                    g.saved.insert(
                        p.key.clone(),
                        Checkpoint {
                            topic: p.key.topic.clone(),
                            path: p.path.clone(),
                            identity,
                            offset,
                            updated: now,
                        },
                    );
                    g.dirty = true;
                } else if let Some(c) = g.saved.get_mut(&p.key) {
                    c.updated = now;
                }
                let inner = p.inner.lock();
                let done = !inner.claimed && inner.pending.is_empty();
                drop(inner);
                if done {
                    g.live.remove(&p.key);
                }
            }
            let before = g.saved.len();
            g.saved.retain(|_, c| now - c.updated < FORGET_AFTER_SECS);
            if g.saved.len() != before {
                g.dirty = true;
            }
            if !g.dirty {
                return Ok(());
            }
            g.dirty = false;
            let mut docs: Vec<Checkpoint> = g.saved.values().cloned().collect();
            docs.sort_by(|a, b| {
                (&a.topic, &a.path, a.identity.ino).cmp(&(&b.topic, &b.path, b.identity.ino))
            });
            docs
        };
        let result = self.file.save(docs);
        if result.is_err() {
            self.inner.lock().dirty = true;
        }
        result
    }

    /// Sum of unacknowledged bytes over the files being read.
    pub fn lag_bytes(&self) -> u64 {
        self.inner.lock().live.values().map(|p| p.lag_bytes()).sum()
    }

    /// Lines sent and not yet acknowledged, over all files.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().live.values().map(|p| p.in_flight()).sum()
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// What a failure spell of checkpoint writes has to say, once at each end.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteSpellReport {
    /// The first failure of a spell: the error, and what it means for delivery.
    Failing(String),
    /// The first success after a spell.
    Recovered(String),
}

/// Turns each periodic checkpoint write's result into at most one log line per failure
/// spell: a disk that stays full for an hour is one error and one recovery, not an error
/// every second (written, likely, to the same full disk).
#[derive(Debug, Default)]
pub struct WriteSpell {
    failed_attempts: u64,
}

impl WriteSpell {
    /// Takes one write's result; returns a line to log when a spell starts or ends.
    pub fn observe(&mut self, result: &Result<(), CheckpointError>) -> Option<WriteSpellReport> {
        match result {
            Err(e) => {
                self.failed_attempts += 1;
                (self.failed_attempts == 1).then(|| {
                    WriteSpellReport::Failing(format!(
                        "{e}. Shipping goes on and the write is retried every checkpoint \
                         interval; until one succeeds, a restart re-sends what was shipped \
                         since the last good write (duplicates, no loss)"
                    ))
                })
            }
            Ok(()) if self.failed_attempts > 0 => {
                let attempts = std::mem::take(&mut self.failed_attempts);
                Some(WriteSpellReport::Recovered(format!(
                    "checkpoints written again after {attempts} failed attempt{}",
                    if attempts == 1 { "" } else { "s" }
                )))
            }
            Ok(()) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(offset: u64) -> FileProgress {
        let id = FileIdentity {
            dev: 1,
            ino: 2,
            fingerprint_len: 0,
            fingerprint: 0,
        };
        FileProgress::new(
            ProgressKey {
                topic: "t".into(),
                dev: 1,
                ino: 2,
            },
            "/p".into(),
            id,
            offset,
        )
    }

    #[test]
    fn out_of_order_acks_commit_only_the_acknowledged_prefix() {
        let p = progress(100);
        let a = p.register(110);
        let b = p.register(120);
        let c = p.register(130);
        p.ack(c);
        assert_eq!(p.committed().1, 100, "a and b are still pending");
        p.ack(a);
        assert_eq!(p.committed().1, 110);
        p.ack(a); // duplicate callbacks are harmless
        p.ack(b);
        assert_eq!((p.committed().1, p.in_flight(), p.sent()), (130, 0, 130));
    }

    #[test]
    fn store_resumes_from_saved_offset_only_for_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, b"one\ntwo\n").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let f = File::open(&log).unwrap();
        let Claim::Granted { progress, offset } = store.claim("t", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 0);
        assert!(matches!(
            store.claim("t", "a.log", &f).unwrap(),
            Claim::Busy
        ));
        let s = progress.register(4);
        progress.register(8);
        progress.ack(s);
        store.release(&progress);
        store.flush().unwrap();

        let reopened = CheckpointStore::open(dir.path()).unwrap();
        let Claim::Granted { offset, .. } = reopened.claim("t", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 4, "resumes after the acknowledged line only");
        let Claim::Granted { offset, .. } = reopened.claim("other", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 0, "another topic has its own checkpoint");

        // same inode, different content (truncated and rewritten): start over
        std::fs::write(&log, b"xyz\nabc\n").unwrap();
        let again = CheckpointStore::open(dir.path()).unwrap();
        let Claim::Granted { offset, .. } = again.claim("t", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 0);
    }

    #[test]
    fn only_content_that_left_the_path_is_a_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, b"one\n").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let f = File::open(&log).unwrap();
        let Claim::Granted { progress, .. } = store.claim("t", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        let seq = progress.register(4);
        progress.ack(seq);
        store.release(&progress);
        store.flush().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        // The same file, grown past its (partial) fingerprint: not a leftover.
        std::fs::write(&log, b"one\ntwo\n").unwrap();
        assert!(store.leftovers("t", "a.log", &f).is_empty());
        assert!(store.leftovers("other-topic", "a.log", &f).is_empty());
        // Renamed away and replaced: the old content is a leftover, to be found by its head.
        std::fs::rename(&log, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&log, b"new\n").unwrap();
        let replaced = File::open(&log).unwrap();
        let left = store.leftovers("t", "a.log", &replaced);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].offset, 4);
        let old = File::open(dir.path().join("a.log.1")).unwrap();
        assert!(left[0].identity.head_matches(&old).unwrap());
        let Claim::Granted { offset, .. } = store.claim_leftover("t", "a.log", &old, 4).unwrap()
        else {
            panic!("busy")
        };
        assert_eq!(offset, 4);
        assert!(
            store.leftovers("t", "a.log", &replaced).is_empty(),
            "being read, so no longer a leftover"
        );
    }

    #[test]
    fn a_failing_spell_is_reported_once_at_each_end_and_the_write_retried() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, b"0123456789").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let Claim::Granted { progress, .. } = store
            .claim("t", "a.log", &File::open(&log).unwrap())
            .unwrap()
        else {
            panic!("busy")
        };
        progress.ack(progress.register(10));
        // A directory where the file goes: the rename over it fails like a full disk would.
        std::fs::create_dir(store.path()).unwrap();
        let mut spell = WriteSpell::default();
        let first = spell.observe(&store.flush());
        assert!(
            matches!(&first, Some(WriteSpellReport::Failing(m)) if m.contains("rename")),
            "{first:?}"
        );
        assert_eq!(spell.observe(&store.flush()), None, "one line per spell");
        assert_eq!(spell.observe(&store.flush()), None);

        std::fs::remove_dir(store.path()).unwrap();
        assert_eq!(
            spell.observe(&store.flush()),
            Some(WriteSpellReport::Recovered(
                "checkpoints written again after 3 failed attempts".into()
            ))
        );
        let saved = CheckpointFile::in_dir(dir.path()).load().unwrap();
        assert_eq!(saved.len(), 1, "the failed write was retried");
        assert_eq!(saved[0].offset, 10);
        assert_eq!(spell.observe(&store.flush()), None);
    }

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
