//! The driver: one task that sends the buffer's oldest points, retries with backoff while
//! InfluxDB is away, and flushes on shutdown.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::buffer::{Buffer, Outcome};
use super::config::InfluxConfig;
use super::service::{Service, WriteError};
use crate::stats::Stats;
use service_kit::backoff::Backoff;
use service_kit::readiness::Condition;

/// What the final flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Points still buffered when the flush gave up (0 when everything went out).
    pub undelivered: usize,
}

/// Handle on the running sink: push lines in, shut it down.
#[derive(Debug)]
pub struct InfluxSink {
    buffer: Arc<Mutex<Buffer>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
    task: JoinHandle<FlushReport>,
}

fn lock(b: &Mutex<Buffer>) -> MutexGuard<'_, Buffer> {
    // The buffer stays consistent between statements; a panic elsewhere must not stop sending.
    b.lock().unwrap_or_else(|e| e.into_inner())
}

impl InfluxSink {
    /// Start the writer task (needs a tokio runtime). `Err` is a message for `[influxdb]`.
    /// `ready` (`/ready`'s `influxdb` condition) follows each write's outcome: ready once
    /// InfluxDB answered a write (or the database creation), not ready while writes fail
    /// for want of InfluxDB (unreachable, 5xx, credentials refused, database missing). A
    /// write goes out every collection interval, so no ping is needed.
    pub fn start(config: &InfluxConfig, stats: Stats, ready: Condition) -> Result<Self, String> {
        let service = Service::new(config)?;
        let buffer = Arc::new(Mutex::new(Buffer::new(config.buffer, stats.clone())));
        let notify = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let driver = Driver {
            service,
            buffer: Arc::clone(&buffer),
            notify: Arc::clone(&notify),
            stop: stop.clone(),
            batch: config.batch,
            max_backoff: config.max_backoff,
            flush_timeout: config.flush_timeout,
            stats,
            last_error: None,
            ready,
        };
        let task = tokio::spawn(driver.run());
        Ok(InfluxSink {
            buffer,
            notify,
            stop,
            task,
        })
    }

    /// Queue lines for sending (drops the oldest beyond the bound).
    pub fn push(&self, lines: Vec<String>) {
        self.sender().push(lines);
    }

    /// A handle that queues lines from any thread.
    pub fn sender(&self) -> InfluxSender {
        InfluxSender {
            buffer: Arc::clone(&self.buffer),
            notify: Arc::clone(&self.notify),
        }
    }

    /// Points waiting.
    pub fn buffered(&self) -> usize {
        lock(&self.buffer).len()
    }

    /// Stop: deliver what is buffered within `flush_timeout`, then return what is left.
    pub async fn shutdown(self) -> FlushReport {
        self.stop.cancel();
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                log::error!("the InfluxDB writer task failed: {e}");
                FlushReport {
                    undelivered: lock(&self.buffer).len(),
                }
            }
        }
    }
}

/// Queues lines into a running [`InfluxSink`] from any thread (the collection thread).
#[derive(Debug, Clone)]
pub struct InfluxSender {
    buffer: Arc<Mutex<Buffer>>,
    notify: Arc<Notify>,
}

impl InfluxSender {
    /// Queue lines for sending (drops the oldest beyond the bound) and wake the writer.
    pub fn push(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        lock(&self.buffer).push(lines);
        self.notify.notify_one();
    }
}

struct Driver {
    service: Service,
    buffer: Arc<Mutex<Buffer>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
    batch: usize,
    max_backoff: Duration,
    flush_timeout: Duration,
    stats: Stats,
    /// Kind of the last failure and when it was last logged, to log once per change (and a
    /// reminder a minute) instead of once per retry.
    last_error: Option<(&'static str, Instant)>,
    /// `/ready`'s `influxdb` condition.
    ready: Condition,
}

impl Driver {
    async fn run(mut self) -> FlushReport {
        if self.service.creates_database() {
            match self.service.create_database().await {
                Ok(()) => {
                    self.ready.set_ready();
                    log::debug!("database ready on {}", self.service.address())
                }
                Err(e) => self.report_error(&e),
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(500), self.max_backoff);
        loop {
            let taken = lock(&self.buffer).take_batch(self.batch);
            let Some(batch) = taken else {
                tokio::select! {
                    _ = self.notify.notified() => continue,
                    _ = self.stop.cancelled() => break,
                }
            };
            let result = self.service.write(&batch.body, batch.points).await;
            match result {
                Ok(()) => {
                    lock(&self.buffer).settle(&batch, Outcome::Sent);
                    backoff.reset();
                    self.recovered();
                }
                Err(e) if !e.retryable() => {
                    // InfluxDB answered: it is reachable, the batch was at fault.
                    self.ready.set_ready();
                    lock(&self.buffer).settle(&batch, Outcome::Rejected);
                    self.stats.write_errors.inc();
                    log::error!("{e}");
                }
                Err(e) => {
                    lock(&self.buffer).settle(&batch, Outcome::Retry);
                    self.stats.write_errors.inc();
                    self.report_error(&e);
                    if matches!(e, WriteError::DatabaseNotFound { .. })
                        && self.service.creates_database()
                        && let Err(e) = self.service.create_database().await
                    {
                        self.report_error(&e);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = self.stop.cancelled() => break,
                    }
                }
            }
        }
        self.flush().await
    }

    /// Keep sending until empty or `flush_timeout` runs out.
    async fn flush(&mut self) -> FlushReport {
        let deadline = tokio::time::Instant::now() + self.flush_timeout;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            let taken = lock(&self.buffer).take_batch(self.batch);
            let Some(batch) = taken else { break };
            let sent =
                tokio::time::timeout_at(deadline, self.service.write(&batch.body, batch.points))
                    .await;
            match sent {
                Ok(Ok(())) => lock(&self.buffer).settle(&batch, Outcome::Sent),
                Ok(Err(e)) if !e.retryable() => {
                    lock(&self.buffer).settle(&batch, Outcome::Rejected);
                    log::error!("{e}");
                }
                Ok(Err(e)) => {
                    lock(&self.buffer).settle(&batch, Outcome::Retry);
                    self.stats.write_errors.inc();
                    self.report_error(&e);
                    let wake = tokio::time::Instant::now() + backoff.next_delay();
                    if wake >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(wake).await;
                }
                Err(_elapsed) => {
                    lock(&self.buffer).settle(&batch, Outcome::Retry);
                    break;
                }
            }
        }
        let undelivered = lock(&self.buffer).len();
        if undelivered > 0 {
            log::warn!(
                "stopping with {undelivered} points not delivered to InfluxDB at {} \
                 (flush_timeout {:?} ran out)",
                self.service.address(),
                self.flush_timeout
            );
        } else {
            log::info!(
                "all points delivered to InfluxDB at {}",
                self.service.address()
            );
        }
        FlushReport { undelivered }
    }

    fn report_error(&mut self, e: &WriteError) {
        self.ready.set_not_ready(e.to_string());
        let now = Instant::now();
        let due = match self.last_error {
            Some((kind, at)) => {
                kind != e.kind() || now.duration_since(at) >= Duration::from_secs(60)
            }
            None => true,
        };
        if due {
            let buffered = lock(&self.buffer).len();
            log::warn!("{e} ({buffered} points buffered)");
            self.last_error = Some((e.kind(), now));
        }
    }

    fn recovered(&mut self) {
        self.ready.set_ready();
        if self.last_error.take().is_some() {
            log::info!(
                "InfluxDB at {} accepts writes again; {} points still buffered",
                self.service.address(),
                lock(&self.buffer).len()
            );
        }
    }
}
