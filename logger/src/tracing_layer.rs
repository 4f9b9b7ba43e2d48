//! A `tracing_subscriber` layer (feature `tracing`): `tracing::info!` events become
//! records in this logger, with their fields as key-value fields.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! let _guard = logger::Builder::new().init().expect("logger");
//! let subscriber = tracing_subscriber::registry().with(logger::tracing_layer::LoggerLayer::new());
//! tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
//! tracing::info!(user = 42, "logged in");
//! ```

use std::borrow::Cow;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::level::Level;
use crate::record::{Origin, Record, Str, Value};

/// Routes `tracing` events into the installed logger, using its filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoggerLayer;

impl LoggerLayer {
    /// The layer.
    pub fn new() -> Self {
        LoggerLayer
    }
}

fn level_of(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::ERROR => Level::Error,
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(Str, Value)>,
}

impl Fields {
    fn push(&mut self, f: &Field, v: Value) {
        self.fields.push((Cow::Borrowed(f.name()), v));
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.push(f, Value::I64(v))
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.push(f, Value::U64(v))
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.push(f, Value::F64(v))
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.push(f, Value::Bool(v))
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.message = Some(v.to_string());
        } else {
            self.push(f, Value::Str(Cow::Owned(v.to_string())))
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if f.name() == "message" {
            self.message = Some(format!("{v:?}"));
        } else {
            self.push(f, Value::Str(Cow::Owned(format!("{v:?}"))))
        }
    }
}

impl<S: Subscriber> Layer<S> for LoggerLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        crate::emit::enabled_for(metadata.target(), level_of(metadata.level()))
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = level_of(meta.level());
        if !crate::emit::enabled_for(meta.target(), level) {
            return;
        }
        let mut v = Fields::default();
        event.record(&mut v);
        let (thread_id, thread_name) = crate::record::current_thread();
        crate::emit::submit(Record {
            level,
            time_us: crate::clock::now_us(),
            origin: Origin::other(
                meta.target(),
                meta.file().unwrap_or(""),
                meta.line().unwrap_or(0),
                None,
            ),
            thread_id,
            thread_name,
            message: v.message.unwrap_or_default().into(),
            fields: v.fields,
        });
    }
}
