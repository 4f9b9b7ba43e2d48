//! The hot path: macro call site -> [`Record`] -> the installed logger's queue. Nothing
//! here formats for an output or knows one; that happens on the writer side.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::Ordering;

use crate::callsite::{Callsite, GENERATION, MIN_LEVEL};
use crate::global::current;
use crate::level::Level;
use crate::record::{Arg, Message, Origin, Record, ToValue};

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
    log_with(cs, || Message::format(args), fields);
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
    args: &[Arg<'_>],
    fields: &[(&'static str, &dyn ToValue)],
) -> bool {
    if !cs.deferrable(|| crate::record::simple_format(fmt, args.len())) {
        return false;
    }
    let Some(message) = Message::deferred(fmt, args) else {
        return false;
    };
    log_with(cs, || message, fields);
    true
}

#[inline(always)]
fn log_with(
    cs: &'static Callsite,
    message: impl FnOnce() -> Message,
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
    core.send_with(cs.level, build, formatting_panicked);
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
