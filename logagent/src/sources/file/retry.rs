//! What becomes of a line the sink accepted but could not deliver: the retry policy, owned
//! by the [`Shipper`](super::shipper::Shipper) (which owns the in-flight limit too), so that
//! the sink only produces and reports.
//!
//! - Retriable (the producer was fenced, a topic not authorised yet): counted in
//!   `lines_failed` and produced again through the same sink, so a line is never silently
//!   dropped. Failures come in bursts, so the retry waits once per round, not per line: the
//!   first failure starts a [`Backoff`] wait (200 ms, doubling up to 10 s while failures
//!   keep coming), everything that failed meanwhile is produced again in the order it
//!   failed, and a quiet spell as long as the last wait starts the next burst at 200 ms.
//!   The lines of a file fail in the order they were produced, and one queue and one thread
//!   keep that order: retrying adds no reordering of its own. A failed line also holds its
//!   file's later lines back ([`AckToken::awaiting_retry`]) until it is delivered, so lines
//!   read after the failure was reported cannot overtake it.
//! - Too large for the broker: retrying cannot succeed and would hold the file's checkpoint
//!   back forever, so it is counted, logged as an error naming the setting to change, and
//!   acknowledged (skipped).
//! - The sink is broken (a fatal producer error): counted and left unacknowledged (its
//!   permits return); the agent stops and a restart re-sends it from the checkpoint.
//!
//! The reports come on the sink's delivery thread, which must not block: they only count,
//! log the permanent cases and queue. A plain thread re-produces, since the sink's
//! `try_send` does not block either. Nothing here is on the path of a delivered line.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use service_kit::backoff::Backoff;

use crate::ack::AckToken;
use crate::metrics::Metrics;
use crate::sinks::{DeliveryReports, OwnedMessage, SendError, Sink, Undelivered};

/// The first wait after a failed delivery (the fixed pause the sink used before).
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// The longest wait: a topic refused for minutes is tried again at least this often.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// A line waiting to be produced again.
struct Pending {
    message: OwnedMessage,
    token: AckToken,
    reason: String,
}

/// The retry policy for undelivered lines: made before the sink (which reports into it),
/// started by the shipper once the sink exists.
pub struct Retries {
    reports: Arc<Reports>,
    queue: Receiver<Pending>,
    backoff: Backoff,
}

impl Retries {
    /// Counts failures in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let (tx, queue) = mpsc::channel();
        Retries {
            reports: Arc::new(Reports { metrics, tx }),
            queue,
            backoff: Backoff::new(FIRST_WAIT, LONGEST_WAIT),
        }
    }

    /// The same policy with other waits (for tests).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Where the sink reports failed deliveries.
    pub fn reports(&self) -> Arc<dyn DeliveryReports> {
        Arc::clone(&self.reports) as Arc<dyn DeliveryReports>
    }

    /// Starts producing retriable lines again through `sink`. The thread holds the sink
    /// weakly and ends when the sink (and with it the reporting side) is dropped; lines
    /// still queued then stay unacknowledged and are re-sent after a restart.
    pub(super) fn start(self, sink: Weak<dyn Sink>) -> Option<std::thread::JoinHandle<()>> {
        let Retries {
            reports,
            queue,
            backoff,
        } = self;
        // The reporting side lives in the sink; this handle must not keep the queue open.
        drop(reports);
        let started = std::thread::Builder::new()
            .name("logagent-retry".into())
            .spawn(move || retry_loop(&queue, &sink, backoff));
        match started {
            Ok(handle) => Some(handle),
            Err(e) => {
                // Failed lines then stay unacknowledged (the checkpoint stops before them
                // and a restart re-sends them); the stall warning shows the lines waiting.
                log::error!("cannot start the delivery retry thread: {e}");
                None
            }
        }
    }
}

/// The reporting side, called on the sink's delivery thread.
struct Reports {
    metrics: Arc<Metrics>,
    // std's Sender is Sync: no lock between the delivery thread and the queue.
    tx: Sender<Pending>,
}

impl DeliveryReports for Reports {
    fn undelivered(&self, message: Undelivered) {
        self.metrics.lines_failed.inc();
        match message {
            Undelivered::Retriable {
                message,
                mut token,
                reason,
            } => {
                // Its file's later lines wait until it is delivered (see `Shipper::ship`).
                token.awaiting_retry();
                let pending = Pending {
                    message,
                    token,
                    reason,
                };
                if self.tx.send(pending).is_err() {
                    // The retry thread is gone (shutdown): the line stays unacknowledged, so
                    // the checkpoint does not pass it and the next start re-sends it.
                    log::warn!(
                        "producer is shutting down; the failed line is re-sent after restart"
                    );
                }
            }
            Undelivered::TooLarge {
                topic,
                bytes,
                token,
            } => {
                log::error!(
                    "Kafka refused a {bytes} byte message for topic {topic} as too large; \
                     skipping that line: raise the broker's message.max.bytes (topic \
                     max.message.bytes) above [agent] max_line_bytes plus 1 KiB, or lower \
                     max_line_bytes"
                );
                token.ack();
            }
            // Dropped unacknowledged (its permit returns): the checkpoint stays before this
            // line, and the agent, stopping because of the fatal error, re-sends it after a
            // restart.
            Undelivered::Broken { token } => drop(token),
        }
    }
}

fn retry_loop(queue: &Receiver<Pending>, sink: &Weak<dyn Sink>, mut backoff: Backoff) {
    let mut round: VecDeque<Pending> = VecDeque::new();
    loop {
        if round.is_empty() {
            // A failure within one ceiling of the last round continues the spell (the wait
            // keeps growing); a longer quiet spell ends it.
            let first = match queue.recv_timeout(backoff.ceiling()) {
                Ok(p) => p,
                Err(RecvTimeoutError::Timeout) => {
                    backoff.reset();
                    match queue.recv() {
                        Ok(p) => p,
                        Err(_) => return,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            round.push_back(first);
        }
        // One wait for the whole round, gathering whatever else fails meanwhile.
        let wait = backoff.next_delay();
        let until = Instant::now() + wait;
        loop {
            match queue.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(p) => round.push_back(p),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if let Some(p) = round.front() {
            log::warn!(
                "Kafka did not deliver {} line(s) (topic {}: {}); producing them again",
                round.len(),
                p.message.topic,
                p.reason
            );
        }
        let Some(sink) = sink.upgrade() else { return };
        produce_in_order(&mut round, sink.as_ref());
    }
}

/// Produces the round's lines again, oldest first. A line the sink cannot take now stops
/// the round, and it and the lines after it wait for the next one, so the order holds.
fn produce_in_order(round: &mut VecDeque<Pending>, sink: &dyn Sink) {
    while let Some(p) = round.pop_front() {
        let Pending {
            message: m,
            token,
            reason,
        } = p;
        match sink.try_send(&m.topic, &m.key, &m.payload, m.timestamp_ms, token) {
            Ok(()) => {}
            // Nothing can be produced any more; the line stays unacknowledged (see
            // `Undelivered::Broken`).
            Err(SendError::Broken(token)) => drop(token),
            // The first send of this line was taken, so a refusal now is taken as passing
            // (as before the retry moved here): try again next round.
            Err(SendError::Full(token) | SendError::Rejected(token, _)) => {
                round.push_front(Pending {
                    message: m,
                    token,
                    reason,
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::FileAcks;
    use crate::in_flight::{Held, InFlightLimit};
    use crate::sinks::SinkError;
    use parking_lot::Mutex;

    /// Records what is produced; refuses the first `full` sends as queue-full.
    #[derive(Default)]
    struct Recorder {
        produced: Mutex<Vec<Vec<u8>>>,
        full: Mutex<usize>,
    }

    impl Sink for Recorder {
        fn try_send(
            &self,
            _topic: &str,
            _key: &[u8],
            payload: &[u8],
            _timestamp_ms: i64,
            ack: AckToken,
        ) -> Result<(), SendError> {
            let mut full = self.full.lock();
            if *full > 0 {
                *full -= 1;
                return Err(SendError::Full(ack));
            }
            self.produced.lock().push(payload.to_vec());
            ack.ack();
            Ok(())
        }

        fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn file_acks() -> (tempfile::TempDir, Arc<FileAcks>, InFlightLimit) {
        crate::ack::test_file_acks(100, 1 << 20)
    }

    async fn retriable(acks: &Arc<FileAcks>, limit: &InFlightLimit, n: u64) -> Undelivered {
        let held = limit.acquire(Held { lines: 1, bytes: 1 }).await;
        Undelivered::Retriable {
            message: OwnedMessage {
                topic: "t".into(),
                key: b"k".to_vec(),
                payload: n.to_string().into_bytes(),
                timestamp_ms: 1,
            },
            token: AckToken::new(acks, n, held.bytes),
            reason: "fenced".into(),
        }
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test]
    async fn failed_lines_are_produced_again_in_order_and_then_acknowledged() {
        let (_dir, acks, limit) = file_acks();
        let metrics = Arc::new(Metrics::default());
        let retries = Retries::new(Arc::clone(&metrics)).with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(20),
        ));
        let reports = retries.reports();
        let sink = Arc::new(Recorder::default());
        // The first two re-sends find the queue full: the round stops and resumes in order.
        *sink.full.lock() = 2;
        let weak = Arc::downgrade(&(Arc::clone(&sink) as Arc<dyn Sink>));
        let thread = retries.start(weak).unwrap();

        for n in 1..=50 {
            reports.undelivered(retriable(&acks, &limit, n).await);
        }
        wait_for("every line produced again", || {
            sink.produced.lock().len() == 50
        });
        let expected: Vec<Vec<u8>> = (1..=50u64).map(|n| n.to_string().into_bytes()).collect();
        assert_eq!(*sink.produced.lock(), expected, "in the order they failed");
        assert_eq!(metrics.lines_failed.get(), 50);
        assert_eq!(acks.progress().committed().1, 50);
        assert_eq!(limit.held_lines(), 0, "every permit returned");

        drop(reports);
        drop(sink);
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn too_large_is_skipped_and_broken_is_left_unacknowledged() {
        let (_dir, acks, limit) = file_acks();
        let metrics = Arc::new(Metrics::default());
        let retries = Retries::new(Arc::clone(&metrics));
        let reports = retries.reports();
        limit.acquire(Held { lines: 2, bytes: 2 }).await;
        let too_large = AckToken::new(&acks, 4, 1);
        let undeliverable = AckToken::new(&acks, 8, 1);

        reports.undelivered(Undelivered::TooLarge {
            topic: "t".into(),
            bytes: 9_000_000,
            token: too_large,
        });
        assert_eq!(
            (acks.progress().committed().1, metrics.lines_failed.get()),
            (4, 1),
            "skipped: the checkpoint passes it, the failure is counted"
        );
        reports.undelivered(Undelivered::Broken {
            token: undeliverable,
        });
        assert_eq!(
            (acks.progress().committed().1, metrics.lines_failed.get()),
            (4, 2),
            "left for the restart: the checkpoint stays before it"
        );
        assert_eq!(limit.held_lines(), 0, "both permits returned");
    }

    #[tokio::test]
    async fn the_thread_ends_with_the_sink_and_unsent_lines_stay_unacknowledged() {
        let (_dir, acks, limit) = file_acks();
        let retries = Retries::new(Arc::new(Metrics::default())).with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
        ));
        let reports = retries.reports();
        let sink: Arc<dyn Sink> = Arc::new(Recorder::default());
        let thread = retries.start(Arc::downgrade(&sink)).unwrap();
        drop(sink);
        reports.undelivered(retriable(&acks, &limit, 3).await);
        thread.join().unwrap();
        assert_eq!(acks.progress().committed().1, 0);
        assert_eq!(
            limit.held_lines(),
            0,
            "the dropped token returned its permit"
        );
    }
}
