//! The file source: one task per collect-config entry expands its glob every
//! `scan_interval_ms` (and at once when inotify reports a new entry in the glob's directory)
//! and starts a [`tailer::Tailer`] for each matching file it is not yet following. The
//! expansion ([`expand`]) is bounded and runs on a blocking thread: a directory tree full of
//! symlink loops or on a hung mount must not stop the threads that ship lines.

pub mod chunks;
pub mod events;
pub mod expand;
pub mod generations;
pub mod lines;
pub mod multiline;
pub mod open;
pub mod reads;
pub mod retry;
pub mod shipper;
pub mod tailer;
pub mod turns;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use expand::{Bounds, Expansion};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::collect_config::CollectEntry;
use tailer::{TailContext, TailEnd, Tailer};

/// How long a refused path is left alone before it is tried again.
const RETRY_REFUSED_AFTER: Duration = Duration::from_secs(60);

/// How long one scan waits for its expansion before going on without it (it is looked at
/// again next scan): longer than [`Bounds::max_time`], so only a walk stuck in a system
/// call (a hung network mount) is left behind.
const EXPANSION_WAIT: Duration = Duration::from_secs(6);

/// An expansion running on a blocking thread.
type PendingExpansion = JoinHandle<Result<Expansion, String>>;

/// Follows every file matching one entry's path.
pub struct FileSource {
    ctx: Arc<TailContext>,
    entry: CollectEntry,
    scan_interval: Duration,
}

impl FileSource {
    /// A source for `entry`.
    pub fn new(ctx: Arc<TailContext>, entry: CollectEntry, scan_interval: Duration) -> Self {
        FileSource {
            ctx,
            entry,
            scan_interval,
        }
    }

    /// Scans and tails until cancelled; then waits for its tailers to stop.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tailers: HashMap<PathBuf, JoinHandle<TailEnd>> = HashMap::new();
        // Paths refused (outside allowed_paths, not a regular file, or unreadable) are
        // retried only after a while, so a bad file logs once a minute, not every scan.
        let mut refused: HashMap<PathBuf, Instant> = HashMap::new();
        let mut expansion: Option<PendingExpansion> = None;
        // A cut expansion is warned about once, not every scan.
        let mut warned_cut = false;
        // A new file in the glob's directory is picked up at once, not at the next scan.
        let new_entries = match literal_parent(&self.entry.path) {
            Some(dir) => self.ctx.events.watch_new_entries(&dir),
            None => events::Wakeup::never(),
        };
        loop {
            let done: Vec<PathBuf> = tailers
                .iter()
                .filter(|(_, h)| h.is_finished())
                .map(|(p, _)| p.clone())
                .collect();
            for path in done {
                if let Some(h) = tailers.remove(&path)
                    && let Ok(TailEnd::Refused) = h.await
                {
                    refused.insert(path, Instant::now());
                }
            }
            refused.retain(|_, at| at.elapsed() < RETRY_REFUSED_AFTER);
            let found = tokio::select! {
                _ = cancel.cancelled() => break,
                found = self.matches(&mut expansion, &mut warned_cut) => found,
            };
            for path in found {
                if tailers.contains_key(&path) || refused.contains_key(&path) {
                    continue;
                }
                let tailer = Tailer::new(Arc::clone(&self.ctx), path.clone(), &self.entry);
                tailers.insert(path, tokio::spawn(tailer.run(cancel.child_token())));
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.scan_interval) => {}
                _ = new_entries.changed() => {}
            }
        }
        for (_, h) in tailers {
            let _ = h.await;
        }
    }

    /// The allowed paths the entry's glob names now; nothing while the expansion is slow.
    async fn matches(
        &self,
        pending: &mut Option<PendingExpansion>,
        warned_cut: &mut bool,
    ) -> Vec<PathBuf> {
        let handle = pending.get_or_insert_with(|| {
            let pattern = self.entry.path.clone();
            tokio::task::spawn_blocking(move || expand::expand(&pattern, Bounds::default()))
        });
        let done = match tokio::time::timeout(EXPANSION_WAIT, &mut *handle).await {
            Ok(done) => done,
            Err(_) => {
                log::warn!(
                    "collect path {:?}: expanding it takes longer than {EXPANSION_WAIT:?} (a \
                     hung file system?); its new files are picked up once it finishes",
                    self.entry.path
                );
                return Vec::new();
            }
        };
        *pending = None;
        let expansion = match done {
            Ok(Ok(expansion)) => expansion,
            Ok(Err(e)) => {
                log::error!(
                    "collect path {:?} is not a valid glob: {e}",
                    self.entry.path
                );
                return Vec::new();
            }
            Err(e) => {
                log::error!("collect path {:?}: expansion failed: {e}", self.entry.path);
                return Vec::new();
            }
        };
        if let Some(why) = &expansion.cut {
            if *warned_cut {
                log::debug!("collect path {:?}: expansion cut: {why}", self.entry.path);
            } else {
                log::warn!(
                    "collect path {:?}: expansion cut short ({why}); files beyond are not \
                     collected: narrow the glob",
                    self.entry.path
                );
                *warned_cut = true;
            }
        }
        expansion
            .paths
            .into_iter()
            .filter(|p| self.ctx.allowed.allows(p))
            .collect()
    }
}

/// The directory of a glob whose wildcards are all in the file name (`/var/log/app/*.log`
/// → `/var/log/app`); `None` when a directory part has one (those are found by scanning).
fn literal_parent(pattern: &str) -> Option<PathBuf> {
    let path = std::path::Path::new(pattern);
    let parent = path.parent()?;
    let wild = |s: &str| s.contains(['*', '?', '[', ']', '{', '}']);
    if wild(&parent.to_string_lossy()) {
        None
    } else {
        Some(parent.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_glob_with_a_literal_directory_has_a_directory_to_watch() {
        assert_eq!(
            literal_parent("/var/log/app/*.log"),
            Some(PathBuf::from("/var/log/app"))
        );
        assert_eq!(
            literal_parent("/var/log/app.log"),
            Some(PathBuf::from("/var/log"))
        );
        assert_eq!(literal_parent("/var/log/*/app.log"), None);
        assert_eq!(literal_parent("/var/log/**/x.log"), None);
    }
}
