//! The panic hook: a panic becomes a fatal record, flushed before the previous hook
//! runs.

use std::sync::atomic::Ordering;

use crate::callsite::MIN_LEVEL;
use crate::global::current;
use crate::level::{Level, LevelFilter};
use crate::record::{Origin, Record};

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
                    core.submit_from_panic(r);
                }
            }
            previous(info);
        }));
    });
}
