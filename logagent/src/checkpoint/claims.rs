//! Who reads which file: a file (per topic) is read by one tailer at a time, and where
//! that tailer starts.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::file_format::Checkpoint;
use super::progress::{FileProgress, ProgressKey, Reclaim};
use super::store::{CheckpointStore, StoreInner};
use crate::identity::FileIdentity;

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

impl StoreInner {
    /// Starts following `key` at `offset`.
    pub(super) fn start(
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
    /// Claims an open file for a topic. The start offset is, in order: where a previous
    /// tailer of this process stopped handing lines over; the persisted checkpoint if the
    /// fingerprint still matches and the file is long enough; else 0.
    pub fn claim(&self, topic: &str, path: &str, file: &File) -> std::io::Result<Claim> {
        let (identity, size) = FileIdentity::of(file)?;
        let key = ProgressKey::of(topic, &identity);
        let mut g = self.inner.lock();
        if let Some(p) = g.live.get(&key) {
            match p.reclaim(file, size) {
                Reclaim::Busy => return Ok(Claim::Busy),
                Reclaim::Resume(offset) => {
                    return Ok(Claim::Granted {
                        progress: Arc::clone(p),
                        offset,
                    });
                }
                Reclaim::Changed => {}
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
                    // An empty fingerprint matches any file: no content to recognise.
                    // Offset 0 stays: that content was seen and must still be shipped.
                    && c.identity.fingerprint_len > 0
                    && !g.live.contains_key(key)
                    && !(c.identity.dev == meta.dev()
                        && c.identity.ino == meta.ino()
                        && c.identity.head_matches(current).unwrap_or(true))
            })
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Whether a tailer of this process holds the file with `identity` for `topic` (reads
    /// it, or keeps it open after a rename), or its lines are still in flight.
    pub fn is_live(&self, topic: &str, identity: &FileIdentity) -> bool {
        self.inner
            .lock()
            .live
            .contains_key(&ProgressKey::of(topic, identity))
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
        progress.release();
    }

    /// The tailer closes the file to give its descriptor to another one (see
    /// [`crate::sources::file::turns`]), every line it handed over acknowledged: its
    /// progress becomes a saved checkpoint at once, as at a restart. So reopening the path
    /// checks the file there against it (device, inode, fingerprint), and content rotated
    /// away meanwhile is a leftover to finish, not a file some tailer still reads.
    pub fn set_aside(&self, progress: &Arc<FileProgress>) {
        progress.release();
        self.inner.lock().fold(progress, super::store::now_secs());
    }

    /// The file with `identity`, set aside for `topic`, is still followed: its checkpoint
    /// is not one of those forgotten after a week without change. Not written for this
    /// alone; a restart follows the file again, which does the same.
    pub fn keep(&self, topic: &str, identity: &FileIdentity) {
        let now = super::store::now_secs();
        if let Some(c) = self
            .inner
            .lock()
            .saved
            .get_mut(&ProgressKey::of(topic, identity))
        {
            c.updated = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testing::{granted, store_with_log};

    /// What a test of a read file starts from: its directory, `a.log`, the store, the
    /// open file and its progress.
    type OneLineRead = (
        tempfile::TempDir,
        std::path::PathBuf,
        CheckpointStore,
        File,
        Arc<FileProgress>,
    );

    /// A store in a new directory whose `a.log` (holding "one\n") was read and
    /// acknowledged to its end for topic `t`, its progress still claimed.
    fn one_line_read() -> OneLineRead {
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
        (dir, log, store, f, progress)
    }

    #[test]
    fn store_resumes_from_saved_offset_only_for_the_same_content() {
        let (dir, log, store) = store_with_log(b"one\ntwo\n");
        let f = File::open(&log).unwrap();
        let (progress, offset) = granted(store.claim("t", "a.log", &f));
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
        let (_, offset) = granted(reopened.claim("t", "a.log", &f));
        assert_eq!(offset, 4, "resumes after the acknowledged line only");
        let (_, offset) = granted(reopened.claim("other", "a.log", &f));
        assert_eq!(offset, 0, "another topic has its own checkpoint");

        // same inode, different content (truncated and rewritten): start over
        std::fs::write(&log, b"xyz\nabc\n").unwrap();
        let again = CheckpointStore::open(dir.path()).unwrap();
        let (_, offset) = granted(again.claim("t", "a.log", &f));
        assert_eq!(offset, 0);
    }

    #[test]
    fn only_content_that_left_the_path_is_a_leftover() {
        let (dir, log, store, f, progress) = one_line_read();
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
        let (_, offset) = granted(store.claim_leftover("t", "a.log", &old, 4));
        assert_eq!(offset, 4);
        assert!(
            store.leftovers("t", "a.log", &replaced).is_empty(),
            "being read, so no longer a leftover"
        );
    }

    #[test]
    fn a_file_set_aside_is_reopened_by_identity_and_its_rotated_rest_is_a_leftover() {
        let (dir, log, store, f, progress) = one_line_read();
        store.set_aside(&progress);
        assert!(
            !store.is_live("t", &progress.committed().0),
            "closed for another file's turn: no tailer holds it"
        );
        // Unchanged, or grown: reopened where it was left.
        std::fs::write(&log, b"one\ntwo\n").unwrap();
        let Claim::Granted { progress, offset } = store.claim("t", "a.log", &f).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 4);
        store.set_aside(&progress);
        // Rotated while closed: the file at the path is new, the old one a leftover.
        std::fs::rename(&log, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&log, b"new\n").unwrap();
        let replaced = File::open(&log).unwrap();
        let left = store.leftovers("t", "a.log", &replaced);
        assert_eq!(left.iter().map(|c| c.offset).collect::<Vec<_>>(), [4]);
        let Claim::Granted { offset, .. } = store.claim("t", "a.log", &replaced).unwrap() else {
            panic!("busy")
        };
        assert_eq!(offset, 0);
    }
}
