//! Severity levels and level filters.

use std::fmt;
use std::str::FromStr;

/// How severe a record is. Ordered `Trace < Debug < Info < Warn < Error < Fatal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Very fine-grained diagnostics.
    Trace = 0,
    /// Diagnostics useful while developing.
    Debug = 1,
    /// Normal operation worth recording.
    Info = 2,
    /// Something unexpected that the program survived.
    Warn = 3,
    /// An operation failed.
    Error = 4,
    /// The program cannot go on; `fatal!` flushes every output before returning.
    Fatal = 5,
}

impl Level {
    /// All levels, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// Lowercase name, as written in JSON (`"info"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Uppercase name padded to five characters, for aligned text lines.
    pub const fn as_padded_upper(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    pub(crate) const fn from_u8(v: u8) -> Option<Level> {
        match v {
            0 => Some(Level::Trace),
            1 => Some(Level::Debug),
            2 => Some(Level::Info),
            3 => Some(Level::Warn),
            4 => Some(Level::Error),
            5 => Some(Level::Fatal),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a level name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level `{0}`: expected one of trace, debug, info, warn (or warning), error, fatal, off"
)]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match LevelFilter::from_str(s)? {
            LevelFilter::Off => Err(ParseLevelError(s.to_string())),
            LevelFilter::Level(l) => Ok(l),
        }
    }
}

/// The least severe level that passes, or `Off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LevelFilter {
    /// Records at this level or more severe pass.
    Level(Level),
    /// Nothing passes.
    Off,
}

impl LevelFilter {
    /// Everything passes.
    pub const TRACE: LevelFilter = LevelFilter::Level(Level::Trace);
    /// Debug and above pass.
    pub const DEBUG: LevelFilter = LevelFilter::Level(Level::Debug);
    /// Info and above pass.
    pub const INFO: LevelFilter = LevelFilter::Level(Level::Info);
    /// Warn and above pass.
    pub const WARN: LevelFilter = LevelFilter::Level(Level::Warn);
    /// Error and above pass.
    pub const ERROR: LevelFilter = LevelFilter::Level(Level::Error);
    /// Only fatal passes.
    pub const FATAL: LevelFilter = LevelFilter::Level(Level::Fatal);

    /// Encoded as the least level that passes (0..=5), 6 for Off; lower passes more.
    pub(crate) const fn as_u8(self) -> u8 {
        match self {
            LevelFilter::Level(l) => l as u8,
            LevelFilter::Off => 6,
        }
    }

    pub(crate) const fn from_u8(v: u8) -> LevelFilter {
        match Level::from_u8(v) {
            Some(l) => LevelFilter::Level(l),
            None => LevelFilter::Off,
        }
    }

    /// Whether a record at `level` passes this filter.
    #[inline]
    pub fn allows(self, level: Level) -> bool {
        (level as u8) >= self.as_u8()
    }

    /// The more permissive of two filters.
    pub fn most_verbose(self, other: LevelFilter) -> LevelFilter {
        LevelFilter::from_u8(self.as_u8().min(other.as_u8()))
    }

    pub(crate) fn to_log(self) -> log::LevelFilter {
        match self {
            LevelFilter::Level(Level::Trace) => log::LevelFilter::Trace,
            LevelFilter::Level(Level::Debug) => log::LevelFilter::Debug,
            LevelFilter::Level(Level::Info) => log::LevelFilter::Info,
            LevelFilter::Level(Level::Warn) => log::LevelFilter::Warn,
            // `log` has no fatal: its Error is the most severe, so Error must stay
            // enabled whenever fatal-only logging is on for our own macros.
            LevelFilter::Level(Level::Error) | LevelFilter::Level(Level::Fatal) => {
                log::LevelFilter::Error
            }
            LevelFilter::Off => log::LevelFilter::Off,
        }
    }
}

impl fmt::Display for LevelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LevelFilter::Level(l) => l.fmt(f),
            LevelFilter::Off => f.write_str("off"),
        }
    }
}

impl FromStr for LevelFilter {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            "fatal" => Level::Fatal,
            "off" | "none" => return Ok(LevelFilter::Off),
            _ => return Err(ParseLevelError(s.to_string())),
        };
        Ok(LevelFilter::Level(l))
    }
}

impl From<Level> for LevelFilter {
    fn from(l: Level) -> Self {
        LevelFilter::Level(l)
    }
}

impl From<log::Level> for Level {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_including_warning_and_off() {
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("FATAL".parse::<Level>(), Ok(Level::Fatal));
        assert_eq!("off".parse::<LevelFilter>(), Ok(LevelFilter::Off));
        assert!("verbose".parse::<Level>().is_err());
        assert!(LevelFilter::INFO.allows(Level::Error));
        assert!(!LevelFilter::INFO.allows(Level::Debug));
        assert!(!LevelFilter::Off.allows(Level::Fatal));
    }
}
