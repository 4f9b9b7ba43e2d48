//! Hands a tailer's encoded lines to the sink: takes their room in the in-flight limit,
//! gives each line its [`AckToken`], and waits while the sink's queue is full. It also owns
//! what happens to a line whose delivery failed ([`super::retry`]): the sink only produces
//! and reports.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use service_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::chunks::Batch;
use super::retry::Retries;
use crate::ack::{AckToken, FileAcks};
use crate::checkpoint::FileProgress;
use crate::in_flight::{Held, InFlightLimit};
use crate::metrics::Metrics;
use crate::sinks::{SendError, Sink};

/// Shipping stopped because the tailer was asked to stop.
#[derive(Debug)]
pub struct Cancelled;

/// Where one file's messages go.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// Kafka topic.
    pub topic: &'a str,
    /// Message key.
    pub key: &'a [u8],
    /// The file, for the log.
    pub path: &'a Path,
}

/// The one way from the tailers to the sink.
pub struct Shipper {
    sink: Arc<dyn Sink>,
    limit: InFlightLimit,
    metrics: Arc<Metrics>,
    /// Produces failed lines again; it ends with the sink, so it is never joined.
    _retry_thread: Option<std::thread::JoinHandle<()>>,
}

impl Shipper {
    /// Ships to `sink` within `limit`; `retries` (whose reports `sink` was made with) handles
    /// the deliveries that failed.
    pub fn new(
        sink: Arc<dyn Sink>,
        limit: InFlightLimit,
        metrics: Arc<Metrics>,
        retries: Retries,
    ) -> Self {
        let retry_thread = retries.start(Arc::downgrade(&sink));
        Shipper {
            sink,
            limit,
            metrics,
            _retry_thread: retry_thread,
        }
    }

    /// Where the acknowledgements of the lines of the file read with `progress` settle.
    pub fn acks_for(&self, progress: Arc<FileProgress>) -> Arc<FileAcks> {
        FileAcks::new(progress, self.limit.clone())
    }

    /// Hands every line of `batch` to the sink, waiting for room in the in-flight limit.
    pub async fn ship(
        &self,
        acks: &Arc<FileAcks>,
        to: Destination<'_>,
        batch: &Batch,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        if batch.cut > 0 {
            self.metrics.lines_truncated.inc_by(batch.cut);
        }
        let limit = &self.limit;
        let mut rest = &batch.lines[..];
        while !rest.is_empty() {
            // Take permits for as many lines as fit at once: one wait per group, not per line.
            let mut want = Held::default();
            let mut n = 0;
            for &(_, _, len) in rest {
                let charge = limit.charge(len);
                if n > 0
                    && (want.lines + 1 > limit.max_lines()
                        || want.bytes + charge > limit.max_bytes())
                {
                    break;
                }
                want.lines += 1;
                want.bytes += charge;
                n += 1;
            }
            let mut held = tokio::select! {
                h = limit.acquire(want) => h,
                _ = cancel.cancelled() => return Err(Cancelled),
            };
            let (group, tail) = rest.split_at(n);
            rest = tail;
            for &(end, start, len) in group {
                let payload = &batch.bytes[start..start + len];
                let charged = limit.charge(len).min(held.bytes);
                held.lines -= 1;
                held.bytes -= charged;
                self.metrics.lines_read.inc();
                let token = AckToken::new(acks, end, charged);
                if let Err(Cancelled) = self
                    .hand_over(to, payload, batch.read_at_ms, token, cancel)
                    .await
                {
                    limit.release(held);
                    return Err(Cancelled);
                }
            }
            limit.release(held);
        }
        Ok(())
    }

    /// Hands one line to the sink, waiting while its queue is full.
    async fn hand_over(
        &self,
        to: Destination<'_>,
        payload: &[u8],
        read_at_ms: i64,
        mut token: AckToken,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        // The producer's queue is full only if its limits were set below ours: back off so
        // a hundred waiting tailers do not spin (the jitter keeps them out of step). Made on
        // the first refusal only, so that a line the sink takes at once costs nothing.
        let mut backoff: Option<Backoff> = None;
        loop {
            match self
                .sink
                .try_send(to.topic, to.key, payload, read_at_ms, token)
            {
                Ok(()) => return Ok(()),
                // Broken: the agent is stopping because of it; hold the line until then.
                Err(SendError::Full(t) | SendError::Broken(t)) => {
                    token = t;
                    let pause = backoff
                        .get_or_insert_with(|| {
                            Backoff::new(Duration::from_millis(1), Duration::from_millis(50))
                        })
                        .next_delay();
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            token.abandon();
                            return Err(Cancelled);
                        }
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(SendError::Rejected(t, why)) => {
                    // Permanent: retrying cannot help, and holding the file back would stop
                    // it forever. Counted and logged, then passed.
                    log::error!(
                        "{}: Kafka refused a line for topic {}: {why}; skipping it",
                        to.path.display(),
                        to.topic
                    );
                    self.metrics.lines_failed.inc();
                    t.ack();
                    return Ok(());
                }
            }
        }
    }
}
