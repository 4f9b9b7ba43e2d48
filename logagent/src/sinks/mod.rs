//! Where encoded lines go. One implementation per file: [`kafka`].

pub mod kafka;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::checkpoint::FileProgress;

/// Carried with a line through the sink; completing it moves the file's checkpoint.
#[derive(Debug)]
pub struct AckToken {
    /// The file the line came from.
    pub progress: Arc<FileProgress>,
    /// The line's sequence number in that file (from [`FileProgress::register`]).
    pub seq: u64,
    /// Bytes charged to the in-flight limit for this line.
    pub charged: usize,
}

/// A line the sink could not take right now.
#[derive(Debug)]
pub enum SendError {
    /// The sink's queue is full; try again shortly with the same token.
    Full(AckToken),
    /// The sink refused the line for good (for example an invalid topic).
    Rejected(AckToken, String),
    /// The sink can deliver nothing any more (a fatal producer error): keep the line
    /// unacknowledged; the agent stops and a restart re-sends it from the checkpoint.
    Broken(AckToken),
}

/// Why the sink could not be created or flushed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The producer could not be created from the configuration.
    #[error(
        "cannot create the Kafka producer for brokers {brokers:?}: {source}; check [kafka] in the local config"
    )]
    Create {
        /// The configured brokers.
        brokers: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Not everything was acknowledged before the timeout.
    #[error(
        "Kafka did not acknowledge {in_flight} messages within {timeout:?}; they are re-sent from the checkpoint on the next start"
    )]
    Flush {
        /// Messages still unacknowledged.
        in_flight: i32,
        /// How long we waited.
        timeout: Duration,
    },
    /// The producer hit a fatal error and can deliver nothing any more.
    #[error(
        "the Kafka producer failed for good: {reason}; the agent stopped so that a restart \
         begins with a new producer, and re-sends from the checkpoints every line Kafka did \
         not acknowledge (run it under a supervisor that restarts it, e.g. systemd \
         Restart=on-failure)"
    )]
    Broken {
        /// librdkafka's description of the fatal error.
        reason: String,
    },
}

/// A destination for encoded lines that acknowledges each one asynchronously.
pub trait Sink: Send + Sync {
    /// Hands one message, read at `timestamp_ms` (Unix milliseconds), to the sink without
    /// blocking. The token is completed (and the in-flight permit returned) once the message
    /// is durably stored.
    fn try_send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: i64,
        ack: AckToken,
    ) -> Result<(), SendError>;

    /// Waits until everything handed over is acknowledged, up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;

    /// Why the sink can deliver nothing any more, once that happened (a fatal producer
    /// error); `None` while it works or waits for a broker.
    fn broken(&self) -> Option<String> {
        None
    }
}

/// Bounds what is read but not yet acknowledged: `[kafka] chan_size` lines and
/// `[kafka] queue_max_kbytes` of message bytes. Tailers take permits for each line before
/// sending, the sink gives them back on acknowledgement. When the broker is down the permits
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
