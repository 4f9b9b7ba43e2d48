//! The driver loop: documents in, batches out (`max_docs`, `max_bytes` or `max_wait_ms`,
//! whichever first, or at once when the input is idle and nothing is in flight:
//! `flush_when_idle`), at most `concurrency` requests in flight, each one followed through
//! retries and dead letters until every document in it is settled. Only then are its
//! records acknowledged to the source (which commits their offsets).
//!
//! Back-pressure: when every request slot is busy (Elasticsearch slow, down or refusing),
//! the driver stops reading its input channel; the source sees the channel full and
//! pauses the Kafka consumer. A request keeps its slot while the whole request is retried;
//! documents waiting for a per-item retry give their slot up as long as a budget of
//! `2 x concurrency x max_docs` such documents allows (so one read-only index does not
//! stall the others), and keep it beyond. Memory is bounded by `concurrency` x `max_bytes`,
//! the retry budget and the channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service_kit::backoff::Backoff;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::{BatchConfig, OpType};
use super::encoder::EncodedDoc;
use super::request_builder::{Batch, RequestBuilder};
use super::retry::{ItemAction, RequestAction, item_action, request_action};
use super::service::ElasticsearchService;
use crate::acks::Acknowledge;
use crate::event::DocKey;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::sinks::{DeadLetters, Letter};

/// What the driver and its request tasks share.
pub struct SinkContext {
    /// The HTTP client.
    pub service: Arc<ElasticsearchService>,
    /// Where refused documents go.
    pub dead_letter: Arc<dyn DeadLetters>,
    /// Receives settled records.
    pub acker: Arc<dyn Acknowledge>,
    /// Counters.
    pub metrics: Metrics,
    /// Batching and retry settings.
    pub batch: BatchConfig,
    /// The `_bulk` action the documents were encoded with (a 409 means "already indexed"
    /// under `create`).
    pub op_type: OpType,
    /// Hard stop: abandon in-flight requests (their records stay uncommitted).
    pub cancel: CancellationToken,
}

/// Runs until `input` is closed and everything sent is settled (or `cancel` fires).
pub async fn run(ctx: Arc<SinkContext>, mut input: mpsc::Receiver<EncodedDoc>) {
    let concurrency = ctx.batch.concurrency.max(1);
    let slots = Slots {
        requests: Arc::new(Semaphore::new(concurrency)),
        // Documents waiting for a retry without a request slot: two full rounds of requests.
        retry_budget: Arc::new(Semaphore::new(
            (concurrency * ctx.batch.max_docs.max(1) * 2).min(Semaphore::MAX_PERMITS),
        )),
    };
    let mut builder = RequestBuilder::new(ctx.batch.max_docs, ctx.batch.max_bytes);
    let max_wait = Duration::from_millis(ctx.batch.max_wait_ms);
    let mut deadline = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    loop {
        let ready = tokio::select! {
            doc = input.recv() => match doc {
                Some(doc) => {
                    if builder.is_empty() {
                        deadline = tokio::time::Instant::now() + max_wait;
                    }
                    builder.push(doc)
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if !builder.is_empty() => Some(builder.take()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => None,
            _ = ctx.cancel.cancelled() => return,
        };
        let ready = ready.or_else(|| {
            // Nothing more to add right now and nothing in flight: waiting for max_wait
            // would only add latency (`flush_when_idle`).
            let idle = ctx.batch.flush_when_idle
                && !builder.is_empty()
                && input.is_empty()
                && slots.requests.available_permits() == concurrency;
            idle.then(|| builder.take())
        });
        if let Some(batch) = ready {
            // Waiting for a slot here is the back-pressure: input is not read meanwhile.
            let Some(permit) = slots.request(&ctx.cancel).await else {
                return;
            };
            let ctx = ctx.clone();
            let slots = slots.clone();
            tasks.spawn(async move { settle(&ctx, &slots, permit, batch).await });
        }
    }
    if !builder.is_empty() {
        let batch = builder.take();
        if let Some(permit) = slots.request(&ctx.cancel).await {
            let ctx = ctx.clone();
            let slots = slots.clone();
            tasks.spawn(async move { settle(&ctx, &slots, permit, batch).await });
        }
    }
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = ctx.cancel.cancelled() => {}
    }
}

/// Request slots (at most `concurrency` requests in flight) and the budget of documents
/// that may wait for a per-item retry without holding a slot.
#[derive(Clone)]
struct Slots {
    requests: Arc<Semaphore>,
    retry_budget: Arc<Semaphore>,
}

impl Slots {
    async fn request(&self, cancel: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            p = self.requests.clone().acquire_owned() => p.ok(),
            _ = cancel.cancelled() => None,
        }
    }
}

async fn sleep_or_cancel(ctx: &SinkContext, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = ctx.cancel.cancelled() => false,
    }
}

fn outcome(ctx: &SinkContext, outcome: &str) {
    ctx.metrics
        .bulk_requests
        .get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
}

/// Sends `batch` until every document is indexed or dead-lettered. `slot` is its request
/// slot, held while sending and while the whole request is retried.
async fn settle(ctx: &SinkContext, slots: &Slots, slot: OwnedSemaphorePermit, batch: Batch) {
    let mut slot = Some(slot);
    let initial = Duration::from_millis(ctx.batch.retry_initial_ms);
    let max = Duration::from_millis(ctx.batch.retry_max_ms);
    let mut request_backoff = Backoff::new(initial, max);
    let mut item_backoff = Backoff::new(initial, max);
    // (batch, how many times its documents were already refused with a retriable status)
    let mut work = vec![(batch, 0u32)];
    while let Some((batch, attempts)) = work.pop() {
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = tokio::select! {
            r = ctx.service.bulk(batch.body.clone()) => r,
            _ = ctx.cancel.cancelled() => return,
        };
        ctx.metrics
            .bulk_latency
            .observe(started.elapsed().as_secs_f64());
        let response = match result {
            Ok(r) if r.items.len() == batch.len() => r,
            Ok(r) => {
                outcome(ctx, "failed");
                log::warn!(
                    "_bulk answered {} items for {} documents; resending the request",
                    r.items.len(),
                    batch.len()
                );
                ctx.metrics.request_retries.inc();
                if !sleep_or_cancel(ctx, request_backoff.next_delay()).await {
                    return;
                }
                work.push((batch, attempts));
                continue;
            }
            Err(e) => {
                outcome(ctx, "failed");
                match request_action(e.status(), e.operator_hint().is_some()) {
                    RequestAction::Split if batch.len() > 1 => {
                        log::warn!(
                            "_bulk of {} documents refused ({e}); splitting it to find the culprit",
                            batch.len()
                        );
                        let (a, b) = batch.split();
                        work.push((b, attempts));
                        work.push((a, attempts));
                    }
                    RequestAction::Split => {
                        let status = e.status().unwrap_or(400);
                        let error = json!({"type": "request_rejected", "reason": e.to_string()});
                        if !dead_letter(ctx, &batch, 0, status, error).await {
                            return;
                        }
                        ctx.acker.ack(&[batch.items[0].key.clone()]);
                    }
                    RequestAction::Retry => {
                        ctx.metrics.request_retries.inc();
                        let delay = request_backoff.next_delay();
                        log::log!(
                            e.retry_log_level(),
                            "_bulk of {} documents failed: {e}; retrying in {} ms (attempt {})",
                            batch.len(),
                            delay.as_millis(),
                            request_backoff.attempts()
                        );
                        if !sleep_or_cancel(ctx, delay).await {
                            return;
                        }
                        work.push((batch, attempts));
                    }
                }
                continue;
            }
        };
        request_backoff.reset();
        outcome(ctx, if response.errors { "item_errors" } else { "ok" });
        let mut settled: Vec<DocKey> = Vec::with_capacity(batch.len());
        let mut retry: Vec<usize> = Vec::new();
        let mut indexed = 0u64;
        let mut duplicates = 0u64;
        let acknowledged_ms = chrono::Utc::now().timestamp_millis();
        for (i, item) in response.items.iter().enumerate() {
            match item_action(item.status, ctx.op_type) {
                ItemAction::Done => {
                    indexed += 1;
                    // Read -> acknowledged, for documents this request indexed (a 409
                    // duplicate was indexed earlier; a dead letter never is).
                    if let Some(read_at) = batch.items[i].read_at_ms {
                        ctx.metrics
                            .end_to_end_latency
                            .observe((acknowledged_ms - read_at).max(0) as f64 / 1000.0);
                    }
                    settled.push(batch.items[i].key.clone());
                }
                ItemAction::Duplicate => {
                    duplicates += 1;
                    settled.push(batch.items[i].key.clone());
                }
                ItemAction::Retry if attempts < ctx.batch.item_max_retries => retry.push(i),
                ItemAction::Retry => {
                    let error = json!({
                        "type": "retries_exhausted",
                        "reason": format!(
                            "still refused with status {} after {} retries",
                            item.status, attempts
                        ),
                        "last_error": item.error.clone().unwrap_or(Value::Null),
                    });
                    if !dead_letter(ctx, &batch, i, item.status, error).await {
                        return;
                    }
                    settled.push(batch.items[i].key.clone());
                }
                ItemAction::DeadLetter => {
                    let error = item.error.clone().unwrap_or_else(
                        || json!({"type": "unknown", "reason": "no error object in the response"}),
                    );
                    if !dead_letter(ctx, &batch, i, item.status, error).await {
                        return;
                    }
                    settled.push(batch.items[i].key.clone());
                }
            }
        }
        ctx.metrics.indexed.inc_by(indexed);
        ctx.metrics.duplicates.inc_by(duplicates);
        if !settled.is_empty() {
            ctx.acker.ack(&settled);
        }
        if !retry.is_empty() {
            ctx.metrics.retried.inc_by(retry.len() as u64);
            // Wait for the retry without the request slot when the budget allows, so that
            // documents for other indices keep flowing past a refusing one (a read-only
            // index); once the budget is used up the slot is kept, and that back-pressure
            // is what bounds memory.
            let budget = u32::try_from(retry.len())
                .ok()
                .and_then(|n| slots.retry_budget.clone().try_acquire_many_owned(n).ok());
            if budget.is_some() {
                slot = None;
            }
            let delay = item_backoff.next_delay();
            log::warn!(
                "{} of {} documents refused with a retriable status (first: {} {}); retrying in {} ms",
                retry.len(),
                batch.len(),
                response.items[retry[0]].status,
                response.items[retry[0]]
                    .error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                delay.as_millis()
            );
            if !sleep_or_cancel(ctx, delay).await {
                return;
            }
            if slot.is_none() {
                slot = slots.request(&ctx.cancel).await;
                if slot.is_none() {
                    return;
                }
            }
            drop(budget);
            work.push((batch.subset(&retry), attempts + 1));
        }
    }
}

/// Dead-letters item `i`; false when cancelled before Kafka acknowledged it.
async fn dead_letter(
    ctx: &SinkContext,
    batch: &Batch,
    i: usize,
    status: u16,
    error: Value,
) -> bool {
    let item = &batch.items[i];
    let id = batch.doc_id(i);
    let letter = Letter {
        key: &item.key,
        id: &id,
        index: &item.index,
        source: batch.source(i),
        status,
        error,
    };
    log::warn!(
        "document {id} ({}) refused by index {} with status {status}: {}; sending it to the dead-letter topic",
        item.key.id(),
        item.index,
        letter.error
    );
    if !ctx.dead_letter.send(&letter, &ctx.cancel).await {
        return false;
    }
    ctx.metrics.dead_lettered.inc();
    true
}
