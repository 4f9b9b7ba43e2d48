//! The acknowledgement window: which records are settled, and the offsets that may be
//! committed because of it.
//!
//! Every record read is registered per partition, in offset order. The sink acknowledges
//! records once they are indexed or dead-lettered, in any order (several requests are in
//! flight). The offset committed for a partition is the end of the contiguous acknowledged
//! prefix: with offsets 5..=9 read and 5, 6, 8 acknowledged, we commit 7 (the next record
//! to read after a restart). A crash therefore replays at most the records not yet settled,
//! and since a replayed record has the same document `_id`, it overwrites its document
//! instead of duplicating it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::event::DocKey;

/// Told which records are settled (indexed or dead-lettered): the offset tracker.
pub trait Acknowledge: Send + Sync {
    /// These records are safely in Elasticsearch or in the dead-letter topic.
    fn ack(&self, keys: &[DocKey]);
}

/// Acknowledges nothing (benchmarks).
#[derive(Debug, Default)]
pub struct NoAck;

impl Acknowledge for NoAck {
    fn ack(&self, _keys: &[DocKey]) {}
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Registered, not yet committed: (offset, acknowledged), increasing offsets.
    pending: VecDeque<(i64, bool)>,
    /// The offset to commit: one past the contiguous acknowledged prefix.
    commit_next: Option<i64>,
    /// What was last committed (or where we started).
    committed: Option<i64>,
    /// Highest offset read.
    last_seen: i64,
}

/// Per-partition bookkeeping of read and settled records.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: Mutex<HashMap<(Arc<str>, i32), PartitionState>>,
}

impl OffsetTracker {
    /// A record was read (called in offset order per partition).
    pub fn register(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        let mut parts = self.parts.lock();
        let state = parts.entry((topic.clone(), partition)).or_default();
        let replay = state
            .pending
            .back()
            .is_some_and(|&(last, _)| offset <= last)
            || state.commit_next.is_some_and(|next| offset < next);
        if replay {
            // The partition was re-read from an earlier offset (rebalance, seek): the old
            // bookkeeping no longer describes what is in flight.
            *state = PartitionState::default();
        }
        if state.committed.is_none() {
            state.committed = Some(offset);
        }
        state.pending.push_back((offset, false));
        state.last_seen = offset;
    }

    /// Offsets to commit now: `(topic, partition, next offset)` where it moved.
    pub fn to_commit(&self) -> Vec<(Arc<str>, i32, i64)> {
        let parts = self.parts.lock();
        parts
            .iter()
            .filter_map(|((t, p), s)| match s.commit_next {
                Some(next) if Some(next) != s.committed => Some((t.clone(), *p, next)),
                _ => None,
            })
            .collect()
    }

    /// These offsets were committed.
    pub fn mark_committed(&self, list: &[(Arc<str>, i32, i64)]) {
        let mut parts = self.parts.lock();
        for (t, p, next) in list {
            if let Some(s) = parts.get_mut(&(t.clone(), *p)) {
                s.committed = Some(*next);
            }
        }
    }

    /// The partition is no longer ours: forget it (late acknowledgements are ignored; the
    /// new owner replays what we did not commit, which overwrites, never duplicates).
    pub fn revoke(&self, topic: &str, partition: i32) {
        self.parts
            .lock()
            .retain(|(t, p), _| !(&**t == topic && *p == partition));
    }

    /// Records read but not committed, per partition.
    pub fn lag(&self) -> Vec<(Arc<str>, i32, i64)> {
        let parts = self.parts.lock();
        parts
            .iter()
            .map(|((t, p), s)| {
                let base = s.committed.unwrap_or(s.last_seen + 1);
                (t.clone(), *p, (s.last_seen + 1 - base).max(0))
            })
            .collect()
    }

    /// Records read and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        let parts = self.parts.lock();
        parts
            .values()
            .map(|s| s.pending.iter().filter(|(_, done)| !done).count())
            .sum()
    }
}

impl Acknowledge for OffsetTracker {
    fn ack(&self, keys: &[DocKey]) {
        let mut parts = self.parts.lock();
        for key in keys {
            let Some(state) = parts.get_mut(&(key.topic.clone(), key.partition)) else {
                continue;
            };
            if let Ok(i) = state
                .pending
                .binary_search_by_key(&key.offset, |&(offset, _)| offset)
            {
                state.pending[i].1 = true;
            }
            while let Some(&(offset, true)) = state.pending.front() {
                state.pending.pop_front();
                state.commit_next = Some(offset + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32, o: i64) -> DocKey {
        DocKey {
            topic: "t".into(),
            partition: p,
            offset: o,
        }
    }

    #[test]
    fn commits_only_the_contiguous_acknowledged_prefix() {
        let t = OffsetTracker::default();
        let topic: Arc<str> = "t".into();
        for o in 5..10 {
            t.register(&topic, 0, o);
        }
        t.register(&topic, 1, 0);
        assert!(t.to_commit().is_empty());
        t.ack(&[key(0, 6), key(0, 8)]);
        assert!(t.to_commit().is_empty(), "5 is not settled");
        t.ack(&[key(0, 5)]);
        assert_eq!(t.to_commit(), vec![(topic.clone(), 0, 7)]);
        t.mark_committed(&t.to_commit());
        assert!(t.to_commit().is_empty());
        t.ack(&[key(0, 7), key(0, 9), key(1, 0)]);
        let mut c = t.to_commit();
        c.sort();
        assert_eq!(c, vec![(topic.clone(), 0, 10), (topic.clone(), 1, 1)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn replay_resets_and_revoked_acks_are_ignored() {
        let t = OffsetTracker::default();
        let topic: Arc<str> = "t".into();
        t.register(&topic, 0, 0);
        t.register(&topic, 0, 1);
        t.register(&topic, 0, 0);
        t.ack(&[key(0, 0)]);
        assert_eq!(t.to_commit(), vec![(topic.clone(), 0, 1)]);
        t.revoke("t", 0);
        t.ack(&[key(0, 1)]);
        assert!(t.to_commit().is_empty());
        assert!(t.lag().is_empty());
    }

    #[test]
    fn lag_counts_read_but_uncommitted() {
        let t = OffsetTracker::default();
        let topic: Arc<str> = "t".into();
        for o in 0..4 {
            t.register(&topic, 2, o);
        }
        assert_eq!(t.lag(), vec![(topic.clone(), 2, 4)]);
        t.ack(&[key(2, 0), key(2, 1)]);
        t.mark_committed(&t.to_commit());
        assert_eq!(t.lag(), vec![(topic, 2, 2)]);
    }
}
