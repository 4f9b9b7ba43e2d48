//! Joins the lines of one multi-line event (a stack trace, a pretty-printed record) into one
//! message, when the collect entry has a `multiline` section.
//!
//! With `start_pattern`, a line matching it starts a new event and any other line is
//! appended to the event before it, joined with `\n` (Filebeat's `negate: true, match:
//! after`). With `continue_pattern`, a line matching it is appended to the event before it
//! and any other line starts one (Vector's `continue_through`). An event is shipped when the next event starts, when it
//! reached `max_lines`, when no line was added for `timeout_ms` (the last event of a quiet
//! file), or when the file is finished (rotated away, deleted, truncated).
//!
//! Lines of an event not yet shipped are not registered with the checkpoint, so a restart
//! resumes at the event's first line and ships it whole, once.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use super::lines::{HeldBack, Line};
use crate::collect_config::{Multiline, MultilineRule};

/// The event being assembled, in the shape of a [`Line`] that owns its bytes.
struct Event {
    offset: u64,
    end: u64,
    bytes: Vec<u8>,
    lines: usize,
    truncated: bool,
    /// Cut at the byte bound: later lines add nothing, or the event would have a gap.
    full: bool,
    updated: Instant,
}

/// Per-file joiner.
pub struct MultilineJoiner {
    pattern: Regex,
    /// Whether a match continues the event before it (`continue_pattern`) rather than
    /// starting a new one (`start_pattern`).
    match_continues: bool,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    pending: Option<Event>,
    /// The bound shared with every file's unfinished lines; the pending event's bytes are
    /// charged to it.
    budget: Option<HeldBack>,
}

impl Drop for MultilineJoiner {
    fn drop(&mut self) {
        if let (Some(b), Some(e)) = (&self.budget, &self.pending) {
            b.give_back(e.bytes.len());
        }
    }
}

impl MultilineJoiner {
    /// A joiner for `config` (its pattern was checked when the collect config was
    /// validated; `None` if it does not compile after all). Events are cut at `max_bytes`.
    pub fn new(config: &Multiline, max_bytes: usize) -> Option<Self> {
        let (pattern, match_continues) = match config.rule().ok()? {
            MultilineRule::Start(p) => (p, false),
            MultilineRule::Continue(p) => (p, true),
        };
        Some(MultilineJoiner {
            pattern: Regex::new(pattern).ok()?,
            match_continues,
            max_lines: config.max_lines.max(1),
            max_bytes: max_bytes.max(1),
            timeout: Duration::from_millis(config.timeout_ms),
            pending: None,
            budget: None,
        })
    }

    /// Like [`MultilineJoiner::new`], the event being joined counted in `budget` (the bound
    /// on unfinished lines): past it the event is cut and marked.
    pub fn bounded(config: &Multiline, max_bytes: usize, budget: HeldBack) -> Option<Self> {
        let mut j = MultilineJoiner::new(config, max_bytes)?;
        j.budget = Some(budget);
        Some(j)
    }

    /// Adds one line; calls `emit` for an event it completes.
    pub fn push(&mut self, line: Line<'_>, mut emit: impl FnMut(Line<'_>)) {
        let continues = match &self.pending {
            Some(e) => {
                e.lines < self.max_lines
                    && self.pattern.is_match(line.bytes) == self.match_continues
            }
            None => false,
        };
        if let (true, Some(e)) = (continues, self.pending.as_mut()) {
            let wanted = 1 + line.bytes.len();
            let room = if e.full {
                0
            } else {
                grant(
                    &self.budget,
                    self.max_bytes.saturating_sub(e.bytes.len()).min(wanted),
                )
            };
            if wanted <= room {
                e.bytes.push(b'\n');
                e.bytes.extend_from_slice(line.bytes);
            } else {
                let mut joined = Vec::with_capacity(wanted);
                joined.push(b'\n');
                joined.extend_from_slice(line.bytes);
                e.bytes.extend_from_slice(&joined[..room]);
                e.truncated = true;
                e.full = true;
            }
            e.truncated |= line.truncated;
            e.end = line.end;
            e.lines += 1;
            e.updated = Instant::now();
            return;
        }
        self.flush(&mut emit);
        let room = grant(&self.budget, line.bytes.len());
        let full = room < line.bytes.len();
        self.pending = Some(Event {
            offset: line.offset,
            end: line.end,
            bytes: line.bytes[..room].to_vec(),
            lines: 1,
            truncated: line.truncated || full,
            full,
            updated: Instant::now(),
        });
    }

    /// Ships the event being assembled, if any.
    pub fn flush(&mut self, mut emit: impl FnMut(Line<'_>)) {
        if let Some(e) = self.pending.take() {
            if let Some(b) = &self.budget {
                b.give_back(e.bytes.len());
            }
            emit(Line {
                offset: e.offset,
                end: e.end,
                bytes: &e.bytes,
                truncated: e.truncated,
            });
        }
    }

    /// How long until the pending event is due for shipping (zero if it is); `None` when
    /// nothing is pending.
    pub fn due_in(&self) -> Option<Duration> {
        self.pending
            .as_ref()
            .map(|e| self.timeout.saturating_sub(e.updated.elapsed()))
    }
}

/// Up to `want` bytes of room that `budget` grants (all of it without a budget).
fn grant(budget: &Option<HeldBack>, want: usize) -> usize {
    match budget {
        Some(b) => b.take(want),
        None => want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_lines: usize) -> Multiline {
        Multiline {
            start_pattern: Some(r"^\d{4}-".into()),
            continue_pattern: None,
            timeout_ms: 50,
            max_lines,
        }
    }

    /// Feeds `text` line by line (offsets as in a file) and returns the events emitted,
    /// including the flushed last one.
    fn join(j: &mut MultilineJoiner, text: &str) -> Vec<(u64, u64, String, bool)> {
        let mut out = Vec::new();
        let mut at = 0u64;
        for l in text.split_inclusive('\n') {
            let end = at + l.len() as u64;
            let line = Line {
                offset: at,
                end,
                bytes: l.trim_end_matches('\n').as_bytes(),
                truncated: false,
            };
            j.push(line, |e| {
                out.push((
                    e.offset,
                    e.end,
                    String::from_utf8_lossy(e.bytes).into_owned(),
                    e.truncated,
                ))
            });
            at = end;
        }
        j.flush(|e| {
            out.push((
                e.offset,
                e.end,
                String::from_utf8_lossy(e.bytes).into_owned(),
                e.truncated,
            ))
        });
        out
    }

    #[test]
    fn continuation_lines_join_the_event_before_them_with_offsets_spanning_it() {
        let mut j = MultilineJoiner::new(&config(100), 1 << 20).unwrap();
        let text =
            "2026-11-25 ERROR boom\n\tat a.B(C.java:1)\n\tat d.E(F.java:2)\n2026-11-25 INFO ok\n";
        let events = join(&mut j, text);
        assert_eq!(
            events,
            vec![
                (
                    0,
                    58,
                    "2026-11-25 ERROR boom\n\tat a.B(C.java:1)\n\tat d.E(F.java:2)".into(),
                    false
                ),
                (58, 77, "2026-11-25 INFO ok".into(), false),
            ]
        );
    }

    #[test]
    fn with_continue_pattern_matching_lines_join_and_others_start_events() {
        let java = Multiline {
            start_pattern: None,
            continue_pattern: Some(r"^\s+(at |\.\.\. )|^Caused by:".into()),
            timeout_ms: 50,
            max_lines: 100,
        };
        let mut j = MultilineJoiner::new(&java, 1 << 20).unwrap();
        let text = "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
                    \tat a.B.c(B.java:1)\n\
                    Caused by: java.io.IOException: disk\n\
                    \t... 3 more\n\
                    next event\n\
                    and another\n";
        let texts: Vec<String> = join(&mut j, text).into_iter().map(|e| e.2).collect();
        assert_eq!(
            texts,
            vec![
                "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
                 \tat a.B.c(B.java:1)\n\
                 Caused by: java.io.IOException: disk\n\
                 \t... 3 more"
                    .to_string(),
                "next event".into(),
                "and another".into(),
            ],
            "unmatched lines are events of their own, not joined to each other"
        );
    }

    #[test]
    fn a_leading_continuation_max_lines_and_max_bytes_bound_an_event() {
        let mut j = MultilineJoiner::new(&config(2), 1 << 20).unwrap();
        let events = join(&mut j, "orphan\n2026-a\nb\nc\n");
        let texts: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(
            texts,
            vec!["orphan", "2026-a\nb", "c"],
            "a line before any start is its own event; two lines at most"
        );
        let mut j = MultilineJoiner::new(&config(100), 10).unwrap();
        let events = join(&mut j, "2026-abcd\nefghij\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].2, "2026-abcd\n");
        assert!(events[0].3, "cut at max bytes and marked");
        assert_eq!(events[0].1, 17, "but the offset still covers every line");
    }

    #[test]
    fn events_being_joined_share_the_bound_of_unfinished_lines() {
        let budget = HeldBack::new(18);
        let mut a = MultilineJoiner::bounded(&config(100), 1 << 20, budget.clone()).unwrap();
        let mut b = MultilineJoiner::bounded(&config(100), 1 << 20, budget.clone()).unwrap();
        let line = |offset, end, bytes| Line {
            offset,
            end,
            bytes,
            truncated: false,
        };
        let none = |_: Line<'_>| panic!("nothing completes yet");
        let mut shipped = Vec::new();
        // a's event is being joined: its 12 bytes are held in the shared bound
        a.push(line(0, 6, b"2026-"), none);
        a.push(line(6, 13, b"at one"), none);
        assert_eq!(budget.held(), 12);
        // b's event gets the 6 bytes left: cut there and marked, and nothing is added
        // after the cut even once room is back (the event would have a gap)
        b.push(line(0, 6, b"2026-"), none);
        b.push(line(6, 13, b"at two"), none);
        assert_eq!(budget.held(), 18, "the bound is never exceeded");
        a.flush(|e| shipped.push((e.bytes.to_vec(), e.truncated)));
        assert_eq!(
            budget.held(),
            6,
            "a's event is shipped, its bytes given back"
        );
        b.push(line(13, 22, b"at three"), none);
        assert_eq!(budget.held(), 6);
        b.push(line(22, 28, b"2027-"), |e| {
            assert_eq!(
                (e.offset, e.end),
                (0, 22),
                "the offsets still cover every line"
            );
            shipped.push((e.bytes.to_vec(), e.truncated));
        });
        assert_eq!(
            shipped,
            [
                (b"2026-\nat one".to_vec(), false),
                (b"2026-\n".to_vec(), true)
            ]
        );
        assert_eq!(budget.held(), 5, "b's next event holds its first line");
        drop(b);
        assert_eq!(
            budget.held(),
            0,
            "a file closed mid-event gives its bytes back"
        );
    }

    #[test]
    fn a_pending_event_is_due_after_the_timeout() {
        let mut j = MultilineJoiner::new(&config(100), 1 << 20).unwrap();
        assert_eq!(j.due_in(), None);
        j.push(
            Line {
                offset: 0,
                end: 5,
                bytes: b"2026",
                truncated: false,
            },
            |_| panic!("nothing completes yet"),
        );
        assert!(j.due_in().unwrap() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(j.due_in(), Some(Duration::ZERO));
    }
}
