//! Keeps the running file sources equal to the collect config.
//!
//! A new config is diffed against what runs, entry by entry (path + topic + fields): removed
//! entries are stopped (their lines in flight still commit), new ones are started, unchanged
//! ones are not touched, so they neither restart nor re-send nor pause.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::collect_config::{CollectConfig, CollectEntry};
use crate::sources::file::FileSource;
use crate::sources::file::tailer::TailContext;

/// What changed when a config was applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Entries started.
    pub added: Vec<CollectEntry>,
    /// Entries stopped.
    pub removed: Vec<CollectEntry>,
    /// Entries left running.
    pub kept: usize,
}

impl Diff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Computes the diff between the running entries and `next`, without side effects.
pub fn diff(running: &[CollectEntry], next: &CollectConfig) -> Diff {
    let now: HashSet<String> = running.iter().map(CollectEntry::identity).collect();
    let wanted: HashSet<String> = next.entries.iter().map(CollectEntry::identity).collect();
    let mut seen = HashSet::new();
    Diff {
        added: next
            .entries
            .iter()
            .filter(|e| !now.contains(&e.identity()) && seen.insert(e.identity()))
            .cloned()
            .collect(),
        removed: running
            .iter()
            .filter(|e| !wanted.contains(&e.identity()))
            .cloned()
            .collect(),
        kept: running
            .iter()
            .filter(|e| wanted.contains(&e.identity()))
            .count(),
    }
}

struct Running {
    entry: CollectEntry,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Owns one [`FileSource`] task per entry.
pub struct Supervisor {
    ctx: Arc<TailContext>,
    scan_interval: Duration,
    running: HashMap<String, Running>,
    root: CancellationToken,
}

impl Supervisor {
    /// No entries running yet.
    pub fn new(ctx: Arc<TailContext>, scan_interval: Duration) -> Self {
        Supervisor {
            ctx,
            scan_interval,
            running: HashMap::new(),
            root: CancellationToken::new(),
        }
    }

    /// The entries running now.
    pub fn entries(&self) -> Vec<CollectEntry> {
        self.running.values().map(|r| r.entry.clone()).collect()
    }

    /// Makes the running entries equal to `next`.
    pub async fn apply(&mut self, next: &CollectConfig) -> Diff {
        let d = diff(&self.entries(), next);
        // Stop first: when only the topic of a path changed, the old source releases the
        // file before the new one claims it.
        for entry in &d.removed {
            if let Some(r) = self.running.remove(&entry.identity()) {
                r.cancel.cancel();
                let _ = r.task.await;
                log::info!("stopped collecting {} -> {}", entry.path, entry.topic);
            }
        }
        for entry in &d.added {
            let cancel = self.root.child_token();
            let source = FileSource::new(Arc::clone(&self.ctx), entry.clone(), self.scan_interval);
            let task = tokio::spawn(source.run(cancel.clone()));
            log::info!("collecting {} -> {}", entry.path, entry.topic);
            self.running.insert(
                entry.identity(),
                Running {
                    entry: entry.clone(),
                    cancel,
                    task,
                },
            );
        }
        d
    }

    /// Stops every entry and waits for their tailers.
    pub async fn stop_all(&mut self) {
        self.root.cancel();
        for (_, r) in self.running.drain() {
            let _ = r.task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, topic: &str) -> CollectEntry {
        CollectEntry {
            multiline: None,
            path: path.into(),
            topic: topic.into(),
            fields: None,
        }
    }

    #[test]
    fn diff_keeps_unchanged_entries_and_treats_a_changed_topic_as_remove_plus_add() {
        let running = vec![e("/a", "t"), e("/b", "t"), e("/c", "t")];
        let next = CollectConfig {
            entries: vec![e("/a", "t"), e("/b", "u"), e("/d", "t")],
        };
        let d = diff(&running, &next);
        assert_eq!(d.added, vec![e("/b", "u"), e("/d", "t")]);
        assert_eq!(d.removed, vec![e("/b", "t"), e("/c", "t")]);
        assert_eq!(d.kept, 1);
        assert!(
            diff(&next.entries, &next).is_empty(),
            "the same config twice is a no-op"
        );
    }
}
