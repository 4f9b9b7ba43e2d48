//! Self-metrics, served on `/metrics` by `service_kit::metrics::serve`.
//!
//! Consumer lag: tansu (our test broker) reports a wrong high watermark on memory storage,
//! so lag is not "high watermark - committed". It is measured from what we know for sure:
//! `logtransfer_consumer_lag{topic,partition}` = (highest offset consumed + 1) - committed
//! offset, i.e. records read but not yet safely in Elasticsearch (or dead-lettered).
//! Records still in Kafka that we have not fetched yet are not counted; compare
//! `logtransfer_consumed_total` with the producers' counters for those.
//!
//! End-to-end latency: `logtransfer_end_to_end_latency_seconds` runs from the record's
//! Kafka timestamp to the `_bulk` response that indexed its document. logagent sets that
//! timestamp to the time it read the line (docs/dev/CONTRACTS.md), so this is "line read ->
//! acknowledged"; other producers' records start when they were produced (or appended, for
//! a topic with `LogAppendTime`). Clocks of other hosts count: a skew shows up as latency
//! (clamped at 0). Searchable follows at the index's refresh (1 s by default in
//! Elasticsearch).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of `end_to_end_latency_seconds`, 5 ms to 60 s.
pub const END_TO_END_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Labels of per-partition series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i64,
}

/// Labels of bulk request outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok`, `item_errors`, `failed`.
    pub outcome: String,
}

/// Labels of whole-request Elasticsearch failures: `status` is one of a fixed set
/// (`400 401 403 404 413 429 4xx 5xx transport tls invalid_response`), so cardinality is bounded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The bucketed HTTP status, or why there was none.
    pub status: String,
}

/// Every metric logtransfer exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Records read from Kafka.
    pub consumed: Counter,
    /// Documents acknowledged by Elasticsearch.
    pub indexed: Counter,
    /// Document re-sends after a retriable per-item error.
    pub retried: Counter,
    /// Documents `create` found already indexed (409 on an existing `_id`): settled.
    pub duplicates: Counter,
    /// Event ids (header or `event.id` field) that could not be the `_id`: the record used
    /// `topic-partition-offset` instead.
    pub event_id_invalid: Counter,
    /// Whole `_bulk` requests re-sent after a failure (refused, 429, 5xx).
    pub request_retries: Counter,
    /// Documents sent to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Whole requests to Elasticsearch that failed, by status (see [`StatusLabels`]).
    pub es_request_errors: Family<StatusLabels, Counter>,
    /// `_bulk` requests by outcome.
    pub bulk_requests: Family<OutcomeLabels, Counter>,
    /// `_bulk` round-trip time, seconds.
    pub bulk_latency: Histogram,
    /// Line read (the record's Kafka timestamp, which logagent sets to the read time) ->
    /// document acknowledged by Elasticsearch, seconds, per indexed document.
    pub end_to_end_latency: Histogram,
    /// Consumed but not committed, per partition (see the module docs).
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// 1 while consumption is paused because the sink is full (Elasticsearch slow or down).
    pub paused: Gauge,
    /// Partitions whose fetching is paused because too many of their records wait behind
    /// an unsettled one (`[kafka] max_pending_per_partition`).
    pub paused_partitions: Gauge,
    /// Offset commits the broker refused or that failed in transit (each is retried).
    pub commit_failures: Counter,
    /// The partitions `consumer_lag` currently has series for.
    pub lag_partitions: Arc<Mutex<HashSet<PartitionLabels>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            consumed: Counter::default(),
            indexed: Counter::default(),
            retried: Counter::default(),
            duplicates: Counter::default(),
            event_id_invalid: Counter::default(),
            request_retries: Counter::default(),
            dead_lettered: Counter::default(),
            bulk_requests: Family::default(),
            es_request_errors: Family::default(),
            bulk_latency: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            // From a quiet pipeline's few ms to a minute behind (beyond: +Inf, a backlog).
            end_to_end_latency: Histogram::new(END_TO_END_BUCKETS),
            consumer_lag: Family::default(),
            paused: Gauge::default(),
            commit_failures: Counter::default(),
            paused_partitions: Gauge::default(),
            lag_partitions: Arc::default(),
        }
    }
}

impl Metrics {
    /// Registers everything under the `logtransfer_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("logtransfer");
        r.register("consumed", "Records read from Kafka", self.consumed.clone());
        r.register(
            "indexed",
            "Documents acknowledged by Elasticsearch",
            self.indexed.clone(),
        );
        r.register(
            "retried",
            "Documents re-sent after a retriable item error",
            self.retried.clone(),
        );
        r.register(
            "duplicates",
            "Documents found already indexed (op_type create, 409 on an existing _id)",
            self.duplicates.clone(),
        );
        r.register(
            "event_id_invalid",
            "Event ids unusable as _id (empty, over 512 bytes, not UTF-8): topic-partition-offset used",
            self.event_id_invalid.clone(),
        );
        r.register(
            "request_retries",
            "Whole _bulk requests re-sent after a failure",
            self.request_retries.clone(),
        );
        r.register(
            "dead_lettered",
            "Documents sent to the dead-letter topic",
            self.dead_lettered.clone(),
        );
        r.register(
            "bulk_requests",
            "_bulk requests by outcome",
            self.bulk_requests.clone(),
        );
        r.register(
            "es_request_errors",
            "Whole requests to Elasticsearch that failed, by status (401/403/404 need the operator)",
            self.es_request_errors.clone(),
        );
        r.register(
            "bulk_latency_seconds",
            "_bulk round-trip time",
            self.bulk_latency.clone(),
        );
        r.register(
            "end_to_end_latency_seconds",
            "Line read by logagent (the record's Kafka timestamp) -> document acknowledged by Elasticsearch, per indexed document",
            self.end_to_end_latency.clone(),
        );
        r.register(
            "consumer_lag",
            "Records consumed but not yet committed (highest consumed offset + 1 - committed)",
            self.consumer_lag.clone(),
        );
        r.register(
            "paused",
            "1 while consumption is paused by back-pressure",
            self.paused.clone(),
        );
        r.register(
            "paused_partitions",
            "Partitions paused because max_pending_per_partition records wait behind an unsettled one",
            self.paused_partitions.clone(),
        );
        r.register(
            "commit_failures",
            "Offset commits that failed (retried with backoff; a failure of the last one at shutdown is an error)",
            self.commit_failures.clone(),
        );
    }
}
