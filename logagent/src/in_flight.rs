//! The bound on what is read but not yet acknowledged.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bounds what is read but not yet acknowledged: `[kafka] chan_size` lines and
/// `[kafka] queue_max_kbytes` of message bytes. Permits are taken for each line before it
/// is sent and given back by its [`crate::ack::AckToken`] when it is settled or dropped. When the broker is down the permits
/// run out and reading pauses; nothing is dropped. Waiters wake as soon as acks free room.
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    lines: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_lines: usize,
    max_bytes: usize,
}

/// Permits held for a group of lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Lines.
    pub lines: usize,
    /// Bytes.
    pub bytes: usize,
}

impl InFlightLimit {
    /// A limit of `max_lines` lines and `max_bytes` bytes (each at least 1).
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        let max_lines = max_lines.clamp(1, u32::MAX as usize);
        let max_bytes = max_bytes.clamp(1, u32::MAX as usize);
        InFlightLimit {
            lines: Arc::new(Semaphore::new(max_lines)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_lines,
            max_bytes,
        }
    }

    /// What one message of `len` bytes is charged (a message larger than the whole budget
    /// is charged the whole budget, so it can still be sent alone).
    pub fn charge(&self, len: usize) -> usize {
        len.clamp(1, self.max_bytes)
    }

    /// Waits until `want` fits (clamped to the limits) and holds it until released.
    pub async fn acquire(&self, want: Held) -> Held {
        let lines = want.lines.clamp(1, self.max_lines);
        let bytes = want.bytes.clamp(1, self.max_bytes);
        // The semaphores are never closed, so these only wait.
        if let Ok(p) = self.lines.acquire_many(lines as u32).await {
            p.forget();
        }
        if let Ok(p) = self.bytes.acquire_many(bytes as u32).await {
            p.forget();
        }
        Held { lines, bytes }
    }

    /// Returns permits.
    pub fn release(&self, held: Held) {
        if held.lines > 0 {
            self.lines.add_permits(held.lines);
        }
        if held.bytes > 0 {
            self.bytes.add_permits(held.bytes);
        }
    }

    /// The line limit.
    pub fn max_lines(&self) -> usize {
        self.max_lines
    }

    /// The byte limit.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Lines held right now.
    pub fn held_lines(&self) -> usize {
        self.max_lines
            .saturating_sub(self.lines.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acquire_waits_for_room_and_release_makes_it() {
        let limit = InFlightLimit::new(3, 100);
        let a = limit
            .acquire(Held {
                lines: 2,
                bytes: 60,
            })
            .await;
        assert_eq!(limit.held_lines(), 2);
        let l2 = limit.clone();
        let waiter = tokio::spawn(async move {
            l2.acquire(Held {
                lines: 1,
                bytes: 50,
            })
            .await
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "50 bytes do not fit next to 60 of 100"
        );
        limit.release(a);
        assert_eq!(
            waiter.await.unwrap(),
            Held {
                lines: 1,
                bytes: 50
            }
        );
        assert_eq!(limit.charge(1000), 100);
    }
}
