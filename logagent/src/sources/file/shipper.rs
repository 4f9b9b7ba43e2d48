//! Hands a tailer's encoded lines to the sink: takes their room in the in-flight limit,
//! gives each line its [`AckToken`], and waits while the sink's queue is full. It also owns
//! what happens to a line whose delivery failed ([`super::retry`]): the sink only produces
//! and reports.
//!
//! A file's lines reach Kafka in file order even when one of them is refused or fails:
//! - refused when handed over (a topic the producer knows as missing or not authorised):
//!   the line is offered again, waiting 200 ms doubling to 10 s, and nothing after it is
//!   handed over meanwhile; it is never skipped;
//! - failed after it was handed over: the retry produces it again, and the file's next
//!   line waits until the failed one is delivered ([`FileAcks::retrying`]).
//!
//! Either way the file is stalled: counted in `files_stalled`, warned about once per
//! stall, and its tailer gives up its chunk's turn ([`ChunkPool::lend_turn`]) so the other
//! files keep flowing. Nothing waits per line: the success path costs one relaxed load of
//! the file's retry count per line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use service_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::chunks::{Batch, ChunkPool, TurnLoan};
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
    /// The tailers' chunks: a stalled file lends its turn.
    chunks: ChunkPool,
    /// Produces failed lines again; it ends with the sink, so it is never joined.
    _retry_thread: Option<std::thread::JoinHandle<()>>,
}

impl Shipper {
    /// Ships to `sink` within `limit`; `retries` (whose reports `sink` was made with) handles
    /// the deliveries that failed. `chunks` is the pool the tailers read into.
    pub fn new(
        sink: Arc<dyn Sink>,
        limit: InFlightLimit,
        metrics: Arc<Metrics>,
        retries: Retries,
        chunks: ChunkPool,
    ) -> Self {
        let retry_thread = retries.start(Arc::downgrade(&sink));
        Shipper {
            sink,
            limit,
            metrics,
            chunks,
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
                // A line of this file failed and waits for its retry: the later ones wait
                // behind it. Set from the delivery thread, so a line or two handed over
                // before the report arrived may already be on their way.
                if acks.retrying()
                    && let Err(Cancelled) = self.wait_for_retries(acks, to, cancel).await
                {
                    limit.release(held);
                    return Err(Cancelled);
                }
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

    /// Waits until no line of the file awaits its retry.
    async fn wait_for_retries(
        &self,
        acks: &FileAcks,
        to: Destination<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let _stall = Stall::begin(self, to, "a line failed and waits to be produced again");
        // Polled: the retry waits at least 200 ms a round, and this is one wait per stall,
        // not per line.
        let mut poll = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        while acks.retrying() {
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(poll.next_delay()) => {}
            }
        }
        Ok(())
    }

    /// Hands one line to the sink, waiting while its queue is full and while it is refused.
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
        let mut stall: Option<Stall<'_>> = None;
        loop {
            let pause = match self
                .sink
                .try_send(to.topic, to.key, payload, read_at_ms, token)
            {
                Ok(()) => return Ok(()),
                // Broken: the agent is stopping because of it; hold the line until then.
                Err(SendError::Full(t) | SendError::Broken(t)) => {
                    token = t;
                    backoff
                        .get_or_insert_with(|| {
                            Backoff::new(Duration::from_millis(1), Duration::from_millis(50))
                        })
                        .next_delay()
                }
                Err(SendError::Rejected(t, why)) => {
                    // A topic missing or not authorised (yet): skipping the line would lose
                    // it and passing it would reorder the file, so the file waits on it,
                    // as the retry of a failed delivery does.
                    token = t;
                    if stall.is_none() {
                        self.metrics.lines_failed.inc();
                        stall = Some(Stall::begin(
                            self,
                            to,
                            &format!("Kafka refused a line for topic {}: {why}", to.topic),
                        ));
                        backoff = Some(Backoff::new(REFUSED_FIRST_WAIT, REFUSED_LONGEST_WAIT));
                    }
                    backoff
                        .get_or_insert_with(|| {
                            Backoff::new(REFUSED_FIRST_WAIT, REFUSED_LONGEST_WAIT)
                        })
                        .next_delay()
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    token.abandon();
                    return Err(Cancelled);
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The first wait after the producer refused a line, as for a failed delivery.
const REFUSED_FIRST_WAIT: Duration = Duration::from_millis(200);
/// The longest: a topic created or authorised later is found within this.
const REFUSED_LONGEST_WAIT: Duration = Duration::from_secs(10);

/// A file whose shipping waits: counted in `files_stalled` and warned about once while it
/// lasts; its tailer's chunk turn is lent to the other files.
struct Stall<'a> {
    metrics: &'a Metrics,
    path: &'a Path,
    _loan: TurnLoan,
}

impl<'a> Stall<'a> {
    fn begin(shipper: &'a Shipper, to: Destination<'a>, why: &str) -> Self {
        log::warn!(
            "{}: shipping paused: {why}; the file's later lines wait behind it (nothing is \
             skipped), trying again up to every {}s",
            to.path.display(),
            REFUSED_LONGEST_WAIT.as_secs()
        );
        shipper.metrics.files_stalled.inc();
        Stall {
            metrics: &shipper.metrics,
            path: to.path,
            _loan: shipper.chunks.lend_turn(),
        }
    }
}

impl Drop for Stall<'_> {
    fn drop(&mut self) {
        self.metrics.files_stalled.dec();
        log::info!("{}: shipping resumed", self.path.display());
    }
}
