//! What a macro call site holds: its static data and the cached filter answers, plus the
//! global level gate every macro checks first. Below records (a record points at its
//! call site), so asking the installed logger for a fresh answer happens in the hot-path
//! module (`emit`), which sits above the logger.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use crate::level::Level;

/// Least level that can pass anywhere (`LevelFilter::as_u8`); 6 = off. This is the one
/// atomic load a disabled call pays.
pub(crate) static MIN_LEVEL: AtomicU8 = AtomicU8::new(6);
/// Bumped on every filter change; call sites cache their answer against it.
pub(crate) static GENERATION: AtomicU32 = AtomicU32::new(1);

/// Static data of one macro call site, with a cached filter answer.
#[doc(hidden)]
pub struct Callsite {
    pub(crate) level: Level,
    module: &'static str,
    file: &'static str,
    line: u32,
    function: fn() -> &'static str,
    /// `generation << 1 | enabled`; 0 = not computed.
    interest: AtomicU32,
    /// Whether this call site's format string can be filled in on the writer:
    /// 0 = not yet known, 1 = yes, 2 = no.
    deferrable: AtomicU8,
}

impl fmt::Debug for Callsite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callsite")
            .field("level", &self.level)
            .field("module", &self.module)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

impl Callsite {
    #[doc(hidden)]
    pub const fn new(
        level: Level,
        module: &'static str,
        file: &'static str,
        line: u32,
        function: fn() -> &'static str,
    ) -> Self {
        Callsite {
            level,
            module,
            file,
            line,
            function,
            interest: AtomicU32::new(0),
            deferrable: AtomicU8::new(0),
        }
    }

    /// Module path.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Source file.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// Source line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// Name of the enclosing function.
    pub fn function(&self) -> &'static str {
        trim_function((self.function)())
    }

    /// The answer cached for `generation` (`GENERATION`'s value), if it is that recent.
    #[inline]
    pub(crate) fn cached_interest(&self, generation: u32) -> Option<bool> {
        let v = self.interest.load(Ordering::Relaxed);
        (v >> 1 == generation & (u32::MAX >> 1)).then_some(v & 1 == 1)
    }

    pub(crate) fn store_interest(&self, generation: u32, enabled: bool) {
        self.interest
            .store((generation << 1) | enabled as u32, Ordering::Relaxed);
    }

    /// Whether this call site's format string can be filled in on the writer; `check`
    /// runs once per call site, its answer is kept.
    #[inline]
    pub(crate) fn deferrable(&self, check: impl FnOnce() -> bool) -> bool {
        match self.deferrable.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let ok = check();
                self.deferrable
                    .store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        }
    }
}

/// `type_name` of the marker fn a macro defines inside the calling function, trimmed
/// to that function's name.
pub(crate) fn trim_function(raw: &str) -> &str {
    let mut s = raw.strip_suffix("::__logger_fn").unwrap_or(raw);
    while let Some(t) = s.strip_suffix("::{{closure}}") {
        s = t;
    }
    s.rsplit("::").next().unwrap_or(s)
}

/// The global level check done first by every macro: one relaxed atomic load.
#[doc(hidden)]
#[inline(always)]
pub fn level_enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn type_name_of<T>(_: T) -> &'static str {
    std::any::type_name::<T>()
}
