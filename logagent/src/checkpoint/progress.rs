//! One file's read progress: what was handed to the sink, what Kafka acknowledged, and
//! whether a tailer is reading it.

use std::fs::File;

use parking_lot::Mutex;
use service_kit::ack_window::AckWindow;

use crate::identity::FileIdentity;

/// Which file for which topic: the same file collected into two topics has two checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProgressKey {
    /// Kafka topic.
    pub topic: String,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl ProgressKey {
    /// The key of the file with `identity`, read for `topic`.
    pub fn of(topic: &str, identity: &FileIdentity) -> Self {
        ProgressKey {
            topic: topic.to_string(),
            dev: identity.dev,
            ino: identity.ino,
        }
    }
}

/// One file's read progress, shared by its tailer and the acknowledgements of its lines.
#[derive(Debug)]
pub struct FileProgress {
    pub(super) key: ProgressKey,
    path: String,
    inner: Mutex<ProgressInner>,
}

#[derive(Debug)]
struct ProgressInner {
    identity: FileIdentity,
    /// Positions are end offsets: the committable position is the byte after the last line
    /// of the acknowledged prefix, which is what the checkpoint stores.
    window: AckWindow,
    sent: u64,
    claimed: bool,
    size: u64,
}

/// What [`FileProgress::reclaim`] found.
pub(super) enum Reclaim {
    /// A tailer reads it.
    Busy,
    /// Claimed again; read on from this offset.
    Resume(u64),
    /// Released, settled, and no longer the same content: start afresh.
    Changed,
}

impl FileProgress {
    pub(super) fn new(key: ProgressKey, path: String, identity: FileIdentity, offset: u64) -> Self {
        FileProgress {
            key,
            path,
            inner: Mutex::new(ProgressInner {
                identity,
                window: AckWindow::new(offset),
                sent: offset,
                claimed: true,
                size: offset,
            }),
        }
    }

    /// Records a line that is about to be sent and ends at `end_offset`; returns its
    /// sequence number for [`FileProgress::ack`].
    pub fn register(&self, end_offset: u64) -> u64 {
        let mut g = self.inner.lock();
        let seq = g.window.register(end_offset);
        g.sent = end_offset;
        seq
    }

    /// Kafka acknowledged line `seq`: advance the committed offset over the acknowledged
    /// prefix.
    pub fn ack(&self, seq: u64) {
        self.inner.lock().window.ack(seq);
    }

    /// Takes back line `seq` that was registered but never handed to the sink (shutdown
    /// while the sink was full). Only the last registered line can be taken back.
    pub fn abandon(&self, seq: u64) {
        let mut g = self.inner.lock();
        if g.window.abandon_last(seq) {
            g.sent = g.window.last_position();
        }
    }

    /// The identity and committed offset to persist.
    pub fn committed(&self) -> (FileIdentity, u64) {
        let g = self.inner.lock();
        (g.identity, g.window.committable())
    }

    /// Byte after the last line handed to the sink.
    pub fn sent(&self) -> u64 {
        self.inner.lock().sent
    }

    /// Lines sent but not yet committed.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().window.len()
    }

    /// Claims the file again for a new tailer when no tailer reads it. It resumes where the
    /// last one stopped when the content is the same, or when lines are still in flight:
    /// a changed file is then noticed as a truncation by the tailer, which waits for those
    /// lines before restarting at 0.
    pub(super) fn reclaim(&self, file: &File, size: u64) -> Reclaim {
        let mut g = self.inner.lock();
        if g.claimed {
            return Reclaim::Busy;
        }
        let same = g.identity.head_matches(file).unwrap_or(false) && size >= g.sent;
        if same || !g.window.is_empty() {
            g.claimed = true;
            Reclaim::Resume(g.sent)
        } else {
            Reclaim::Changed
        }
    }

    /// The tailer stopped reading.
    pub(super) fn release(&self) {
        self.inner.lock().claimed = false;
    }

    /// Nobody reads the file and nothing of it is in flight: its progress can be dropped.
    pub(super) fn is_settled(&self) -> bool {
        let g = self.inner.lock();
        !g.claimed && g.window.is_empty()
    }

    /// Updates the identity (the fingerprint grows as the file does) and the last seen size.
    pub fn observe(&self, identity: FileIdentity, size: u64) {
        let mut g = self.inner.lock();
        g.identity = identity;
        g.size = size;
    }

    /// The file was truncated (or replaced) and every earlier line is committed: restart at 0.
    pub fn reset(&self, identity: FileIdentity) {
        let mut g = self.inner.lock();
        g.identity = identity;
        // The caller waited until nothing is in flight, so this only moves the committed
        // offset; were a line still outstanding, its late acknowledgement is ignored instead
        // of carrying the new content's checkpoint to an offset of the old content.
        g.window.reset(0);
        g.sent = 0;
        g.size = 0;
    }

    /// Bytes in the file not yet acknowledged (for the lag metric).
    pub fn lag_bytes(&self) -> u64 {
        let g = self.inner.lock();
        g.size.saturating_sub(g.window.committable())
    }

    /// Path of the file (informational).
    pub fn path(&self) -> &str {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(offset: u64) -> FileProgress {
        let id = FileIdentity {
            dev: 1,
            ino: 2,
            fingerprint_len: 0,
            fingerprint: 0,
        };
        FileProgress::new(
            ProgressKey {
                topic: "t".into(),
                dev: 1,
                ino: 2,
            },
            "/p".into(),
            id,
            offset,
        )
    }

    #[test]
    fn out_of_order_acks_commit_only_the_acknowledged_prefix() {
        let p = progress(100);
        let a = p.register(110);
        let b = p.register(120);
        let c = p.register(130);
        p.ack(c);
        assert_eq!(p.committed().1, 100, "a and b are still pending");
        p.ack(a);
        assert_eq!(p.committed().1, 110);
        p.ack(a); // duplicate callbacks are harmless
        p.ack(b);
        assert_eq!((p.committed().1, p.in_flight(), p.sent()), (130, 0, 130));
    }
}
