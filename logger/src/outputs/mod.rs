//! Where formatted records go. One implementation per file; add an output by
//! implementing [`Output`] and passing it to [`Builder::custom`](crate::Builder::custom).

pub mod console;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::Record;

/// Callback for Kafka delivery errors: (output name, error text).
pub type KafkaErrorCallback = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A destination for formatted lines.
///
/// Calls come from one thread at a time (the writer thread, or the caller holding the
/// output lock in sync mode), so implementations need no locking of their own.
pub trait Output: Send {
    /// Takes one formatted record, ending in `\n`. May buffer; must not block on the
    /// network.
    fn write(&mut self, line: &[u8], record: &Record) -> io::Result<()>;

    /// Formats the record straight into the output's own buffer, saving a copy.
    /// Outputs without a buffer of their own keep the default (`None`), and get the
    /// formatted line through [`Output::write`] instead.
    fn write_with(
        &mut self,
        _record: &Record,
        _format: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<io::Result<()>> {
        None
    }

    /// Pushes everything buffered to the destination (end of a batch, the flush
    /// interval, `fatal!`, shutdown).
    fn flush(&mut self) -> io::Result<()>;

    /// Called now and then while idle, for upkeep such as reopening a deleted file.
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Last call before the output is dropped: flush and finish background work.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// A short description for error reports (`file /var/log/app.log`).
    fn describe(&self) -> String;

    /// The counters this output keeps itself, if any; asked once when the logger is
    /// built. They are shared because they are read from other threads while the
    /// output runs on the writer (and, for Kafka, counted on librdkafka's thread).
    fn stats(&self) -> Option<Arc<OutputCounters>> {
        None
    }
}

/// What an output counts beyond write errors (the writer counts those for every
/// output). Outputs that hand records on to a remote destination use them; the logger
/// adds up every output's counters in [`Stats`](crate::Stats).
#[derive(Debug, Default)]
pub struct OutputCounters([AtomicU64; 6]);

/// One of the [`OutputCounters`]; each is the field of the same name in [`OutputStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCounter {
    /// See [`OutputStats::delivered`].
    Delivered,
    /// See [`OutputStats::delivery_errors`].
    DeliveryErrors,
    /// See [`OutputStats::dropped`].
    Dropped,
    /// See [`OutputStats::spilled`].
    Spilled,
    /// See [`OutputStats::replaced`].
    Replaced,
    /// See [`OutputStats::lost`].
    Lost,
}

/// A snapshot of [`OutputCounters`], or their sum over outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Messages the destination acknowledged.
    pub delivered: u64,
    /// Messages that failed for good, after the output's own retries.
    pub delivery_errors: u64,
    /// Records dropped because the output's own buffer was full.
    pub dropped: u64,
    /// Records written to a fallback file instead.
    pub spilled: u64,
    /// Clients replaced after a fatal error.
    pub replaced: u64,
    /// Records the output accepted but gave up on: those it could not keep while its
    /// destination refused writes, or still unwritten when it closed.
    pub lost: u64,
}

impl OutputCounters {
    /// Counts one more.
    #[inline]
    pub fn add(&self, counter: OutputCounter) {
        self.add_n(counter, 1);
    }

    /// Counts `n` more.
    #[inline]
    pub fn add_n(&self, counter: OutputCounter, n: u64) {
        self.0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> OutputStats {
        let l = |c: OutputCounter| self.0[c as usize].load(Ordering::Relaxed);
        OutputStats {
            delivered: l(OutputCounter::Delivered),
            delivery_errors: l(OutputCounter::DeliveryErrors),
            dropped: l(OutputCounter::Dropped),
            spilled: l(OutputCounter::Spilled),
            replaced: l(OutputCounter::Replaced),
            lost: l(OutputCounter::Lost),
        }
    }
}

impl std::ops::Add for OutputStats {
    type Output = OutputStats;

    fn add(self, o: OutputStats) -> OutputStats {
        OutputStats {
            delivered: self.delivered + o.delivered,
            delivery_errors: self.delivery_errors + o.delivery_errors,
            dropped: self.dropped + o.dropped,
            spilled: self.spilled + o.spilled,
            replaced: self.replaced + o.replaced,
            lost: self.lost + o.lost,
        }
    }
}

/// A failed call into an output that concerned `records` records (not one): the file
/// output tells so, and the writer counts that many in `write_errors`. `retried` says the
/// records are kept and retried rather than lost (for the report on stderr).
#[derive(Debug)]
pub(crate) struct RecordsFailed {
    pub(crate) records: u64,
    pub(crate) retried: Option<String>,
    pub(crate) source: io::Error,
}

impl std::fmt::Display for RecordsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for RecordsFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl RecordsFailed {
    /// What `e` says about itself: (records it concerns, retry note if kept). An error
    /// of any other kind concerns one record, which is lost.
    pub(crate) fn of(e: &io::Error) -> (u64, Option<&str>) {
        match e.get_ref().and_then(|i| i.downcast_ref::<RecordsFailed>()) {
            Some(f) => (f.records, f.retried.as_deref()),
            None => (1, None),
        }
    }
}
