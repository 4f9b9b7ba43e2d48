//! The acknowledgement of one line: committing it in its file's progress and returning its
//! share of the in-flight limit happen together, exactly once.
//!
//! Every line handed to the sink holds a [`AckToken`]. Whoever ends the line's journey
//! settles it: [`AckToken::ack`] when Kafka stored it (or refused it for good, so that the
//! file is not held back forever), [`AckToken::abandon`] when it was never handed over.
//! A token that is just dropped (a delivery failed after the producer broke, a retry queue
//! that went away) returns its permits and leaves the line unacknowledged: the checkpoint
//! stops before it and a restart re-sends it. Since settling consumes the token, a line can
//! be neither acknowledged twice nor leak its permits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::checkpoint::FileProgress;
use crate::in_flight::{Held, InFlightLimit};

/// Where the tokens of one file's lines settle: the file's progress and the in-flight limit.
/// Shared by the file's tokens, so that a token costs one reference count, not three.
#[derive(Debug)]
pub struct FileAcks {
    progress: Arc<FileProgress>,
    limit: InFlightLimit,
    /// Lines of this file whose delivery failed and that are not delivered yet: while any
    /// is, the file's later lines are held back, so that the retried line reaches Kafka
    /// before them.
    retrying: AtomicUsize,
}

impl FileAcks {
    /// The acknowledgements of the file read with `progress`, within `limit`.
    pub fn new(progress: Arc<FileProgress>, limit: InFlightLimit) -> Arc<Self> {
        Arc::new(FileAcks {
            progress,
            limit,
            retrying: AtomicUsize::new(0),
        })
    }

    /// Whether a line of this file waits to be produced again (or for the delivery of its
    /// retry). One relaxed load: written only when a delivery fails or a retried line is
    /// settled.
    pub fn retrying(&self) -> bool {
        self.retrying.load(Ordering::Relaxed) > 0
    }

    /// The file's progress.
    pub fn progress(&self) -> &Arc<FileProgress> {
        &self.progress
    }
}

/// Carried with a line through the sink; see the module documentation.
#[derive(Debug)]
pub struct AckToken {
    file: Arc<FileAcks>,
    seq: u64,
    /// Bytes of the in-flight limit this line holds (and one line).
    charged: usize,
    settled: bool,
    /// Counted in its file's `retrying` until settled.
    retried: bool,
}

impl AckToken {
    /// Registers a line ending at `end_offset` in its file's progress. The token takes over
    /// one line and `charged` bytes of permits already acquired from the file's limit.
    pub fn new(file: &Arc<FileAcks>, end_offset: u64, charged: usize) -> Self {
        AckToken {
            file: Arc::clone(file),
            seq: file.progress.register(end_offset),
            charged,
            settled: false,
            retried: false,
        }
    }

    /// The line's delivery failed and it will be produced again: its file's later lines
    /// wait until it is settled (delivered, or dropped for a restart).
    pub fn awaiting_retry(&mut self) {
        if !std::mem::replace(&mut self.retried, true) {
            self.file.retrying.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The line is done with: the checkpoint may pass it once every earlier line is.
    pub fn ack(mut self) {
        self.file.progress.ack(self.seq);
        self.release();
    }

    /// The line was never handed to the sink (shutdown while the sink was full): take it
    /// back, as if it had not been read.
    pub fn abandon(mut self) {
        self.file.progress.abandon(self.seq);
        self.release();
    }

    fn release(&mut self) {
        if !std::mem::replace(&mut self.settled, true) {
            self.file.limit.release(Held {
                lines: 1,
                bytes: self.charged,
            });
            if self.retried {
                self.file.retrying.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        self.release();
    }
}

/// A claimed file's acknowledgements, for the tests of the modules that settle tokens.
#[cfg(test)]
pub(crate) fn test_file_acks(
    max_lines: usize,
    max_bytes: usize,
) -> (tempfile::TempDir, Arc<FileAcks>, InFlightLimit) {
    use crate::checkpoint::{CheckpointStore, Claim};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, b"one\ntwo\n").unwrap();
    let store = CheckpointStore::open(dir.path()).unwrap();
    let f = std::fs::File::open(&log).unwrap();
    let Claim::Granted { progress, .. } = store.claim("t", "a.log", &f).unwrap() else {
        panic!("busy")
    };
    let limit = InFlightLimit::new(max_lines, max_bytes);
    (dir, FileAcks::new(progress, limit.clone()), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's acks within a limit of 2 lines, with one line's permits held per token.
    fn setup() -> (tempfile::TempDir, Arc<FileAcks>, InFlightLimit) {
        test_file_acks(2, 100)
    }

    async fn token(acks: &Arc<FileAcks>, limit: &InFlightLimit, end: u64) -> AckToken {
        let held = limit.acquire(Held { lines: 1, bytes: 4 }).await;
        AckToken::new(acks, end, held.bytes)
    }

    #[tokio::test]
    async fn ack_commits_the_line_and_returns_its_permits_once() {
        let (_dir, acks, limit) = setup();
        let t = token(&acks, &limit, 4).await;
        assert_eq!(limit.held_lines(), 1);
        t.ack();
        assert_eq!(limit.held_lines(), 0, "settling returned the permit");
        assert_eq!(acks.progress().committed().1, 4);
        assert_eq!(acks.progress().in_flight(), 0);
        // Were the permit returned again on drop, the limit would now exceed its size.
        let a = token(&acks, &limit, 8).await;
        let b = token(&acks, &limit, 8).await;
        assert_eq!(
            limit.held_lines(),
            2,
            "no more permits than the limit holds"
        );
        drop((a, b));
    }

    #[tokio::test]
    async fn a_dropped_token_returns_its_permits_and_leaves_the_line_unacknowledged() {
        let (_dir, acks, limit) = setup();
        let first = token(&acks, &limit, 4).await;
        let second = token(&acks, &limit, 8).await;
        drop(first);
        assert_eq!(limit.held_lines(), 1, "the dropped token's permit is back");
        assert_eq!(
            acks.progress().committed().1,
            0,
            "not acknowledged: the checkpoint does not pass the dropped line"
        );
        second.ack();
        assert_eq!(
            acks.progress().committed().1,
            0,
            "a later acknowledgement does not carry the checkpoint past it either"
        );
        assert_eq!(
            acks.progress().in_flight(),
            2,
            "both wait behind the dropped line"
        );
        assert_eq!(limit.held_lines(), 0);
    }

    #[tokio::test]
    async fn abandon_takes_the_line_back_and_returns_its_permits() {
        let (_dir, acks, limit) = setup();
        let t = token(&acks, &limit, 4).await;
        assert_eq!(acks.progress().sent(), 4);
        t.abandon();
        assert_eq!(acks.progress().sent(), 0);
        assert_eq!(acks.progress().in_flight(), 0);
        assert_eq!(limit.held_lines(), 0);
    }
}
