//! Cuts a byte stream into lines, keeping each line's file offset.
//!
//! A line split across writes (or reads) is held back until its newline arrives, so it is
//! shipped once, whole. A line longer than `max_line_bytes` keeps only its first
//! `max_line_bytes` bytes (memory stays bounded) and is shipped marked as truncated when its
//! newline arrives. A trailing `\r` (CRLF files) is removed with the newline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes all files hold back for unfinished lines and for multi-line events being
/// joined ([`super::multiline`]), which are not yet messages and so not in
/// `queue_max_kbytes`: at most `cap` in total (each file also at most `max_line_bytes`).
/// Past it, an unfinished line or event keeps what it holds and is shipped cut and marked
/// like a long line, so memory stays bounded however many files end mid-line or mid-event.
/// Charged once per read that ends mid-line, never per complete line (a joined event: once
/// per line joined, only for entries with `multiline`).
#[derive(Debug, Clone)]
pub struct HeldBack {
    held: Arc<AtomicUsize>,
    cap: usize,
}

impl HeldBack {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        HeldBack {
            held: Arc::new(AtomicUsize::new(0)),
            cap,
        }
    }

    /// Bytes held right now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes up to `want` bytes; returns how many were granted.
    pub(super) fn take(&self, want: usize) -> usize {
        let mut granted = 0;
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                granted = want.min(self.cap.saturating_sub(held));
                Some(held + granted)
            });
        granted
    }

    pub(super) fn give_back(&self, n: usize) {
        if n > 0 {
            self.held.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// Capacity kept for unfinished lines between lines.
const KEEP_PARTIAL_BYTES: usize = 16 * 1024;

/// One complete line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// Byte offset just past the newline: where reading resumes after this line.
    pub end: u64,
    /// The line without its newline, at most `max_line_bytes` long.
    pub bytes: &'a [u8],
    /// The line was longer than `max_line_bytes` and was cut.
    pub truncated: bool,
}

/// Stateful splitter for one file.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    /// Bytes of the unfinished line (at most `max`).
    partial: Vec<u8>,
    /// Offset of the unfinished line's first byte.
    line_start: u64,
    /// Offset of the next byte to be pushed.
    pos: u64,
    truncated: bool,
    /// Shared bound on unfinished lines; `partial.len()` bytes of it are this file's.
    budget: Option<HeldBack>,
}

impl Drop for LineSplitter {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.partial.len());
        }
    }
}

impl LineSplitter {
    /// Starts at file offset `offset` (a line start).
    pub fn new(offset: u64, max_line_bytes: usize) -> Self {
        LineSplitter {
            max: max_line_bytes.max(1),
            partial: Vec::new(),
            line_start: offset,
            pos: offset,
            truncated: false,
            budget: None,
        }
    }

    /// Like [`LineSplitter::new`], its unfinished line counted in `budget`.
    pub fn bounded(offset: u64, max_line_bytes: usize, budget: HeldBack) -> Self {
        let mut s = LineSplitter::new(offset, max_line_bytes);
        s.budget = Some(budget);
        s
    }

    /// Offset of the first byte not yet shipped as part of a complete line.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Offset of the next byte expected.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes held for an unfinished line.
    pub fn pending_len(&self) -> usize {
        self.partial.len()
    }

    /// Pushes the bytes read at [`LineSplitter::position`]; calls `emit` for each line they complete.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(Line<'_>)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(nl) => {
                    let seg = &rest[..nl];
                    let end = self.pos + nl as u64 + 1;
                    if self.partial.is_empty() && !self.truncated {
                        let (bytes, truncated) = cut(strip_cr(seg), self.max);
                        emit(Line {
                            offset: self.line_start,
                            end,
                            bytes,
                            truncated,
                        });
                    } else {
                        self.append(seg);
                        let truncated = self.truncated;
                        let bytes = if truncated {
                            &self.partial[..]
                        } else {
                            strip_cr(&self.partial)
                        };
                        emit(Line {
                            offset: self.line_start,
                            end,
                            bytes,
                            truncated,
                        });
                        self.clear_partial();
                    }
                    self.pos = end;
                    self.line_start = end;
                    rest = &rest[nl + 1..];
                }
                None => {
                    self.append(rest);
                    self.pos += rest.len() as u64;
                    rest = &[];
                }
            }
        }
    }

    /// The file will not grow any more (renamed away and drained, or deleted): ship the
    /// unfinished last line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(Line<'_>)) {
        if self.partial.is_empty() && !self.truncated {
            return;
        }
        emit(Line {
            offset: self.line_start,
            end: self.pos,
            bytes: &self.partial,
            truncated: self.truncated,
        });
        self.clear_partial();
        self.line_start = self.pos;
    }

    /// Forgets everything and restarts at `offset` (after a truncation).
    pub fn reset(&mut self, offset: u64) {
        self.clear_partial();
        self.line_start = offset;
        self.pos = offset;
    }

    /// Forgets the finished line. A long line's buffer is given back, so a file that once
    /// had a 1 MiB line does not hold 1 MiB for as long as it is followed.
    fn clear_partial(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.partial.len());
        }
        self.partial.clear();
        if self.partial.capacity() > KEEP_PARTIAL_BYTES {
            self.partial.shrink_to(KEEP_PARTIAL_BYTES);
        }
        self.truncated = false;
    }

    fn append(&mut self, seg: &[u8]) {
        // Once cut, nothing more is kept: later bytes would leave a gap in the line.
        if self.truncated {
            return;
        }
        let mut room = self.max - self.partial.len();
        if let Some(b) = &self.budget {
            room = b.take(room.min(seg.len()));
        }
        if seg.len() > room {
            self.partial.extend_from_slice(&seg[..room]);
            self.truncated = true;
        } else {
            self.partial.extend_from_slice(seg);
        }
    }
}

fn strip_cr(seg: &[u8]) -> &[u8] {
    seg.strip_suffix(b"\r").unwrap_or(seg)
}

fn cut(seg: &[u8], max: usize) -> (&[u8], bool) {
    if seg.len() > max {
        (&seg[..max], true)
    } else {
        (seg, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<(u64, u64, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| {
                out.push((l.offset, l.end, l.bytes.to_vec(), l.truncated))
            });
        }
        out
    }

    #[test]
    fn lines_split_across_writes_come_out_once_and_whole() {
        let mut s = LineSplitter::new(0, 100);
        let out = run(&mut s, &[b"ab", b"c\nde", b"f\r\n", b"g"]);
        assert_eq!(
            out,
            vec![
                (0, 4, b"abc".to_vec(), false),
                (4, 9, b"def".to_vec(), false)
            ]
        );
        assert_eq!((s.line_start(), s.position(), s.pending_len()), (9, 10, 1));
        let mut tail = Vec::new();
        s.finish(|l| tail.push((l.offset, l.end, l.bytes.to_vec())));
        assert_eq!(tail, vec![(9, 10, b"g".to_vec())]);
    }

    #[test]
    fn long_lines_are_cut_and_memory_stays_bounded() {
        let mut s = LineSplitter::new(10, 4);
        let out = run(&mut s, &[b"abcdefgh\nxy\n", b"0123", b"4567", b"89\nok\n"]);
        assert_eq!(
            out,
            vec![
                (10, 19, b"abcd".to_vec(), true),
                (19, 22, b"xy".to_vec(), false),
                (22, 33, b"0123".to_vec(), true),
                (33, 36, b"ok".to_vec(), false)
            ]
        );
        assert_eq!(s.pending_len(), 0);
    }

    #[test]
    fn unfinished_lines_past_the_shared_budget_are_cut_and_give_it_back() {
        let budget = HeldBack::new(10);
        let mut a = LineSplitter::bounded(0, 100, budget.clone());
        let mut b = LineSplitter::bounded(0, 100, budget.clone());
        assert!(run(&mut a, &[b"abcdefgh"]).is_empty());
        assert_eq!(budget.held(), 8);
        // b's unfinished line gets the 2 bytes left, is cut there and marked
        let out = run(&mut b, &[b"0123", b"456\n"]);
        assert_eq!(out, vec![(0, 8, b"01".to_vec(), true)]);
        assert_eq!(
            budget.held(),
            8,
            "b's line is shipped, its bytes given back"
        );
        drop(a);
        assert_eq!(
            budget.held(),
            0,
            "a file closed mid-line gives its bytes back"
        );
    }

    #[test]
    fn empty_lines_and_invalid_utf8_are_kept() {
        let mut s = LineSplitter::new(0, 100);
        let out = run(&mut s, &[b"\n\xff\xfe\n"]);
        assert_eq!(
            out,
            vec![
                (0, 1, b"".to_vec(), false),
                (1, 4, b"\xff\xfe".to_vec(), false)
            ]
        );
    }
}
