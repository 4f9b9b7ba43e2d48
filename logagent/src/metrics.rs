//! The agent's own metrics, served as Prometheus text on `/metrics`.
//!
//! Names (all prefixed `logagent_`; counters get `_total` from the exposition):
//! `lines_read`, `bytes_read`, `lines_sent` and `bytes_sent` (acknowledged by Kafka),
//! `lines_failed` (delivery errors; the line is retried, not dropped), `files_watched`,
//! `collect_config_revision` (etcd mod revision of the running collect config),
//! `configs_rejected`, `send_lag_bytes` (bytes in watched files not yet acknowledged),
//! `file_lag_bytes{path}` (the same per file, for the files furthest behind, the rest summed
//! as `path="other"`: see [`crate::file_lag`]),
//! `lines_in_flight` (read, not yet acknowledged), `checkpoint_write_failures` (periodic
//! checkpoint writes that failed: a full or read-only data_dir; retried every interval),
//! `lines_truncated` (lines whose message was cut to fit the producer's
//! `message.max.bytes`), `files_stalled` (files whose shipping waits because Kafka refused
//! or failed to deliver one of their lines: a topic missing or not authorised),
//! `files_refused{reason}` (files not opened: `outside_allowed_paths`, `not_regular_file`,
//! `open_failed`; each path counted once per reason, not once per scan), `reads_stalled`
//! (reads of a file on a network file system that did not return within
//! `read_timeout_ms`: that file is not read until the read returns), `reader_threads_stuck`
//! (reader threads abandoned in such a read that has not returned yet), `files_open`
//! (collected files holding a descriptor, at most `max_open_files`), `files_waiting_turn`
//! (files that changed and wait for one of those descriptors); while a backlog of 64 MiB or
//! more is shipped (a first start over big files, a broker back after an outage; see
//! [`crate::catch_up`]) `catch_up_total_bytes`, `catch_up_done_bytes`,
//! `catch_up_bytes_per_second` and `catch_up_eta_seconds`, all 0 otherwise.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::catch_up::Progress;
use crate::sources::file::open::RefusalReason;

/// The label of `files_refused`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why the file was not opened (a fixed set: see [`RefusalReason`]).
    pub reason: RefusalReason,
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// The label of `file_lag_bytes`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLagLabels {
    /// The file's path, or `other` for the sum of the files outside the top
    /// ([`crate::file_lag`]).
    pub path: String,
}

/// Every metric the agent exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines read from files.
    pub lines_read: Counter,
    /// Bytes read from files (including newlines).
    pub bytes_read: Counter,
    /// Lines acknowledged by Kafka.
    pub lines_sent: Counter,
    /// Message bytes acknowledged by Kafka.
    pub bytes_sent: Counter,
    /// Delivery failures (each is retried).
    pub lines_failed: Counter,
    /// Files being tailed right now.
    pub files_watched: Gauge,
    /// etcd mod revision of the collect config in effect.
    pub collect_config_revision: Gauge,
    /// Collect configs refused (bad JSON, schema, path policy).
    pub configs_rejected: Counter,
    /// Bytes in watched files not yet acknowledged by Kafka.
    pub send_lag_bytes: Gauge<u64, AtomicU64>,
    /// Bytes not yet acknowledged per file, for the files furthest behind (bounded:
    /// [`crate::file_lag`]).
    pub file_lag_bytes: Family<FileLagLabels, Gauge<u64, AtomicU64>>,
    /// Lines read and not yet acknowledged.
    pub lines_in_flight: Gauge,
    /// Periodic checkpoint writes that failed (each is retried at the next interval).
    pub checkpoint_write_failures: Counter,
    /// Lines whose message was cut to fit `message.max.bytes`.
    pub lines_truncated: Counter,
    /// Files whose shipping waits for a refused or failed line.
    pub files_stalled: Gauge,
    /// Collected files holding a descriptor (turns taken), at most `max_open_files`.
    pub files_open: Gauge,
    /// Files waiting for a turn to be opened.
    pub files_waiting_turn: Gauge,
    /// Files not opened, by reason; a path is counted once per reason.
    pub files_refused: Family<RefusalLabels, Counter>,
    /// Reads that did not return within the bound (each stalls its file until it returns).
    pub reads_stalled: Counter,
    /// Reader threads abandoned in a read that has not returned yet.
    pub reader_threads_stuck: Gauge,
    /// The backlog of the catch-up going on (0: none).
    pub catch_up_total_bytes: Gauge<u64, AtomicU64>,
    /// Of it, acknowledged by Kafka.
    pub catch_up_done_bytes: Gauge<u64, AtomicU64>,
    /// How fast it shrinks (over the last 10 s).
    pub catch_up_bytes_per_second: Gauge<f64, AtomicU64>,
    /// About how long it still takes at that rate (0: not known).
    pub catch_up_eta_seconds: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Counts one refused file.
    pub fn file_refused(&self, reason: RefusalReason) {
        self.files_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// How many files were refused for `reason`.
    pub fn files_refused_count(&self, reason: RefusalReason) -> u64 {
        self.files_refused
            .get_or_create(&RefusalLabels { reason })
            .get()
    }

    /// Sets the `catch_up_*` gauges.
    pub fn catch_up(&self, progress: Progress) {
        self.catch_up_total_bytes.set(progress.total_bytes);
        self.catch_up_done_bytes.set(progress.done_bytes);
        self.catch_up_bytes_per_second
            .set(progress.bytes_per_second);
        self.catch_up_eta_seconds.set(progress.eta_seconds);
    }

    /// Registers every metric under the `logagent` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("logagent");
        r.register(
            "lines_read",
            "Lines read from files",
            self.lines_read.clone(),
        );
        r.register(
            "bytes_read",
            "Bytes read from files",
            self.bytes_read.clone(),
        );
        r.register(
            "lines_sent",
            "Lines acknowledged by Kafka",
            self.lines_sent.clone(),
        );
        r.register(
            "bytes_sent",
            "Message bytes acknowledged by Kafka",
            self.bytes_sent.clone(),
        );
        r.register(
            "lines_failed",
            "Kafka delivery failures (retried)",
            self.lines_failed.clone(),
        );
        r.register(
            "files_watched",
            "Files being tailed",
            self.files_watched.clone(),
        );
        r.register(
            "collect_config_revision",
            "etcd mod revision of the collect config in effect",
            self.collect_config_revision.clone(),
        );
        r.register(
            "configs_rejected",
            "Collect configs refused",
            self.configs_rejected.clone(),
        );
        r.register(
            "send_lag_bytes",
            "Bytes in watched files not yet acknowledged",
            self.send_lag_bytes.clone(),
        );
        // `other` is exported from the start, at 0: the family is never empty.
        let _ = self.file_lag_bytes.get_or_create(&FileLagLabels {
            path: crate::file_lag::OTHER.into(),
        });
        r.register(
            "file_lag_bytes",
            "Bytes of a file not yet acknowledged by Kafka: the files furthest behind by path, the others summed as path=\"other\"",
            self.file_lag_bytes.clone(),
        );
        r.register(
            "lines_in_flight",
            "Lines read and not yet acknowledged",
            self.lines_in_flight.clone(),
        );
        r.register(
            "checkpoint_write_failures",
            "Checkpoint writes that failed (full or read-only data_dir); retried",
            self.checkpoint_write_failures.clone(),
        );
        r.register(
            "lines_truncated",
            "Lines whose message was cut to fit the producer's message.max.bytes",
            self.lines_truncated.clone(),
        );
        r.register(
            "files_stalled",
            "Files whose shipping waits because Kafka refused or failed one of their lines",
            self.files_stalled.clone(),
        );
        r.register(
            "reads_stalled",
            "File reads that did not return within read_timeout_ms (hung network file system); the file waits until the read returns",
            self.reads_stalled.clone(),
        );
        r.register(
            "reader_threads_stuck",
            "Reader threads abandoned in a read that has not returned yet",
            self.reader_threads_stuck.clone(),
        );
        r.register(
            "files_open",
            "Collected files holding a descriptor (at most [agent] max_open_files)",
            self.files_open.clone(),
        );
        r.register(
            "files_waiting_turn",
            "Files waiting for a turn at the max_open_files budget",
            self.files_waiting_turn.clone(),
        );
        r.register(
            "catch_up_total_bytes",
            "Backlog of the catch-up going on (64 MiB or more not yet acknowledged; the largest seen since it began), 0 when none",
            self.catch_up_total_bytes.clone(),
        );
        r.register(
            "catch_up_done_bytes",
            "Of the catch-up's backlog, bytes acknowledged by Kafka",
            self.catch_up_done_bytes.clone(),
        );
        r.register(
            "catch_up_bytes_per_second",
            "How fast the catch-up's backlog shrank over the last 10 s",
            self.catch_up_bytes_per_second.clone(),
        );
        r.register(
            "catch_up_eta_seconds",
            "About how long the catch-up still takes at that rate (0: not known)",
            self.catch_up_eta_seconds.clone(),
        );
        // Every reason is exported from the start, at 0: an alert on it needs no absent().
        for reason in RefusalReason::ALL {
            let _ = self.files_refused.get_or_create(&RefusalLabels { reason });
        }
        r.register(
            "files_refused",
            "Files not opened (outside allowed_paths, not a regular file, open failed), once per path and reason",
            self.files_refused.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_up_gauges_are_exported_and_zero_when_not_catching_up() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let render = |registry: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
            text
        };
        let idle = render(&registry);
        for line in [
            "logagent_catch_up_total_bytes 0\n",
            "logagent_catch_up_done_bytes 0\n",
            "logagent_catch_up_bytes_per_second 0.0\n",
            "logagent_catch_up_eta_seconds 0.0\n",
        ] {
            assert!(idle.contains(line), "{line:?} in\n{idle}");
        }
        metrics.catch_up(Progress {
            total_bytes: 200 << 20,
            done_bytes: 50 << 20,
            bytes_per_second: 1_048_576.0,
            eta_seconds: 150.0,
        });
        let busy = render(&registry);
        for line in [
            "logagent_catch_up_total_bytes 209715200\n",
            "logagent_catch_up_done_bytes 52428800\n",
            "logagent_catch_up_bytes_per_second 1048576.0\n",
            "logagent_catch_up_eta_seconds 150.0\n",
        ] {
            assert!(busy.contains(line), "{line:?} in\n{busy}");
        }
    }
}
