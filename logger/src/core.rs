//! The hot path (call site -> record -> queue) and the writer side (queue -> format ->
//! outputs). Only this module knows both; formats and outputs never see the queue.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::thread::{JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use crate::callsite::{Callsite, GENERATION, MIN_LEVEL};
use crate::filter::LevelSpec;
use crate::format::{Format, FormatCtx};
use crate::level::{Level, LevelFilter};
use crate::outputs::Output;
use crate::queue::{Consumer, Producer};
use crate::record::{Origin, Record, ToValue};
use crate::stats::{Counters, Stats};

/// The installed logger. Never freed: a caller that loaded the pointer just before a
/// shutdown may still use it, so retired cores are leaked (one per `init`).
static CORE: AtomicPtr<Core> = AtomicPtr::new(std::ptr::null_mut());

/// What to do when the queue to the writer thread is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Wait for room: nothing is lost, a flood slows the caller down.
    #[default]
    Block,
    /// Drop the record and count it ([`Stats::dropped`]).
    Drop,
}

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
    pub(crate) slots: Vec<Slot>,
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

    fn write(&mut self, r: &mut Record) {
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
            // A panicking output or format must not take the writer thread down: the
            // callers would then wait on a full queue forever. It counts as a failed write.
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
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
            }))
            .unwrap_or_else(|_| {
                Err(io::Error::other(
                    "the output panicked while writing a record",
                ))
            });
            report(slot, res, &self.counters);
        }
        self.written += 1;
    }

    fn publish(&mut self) {
        if self.written > 0 {
            self.counters
                .written
                .fetch_add(std::mem::take(&mut self.written), Ordering::Relaxed);
        }
    }

    fn flush(&mut self) {
        self.publish();
        for slot in &mut self.slots {
            let res = slot.output.flush();
            report(slot, res, &self.counters);
            end_flush_cycle(slot);
        }
    }

    fn tick(&mut self) {
        for slot in &mut self.slots {
            let res = slot.output.tick();
            report(slot, res, &self.counters);
        }
    }

    fn close(&mut self) {
        self.publish();
        for slot in &mut self.slots {
            let res = slot.output.close();
            report(slot, res, &self.counters);
            end_flush_cycle(slot);
        }
    }
}

/// Counts a failure and tells stderr once per output, until the output works again
/// (see [`end_flush_cycle`]): a broken disk must not turn into a line on stderr per record.
fn report(slot: &mut Slot, res: io::Result<()>, counters: &Counters) {
    if let Err(e) = res {
        counters.write_errors.fetch_add(1, Ordering::Relaxed);
        slot.failed_since_flush = true;
        if !slot.failing {
            slot.failing = true;
            eprintln!(
                "logger: output `{}` ({}) failed: {e}; records for it are lost until it recovers (counted in write_errors)",
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

/// Requests to the writer besides records. Each carries the queue position it must
/// drain up to first, so it sees every record its caller logged before asking.
enum Ctl {
    Flush { upto: usize, ack: Sender<()> },
    Shutdown { upto: usize },
}

/// How the writer side is reached.
enum Sink {
    Sync(Mutex<Dispatch>),
    Async(AsyncSink),
}

struct AsyncSink {
    queue: Producer<Record>,
    ctl: Sender<Ctl>,
    overflow: Overflow,
    writer: Thread,
    /// Set by the writer before a long park; a caller that sees it after publishing a
    /// record wakes the writer. While the writer polls, callers make no syscall at all.
    writer_sleeping: Arc<AtomicBool>,
    join: Mutex<Option<JoinHandle<()>>>,
}

/// Settings of the async writer.
#[derive(Clone, Debug)]
pub(crate) struct AsyncSettings {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) flush_interval: Duration,
}

/// A configured logger: filter, outputs and the way to reach them.
pub(crate) struct Core {
    spec: RwLock<LevelSpec>,
    outputs: Vec<(String, Arc<AtomicU8>)>,
    sink: Sink,
    counters: Arc<Counters>,
    exit_on_fatal: bool,
    writer_id: Option<ThreadId>,
    closed: AtomicBool,
    /// Whether the panic hook logs panics for this logger.
    pub(crate) capture_panics: bool,
}

impl Core {
    pub(crate) fn new_sync(
        spec: LevelSpec,
        dispatch: Dispatch,
        counters: Arc<Counters>,
        exit_on_fatal: bool,
    ) -> Core {
        Core {
            spec: RwLock::new(spec),
            outputs: outputs_of(&dispatch),
            sink: Sink::Sync(Mutex::new(dispatch)),
            counters,
            exit_on_fatal,
            writer_id: None,
            closed: AtomicBool::new(false),
            capture_panics: true,
        }
    }

    pub(crate) fn new_async(
        spec: LevelSpec,
        dispatch: Dispatch,
        counters: Arc<Counters>,
        exit_on_fatal: bool,
        settings: AsyncSettings,
    ) -> io::Result<Core> {
        let outputs = outputs_of(&dispatch);
        let (queue, consumer) = crate::queue::bounded(settings.capacity.max(1));
        let (ctl, ctl_rx) = crossbeam_channel::unbounded();
        let interval = settings.flush_interval;
        let writer_sleeping = Arc::new(AtomicBool::new(false));
        let sleeping = Arc::clone(&writer_sleeping);
        let join = std::thread::Builder::new()
            .name("logger-writer".into())
            .spawn(move || writer_loop(consumer, ctl_rx, dispatch, interval, &sleeping))?;
        let writer = join.thread().clone();
        Ok(Core {
            spec: RwLock::new(spec),
            outputs,
            writer_id: Some(writer.id()),
            sink: Sink::Async(AsyncSink {
                queue,
                ctl,
                overflow: settings.overflow,
                writer,
                writer_sleeping,
                join: Mutex::new(Some(join)),
            }),
            counters,
            exit_on_fatal,
            closed: AtomicBool::new(false),
            capture_panics: true,
        })
    }

    fn outputs_min(&self) -> LevelFilter {
        self.outputs.iter().fold(LevelFilter::Off, |acc, (_, l)| {
            acc.most_verbose(LevelFilter::from_u8(l.load(Ordering::Relaxed)))
        })
    }

    fn enabled(&self, module: &str, level: Level) -> bool {
        self.spec.read().level_for(module).allows(level) && self.outputs_min().allows(level)
    }

    /// Recomputes the global minimum after any filter change.
    fn publish_levels(&self) {
        let spec_min = self.spec.read().most_verbose();
        let out_min = self.outputs_min();
        let min = spec_min.as_u8().max(out_min.as_u8());
        MIN_LEVEL.store(min, Ordering::Relaxed);
        GENERATION.fetch_add(1, Ordering::Relaxed);
        log::set_max_level(LevelFilter::from_u8(min).to_log());
    }

    pub(crate) fn submit(&self, r: Record) {
        let fatal = r.level == Level::Fatal;
        match &self.sink {
            Sink::Sync(d) => {
                let mut r = r;
                let mut d = d.lock();
                d.write(&mut r);
                d.flush();
            }
            Sink::Async(a) => match a.queue.push(r) {
                Ok(()) => a.wake_if_sleeping(),
                Err(r) => {
                    a.writer.unpark();
                    match a.overflow {
                        Overflow::Block => a.push_blocking(r),
                        Overflow::Drop => {
                            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            },
        }
        if fatal {
            self.after_fatal();
        }
    }

    fn after_fatal(&self) {
        self.flush();
        if self.exit_on_fatal {
            std::process::exit(1);
        }
    }

    /// Writes everything queued so far to the outputs and returns when that is done.
    pub(crate) fn flush(&self) {
        match &self.sink {
            Sink::Sync(d) => d.lock().flush(),
            Sink::Async(a) => {
                // The writer cannot wait for itself (a panic or fatal on the writer thread).
                if Some(std::thread::current().id()) == self.writer_id {
                    return;
                }
                let (ack, ack_rx) = crossbeam_channel::bounded(1);
                let upto = a.queue.tail();
                if a.ctl.send(Ctl::Flush { upto, ack }).is_ok() {
                    a.writer.unpark();
                    let _ = ack_rx.recv();
                }
            }
        }
    }

    /// Drains the queue, closes the outputs and stops the writer. Idempotent.
    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        match &self.sink {
            Sink::Sync(d) => d.lock().close(),
            Sink::Async(a) => {
                let upto = a.queue.tail();
                if a.ctl.send(Ctl::Shutdown { upto }).is_ok() {
                    a.writer.unpark();
                }
                let join = a.join.lock().take();
                if let Some(j) = join
                    && Some(std::thread::current().id()) != self.writer_id
                {
                    let _ = j.join();
                }
            }
        }
    }
}

fn outputs_of(d: &Dispatch) -> Vec<(String, Arc<AtomicU8>)> {
    d.slots
        .iter()
        .map(|s| (s.name.clone(), s.level.clone()))
        .collect()
}

/// How long the idle writer sleeps at first and at most while it polls. Callers do not
/// wake a polling writer (that would cost a syscall per call).
const IDLE_MIN: Duration = Duration::from_micros(20);
const IDLE_MAX: Duration = Duration::from_millis(1);
/// Once polling found nothing up to IDLE_MAX, the writer announces that it sleeps and parks
/// for this long at most (the housekeeping tick); the next record wakes it. Polling at
/// IDLE_MAX for ever would wake an idle process a thousand times a second.
const DEEP_IDLE: Duration = Duration::from_millis(200);
/// Records handled between checks of the flush interval.
const BATCH: usize = 4096;

impl AsyncSink {
    /// Wakes the writer if it announced a long park. A relaxed load: a caller that misses
    /// the announcement only delays its record until the park times out (at most
    /// DEEP_IDLE), it never loses it.
    #[inline]
    fn wake_if_sleeping(&self) {
        if self.writer_sleeping.load(Ordering::Relaxed) {
            self.writer.unpark();
        }
    }

    /// Waits for room: spin, then yield, then nap. Parking on a futex would cost a
    /// wake-up round-trip per record while the queue stays full.
    fn push_blocking(&self, mut r: Record) {
        let mut round = 0u32;
        // Once full, wait for a run of free slots rather than one: taking each slot as
        // the writer frees it keeps both threads on the same cache lines, and that
        // ping-pong, not the work, then sets the pace.
        let want = (self.queue.capacity() / 16).clamp(1, 256);
        loop {
            if round == 0 || self.queue.free() >= want {
                match self.queue.push(r) {
                    Ok(()) => return,
                    Err(back) => r = back,
                }
            }
            round += 1;
            if round <= 6 {
                for _ in 0..(1u32 << round) {
                    std::hint::spin_loop();
                }
            } else if round <= 20 {
                std::thread::yield_now();
            } else {
                self.writer.unpark();
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

/// Writes queued records until `head` reaches `upto` (records a flush or shutdown
/// request must see). A slot taken but not yet filled is waited for.
fn drain_until(q: &mut Consumer<Record>, d: &mut Dispatch, upto: usize) {
    while (upto.wrapping_sub(q.head()) as isize) > 0 {
        if !q.consume(|r| d.write(r)) {
            std::thread::yield_now();
        }
    }
}

fn writer_loop(
    mut q: Consumer<Record>,
    ctl: Receiver<Ctl>,
    mut d: Dispatch,
    interval: Duration,
    sleeping: &AtomicBool,
) {
    let mut last_flush = Instant::now();
    let mut last_tick = Instant::now();
    let mut dirty = false;
    let mut idle = IDLE_MIN;
    loop {
        let mut n = 0;
        while n < BATCH && q.consume(|r| d.write(r)) {
            n += 1;
        }
        if n > 0 {
            dirty = true;
            d.publish();
        }
        while let Ok(c) = ctl.try_recv() {
            match c {
                Ctl::Flush { upto, ack } => {
                    drain_until(&mut q, &mut d, upto);
                    d.flush();
                    dirty = false;
                    last_flush = Instant::now();
                    let _ = ack.send(());
                }
                Ctl::Shutdown { upto } => {
                    drain_until(&mut q, &mut d, upto);
                    d.close();
                    return;
                }
            }
        }
        let now = Instant::now();
        if dirty && now.duration_since(last_flush) >= interval {
            d.flush();
            dirty = false;
            last_flush = now;
        }
        if n == 0 {
            if now.duration_since(last_tick) >= Duration::from_millis(200) {
                d.tick();
                last_tick = now;
            }
            let deep = idle >= IDLE_MAX;
            let nap = if deep { DEEP_IDLE } else { idle };
            let wait = if dirty {
                nap.min(interval.saturating_sub(now.duration_since(last_flush)))
            } else {
                nap
            };
            if deep {
                sleeping.store(true, Ordering::SeqCst);
                // A record published before the announcement was visible to its caller
                // would otherwise wait for the whole park.
                if q.consume(|r| d.write(r)) {
                    sleeping.store(false, Ordering::Relaxed);
                    dirty = true;
                    d.publish();
                    idle = IDLE_MIN;
                    continue;
                }
            }
            std::thread::park_timeout(wait.max(Duration::from_micros(1)));
            if deep {
                sleeping.store(false, Ordering::Relaxed);
            }
            idle = (idle * 2).min(IDLE_MAX);
        } else {
            idle = IDLE_MIN;
        }
    }
}

// ---------------------------------------------------------------- global install

/// Error when a logger is already installed.
pub(crate) struct AlreadyInstalled;

pub(crate) fn install(core: Core) -> Result<&'static Core, AlreadyInstalled> {
    let core: &'static Core = Box::leak(Box::new(core));
    let ptr = core as *const Core as *mut Core;
    if CORE
        .compare_exchange(
            std::ptr::null_mut(),
            ptr,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        core.shutdown();
        return Err(AlreadyInstalled);
    }
    core.publish_levels();
    Ok(core)
}

#[inline]
pub(crate) fn current() -> Option<&'static Core> {
    let p = CORE.load(Ordering::Acquire);
    // SAFETY: CORE only ever holds null or a leaked `Box<Core>` that is never freed.
    unsafe { p.as_ref() }
}

// ---------------------------------------------------------------- handle

/// Runtime control of the installed logger: levels, flush, counters.
#[derive(Clone, Copy)]
pub struct Handle {
    core: &'static Core,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("level", &self.level_spec())
            .finish()
    }
}

impl Handle {
    pub(crate) fn new(core: &'static Core) -> Self {
        Handle { core }
    }

    /// Replaces the global level spec (`"info,mycrate::db=debug"`).
    pub fn set_level(&self, spec: &str) -> Result<(), crate::ConfigError> {
        let parsed = LevelSpec::parse(spec).map_err(|e| crate::ConfigError::Invalid {
            key: "level".into(),
            reason: e.to_string(),
        })?;
        *self.core.spec.write() = parsed;
        self.core.publish_levels();
        Ok(())
    }

    /// The current level spec, normalised.
    pub fn level_spec(&self) -> String {
        self.core.spec.read().to_string()
    }

    /// Sets one output's level (`"debug"`, `"off"`).
    pub fn set_output_level(&self, output: &str, level: &str) -> Result<(), crate::ConfigError> {
        let key = format!("outputs.{output}.level");
        let lf: LevelFilter = level.parse().map_err(|e: crate::level::ParseLevelError| {
            crate::ConfigError::Invalid {
                key: key.clone(),
                reason: e.to_string(),
            }
        })?;
        let Some((_, slot)) = self.core.outputs.iter().find(|(n, _)| n == output) else {
            return Err(crate::ConfigError::Invalid {
                key,
                reason: format!(
                    "no output named `{output}`; outputs are: {}",
                    self.core
                        .outputs
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        slot.store(lf.as_u8(), Ordering::Relaxed);
        self.core.publish_levels();
        Ok(())
    }

    /// Whether a record at `level` from `module` would be written somewhere.
    pub fn enabled(&self, module: &str, level: Level) -> bool {
        level as u8 >= MIN_LEVEL.load(Ordering::Relaxed) && self.core.enabled(module, level)
    }

    /// Writes everything logged so far to the outputs before returning.
    pub fn flush(&self) {
        self.core.flush()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.core.counters.snapshot()
    }
}

/// Keeps the logger installed; dropping it flushes every output, stops the writer and
/// uninstalls the logger (later calls are no-ops until the next `init`).
#[must_use = "dropping the guard uninstalls the logger at once"]
pub struct LoggerGuard {
    handle: Handle,
}

impl fmt::Debug for LoggerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggerGuard").finish_non_exhaustive()
    }
}

impl LoggerGuard {
    pub(crate) fn new(core: &'static Core) -> Self {
        LoggerGuard {
            handle: Handle::new(core),
        }
    }

    /// The runtime handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Writes everything logged so far to the outputs before returning.
    pub fn flush(&self) {
        self.handle.flush()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }
}

impl Drop for LoggerGuard {
    fn drop(&mut self) {
        let core = self.handle.core;
        let ptr = core as *const Core as *mut Core;
        if CORE
            .compare_exchange(
                ptr,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            MIN_LEVEL.store(6, Ordering::Relaxed);
            GENERATION.fetch_add(1, Ordering::Relaxed);
            log::set_max_level(log::LevelFilter::Off);
        }
        core.shutdown();
    }
}

/// The handle of the installed logger, if any.
pub fn handle() -> Option<Handle> {
    current().map(Handle::new)
}

// ---------------------------------------------------------------- call sites

// `enabled` asks the installed logger, which sits above records and so above
// `callsite`; its impl lives here so that `callsite` needs nothing from above.
impl Callsite {
    /// Per-module check, after the global level check passed: two relaxed loads
    /// while the filter is unchanged.
    #[inline]
    pub fn enabled(&'static self) -> bool {
        let generation = GENERATION.load(Ordering::Relaxed);
        if let Some(enabled) = self.cached_interest(generation) {
            return enabled;
        }
        self.refresh(generation)
    }

    #[cold]
    fn refresh(&self, generation: u32) -> bool {
        let enabled = current().is_some_and(|c| c.enabled(self.module(), self.level));
        self.store_interest(generation, enabled);
        enabled
    }
}

/// Builds the record at a macro call site and queues it.
#[doc(hidden)]
#[inline(never)]
pub fn log_callsite(
    cs: &'static Callsite,
    args: fmt::Arguments<'_>,
    fields: &[(&'static str, &dyn ToValue)],
) {
    log_with(cs, || crate::record::Message::format(args), fields);
}

/// The call site's fast path: when every argument is an integer or a string that fits
/// and `fmt` holds only `{}` placeholders, the arguments are copied into the record and
/// formatted on the writer (`core::fmt` is most of a caller's time otherwise). False
/// when not possible: the macro then calls [`log_callsite`].
#[doc(hidden)]
#[inline(never)]
pub fn log_deferred(
    cs: &'static Callsite,
    fmt: &'static str,
    args: &[crate::record::Arg<'_>],
    fields: &[(&'static str, &dyn ToValue)],
) -> bool {
    if !cs.deferrable(|| crate::record::simple_format(fmt, args.len())) {
        return false;
    }
    let Some(message) = crate::record::Message::deferred(fmt, args) else {
        return false;
    };
    log_with(cs, || message, fields);
    true
}

#[inline(always)]
fn log_with(
    cs: &'static Callsite,
    message: impl FnOnce() -> crate::record::Message,
    fields: &[(&'static str, &dyn ToValue)],
) {
    let Some(core) = current() else { return };
    let build = || {
        let (thread_id, thread_name) = crate::record::current_thread();
        Record {
            level: cs.level,
            time_us: crate::clock::record_time(),
            origin: Origin::Callsite(cs),
            thread_id,
            thread_name,
            message: message(),
            fields: if fields.is_empty() {
                Vec::new()
            } else {
                fields
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), v.to_value()))
                    .collect()
            },
        }
    };
    // Fast path: take a queue slot first and build the record straight into it (no
    // copy). A panicking `Display` of an argument still fills the taken slot.
    if let Sink::Async(a) = &core.sink
        && let Some(claim) = a.queue.claim()
    {
        claim.publish_with(build, formatting_panicked);
        a.wake_if_sleeping();
        if cs.level == Level::Fatal {
            core.after_fatal();
        }
        return;
    }
    if let Sink::Async(a) = &core.sink
        && a.overflow == Overflow::Drop
    {
        a.writer.unpark();
        core.counters.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    core.submit(build());
}

/// Stands in for a record whose arguments panicked while being formatted.
#[cold]
fn formatting_panicked() -> Record {
    let (thread_id, thread_name) = crate::record::current_thread();
    Record {
        level: Level::Error,
        time_us: crate::clock::now_us(),
        origin: Origin::other("logger", "", 0, None),
        thread_id,
        thread_name,
        message: "<formatting this record's arguments panicked>".into(),
        fields: Vec::new(),
    }
}

/// Queues a record built elsewhere (the `log` backend, the `tracing` layer).
pub(crate) fn submit(r: Record) {
    if let Some(core) = current() {
        core.submit(r);
    }
}

pub(crate) fn enabled_for(module: &str, level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
        && current().is_some_and(|c| c.enabled(module, level))
}

// ---------------------------------------------------------------- panic hook

static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// Logs a panic as a fatal record and flushes every output before the default hook
/// runs (the process is not made to exit: the panic goes on as it would).
pub(crate) fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(core) = current().filter(|c| c.capture_panics) {
                let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = info.payload().downcast_ref::<String>() {
                    s.clone()
                } else {
                    "Box<dyn Any>".to_string()
                };
                let (file, line) = info
                    .location()
                    .map(|l| (l.file().to_string(), l.line()))
                    .unwrap_or_default();
                let (thread_id, thread_name) = crate::record::current_thread();
                let r = Record {
                    level: Level::Fatal,
                    time_us: crate::clock::now_us(),
                    origin: Origin::other("panic", file, line, None),
                    thread_id,
                    thread_name,
                    message: format!("panicked: {msg}").into(),
                    fields: Vec::new(),
                };
                if LevelFilter::from_u8(MIN_LEVEL.load(Ordering::Relaxed)).allows(Level::Fatal) {
                    // Not `submit`: a panic must not exit the process through exit_on_fatal.
                    match &core.sink {
                        Sink::Sync(d) => {
                            if let Some(mut d) = d.try_lock() {
                                let mut r = r;
                                d.write(&mut r);
                                d.flush();
                            }
                        }
                        Sink::Async(a) => {
                            // The writer thread itself must not wait for room it
                            // alone can make: from there the record is best effort.
                            let on_writer = Some(std::thread::current().id()) == core.writer_id;
                            if let Err(r) = a.queue.push(r)
                                && !on_writer
                            {
                                a.writer.unpark();
                                a.push_blocking(r);
                            }
                            core.flush();
                        }
                    }
                }
            }
            previous(info);
        }));
    });
}
