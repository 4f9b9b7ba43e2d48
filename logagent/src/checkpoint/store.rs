//! All checkpoints of the agent: the persisted ones and the live progress of the files
//! being read, folded together on each flush.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::file_format::{Checkpoint, CheckpointError, CheckpointFile};
use super::progress::{FileProgress, ProgressKey};

/// Checkpoints of files not seen for this long are forgotten.
const FORGET_AFTER_SECS: i64 = 7 * 24 * 3600;

fn now_secs() -> i64 {
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
                            path: p.path().to_string(),
                            identity,
                            offset,
                            updated: now,
                        },
                    );
                    g.dirty = true;
                } else if let Some(c) = g.saved.get_mut(&p.key) {
                    c.updated = now;
                }
                if p.is_settled() {
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
