//! All checkpoints of the agent: the persisted ones and the live progress of the files
//! being read, folded together on each flush.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::file_format::{Checkpoint, CheckpointError, CheckpointFile};
use super::progress::{FileProgress, ProgressKey};

/// Checkpoints of files not seen for this long are forgotten.
const FORGET_AFTER_SECS: i64 = 7 * 24 * 3600;

pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// All checkpoints, persisted and live.
#[derive(Debug)]
pub struct CheckpointStore {
    file: CheckpointFile,
    pub(super) inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
pub(super) struct StoreInner {
    pub(super) saved: HashMap<ProgressKey, Checkpoint>,
    pub(super) live: HashMap<ProgressKey, Arc<FileProgress>>,
    dirty: bool,
}

impl StoreInner {
    /// Saves `p`'s committed offset; forgets `p` once nobody reads the file and nothing of it
    /// is in flight.
    pub(super) fn fold(&mut self, p: &Arc<FileProgress>, now: i64) {
        let (identity, offset) = p.committed();
        let changed = match self.saved.get(&p.key) {
            Some(c) => c.offset != offset || c.identity != identity,
            None => true,
        };
        if changed {
            self.saved.insert(
                p.key.clone(),
                Checkpoint {
                    topic: p.key.topic.clone(),
                    path: p.path().to_string(),
                    identity,
                    offset,
                    updated: now,
                },
            );
            self.dirty = true;
        } else if let Some(c) = self.saved.get_mut(&p.key) {
            c.updated = now;
        }
        if p.is_settled() && self.live.get(&p.key).is_some_and(|l| Arc::ptr_eq(l, p)) {
            self.live.remove(&p.key);
        }
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
}

impl CheckpointStore {
    /// Folds live progress into the persisted map and writes the file if anything moved.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        let docs = {
            let mut g = self.inner.lock();
            let now = now_secs();
            let live: Vec<Arc<FileProgress>> = g.live.values().cloned().collect();
            for p in &live {
                g.fold(p, now);
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

    /// Forgets the checkpoints of files that are gone: no file beside the checkpoint's path
    /// (the path itself or a name starting with its name, where rotation puts it) has its
    /// device and inode any more, and no tailer holds it, so nothing of it can be read
    /// again. Checkpoints of rotated files still on disk stay (up to the 7-day limit): a
    /// restart needs them to finish those generations and to know which later ones are
    /// unread. A directory that cannot be listed keeps its checkpoints. The file system is
    /// looked at without the lock held; the next [`CheckpointStore::flush`] writes the result.
    pub fn prune_gone(&self) {
        let candidates: Vec<(ProgressKey, String)> = {
            let g = self.inner.lock();
            g.saved
                .iter()
                .filter(|(key, _)| !g.live.contains_key(*key))
                .map(|(key, c)| (key.clone(), c.path.clone()))
                .collect()
        };
        let mut on_disk: HashMap<String, Option<HashSet<(u64, u64)>>> = HashMap::new();
        let gone: Vec<ProgressKey> = candidates
            .into_iter()
            .filter(|(key, path)| {
                let files = on_disk
                    .entry(path.clone())
                    .or_insert_with(|| files_beside(Path::new(path)));
                files
                    .as_ref()
                    .is_some_and(|f| !f.contains(&(key.dev, key.ino)))
            })
            .map(|(key, _)| key)
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        for key in gone {
            if !g.live.contains_key(&key) && g.saved.remove(&key).is_some() {
                g.dirty = true;
            }
        }
    }

    /// Unacknowledged bytes of each file being read, by path (a path may come twice: a
    /// rotated generation still being read, or a file collected for two topics).
    pub fn lag_by_path(&self) -> Vec<(String, u64)> {
        self.inner
            .lock()
            .live
            .values()
            .map(|p| (p.path().to_string(), p.lag_bytes()))
            .collect()
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

/// Device and inode of `path` and of every file beside it whose name starts with its name;
/// `None` when its directory cannot be listed (then nothing is known to be gone).
fn files_beside(path: &Path) -> Option<HashSet<(u64, u64)>> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let entries = std::fs::read_dir(path.parent()?).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
            .filter_map(|e| std::fs::metadata(e.path()).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testing::{granted, store_with_log};
    use std::fs::File;

    fn stamp(path: &Path) -> (u64, i64, i64) {
        let m = std::fs::metadata(path).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    }

    /// Claims `log` for topic `t`, acknowledges its first `acked` bytes as one line and
    /// releases it.
    fn read(store: &CheckpointStore, log: &Path, acked: u64) {
        let f = File::open(log).unwrap();
        let (progress, _) = granted(store.claim("t", &log.to_string_lossy(), &f));
        let seq = progress.register(acked);
        progress.ack(seq);
        store.release(&progress);
    }

    #[test]
    fn the_file_is_written_only_when_a_checkpoint_changed() {
        let (_dir, log, store) = store_with_log(b"one\ntwo\n");
        let f = File::open(&log).unwrap();
        let (progress, _) = granted(store.claim("t", "a.log", &f));
        let first = progress.register(4);
        progress.register(8);
        store.flush().unwrap();
        let written = stamp(store.path());
        for _ in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            store.flush().unwrap();
            assert_eq!(stamp(store.path()), written, "rewritten with nothing new");
        }
        progress.ack(first);
        store.flush().unwrap();
        assert_ne!(stamp(store.path()), written, "an ack is written");
    }

    #[test]
    fn checkpoints_of_gone_files_are_pruned_and_rotated_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        let rotated = dir.path().join("a.log.1");
        let deleted = dir.path().join("b.log");
        std::fs::write(&log, b"one\n").unwrap();
        std::fs::write(&deleted, b"other\n").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        read(&store, &log, 4);
        read(&store, &deleted, 6);
        store.flush().unwrap();
        std::fs::rename(&log, &rotated).unwrap();
        std::fs::write(&log, b"new\n").unwrap();
        std::fs::remove_file(&deleted).unwrap();
        store.prune_gone();
        store.flush().unwrap();
        let kept: Vec<String> = CheckpointStore::open(dir.path())
            .unwrap()
            .inner
            .lock()
            .saved
            .values()
            .map(|c| c.path.clone())
            .collect();
        assert_eq!(
            kept,
            [log.to_string_lossy()],
            "the rotated file stays, b.log goes"
        );
    }
}
