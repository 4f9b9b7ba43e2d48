//! The bounded buffer between collection and the writer: oldest points dropped first, counted.
//!
//! The writer does not take points out while a request is in flight; it copies the oldest
//! `batch` lines into a request body and removes them only once InfluxDB answered. That way
//! a full buffer can still drop the oldest points (even ones in flight), and each point ends
//! up counted exactly once: sent, failed or dropped.

use std::collections::VecDeque;

use crate::stats::Stats;

/// Lines stored back to back, each with its newline, plus their lengths: a buffered point
/// costs its bytes and four more, not a `String`'s header, allocator rounding and spare
/// capacity on top, and a long outage does not fragment the heap with small allocations.
#[derive(Debug, Default)]
struct Lines {
    bytes: VecDeque<u8>,
    lens: VecDeque<u32>,
}

impl Lines {
    fn len(&self) -> usize {
        self.lens.len()
    }

    fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    fn push_back(&mut self, line: &str) {
        self.bytes.extend(line.as_bytes());
        self.bytes.push_back(b'\n');
        self.lens.push_back(line.len() as u32 + 1);
    }

    /// Bytes of the first `n` lines.
    fn front_bytes(&self, n: usize) -> usize {
        self.lens.iter().take(n).map(|&l| l as usize).sum()
    }

    fn pop_front(&mut self) {
        if let Some(l) = self.lens.pop_front() {
            self.bytes.drain(..l as usize);
        }
    }

    fn drain_front(&mut self, n: usize) {
        let bytes = self.front_bytes(n);
        self.lens.drain(..n);
        self.bytes.drain(..bytes);
    }

    /// Copy the first `n` lines (newlines included) into `out`.
    fn copy_front(&self, n: usize, out: &mut Vec<u8>) {
        let mut want = self.front_bytes(n);
        let (a, b) = self.bytes.as_slices();
        for part in [a, b] {
            let take = want.min(part.len());
            out.extend_from_slice(&part[..take]);
            want -= take;
        }
    }
}

/// Lines waiting for InfluxDB.
#[derive(Debug)]
pub struct Buffer {
    lines: Lines,
    max: usize,
    /// Sequence number of `lines[0]`; grows by one per line removed from the front.
    front_seq: u64,
    /// `[start, end)` sequence numbers copied into the request in flight.
    in_flight: Option<(u64, u64)>,
    /// In-flight lines dropped for room; counted as dropped only if their request fails.
    dropped_in_flight: u64,
    stats: Stats,
}

/// A request body taken from the buffer, to be settled with [`Buffer::settle`].
#[derive(Debug)]
pub struct Batch {
    /// Newline-separated line protocol.
    pub body: Vec<u8>,
    /// Lines in `body`.
    pub points: usize,
    start: u64,
    end: u64,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// InfluxDB stored it.
    Sent,
    /// InfluxDB refused it for good (malformed); it is not retried.
    Rejected,
    /// It did not get through; it stays in the buffer for the next attempt.
    Retry,
}

impl Buffer {
    /// A buffer holding at most `max` lines.
    pub fn new(max: usize, stats: Stats) -> Self {
        Buffer {
            lines: Lines::default(),
            max: max.max(1),
            front_seq: 0,
            in_flight: None,
            dropped_in_flight: 0,
            stats,
        }
    }

    /// Lines waiting (in flight included).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Add lines at the back, dropping from the front past the bound.
    pub fn push<S: AsRef<str>>(&mut self, new: impl IntoIterator<Item = S>) {
        for line in new {
            self.stats.points_collected.inc();
            if self.lines.len() >= self.max {
                self.lines.pop_front();
                let seq = self.front_seq;
                self.front_seq += 1;
                match self.in_flight {
                    Some((start, end)) if seq >= start && seq < end => {
                        self.dropped_in_flight += 1;
                    }
                    _ => {
                        self.stats.points_dropped.inc();
                    }
                }
            }
            self.lines.push_back(line.as_ref());
        }
        self.stats.points_buffered.set(self.lines.len() as i64);
    }

    /// Copy up to `max_points` of the oldest lines into a request body. `None` when empty.
    /// Only one batch may be in flight.
    pub fn take_batch(&mut self, max_points: usize) -> Option<Batch> {
        if self.lines.is_empty() {
            return None;
        }
        let n = max_points.max(1).min(self.lines.len());
        let mut body = Vec::with_capacity(self.lines.front_bytes(n));
        self.lines.copy_front(n, &mut body);
        let start = self.front_seq;
        let end = start + n as u64;
        self.in_flight = Some((start, end));
        self.dropped_in_flight = 0;
        Some(Batch {
            body,
            points: n,
            start,
            end,
        })
    }

    /// Record what happened to `batch`.
    pub fn settle(&mut self, batch: &Batch, outcome: Outcome) {
        self.in_flight = None;
        let dropped = std::mem::take(&mut self.dropped_in_flight);
        match outcome {
            Outcome::Retry => {
                // Lines dropped while the request was out were never delivered after all.
                self.stats.points_dropped.inc_by(dropped);
            }
            Outcome::Sent | Outcome::Rejected => {
                // The ones dropped meanwhile are already gone from the deque; remove the rest.
                let still_here = batch.end.saturating_sub(self.front_seq.max(batch.start));
                let remove = (still_here as usize).min(self.lines.len());
                self.lines.drain_front(remove);
                self.front_seq += remove as u64;
                let counter = if outcome == Outcome::Sent {
                    &self.stats.points_sent
                } else {
                    &self.stats.points_failed
                };
                counter.inc_by(batch.points as u64);
            }
        }
        self.stats.points_buffered.set(self.lines.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: std::ops::Range<u32>) -> Vec<String> {
        r.map(|i| format!("m v={i}i")).collect()
    }

    fn body(b: &Batch) -> String {
        String::from_utf8(b.body.clone()).unwrap()
    }

    fn accounted(s: &Stats, buf: &Buffer) -> u64 {
        s.points_sent.get() + s.points_failed.get() + s.points_dropped.get() + buf.len() as u64
    }

    #[test]
    fn batches_in_order_and_removes_on_success() {
        let s = Stats::default();
        let mut b = Buffer::new(100, s.clone());
        b.push(lines(0..5));
        let batch = b.take_batch(3).unwrap();
        assert_eq!(body(&batch), "m v=0i\nm v=1i\nm v=2i\n");
        b.settle(&batch, Outcome::Sent);
        assert_eq!(b.len(), 2);
        assert_eq!(s.points_sent.get(), 3);
        assert_eq!(s.points_buffered.get(), 2);
        let batch = b.take_batch(3).unwrap();
        assert_eq!(body(&batch), "m v=3i\nm v=4i\n");
    }

    #[test]
    fn retry_keeps_lines_and_rejected_are_counted_failed() {
        let s = Stats::default();
        let mut b = Buffer::new(100, s.clone());
        b.push(lines(0..4));
        let batch = b.take_batch(2).unwrap();
        b.settle(&batch, Outcome::Retry);
        assert_eq!(b.len(), 4);
        let batch = b.take_batch(2).unwrap();
        assert_eq!(body(&batch), "m v=0i\nm v=1i\n");
        b.settle(&batch, Outcome::Rejected);
        assert_eq!(s.points_failed.get(), 2);
        assert_eq!(b.len(), 2);
        assert_eq!(accounted(&s, &b), s.points_collected.get());
    }

    #[test]
    fn full_buffer_drops_oldest_first() {
        let s = Stats::default();
        let mut b = Buffer::new(3, s.clone());
        b.push(lines(0..5));
        assert_eq!(b.len(), 3);
        assert_eq!(s.points_dropped.get(), 2);
        let batch = b.take_batch(10).unwrap();
        assert_eq!(body(&batch), "m v=2i\nm v=3i\nm v=4i\n");
    }

    #[test]
    fn the_ring_wraps_and_keeps_lines_whole() {
        let s = Stats::default();
        let mut b = Buffer::new(5, s.clone());
        for round in 0..50u32 {
            // Lines of varying length so the byte ring wraps at odd places.
            b.push([format!(
                "m,r={round} v=\"{}\" 1",
                "x".repeat(round as usize % 7)
            )]);
        }
        let batch = b.take_batch(100).unwrap();
        let text = String::from_utf8(batch.body.clone()).unwrap();
        let expected: String = (45..50u32)
            .map(|r| format!("m,r={r} v=\"{}\" 1\n", "x".repeat(r as usize % 7)))
            .collect();
        assert_eq!(text, expected);
        b.settle(&batch, Outcome::Sent);
        assert!(b.is_empty());
        assert_eq!(s.points_dropped.get(), 45);
    }

    #[test]
    fn drops_during_a_request_are_counted_once() {
        // Delivered anyway: not dropped.
        let s = Stats::default();
        let mut b = Buffer::new(4, s.clone());
        b.push(lines(0..4));
        let batch = b.take_batch(2).unwrap();
        b.push(lines(4..7)); // drops 0, 1 (in flight) and 2
        assert_eq!(s.points_dropped.get(), 1);
        b.settle(&batch, Outcome::Sent);
        assert_eq!(s.points_sent.get(), 2);
        assert_eq!(s.points_dropped.get(), 1);
        assert_eq!(b.len(), 4);
        assert_eq!(
            body(&b.take_batch(10).unwrap()),
            "m v=3i\nm v=4i\nm v=5i\nm v=6i\n"
        );
        assert_eq!(accounted(&s, &b), 7);

        // Not delivered: dropped.
        let s = Stats::default();
        let mut b = Buffer::new(4, s.clone());
        b.push(lines(0..4));
        let batch = b.take_batch(2).unwrap();
        b.push(lines(4..7));
        b.settle(&batch, Outcome::Retry);
        assert_eq!(s.points_dropped.get(), 3);
        assert_eq!(accounted(&s, &b), 7);
    }

    #[test]
    fn success_after_partial_drop_removes_only_remaining_batch_lines() {
        let s = Stats::default();
        let mut b = Buffer::new(4, s.clone());
        b.push(lines(0..4));
        let batch = b.take_batch(3).unwrap(); // 0,1,2
        b.push(lines(4..5)); // drops 0
        b.settle(&batch, Outcome::Sent);
        // 1 and 2 removed; 3 and 4 left.
        assert_eq!(body(&b.take_batch(10).unwrap()), "m v=3i\nm v=4i\n");
        assert_eq!(s.points_sent.get(), 3);
        assert_eq!(s.points_dropped.get(), 0);
    }
}
