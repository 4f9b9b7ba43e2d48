//! The logger's counters: the writer's own and the sum of every output's, so that
//! [`Handle::stats`](crate::Handle::stats) needs to know no output by name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::outputs::{OutputCounters, OutputStats};

/// Counters, readable through [`Handle::stats`](crate::Handle::stats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) written: AtomicU64,
    /// Those of the outputs that keep their own ([`Output::stats`](crate::Output::stats)).
    outputs: Vec<Arc<OutputCounters>>,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records dropped before reaching the outputs: the queue was full in drop mode; or
    /// they were logged from code the outputs wait for (an output, the Kafka error
    /// callback) and could not go at once; or the writer thread was gone (it panicked
    /// past every guard, or the logger was shutting down), counting those stranded in
    /// its queue.
    pub dropped: u64,
    /// Records an output failed to write when it first tried, each counted once (failures
    /// are also reported on stderr, once per output until it recovers). A file output
    /// keeps such records and retries them; those it finally gives up on are also
    /// counted in `records_lost`. A custom output's failed call counts as one record.
    pub write_errors: u64,
    /// Records handed to the outputs by the writer.
    pub written: u64,
    /// Kafka messages the broker acknowledged.
    pub kafka_delivered: u64,
    /// Kafka messages that failed for good (after librdkafka's retries).
    pub kafka_delivery_errors: u64,
    /// Kafka records dropped because the producer buffer was full (drop policy).
    pub kafka_dropped: u64,
    /// Kafka records written to the fallback file instead (spill policy).
    pub kafka_spilled: u64,
    /// Kafka producers replaced after a fatal error (the idempotent producer gave up; the
    /// messages it still held count in `kafka_delivery_errors`).
    pub kafka_producer_replaced: u64,
    /// Records an output accepted and then gave up on: a file output's records past its
    /// retry bound while the disk refused writes, or still unwritten when it closed; a
    /// Kafka output's messages still buffered when its close gave up waiting (5 s).
    pub records_lost: u64,
}

impl Counters {
    pub(crate) fn new(outputs: Vec<Arc<OutputCounters>>) -> Self {
        Counters {
            outputs,
            ..Counters::default()
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Kafka is the only built-in output that keeps these counters; the `kafka_`
        // names are those `Stats` has always had.
        let outputs = self
            .outputs
            .iter()
            .fold(OutputStats::default(), |sum, c| sum + c.snapshot());
        Stats {
            dropped: l(&self.dropped),
            write_errors: l(&self.write_errors),
            written: l(&self.written),
            kafka_delivered: outputs.delivered,
            kafka_delivery_errors: outputs.delivery_errors,
            kafka_dropped: outputs.dropped,
            kafka_spilled: outputs.spilled,
            kafka_producer_replaced: outputs.replaced,
            records_lost: outputs.lost,
        }
    }
}
