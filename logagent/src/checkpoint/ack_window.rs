//! The contiguous acknowledged prefix of one file's lines.
//!
//! The producer acknowledges lines out of order (retries, several partitions in flight), but
//! a checkpoint may only pass a line once it and every line before it were acknowledged. The
//! window keeps the unacknowledged lines in send order and moves the committed offset over
//! the acknowledged prefix only.
//!
//! This is the one place that algorithm lives in logagent, so that it can be replaced by a
//! shared implementation without touching its callers ([`super::progress::FileProgress`]).

use std::collections::VecDeque;

/// Lines handed to the sink and not yet committed, in send order.
#[derive(Debug)]
pub struct AckWindow {
    /// Sequence number of `pending[0]`.
    base_seq: u64,
    /// End offset of each sent, not yet committed line, and whether it was acknowledged.
    pending: VecDeque<(u64, bool)>,
    committed: u64,
}

impl AckWindow {
    /// An empty window whose committed offset is `committed`.
    pub fn new(committed: u64) -> Self {
        AckWindow {
            base_seq: 0,
            pending: VecDeque::new(),
            committed,
        }
    }

    /// Appends a line ending at `end_offset`; returns its sequence number for
    /// [`AckWindow::ack`].
    pub fn register(&mut self, end_offset: u64) -> u64 {
        let seq = self.base_seq + self.pending.len() as u64;
        self.pending.push_back((end_offset, false));
        seq
    }

    /// Marks line `seq` acknowledged and advances the committed offset over the
    /// acknowledged prefix. Unknown or already committed sequence numbers are ignored, so
    /// a duplicate acknowledgement is harmless.
    pub fn ack(&mut self, seq: u64) {
        let Some(idx) = seq.checked_sub(self.base_seq) else {
            return;
        };
        if let Some(slot) = self.pending.get_mut(idx as usize) {
            slot.1 = true;
        }
        while let Some(&(end, true)) = self.pending.front() {
            self.committed = end;
            self.pending.pop_front();
            self.base_seq += 1;
        }
    }

    /// Takes back line `seq` if it is the last one registered; returns whether it was.
    pub fn abandon(&mut self, seq: u64) -> bool {
        if self.base_seq + self.pending.len() as u64 == seq + 1 {
            self.pending.pop_back();
            true
        } else {
            false
        }
    }

    /// Every line before this offset is acknowledged.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// End offset of the last registered line still in the window, or the committed offset
    /// when none is.
    pub fn last_end(&self) -> u64 {
        self.pending.back().map(|p| p.0).unwrap_or(self.committed)
    }

    /// Lines registered and not yet committed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Moves the committed offset to `offset` (the content restarts, e.g. after a
    /// truncation once every earlier line is committed).
    pub fn restart_at(&mut self, offset: u64) {
        self.committed = offset;
    }
}
