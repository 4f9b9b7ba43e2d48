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
//!
//! The contiguous-prefix bookkeeping itself is service-kit's [`AckWindow`], one per
//! partition (the platform keeps one implementation of it); this module maps Kafka offsets
//! and [`DocKey`]s onto it and remembers what was last committed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use parking_lot::Mutex;
use service_kit::ack_window::AckWindow;

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

/// The window's position of a Kafka offset. [`AckWindow`] counts positions in `u64`, Kafka
/// offsets are `i64`: flipping the sign bit maps one onto the other in the same order, so
/// every offset (even a negative one a broker should never send) keeps its place and comes
/// back unchanged from [`offset`].
#[inline]
fn position(offset: i64) -> u64 {
    (offset as u64) ^ (1 << 63)
}

/// The Kafka offset of a window position (the inverse of [`position`]).
#[inline]
fn offset(position: u64) -> i64 {
    (position ^ (1 << 63)) as i64
}

/// A record's position in the window: the offset to commit once it and every record before
/// it are settled (the next one to read).
#[inline]
fn record_position(record_offset: i64) -> u64 {
    position(record_offset.saturating_add(1))
}

#[derive(Debug)]
struct PartitionState {
    /// Records registered and not yet part of the settled prefix; its committable position
    /// is the offset to commit.
    window: AckWindow,
    /// What was last committed (or where reading started).
    committed: i64,
}

impl PartitionState {
    /// Reading (or re-reading) the partition from `first`.
    fn starting_at(first: i64) -> Self {
        PartitionState {
            window: AckWindow::new(position(first)),
            committed: first,
        }
    }
}

/// Per-partition bookkeeping of read and settled records.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: Mutex<HashMap<(Arc<str>, i32), PartitionState>>,
}

impl OffsetTracker {
    /// A record was read (called in offset order per partition). Returns how many records
    /// of the partition are now pending: read and not yet committable, acknowledged ones
    /// behind an unacknowledged one included (the window's length, what its memory grows
    /// with).
    pub fn register(&self, topic: &Arc<str>, partition: i32, offset: i64) -> usize {
        let mut parts = self.parts.lock();
        let state = match parts.entry((topic.clone(), partition)) {
            Entry::Vacant(entry) => entry.insert(PartitionState::starting_at(offset)),
            Entry::Occupied(entry) => {
                let state = entry.into_mut();
                // At or below what was already read (last registered record, or the settled
                // prefix when none is outstanding): the partition was re-read from an
                // earlier offset (rebalance, seek), and the old bookkeeping no longer
                // describes what is in flight.
                if record_position(offset) <= state.window.last_position() {
                    state.window.reset(position(offset));
                    state.committed = offset;
                }
                state
            }
        };
        state.window.register(record_position(offset));
        state.window.len()
    }

    /// Records of a partition read and not yet committable (see [`register`](Self::register));
    /// `None` when the partition is not tracked (revoked, or nothing read yet).
    pub fn pending(&self, topic: &str, partition: i32) -> Option<usize> {
        let parts = self.parts.lock();
        parts
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .map(|(_, s)| s.window.len())
    }

    /// Offsets to commit now: `(topic, partition, next offset)` where it moved.
    pub fn to_commit(&self) -> Vec<(Arc<str>, i32, i64)> {
        let parts = self.parts.lock();
        parts
            .iter()
            .filter_map(|((t, p), s)| {
                let next = offset(s.window.committable());
                (next != s.committed).then(|| (t.clone(), *p, next))
            })
            .collect()
    }

    /// These offsets were committed.
    pub fn mark_committed(&self, list: &[(Arc<str>, i32, i64)]) {
        let mut parts = self.parts.lock();
        for (t, p, next) in list {
            if let Some(s) = parts.get_mut(&(t.clone(), *p)) {
                s.committed = *next;
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
                // The last position is one past the highest offset read.
                let read_end = offset(s.window.last_position());
                (t.clone(), *p, read_end.saturating_sub(s.committed).max(0))
            })
            .collect()
    }

    /// Records read and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        let parts = self.parts.lock();
        parts.values().map(|s| s.window.unacknowledged()).sum()
    }
}

impl Acknowledge for OffsetTracker {
    fn ack(&self, keys: &[DocKey]) {
        let mut parts = self.parts.lock();
        for key in keys {
            // A revoked partition, or a record from before a replay reset: ignored.
            if let Some(state) = parts.get_mut(&(key.topic.clone(), key.partition)) {
                state.window.ack_position(record_position(key.offset));
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
        assert_eq!(
            t.pending("t", 0),
            Some(5),
            "acknowledged records behind 5 count"
        );
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
    fn window_positions_keep_the_order_of_offsets_and_map_back() {
        let offsets = [i64::MIN, -1, 0, 1, 41, i64::MAX - 1, i64::MAX];
        for pair in offsets.windows(2) {
            assert!(position(pair[0]) < position(pair[1]), "{pair:?}");
        }
        for o in offsets {
            assert_eq!(offset(position(o)), o);
        }
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
