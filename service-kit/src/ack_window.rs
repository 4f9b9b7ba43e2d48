//! "Commit only the contiguous acknowledged prefix": the bookkeeping between a source that
//! reads items in order and a sink that acknowledges them in any order (retries, several
//! requests or partitions in flight).
//!
//! Each item is [registered](AckWindow::register) in read order with its *position*: what
//! may be committed once it and every item before it are acknowledged (logagent: the byte
//! after the line; a Kafka source: the record's offset + 1, the next offset to read). The
//! registration returns a sequence number; [`AckWindow::ack`] takes it back, in any order.
//! [`AckWindow::committable`] is the position of the last item of the acknowledged prefix:
//! with items at positions 11, 12, 13 and only 11 and 13 acknowledged, it is 11. A restart
//! from there replays at most the items not yet acknowledged (at-least-once).
//!
//! Cost and memory, on the hot path (one register per line, one ack per line):
//! - `register` and `ack` by sequence number are O(1) amortised and allocate nothing once
//!   the ring buffer has grown to the in-flight high-water mark (it is never shrunk);
//! - [`AckWindow::ack_position`] (for callers that only know the position, like a Kafka
//!   offset) is O(log n) by binary search;
//! - memory is 16 bytes per item from the oldest unacknowledged one to the newest: the
//!   window holds acknowledged items behind an unacknowledged head until the head is
//!   acknowledged, so it is bounded by the caller's in-flight limit plus whatever was read
//!   while the head was outstanding. Callers bound it by limiting unacknowledged items.
//!
//! The window is plain data (`&mut self`): callers that share it between the reading task
//! and the acknowledging callbacks wrap it, with their own state, in one mutex.

use std::collections::VecDeque;

/// Out-of-order acknowledgements, in-order commits (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct AckWindow {
    /// Sequence number of `pending[0]`.
    base_seq: u64,
    /// Registered items not yet part of the committed prefix: (position, acknowledged).
    pending: VecDeque<(u64, bool)>,
    /// Position of the last item of the acknowledged prefix (or the start).
    committable: u64,
}

impl AckWindow {
    /// An empty window whose committable position is `start` (where reading began).
    pub fn new(start: u64) -> Self {
        AckWindow {
            base_seq: 0,
            pending: VecDeque::new(),
            committable: start,
        }
    }

    /// Records the next item read, at `position` (not below the previous item's: positions
    /// only grow in read order); returns its sequence number for [`AckWindow::ack`].
    #[inline]
    pub fn register(&mut self, position: u64) -> u64 {
        let seq = self.next_seq();
        self.pending.push_back((position, false));
        seq
    }

    /// Item `seq` was acknowledged; returns whether [`AckWindow::committable`] moved.
    ///
    /// Repeated acknowledgements, and sequence numbers already committed or never handed
    /// out, are ignored: delivery callbacks may fire twice, or arrive after a
    /// [`AckWindow::reset`].
    #[inline]
    pub fn ack(&mut self, seq: u64) -> bool {
        let Some(index) = seq.checked_sub(self.base_seq) else {
            return false;
        };
        match usize::try_from(index)
            .ok()
            .and_then(|i| self.pending.get_mut(i))
        {
            Some(slot) => slot.1 = true,
            None => return false,
        }
        self.advance()
    }

    /// The item registered at `position` was acknowledged (for callers that know positions,
    /// not sequence numbers; positions must then be unique). Returns whether
    /// [`AckWindow::committable`] moved; an unknown position is ignored.
    pub fn ack_position(&mut self, position: u64) -> bool {
        match self.pending.binary_search_by_key(&position, |&(p, _)| p) {
            Ok(index) => {
                self.pending[index].1 = true;
                self.advance()
            }
            Err(_) => false,
        }
    }

    fn advance(&mut self) -> bool {
        let mut moved = false;
        while let Some(&(position, true)) = self.pending.front() {
            self.committable = position;
            self.pending.pop_front();
            self.base_seq += 1;
            moved = true;
        }
        moved
    }

    /// Takes back item `seq` if it is the last one registered (read, but never handed to
    /// the sink, e.g. at shutdown); returns whether it was taken back.
    pub fn abandon_last(&mut self, seq: u64) -> bool {
        if !self.pending.is_empty() && self.next_seq() == seq + 1 {
            self.pending.pop_back();
            true
        } else {
            false
        }
    }

    /// Position of the last item of the acknowledged prefix: what is safe to commit.
    #[inline]
    pub fn committable(&self) -> u64 {
        self.committable
    }

    /// Position of the last registered item, or [`AckWindow::committable`] when none is
    /// outstanding: how far reading got.
    pub fn last_position(&self) -> u64 {
        self.pending.back().map_or(self.committable, |&(p, _)| p)
    }

    /// Items registered and not yet committed (acknowledged ones behind an unacknowledged
    /// head included): the window's length, what its memory is proportional to.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every registered item is committed.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Items registered and not yet acknowledged (O(n): for metrics, not the hot path).
    pub fn unacknowledged(&self) -> usize {
        self.pending.iter().filter(|&&(_, acked)| !acked).count()
    }

    /// The sequence number the next [`AckWindow::register`] returns.
    pub fn next_seq(&self) -> u64 {
        self.base_seq + self.pending.len() as u64
    }

    /// Forgets every outstanding item and starts again at `start` (a file truncated, a
    /// partition re-read from an earlier offset). Sequence numbers keep counting up, so late
    /// acknowledgements of forgotten items are ignored instead of settling new ones.
    pub fn reset(&mut self, start: u64) {
        self.base_seq = self.next_seq();
        self.pending.clear();
        self.committable = start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_commit_only_the_acknowledged_prefix() {
        let mut w = AckWindow::new(100);
        let a = w.register(110);
        let b = w.register(120);
        let c = w.register(130);
        assert!(!w.ack(c));
        assert_eq!(w.committable(), 100, "a and b are still pending");
        assert!(w.ack(a));
        assert_eq!(w.committable(), 110);
        assert!(!w.ack(a), "a duplicate acknowledgement is harmless");
        assert_eq!((w.len(), w.unacknowledged()), (2, 1));
        assert!(w.ack(b));
        assert_eq!((w.committable(), w.len(), w.last_position()), (130, 0, 130));
        assert!(w.is_empty());
    }

    #[test]
    fn kafka_offsets_map_to_positions_one_past_the_record() {
        // Offsets 5..=9 read; 5, 6 and 8 acknowledged: commit 7, the next to read.
        let mut w = AckWindow::new(5);
        for offset in 5..10u64 {
            w.register(offset + 1);
        }
        for offset in [6u64, 8] {
            w.ack_position(offset + 1);
        }
        assert_eq!(w.committable(), 5, "5 is not settled");
        assert!(w.ack_position(6));
        assert_eq!(w.committable(), 7);
        assert!(!w.ack_position(42), "an unknown offset is ignored");
        assert_eq!(w.unacknowledged(), 2);
        assert_eq!(w.last_position(), 10);
    }

    #[test]
    fn sequence_numbers_stay_valid_as_the_prefix_is_committed() {
        let mut w = AckWindow::new(0);
        let mut seqs = Vec::new();
        for round in 0..100u64 {
            seqs.push(w.register(round + 1));
            if round % 3 == 2 {
                // acknowledge the newest first, then the older ones
                for &s in seqs.iter().rev() {
                    w.ack(s);
                }
                seqs.clear();
                assert_eq!(w.committable(), round + 1);
            }
        }
        assert_eq!(w.next_seq(), 100);
    }

    #[test]
    fn only_the_last_registered_item_can_be_abandoned() {
        let mut w = AckWindow::new(0);
        let a = w.register(4);
        let b = w.register(8);
        assert!(!w.abandon_last(a));
        assert!(w.abandon_last(b));
        assert_eq!(w.last_position(), 4);
        assert!(!w.abandon_last(b), "already taken back");
        assert_eq!(w.register(9), b, "the sequence number is handed out again");
        w.ack(a);
        assert!(w.abandon_last(b));
        assert_eq!(
            w.last_position(),
            4,
            "nothing outstanding: the committed position"
        );
        assert!(!w.abandon_last(a), "committed items are not taken back");
    }

    #[test]
    fn reset_forgets_outstanding_items_and_late_acks() {
        let mut w = AckWindow::new(0);
        let old = w.register(10);
        w.reset(0);
        assert_eq!((w.committable(), w.len()), (0, 0));
        let new = w.register(3);
        assert_ne!(old, new);
        assert!(!w.ack(old), "a late acknowledgement of a forgotten line");
        assert_eq!(w.committable(), 0);
        assert!(w.ack(new));
        assert_eq!(w.committable(), 3);
    }

    #[test]
    fn the_ring_buffer_does_not_grow_in_steady_state() {
        let mut w = AckWindow::new(0);
        for i in 0..1000u64 {
            let s = w.register(i);
            w.ack(s);
        }
        let capacity = w.pending.capacity();
        for i in 1000..100_000u64 {
            let s = w.register(i);
            w.ack(s);
        }
        assert_eq!(w.pending.capacity(), capacity);
        assert!(!w.ack(u64::MAX), "a sequence number never handed out");
    }
}
