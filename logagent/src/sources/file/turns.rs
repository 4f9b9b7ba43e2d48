//! Turns at holding a file open: at most `max_open_files` collected files are open at once
//! (see [`crate::fd_limit`] for why, and for the reserve kept beside them).
//!
//! A tailer takes a [`Turn`] before it opens its path and holds it while it has a file of
//! the path open. Turns are handed out first come, first served (tokio's semaphore is
//! fair), so no file waits forever. A tailer gives its turn back only when another one
//! waits for it ([`Turn::should_yield`]):
//! - when its file is idle: read to the end, no growth for [`IDLE_AFTER`];
//! - or when it held its turn for [`LONGEST_TURN`], so that files that never stop growing
//!   cannot keep the others out.
//!
//! It then waits until every line it handed over is acknowledged, closes the file with its
//! checkpoint (see [`crate::checkpoint::CheckpointStore::set_aside`]), and asks for a turn
//! again only once the path changed (another size, inode or modification time): an idle
//! file costs one `stat` per poll, not a turn. Reopening is a start like after a restart:
//! the file at the path is checked against the checkpoint by device, inode and fingerprint,
//! and content rotated away meanwhile is found by the generation search.
//!
//! A tailer holds more than one descriptor for a moment when it finds rotated generations
//! (one per sibling, most closed again at once), while a renamed file lingers, and while it
//! opens (the `O_PATH` handle): those come out of the reserve.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// A file with no growth for this long gives its turn to a waiting one.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);

/// A file still growing gives its turn to a waiting one after this long.
pub const LONGEST_TURN: Duration = Duration::from_secs(10);

/// Whether a tailer should give its turn back now: only when another waits, and only when
/// its file has been idle for [`IDLE_AFTER`] or it held the turn for [`LONGEST_TURN`].
pub fn should_yield(others_waiting: bool, idle: Duration, held: Duration) -> bool {
    others_waiting && (idle >= IDLE_AFTER || held >= LONGEST_TURN)
}

/// The budget of files open at once, shared by all tailers.
#[derive(Clone)]
pub struct OpenFiles {
    inner: Arc<Inner>,
}

struct Inner {
    turns: Arc<Semaphore>,
    /// Tailers waiting for a turn.
    waiting: AtomicUsize,
    max: usize,
    metrics: Arc<Metrics>,
}

impl OpenFiles {
    /// At most `max` files open at once (at least one).
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        let max = max.max(1);
        OpenFiles {
            inner: Arc::new(Inner {
                turns: Arc::new(Semaphore::new(max)),
                waiting: AtomicUsize::new(0),
                max,
                metrics,
            }),
        }
    }

    /// The budget.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Waits for a turn, behind every tailer that asked before. Cancel-safe: a tailer
    /// stopped while waiting leaves the queue.
    pub async fn take(&self) -> Turn {
        let inner = &self.inner;
        let permit = match Arc::clone(&inner.turns).try_acquire_owned() {
            // Free turns exist only while nobody waits, so this jumps no queue.
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::new(inner);
                Arc::clone(&inner.turns)
                    .acquire_owned()
                    .await
                    .expect("the open-files semaphore is never closed")
            }
        };
        inner.metrics.files_open.inc();
        Turn {
            _permit: permit,
            since: Instant::now(),
            inner: Arc::clone(inner),
        }
    }

    /// Tailers waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }
}

/// Counts a tailer in the queue for as long as it waits (also when it is cancelled).
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        inner.metrics.files_waiting_turn.inc();
        Waiting(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.files_waiting_turn.dec();
    }
}

/// The right to hold a collected file open; given back when dropped.
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    since: Instant,
    inner: Arc<Inner>,
}

impl Turn {
    /// Whether to give the turn back, the file having last grown at `grew`. Asked once
    /// per read: while nobody waits it is one relaxed load.
    pub fn should_yield(&self, grew: Instant) -> bool {
        self.inner.waiting.load(Ordering::Relaxed) > 0
            && should_yield(true, grew.elapsed(), self.since.elapsed())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.inner.metrics.files_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_given_back_only_to_a_waiting_file_and_only_when_idle_or_long_held() {
        let (short, long) = (Duration::from_millis(10), Duration::from_secs(3600));
        assert!(
            !should_yield(false, long, long),
            "nobody waits: keep it open"
        );
        assert!(!should_yield(true, short, short), "busy and just started");
        assert!(should_yield(true, IDLE_AFTER, short), "idle");
        assert!(should_yield(true, short, LONGEST_TURN), "busy for too long");
    }

    fn ago(d: Duration) -> Instant {
        Instant::now()
            .checked_sub(d)
            .expect("the clock is past IDLE_AFTER")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn files_beyond_the_budget_wait_and_every_one_gets_a_turn_in_order() {
        let metrics = Arc::new(Metrics::default());
        let files = OpenFiles::new(2, Arc::clone(&metrics));
        let a = files.take().await;
        let b = files.take().await;
        assert_eq!(metrics.files_open.get(), 2);
        assert!(!a.should_yield(ago(IDLE_AFTER)), "nobody waits yet");
        // Three more files ask, in this order.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for name in ["c", "d", "e"] {
            let (files, tx) = (files.clone(), tx.clone());
            waiters.push(tokio::spawn(async move {
                let _turn = files.take().await;
                tx.send(name).unwrap();
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!((files.waiting(), metrics.files_waiting_turn.get()), (3, 3));
        assert!(
            a.should_yield(ago(IDLE_AFTER)),
            "an idle file gives way to a waiting one"
        );
        assert!(!a.should_yield(Instant::now()), "a busy one keeps its turn");
        drop(a);
        drop(b);
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("every waiting file gets a turn")
                .unwrap();
        }
        let mut order = Vec::new();
        while let Ok(name) = rx.try_recv() {
            order.push(name);
        }
        assert_eq!(order, ["c", "d", "e"], "first come, first served");
        assert_eq!((metrics.files_open.get(), files.waiting()), (0, 0));
    }
}
