//! The application's side of the installed logger: [`LoggerGuard`] keeps it installed,
//! [`Handle`] changes its levels at run time, flushes it and reads its counters.

use std::fmt;
use std::sync::atomic::Ordering;

use crate::callsite::MIN_LEVEL;
use crate::config::ConfigError;
use crate::filter::LevelSpec;
use crate::global::Core;
use crate::level::{Level, LevelFilter};
use crate::stats::Stats;

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
    pub fn set_level(&self, spec: &str) -> Result<(), ConfigError> {
        let parsed = LevelSpec::parse(spec).map_err(|e| ConfigError::Invalid {
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
    pub fn set_output_level(&self, output: &str, level: &str) -> Result<(), ConfigError> {
        let key = format!("outputs.{output}.level");
        let lf: LevelFilter =
            level
                .parse()
                .map_err(|e: crate::level::ParseLevelError| ConfigError::Invalid {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
        let Some((_, slot)) = self.core.outputs.iter().find(|(n, _)| n == output) else {
            return Err(ConfigError::Invalid {
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
        crate::global::uninstall(self.handle.core);
    }
}

/// The handle of the installed logger, if any.
pub fn handle() -> Option<Handle> {
    crate::global::current().map(Handle::new)
}
