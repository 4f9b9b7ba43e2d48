//! sysagent's own counters, served next to the host metrics on `/metrics` as `sysagent_*`.
//!
//! Invariant once the InfluxDB buffer is idle:
//! `points_collected = points_sent + points_failed + points_dropped + points_buffered`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters shared by the collection loop and the sinks (cheap clones of atomics).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Collections run.
    pub collections: Counter,
    /// Collector failures, by collector name.
    pub collect_errors: Family<Vec<(String, String)>, Counter>,
    /// Wall time of the last collection, seconds.
    pub collect_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Points encoded for InfluxDB.
    pub points_collected: Counter,
    /// Points InfluxDB acknowledged.
    pub points_sent: Counter,
    /// Points InfluxDB refused as malformed (HTTP 400); not retried.
    pub points_failed: Counter,
    /// Points discarded, oldest first, because the buffer was full.
    pub points_dropped: Counter,
    /// Points waiting to be sent.
    pub points_buffered: Gauge,
    /// Write requests that failed (each retry counts).
    pub write_errors: Counter,
    /// Scrapes of `/metrics` rendered.
    pub scrapes: Counter,
}

impl Stats {
    /// Register every counter in `registry` under the `sysagent_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("sysagent");
        r.register("collections", "Collections run", self.collections.clone());
        r.register(
            "collect_errors",
            "Collector failures, by collector",
            self.collect_errors.clone(),
        );
        r.register(
            "collect_duration_seconds",
            "Wall time of the last collection",
            self.collect_duration.clone(),
        );
        r.register(
            "points_collected",
            "Points encoded for InfluxDB",
            self.points_collected.clone(),
        );
        r.register(
            "points_sent",
            "Points InfluxDB acknowledged",
            self.points_sent.clone(),
        );
        r.register(
            "points_failed",
            "Points InfluxDB refused as malformed (not retried)",
            self.points_failed.clone(),
        );
        r.register(
            "points_dropped",
            "Points dropped, oldest first, because the buffer was full",
            self.points_dropped.clone(),
        );
        r.register(
            "points_buffered",
            "Points waiting to be sent to InfluxDB",
            self.points_buffered.clone(),
        );
        r.register(
            "influxdb_write_errors",
            "InfluxDB write requests that failed, retries included",
            self.write_errors.clone(),
        );
        r.register("scrapes", "Scrapes of /metrics", self.scrapes.clone());
    }
}
