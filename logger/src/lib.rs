//! Structured, leveled, asynchronous logging with console, file and Kafka outputs.
//!
//! ```no_run
//! let _guard = logger::Builder::new()
//!     .level("info,my_app::db=debug")
//!     .output("app", logger::OutputConfig::file("app.log").json().max_size(100_000_000))
//!     .init()
//!     .expect("logger config");
//! logger::info!("user {} logged in from {}", 42, "10.0.0.1");
//! logger::warn!(user = 42, ms = 1200; "slow login");
//! log::info!("the `log` facade works too");
//! ```
//!
//! The hot path (macro -> [`Record`] -> queue) lives in `callsite` and `emit`; the
//! writer side (`writer`, `dispatch`) hands records to formats (`format`) and outputs
//! (`outputs`), so adding an output never touches the hot path. A disabled call costs
//! one relaxed atomic load.

#![warn(missing_docs)]

mod builder;
mod callsite;
mod clock;
pub mod config;
mod dispatch;
mod emit;
mod facade;
pub mod filter;
pub mod format;
mod global;
mod handle;
mod init_error;
pub mod level;
pub mod outputs;
mod panic;
mod queue;
pub mod record;
pub mod rotation;
mod stats;
#[cfg(feature = "tracing")]
pub mod tracing_layer;
mod writer;

pub use crate::builder::{Builder, init_from_file};
pub use crate::config::{ConfigError, ConfigFormat, LoggerConfig, Mode, OutputConfig, OutputKind};
pub use crate::filter::LevelSpec;
pub use crate::format::{Format, FormatCtx, TimeZoneKind};
pub use crate::handle::{Handle, LoggerGuard, handle};
pub use crate::init_error::InitError;
pub use crate::level::{Level, LevelFilter};
pub use crate::outputs::{KafkaErrorCallback, Output};
pub use crate::record::{Message, Origin, OtherOrigin, Record, ToValue, Value, display};
pub use crate::stats::Stats;
pub use crate::writer::Overflow;

/// Items the macros (and the tests) use; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::callsite::{Callsite, level_enabled, type_name_of};
    pub use crate::clock::uses_tsc;
    pub use crate::emit::{log_callsite, log_deferred};
    pub use crate::record::{Arg, ArgAny, ArgExact, Wrap};
}

/// Logs at a given [`Level`]: `logger::log!(logger::Level::Info, "x = {}", x)`,
/// with fields: `logger::log!(logger::Level::Info, user = 42, "ip" = ip; "login")`.
#[macro_export]
macro_rules! log {
    ($lvl:expr, $($key:tt = $value:expr),+ ; $($arg:tt)+) => {
        $crate::__logger_log!(
            $lvl,
            [$(($crate::__logger_key!($key), &$value as &dyn $crate::ToValue)),+];
            $($arg)+
        )
    };
    ($lvl:expr, $($arg:tt)+) => {
        $crate::__logger_log!($lvl, []; $($arg)+)
    };
}

/// The one expansion behind [`log!`]: `$fields` is the slice of (key, value) pairs.
#[doc(hidden)]
#[macro_export]
macro_rules! __logger_log {
    ($lvl:expr, $fields:tt; $($arg:tt)+) => {{
        const __LOGGER_LVL: $crate::Level = $lvl;
        if $crate::__private::level_enabled(__LOGGER_LVL) {
            fn __logger_fn() -> &'static str {
                $crate::__private::type_name_of(__logger_fn)
            }
            static __LOGGER_CS: $crate::__private::Callsite = $crate::__private::Callsite::new(
                __LOGGER_LVL,
                ::core::module_path!(),
                ::core::file!(),
                ::core::line!(),
                __logger_fn,
            );
            if __LOGGER_CS.enabled() {
                $crate::__logger_emit!(__LOGGER_CS, $fields; $($arg)+);
            }
        }
    }};
}

/// Queues the record of an enabled call site. A format string with plain identifiers
/// as arguments first tries [`log_deferred`](crate::__private::log_deferred): integers
/// and strings are copied and formatted on the writer; anything else (other types,
/// format specs, expressions) goes through `format_args!` on the caller.
#[doc(hidden)]
#[macro_export]
macro_rules! __logger_emit {
    ($cs:ident, $fields:tt; $fmt:literal, $($a:ident),+ $(,)?) => {{
        #[allow(unused_imports)]
        use $crate::__private::{ArgAny as _, ArgExact as _};
        let __logger_fields = $fields;
        if !$crate::__private::log_deferred(
            &$cs,
            $fmt,
            &[$((&$crate::__private::Wrap(&$a)).__logger_arg()),+],
            &__logger_fields,
        ) {
            $crate::__private::log_callsite(
                &$cs,
                ::core::format_args!($fmt, $($a),+),
                &__logger_fields,
            );
        }
    }};
    ($cs:ident, $fields:tt; $($arg:tt)+) => {
        $crate::__private::log_callsite(&$cs, ::core::format_args!($($arg)+), &$fields)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __logger_key {
    ($k:ident) => {
        ::core::stringify!($k)
    };
    ($k:literal) => {
        $k
    };
}

/// Logs at trace level (see [`log!`] for fields).
#[macro_export]
macro_rules! trace { ($($t:tt)+) => { $crate::log!($crate::Level::Trace, $($t)+) }; }
/// Logs at debug level (see [`log!`] for fields).
#[macro_export]
macro_rules! debug { ($($t:tt)+) => { $crate::log!($crate::Level::Debug, $($t)+) }; }
/// Logs at info level (see [`log!`] for fields).
#[macro_export]
macro_rules! info { ($($t:tt)+) => { $crate::log!($crate::Level::Info, $($t)+) }; }
/// Logs at warn level (see [`log!`] for fields).
#[macro_export]
macro_rules! warn { ($($t:tt)+) => { $crate::log!($crate::Level::Warn, $($t)+) }; }
/// Logs at error level (see [`log!`] for fields).
#[macro_export]
macro_rules! error { ($($t:tt)+) => { $crate::log!($crate::Level::Error, $($t)+) }; }
/// Logs at fatal level, then flushes every output before returning; exits the process
/// only if `exit_on_fatal` is set (default: it returns).
#[macro_export]
macro_rules! fatal { ($($t:tt)+) => { $crate::log!($crate::Level::Fatal, $($t)+) }; }
