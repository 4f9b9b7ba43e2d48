//! The installed logger: its filter (level spec and per-output levels, published to
//! the call sites' atomics) and its writer. One at a time, reached through [`current`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

use parking_lot::RwLock;

use crate::callsite::{GENERATION, MIN_LEVEL};
use crate::filter::LevelSpec;
use crate::level::{Level, LevelFilter};
use crate::record::Record;
use crate::stats::Counters;
use crate::writer::{Enqueue, Writer};

/// The installed logger. Never freed: a caller that loaded the pointer just before a
/// shutdown may still use it, so retired cores are leaked (one per `init`).
static CORE: AtomicPtr<Core> = AtomicPtr::new(std::ptr::null_mut());

/// A configured logger: filter, outputs and the way to reach them.
pub(crate) struct Core {
    pub(crate) spec: RwLock<LevelSpec>,
    /// Each output's name and level, shared with the writer side.
    pub(crate) outputs: Vec<(String, Arc<AtomicU8>)>,
    writer: Writer,
    pub(crate) counters: Arc<Counters>,
    exit_on_fatal: bool,
    closed: AtomicBool,
    /// Whether the panic hook logs panics for this logger.
    pub(crate) capture_panics: bool,
}

impl Core {
    pub(crate) fn new(
        spec: LevelSpec,
        outputs: Vec<(String, Arc<AtomicU8>)>,
        writer: Writer,
        counters: Arc<Counters>,
        exit_on_fatal: bool,
    ) -> Core {
        Core {
            spec: RwLock::new(spec),
            outputs,
            writer,
            counters,
            exit_on_fatal,
            closed: AtomicBool::new(false),
            capture_panics: true,
        }
    }

    fn outputs_min(&self) -> LevelFilter {
        self.outputs.iter().fold(LevelFilter::Off, |acc, (_, l)| {
            acc.most_verbose(LevelFilter::from_u8(l.load(Ordering::Relaxed)))
        })
    }

    pub(crate) fn enabled(&self, module: &str, level: Level) -> bool {
        self.spec.read().level_for(module).allows(level) && self.outputs_min().allows(level)
    }

    /// Recomputes the global minimum after any filter change.
    pub(crate) fn publish_levels(&self) {
        let spec_min = self.spec.read().most_verbose();
        let out_min = self.outputs_min();
        let min = spec_min.as_u8().max(out_min.as_u8());
        MIN_LEVEL.store(min, Ordering::Relaxed);
        GENERATION.fetch_add(1, Ordering::Relaxed);
        log::set_max_level(LevelFilter::from_u8(min).to_log());
    }

    /// The hot path's way in: see [`Writer::enqueue_with`].
    #[inline(always)]
    pub(crate) fn send_with(
        &self,
        level: Level,
        build: impl FnOnce() -> Record,
        panicked: fn() -> Record,
    ) {
        match self.writer.enqueue_with(build, panicked) {
            Enqueue::Queued => {
                if level == Level::Fatal {
                    self.after_fatal();
                }
            }
            Enqueue::Dropped => {}
            Enqueue::Slow(build) => self.submit(build()),
        }
    }

    pub(crate) fn submit(&self, r: Record) {
        let fatal = r.level == Level::Fatal;
        self.writer.submit(r);
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
        self.writer.flush();
    }

    /// A panic's record: not `submit`, which could exit the process through
    /// `exit_on_fatal`; see [`Writer::submit_from_panic`].
    pub(crate) fn submit_from_panic(&self, r: Record) {
        self.writer.submit_from_panic(r);
    }

    /// Drains the queue, closes the outputs and stops the writer. Idempotent.
    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.writer.shutdown();
    }
}

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

/// Uninstalls `core` if it is still the installed logger (call sites then see
/// nothing enabled), and shuts it down either way.
pub(crate) fn uninstall(core: &'static Core) {
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

#[inline]
pub(crate) fn current() -> Option<&'static Core> {
    let p = CORE.load(Ordering::Acquire);
    // SAFETY: CORE only ever holds null or a leaked `Box<Core>` that is never freed.
    unsafe { p.as_ref() }
}
