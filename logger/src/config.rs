//! What a user writes: the config structs (TOML or INI, or filled in by [`Builder`](crate::Builder)),
//! and their errors. Every field has a default; durations and sizes are text
//! (`"50ms"`, `"100MB"`) checked when the logger is built, so errors name the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use conf_file::ConfigFormat;
pub use secure_transport::kafka::KafkaSecurity;
use serde::Deserialize;

use crate::format::TimeZoneKind;
use crate::outputs::console::{ColorMode, Stream};
use crate::rotation::Suffix;
use crate::writer::Overflow;

/// What is wrong in a logger config: it cannot be read or parsed, or a key is unknown or
/// has a value that is not allowed. Installing the logger can fail for more reasons:
/// [`InitError`](crate::InitError).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read logger config {path}: {source}; check the path and its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's extension says neither TOML nor INI.
    #[error("logger config {0}: unknown extension; use .toml, or .ini/.conf/.cfg for INI")]
    Extension(PathBuf),
    /// The text is not valid TOML or INI.
    #[error("logger config {origin} does not parse: {message}")]
    Syntax {
        /// File path or `<string>`.
        origin: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("logger config: key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key (`outputs.app.rotation.max_size`).
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// Synchronous or asynchronous writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Records go through a bounded queue to a writer thread that batches writes.
    #[default]
    Async,
    /// Each call writes (and flushes) its record before returning.
    Sync,
}

/// The whole logger configuration.
///
/// ```toml
/// level = "info,my_app::db=debug"
/// [outputs.console]
/// kind = "console"
/// [outputs.app]
/// kind = "file"
/// path = "/var/log/my_app/app.log"
/// format = "json"
/// rotation = { max_size = "100MB", period = "1d", keep = 7, gzip = true }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggerConfig {
    /// Level spec in `RUST_LOG` syntax: a default level and `module=level` overrides.
    /// Levels: trace, debug, info, warn (or warning), error, fatal, off. Default `"info"`.
    pub level: String,
    /// `async` (default: queue + writer thread) or `sync`.
    pub mode: Mode,
    /// Records the async queue holds (rounded up to a power of two). Default 16384
    /// (about 3 MiB).
    pub queue_capacity: usize,
    /// When the queue is full: `block` (default, loses nothing) or `drop` (counted).
    pub overflow: Overflow,
    /// How often the writer pushes buffered lines to the outputs while records keep
    /// coming. Default `"50ms"`.
    pub flush_interval: String,
    /// Whether `fatal!` exits the process (status 1) after flushing. Default `false`:
    /// it flushes and returns, and the application decides.
    pub exit_on_fatal: bool,
    /// Log panics as fatal records and flush before the panic proceeds. Default `true`.
    pub capture_panics: bool,
    /// Time zone of timestamps: `utc` (default) or `local`.
    pub timezone: TimeZoneKind,
    /// Install as the `log` crate's backend. Default `true`.
    pub log_facade: bool,
    /// Named outputs. None configured means one console output on stderr.
    pub outputs: BTreeMap<String, OutputConfig>,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            level: "info".into(),
            mode: Mode::Async,
            queue_capacity: 16384,
            overflow: Overflow::Block,
            flush_interval: "50ms".into(),
            exit_on_fatal: false,
            capture_panics: true,
            timezone: TimeZoneKind::Utc,
            log_facade: true,
            outputs: BTreeMap::new(),
        }
    }
}

/// Kind of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// stdout or stderr.
    #[default]
    Console,
    /// A file, optionally rotated.
    File,
    /// A Kafka topic (feature `kafka`).
    Kafka,
}

/// Line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    /// Text from `pattern`.
    #[default]
    Pattern,
    /// One ECS JSON object per line.
    Json,
}

/// What a Kafka output does when its bounded buffer is full (broker down or slow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaOverflow {
    /// Drop the record and count it.
    #[default]
    Drop,
    /// Append it to `spill_path` instead.
    Spill,
}

secure_transport::kafka_section! {
    /// One output. Keys that do not apply to its `kind` are rejected. A Kafka output also takes
    /// the TLS and SASL keys every Kafka client of the platform has (`security_protocol`,
    /// `sasl_*`, `tls_*`, and `librdkafka_options` for any other librdkafka property:
    /// [`KafkaSecurity`]).
    #[derive(Clone, Debug, PartialEq)]
    pub struct OutputConfig {
        /// `console` (default), `file` or `kafka`.
        pub kind: OutputKind,
        /// Least level this output writes (on top of the global spec). Default `trace`
        /// (everything the global spec lets through).
        pub level: String,
        /// `pattern` (default) or `json`.
        pub format: FormatKind,
        /// Pattern for `format = "pattern"`; placeholders `{time} {level} {file} {line}
        /// {module} {function} {thread} {thread_id} {message} {fields} {pid}`.
        /// Default: `{time} {level} [{thread}] {module} {file}:{line} {function}: {message}{fields}`.
        pub pattern: Option<String>,
        /// Time zone of this output's timestamps; default: the top-level `timezone`.
        pub timezone: Option<TimeZoneKind>,
        /// Console: `stderr` (default) or `stdout`.
        pub stream: Stream,
        /// Console: colour levels `auto` (default: only on a terminal), `always`, `never`.
        pub color: ColorMode,
        /// File: path of the live file (required). Its directory is created if missing.
        pub path: Option<PathBuf>,
        /// File: bytes buffered before a write. Default `"64KiB"`.
        pub buffer_size: String,
        /// File: rotation and retention; no trigger set means the file grows forever.
        pub rotation: RotationConfig,
        /// Kafka: bootstrap servers, `host:port[,host:port]` (required).
        pub brokers: Option<String>,
        /// Kafka: topic (required).
        pub topic: Option<String>,
        /// Kafka: messages buffered in the producer while the broker is slow or down.
        /// Default 100000.
        pub buffer_messages: usize,
        /// Kafka: `drop` (default, counted) or `spill` to `spill_path` when the buffer is full.
        pub on_full: KafkaOverflow,
        /// Kafka: fallback file for `on_full = "spill"`.
        pub spill_path: Option<PathBuf>,
        /// Kafka: how long a buffered message is retried before it counts as a delivery
        /// error: a duration, or `"none"` (default): retried until the broker takes it,
        /// however long it is away (librdkafka's `message.timeout.ms = 0`); the buffer bound
        /// (`buffer_messages`, `on_full`) still applies.
        pub message_timeout: String,
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            kind: OutputKind::Console,
            level: "trace".into(),
            format: FormatKind::Pattern,
            pattern: None,
            timezone: None,
            stream: Stream::Stderr,
            color: ColorMode::Auto,
            path: None,
            buffer_size: "64KiB".into(),
            rotation: RotationConfig::default(),
            brokers: None,
            topic: None,
            buffer_messages: 100_000,
            on_full: KafkaOverflow::Drop,
            spill_path: None,
            message_timeout: "none".into(),
            security: KafkaSecurity::default(),
        }
    }
}

/// Rotation of a file output. The first trigger to fire wins.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotationConfig {
    /// Rotate before the file would exceed this size (`"100MB"`, `"64KiB"`, bytes).
    pub max_size: Option<String>,
    /// Rotate at every multiple of this period, aligned to the clock (`"1h"`, `"15m"`, `"1d"`).
    pub period: Option<String>,
    /// Zone the period is aligned to; default: the top-level `timezone`.
    pub align: Option<TimeZoneKind>,
    /// Rotated name: `timestamp` (default, `app.log.20261125-140000`) or `index` (`app.log.1`).
    pub suffix: Suffix,
    /// Keep at most this many rotated files.
    pub keep: Option<usize>,
    /// Delete rotated files older than this (`"7d"`).
    pub max_age: Option<String>,
    /// Gzip rotated files in the background. Default `false`.
    pub gzip: bool,
}

impl LoggerConfig {
    /// Reads a config file, TOML (`.toml`) or INI (`.ini`, `.conf`, `.cfg`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let format = ConfigFormat::from_path(path)
            .ok_or_else(|| ConfigError::Extension(path.to_path_buf()))?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, format, &path.display().to_string())
    }

    /// Parses config text.
    pub fn from_str(text: &str, format: ConfigFormat) -> Result<Self, ConfigError> {
        Self::parse(text, format, "<string>")
    }

    fn parse(text: &str, format: ConfigFormat, origin: &str) -> Result<Self, ConfigError> {
        let table = match format {
            ConfigFormat::Toml => text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?,
            ConfigFormat::Ini => ini_to_table(text).map_err(|message| ConfigError::Syntax {
                origin: origin.to_string(),
                message,
            })?,
        };
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: e.into_inner().to_string(),
            }
        })
    }
}

/// INI to the same tree TOML gives, in the platform's one INI dialect
/// ([`conf_file::ini`]: `;`/`#` comments at the start of a line or after whitespace,
/// dotted sections nest). Values: unquoted `true`/`false` are booleans, unquoted integers
/// are integers, the rest strings (quotes stripped).
fn ini_to_table(text: &str) -> Result<toml::Table, String> {
    conf_file::ini::parse(text, conf_file::Scalars::Typed).map_err(|error| error.to_string())
}

/// Parses `"100MB"`, `"64KiB"`, `"1GB"`, `"4096"` into bytes (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024).
pub(crate) fn parse_size(key: &str, s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("invalid size `{s}`: expected a number with an optional unit, like `100MB` or `64KiB`")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "invalid size `{s}`: unknown unit `{other}`; use B, KB, MB, GB, KiB, MiB or GiB"
                ),
            ));
        }
    };
    let v = n.saturating_mul(mult);
    if v == 0 {
        return Err(ConfigError::invalid(
            key,
            format!("size `{s}` must be greater than zero"),
        ));
    }
    Ok(v)
}

/// Parses `"50ms"`, `"1h"`, `"7d"`.
pub(crate) fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("invalid duration `{s}`: {e}; write e.g. `50ms`, `10s`, `1h`, `7d`"),
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::invalid(
            key,
            format!("duration `{s}` must be greater than zero"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("k", "64KiB").unwrap(), 65536);
        assert_eq!(parse_size("k", "100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("k", "12").unwrap(), 12);
        assert!(
            parse_size("k", "12 parsecs")
                .unwrap_err()
                .to_string()
                .contains("`parsecs`")
        );
        assert_eq!(
            parse_duration("k", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        assert!(parse_duration("k", "soon").is_err());
    }

    #[test]
    fn ini_and_toml_give_the_same_config() {
        let toml = r#"
level = "warn,app=debug"
queue_capacity = 100
[outputs.f]
kind = "file"
path = "/tmp/x.log"
format = "json"
[outputs.f.rotation]
max_size = "1MB"
keep = 3
gzip = true
"#;
        let ini = "
; comment
level = warn,app=debug
queue_capacity = 100
[outputs.f]
kind = file
path = /tmp/x.log
format = json
[outputs.f.rotation]
max_size = 1MB
keep = 3
gzip = true
";
        let a = LoggerConfig::from_str(toml, ConfigFormat::Toml).unwrap();
        let b = LoggerConfig::from_str(ini, ConfigFormat::Ini).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.outputs["f"].rotation.keep, Some(3));
    }
}
