//! Writing one record to every output: level check, formatting, and failures counted
//! and told once. Driven by one thread at a time (the writer thread, or a caller
//! holding the sync lock); knows neither the queue nor the global logger.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::format::{Format, FormatCtx};
use crate::level::LevelFilter;
use crate::outputs::{Output, RecordsFailed};
use crate::record::Record;
use crate::stats::Counters;

/// One output with its own level, format and scratch buffer.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) level: Arc<AtomicU8>,
    pub(crate) format: Box<dyn Format>,
    pub(crate) ctx: FormatCtx,
    pub(crate) output: Box<dyn Output>,
    /// Reported on stderr and not yet recovered.
    pub(crate) failing: bool,
    /// A write, flush or tick failed since the last flush: a buffered write succeeds
    /// even when the device is full, so only a flush with no failure since the previous
    /// one counts as recovered.
    pub(crate) failed_since_flush: bool,
    /// Whether this output's format or output reads `record.message` as text (so the
    /// writer formats captured arguments into the record before handing it over).
    pub(crate) needs_text: bool,
}

/// All outputs; driven by one thread at a time.
pub(crate) struct Dispatch {
    slots: Vec<Slot>,
    buf: Vec<u8>,
    counters: Arc<Counters>,
    /// Some output reads `record.message` as text (see `Slot::needs_text`).
    needs_text: bool,
    /// Records written since the last `publish`: one atomic add per batch, not per record.
    written: u64,
    clock: crate::clock::TscToWall,
}

impl Dispatch {
    pub(crate) fn new(slots: Vec<Slot>, counters: Arc<Counters>) -> Self {
        Dispatch {
            needs_text: slots.iter().any(|s| s.needs_text),
            slots,
            buf: Vec::with_capacity(1024),
            counters,
            written: 0,
            clock: crate::clock::TscToWall::new(),
        }
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Each output's name and level cell, for the filter (which changes levels at run
    /// time while the writer thread owns the outputs).
    pub(crate) fn levels(&self) -> Vec<(String, Arc<AtomicU8>)> {
        self.slots
            .iter()
            .map(|s| (s.name.clone(), s.level.clone()))
            .collect()
    }

    pub(crate) fn write(&mut self, r: &mut Record) {
        r.time_us = self.clock.wall_us(r.time_us);
        if self.needs_text {
            r.message.materialize();
        }
        let r = &*r;
        for slot in &mut self.slots {
            if !LevelFilter::from_u8(slot.level.load(Ordering::Relaxed)).allows(r.level) {
                continue;
            }
            let buf = &mut self.buf;
            let res = guarded("writing a record", || {
                let (format, ctx) = (&slot.format, &mut slot.ctx);
                match slot
                    .output
                    .write_with(r, &mut |b: &mut Vec<u8>| format.format(r, ctx, b))
                {
                    Some(res) => res,
                    None => {
                        buf.clear();
                        slot.format.format(r, &mut slot.ctx, buf);
                        slot.output.write(buf, r)
                    }
                }
            });
            report(slot, res, &self.counters);
        }
        self.written += 1;
    }

    pub(crate) fn publish(&mut self) {
        if self.written > 0 {
            self.counters
                .written
                .fetch_add(std::mem::take(&mut self.written), Ordering::Relaxed);
        }
    }

    pub(crate) fn flush(&mut self) {
        self.end_cycle("flushing", |o| o.flush());
    }

    pub(crate) fn tick(&mut self) {
        for slot in &mut self.slots {
            let res = guarded("doing upkeep", || slot.output.tick());
            report(slot, res, &self.counters);
        }
    }

    pub(crate) fn close(&mut self) {
        self.end_cycle("closing", |o| o.close());
    }

    /// Flushing and closing both push out what is buffered, so either one ends a flush
    /// cycle (see [`end_flush_cycle`]).
    fn end_cycle(&mut self, what: &str, op: impl Fn(&mut dyn Output) -> io::Result<()>) {
        self.publish();
        for slot in &mut self.slots {
            let res = guarded(what, || op(slot.output.as_mut()));
            report(slot, res, &self.counters);
            end_flush_cycle(slot);
        }
    }
}

/// Runs one call into an output (or its format). A panic there must not take the
/// writer thread down (block-mode callers would then wait on a full queue for ever):
/// it counts as a failed call, and the output is called again next time.
fn guarded(what: &str, call: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
        Err(io::Error::other(format!(
            "the output panicked while {what}"
        )))
    })
}

/// Counts a failure and tells stderr once per output, until the output works again
/// (see [`end_flush_cycle`]): a broken disk must not turn into a line on stderr per record.
fn report(slot: &mut Slot, res: io::Result<()>, counters: &Counters) {
    if let Err(e) = res {
        let (records, retried) = RecordsFailed::of(&e);
        counters.write_errors.fetch_add(records, Ordering::Relaxed);
        slot.failed_since_flush = true;
        if !slot.failing {
            slot.failing = true;
            let fate = retried.unwrap_or("records for it are lost until it recovers");
            eprintln!(
                "logger: output `{}` ({}) failed: {e}; {fate} (counted in write_errors)",
                slot.name,
                slot.output.describe()
            );
        }
    }
}

/// After a flush: the output has recovered if nothing failed since the previous flush.
fn end_flush_cycle(slot: &mut Slot) {
    if !slot.failed_since_flush {
        slot.failing = false;
    }
    slot.failed_since_flush = false;
}
