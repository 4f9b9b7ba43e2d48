//! The `log` crate backend: `log::info!` from any crate reaches our outputs.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::init_error::InitError;
use crate::level::Level;
use crate::record::{Origin, OtherOrigin, Record, Str, Value};

struct Facade;

static FACADE: Facade = Facade;
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the backend once per process; later `init`s reuse it (it forwards to
/// whichever logger is installed at the time).
pub(crate) fn install() -> Result<(), InitError> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    match log::set_logger(&FACADE) {
        Ok(()) => {
            INSTALLED.store(true, Ordering::Release);
            Ok(())
        }
        Err(_) => Err(InitError::LogFacadeTaken),
    }
}

fn static_or_owned(s: &str, stat: Option<&'static str>) -> Str {
    match stat {
        Some(st) if st == s => Cow::Borrowed(st),
        _ => Cow::Owned(s.to_string()),
    }
}

struct Collect(Vec<(Str, Value)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let v = if let Some(b) = value.to_bool() {
            Value::Bool(b)
        } else if let Some(i) = value.to_i64() {
            Value::I64(i)
        } else if let Some(u) = value.to_u64() {
            Value::U64(u)
        } else if let Some(f) = value.to_f64() {
            Value::F64(f)
        } else if let Some(s) = value.to_borrowed_str() {
            Value::Str(Cow::Owned(s.to_string()))
        } else {
            Value::Str(Cow::Owned(value.to_string()))
        };
        self.0.push((Cow::Owned(key.as_str().to_string()), v));
        Ok(())
    }
}

impl log::Log for Facade {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        crate::emit::enabled_for(metadata.target(), metadata.level().into())
    }

    fn log(&self, record: &log::Record<'_>) {
        let level: Level = record.level().into();
        if !crate::emit::enabled_for(record.target(), level) {
            return;
        }
        let message = crate::record::Message::format(*record.args());
        let mut kv = Collect(Vec::new());
        let _ = record.key_values().visit(&mut kv);
        let (thread_id, thread_name) = crate::record::current_thread();
        crate::emit::submit(Record {
            level,
            time_us: crate::clock::now_us(),
            origin: Origin::Other(Box::new(OtherOrigin {
                target: static_or_owned(record.target(), record.module_path_static()),
                file: match (record.file_static(), record.file()) {
                    (Some(f), _) => Cow::Borrowed(f),
                    (None, Some(f)) => Cow::Owned(f.to_string()),
                    (None, None) => Cow::Borrowed(""),
                },
                line: record.line().unwrap_or(0),
                function: None,
            })),
            thread_id,
            thread_name,
            message,
            fields: kv.0,
        });
    }

    fn flush(&self) {
        if let Some(h) = crate::handle::handle() {
            h.flush();
        }
    }
}
