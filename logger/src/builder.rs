//! Building and installing the logger from code or from a [`LoggerConfig`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use crate::config::{
    ConfigError, FormatKind, LoggerConfig, Mode, OutputConfig, OutputKind, parse_duration,
    parse_size,
};
use crate::dispatch::{Dispatch, Slot};
use crate::filter::LevelSpec;
use crate::format::{Format, FormatCtx, JsonFormat, PatternFormat, TimeZoneKind};
use crate::global::Core;
use crate::handle::LoggerGuard;
use crate::init_error::InitError;
use crate::level::LevelFilter;
use crate::outputs::console::{ConsoleOutput, Stream};
use crate::outputs::file::FileOutput;
use crate::outputs::{KafkaErrorCallback, Output};
use crate::rotation::{Clock, RotationPolicy, Suffix};
use crate::stats::Counters;
use crate::writer::{AsyncSettings, Overflow, Writer};

struct Custom {
    name: String,
    level: LevelFilter,
    format: Box<dyn Format>,
    output: Box<dyn Output>,
}

/// Configures the logger in code; [`Builder::init`] installs it.
///
/// ```no_run
/// use logger::{Builder, OutputConfig};
/// let _guard = Builder::new()
///     .level("info,my_app::db=debug")
///     .output("console", OutputConfig::console())
///     .output("app", OutputConfig::file("/var/log/my_app/app.log").json().max_size(100_000_000).keep(5))
///     .init()
///     .expect("logger config");
/// logger::info!("started");
/// ```
pub struct Builder {
    config: LoggerConfig,
    custom: Vec<Custom>,
    clocks: HashMap<String, Arc<dyn Clock>>,
    kafka_error: Option<KafkaErrorCallback>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: level `info`, async, no outputs (a console on stderr if none is added).
    pub fn new() -> Self {
        Builder::from_config(LoggerConfig::default())
    }

    /// Starts from a parsed config.
    pub fn from_config(config: LoggerConfig) -> Self {
        Builder {
            config,
            custom: Vec::new(),
            clocks: HashMap::new(),
            kafka_error: None,
        }
    }

    /// The level spec (`"info,mycrate::db=debug"`).
    pub fn level(mut self, spec: impl Into<String>) -> Self {
        self.config.level = spec.into();
        self
    }

    /// Adds (or replaces) a named output.
    pub fn output(mut self, name: impl Into<String>, output: OutputConfig) -> Self {
        self.config.outputs.insert(name.into(), output);
        self
    }

    /// Adds an output of your own, with its level and format.
    pub fn custom(
        mut self,
        name: impl Into<String>,
        level: LevelFilter,
        format: impl Format + 'static,
        output: impl Output + 'static,
    ) -> Self {
        self.custom.push(Custom {
            name: name.into(),
            level,
            format: Box::new(format),
            output: Box::new(output),
        });
        self
    }

    /// Writes synchronously: each call returns after its record is written.
    pub fn sync(mut self) -> Self {
        self.config.mode = Mode::Sync;
        self
    }

    /// Async mode with this queue capacity (records).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.config.mode = Mode::Async;
        self.config.queue_capacity = records;
        self
    }

    /// What to do when the async queue is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// How often buffered lines are pushed out while records keep coming.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.config.flush_interval = humantime::format_duration(every).to_string();
        self
    }

    /// Whether `fatal!` exits the process after flushing (default `false`).
    pub fn exit_on_fatal(mut self, exit: bool) -> Self {
        self.config.exit_on_fatal = exit;
        self
    }

    /// Whether panics are logged and flushed (default `true`).
    pub fn capture_panics(mut self, capture: bool) -> Self {
        self.config.capture_panics = capture;
        self
    }

    /// Time zone of timestamps (default UTC).
    pub fn timezone(mut self, tz: TimeZoneKind) -> Self {
        self.config.timezone = tz;
        self
    }

    /// Whether to install as the `log` crate's backend (default `true`).
    pub fn log_facade(mut self, install: bool) -> Self {
        self.config.log_facade = install;
        self
    }

    /// Gives a file output a clock of its own for time-based rotation (tests).
    pub fn rotation_clock(mut self, output: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        self.clocks.insert(output.into(), clock);
        self
    }

    /// Called for every Kafka message that failed for good, and when a failed producer is
    /// replaced: (output name, error text). It runs on librdkafka's thread or on the
    /// logger's writer thread, both of which the logger may be waiting for, so it must be
    /// quick. It may log: those records never wait (in async mode they are dropped, and
    /// counted in [`Stats::dropped`](crate::Stats::dropped), when the queue is full; in
    /// sync mode always), so a callback that logs cannot deadlock the logger.
    pub fn on_kafka_error(mut self, f: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        self.kafka_error = Some(Arc::new(f));
        self
    }

    /// Checks the config, opens every output and installs the logger globally (macros,
    /// `log` facade, panic hook). Keep the guard alive: dropping it flushes and uninstalls.
    pub fn init(self) -> Result<LoggerGuard, InitError> {
        let cfg = &self.config;
        let spec = LevelSpec::parse(&cfg.level).map_err(|e| ConfigError::invalid("level", e))?;
        let flush_interval = parse_duration("flush_interval", &cfg.flush_interval)?;
        if cfg.mode == Mode::Async && cfg.queue_capacity == 0 {
            return Err(ConfigError::invalid(
                "queue_capacity",
                "must be at least 1 (use mode = \"sync\" for no queue)",
            )
            .into());
        }
        crate::clock::init();
        let mut slots = Vec::new();
        let mut outputs = cfg.outputs.clone();
        if outputs.is_empty() && self.custom.is_empty() {
            outputs.insert("console".into(), OutputConfig::console());
        }
        for (name, oc) in &outputs {
            slots.push(build_slot(
                name,
                oc,
                cfg.timezone,
                self.clocks.get(name).cloned(),
                self.kafka_error.clone(),
            )?);
        }
        for c in self.custom {
            slots.push(Slot {
                name: c.name,
                level: Arc::new(AtomicU8::new(c.level.as_u8())),
                format: c.format,
                ctx: FormatCtx::new(cfg.timezone, false),
                output: c.output,
                failing: false,
                failed_since_flush: false,
                // The application's own output may read `record.message`.
                needs_text: true,
            });
        }
        if crate::global::current().is_some() {
            return Err(InitError::AlreadyInstalled);
        }
        if cfg.log_facade {
            crate::facade::install()?;
        }
        let counters = Arc::new(Counters::new(
            slots.iter().filter_map(|s| s.output.stats()).collect(),
        ));
        let dispatch = Dispatch::new(slots, counters.clone());
        let levels = dispatch.levels();
        let writer = match cfg.mode {
            Mode::Sync => Writer::sync(dispatch),
            Mode::Async => Writer::spawn(
                dispatch,
                AsyncSettings {
                    capacity: cfg.queue_capacity,
                    overflow: cfg.overflow,
                    flush_interval,
                },
            )
            .map_err(InitError::Thread)?,
        };
        let mut core = Core::new(spec, levels, writer, counters, cfg.exit_on_fatal);
        core.capture_panics = cfg.capture_panics;
        let core = crate::global::install(core).map_err(|_| InitError::AlreadyInstalled)?;
        if cfg.capture_panics {
            crate::panic::install_panic_hook();
        }
        Ok(LoggerGuard::new(core))
    }
}

fn build_slot(
    name: &str,
    oc: &OutputConfig,
    default_tz: TimeZoneKind,
    clock: Option<Arc<dyn Clock>>,
    kafka_error: Option<KafkaErrorCallback>,
) -> Result<Slot, InitError> {
    let key = |k: &str| format!("outputs.{name}.{k}");
    let level: LevelFilter = oc
        .level
        .parse()
        .map_err(|e| ConfigError::invalid(key("level"), e))?;
    let format: Box<dyn Format> = match oc.format {
        FormatKind::Json => {
            if oc.pattern.is_some() {
                return Err(ConfigError::invalid(
                    key("pattern"),
                    "only applies to format = \"pattern\", but format is \"json\"",
                )
                .into());
            }
            Box::new(JsonFormat)
        }
        FormatKind::Pattern => match &oc.pattern {
            Some(p) => Box::new(
                PatternFormat::new(p).map_err(|e| ConfigError::invalid(key("pattern"), e))?,
            ),
            None => Box::new(PatternFormat::default()),
        },
    };
    let defaults = OutputConfig::default();
    let reject = |field: &str, set: bool, kinds: &str| -> Result<(), ConfigError> {
        if set {
            Err(ConfigError::invalid(
                key(field),
                format!(
                    "only applies to {kinds} outputs, but this output is kind = \"{}\"",
                    kind_name(oc.kind)
                ),
            ))
        } else {
            Ok(())
        }
    };
    let not_file = oc.kind != OutputKind::File;
    let not_console = oc.kind != OutputKind::Console;
    let not_kafka = oc.kind != OutputKind::Kafka;
    reject("path", not_file && oc.path.is_some(), "file")?;
    reject(
        "rotation",
        not_file && oc.rotation != defaults.rotation,
        "file",
    )?;
    reject(
        "buffer_size",
        not_file && oc.buffer_size != defaults.buffer_size,
        "file",
    )?;
    reject(
        "stream",
        not_console && oc.stream != defaults.stream,
        "console",
    )?;
    reject(
        "color",
        not_console && oc.color != defaults.color,
        "console",
    )?;
    reject("brokers", not_kafka && oc.brokers.is_some(), "kafka")?;
    reject("topic", not_kafka && oc.topic.is_some(), "kafka")?;
    reject("spill_path", not_kafka && oc.spill_path.is_some(), "kafka")?;
    reject(
        "on_full",
        not_kafka && oc.on_full != defaults.on_full,
        "kafka",
    )?;
    if let Some(security_key) = oc.security.first_key_set() {
        reject(security_key, not_kafka, "kafka")?;
    }
    let tz = oc.timezone.unwrap_or(default_tz);
    let mut color = false;
    let output: Box<dyn Output> = match oc.kind {
        OutputKind::Console => {
            color = oc.color.resolve(oc.stream);
            Box::new(ConsoleOutput::new(oc.stream))
        }
        OutputKind::File => {
            let path = oc.path.clone().ok_or_else(|| {
                ConfigError::invalid(key("path"), "missing: a file output needs `path`")
            })?;
            let buf = parse_size(&key("buffer_size"), &oc.buffer_size)? as usize;
            let policy = rotation_policy(name, oc, tz)?;
            Box::new(
                FileOutput::open(&path, policy, clock, buf).map_err(|source| InitError::Open {
                    output: name.to_string(),
                    path: path.clone(),
                    source,
                })?,
            )
        }
        OutputKind::Kafka => build_kafka(name, oc, kafka_error)?,
    };
    Ok(Slot {
        name: name.to_string(),
        level: Arc::new(AtomicU8::new(level.as_u8())),
        // Our outputs never read `record.message`: only the format decides.
        needs_text: !format.writes_captured_messages(),
        format,
        ctx: FormatCtx::new(tz, color),
        output,
        failing: false,
        failed_since_flush: false,
    })
}

fn kind_name(k: OutputKind) -> &'static str {
    match k {
        OutputKind::Console => "console",
        OutputKind::File => "file",
        OutputKind::Kafka => "kafka",
    }
}

fn rotation_policy(
    name: &str,
    oc: &OutputConfig,
    tz: TimeZoneKind,
) -> Result<RotationPolicy, ConfigError> {
    let r = &oc.rotation;
    let key = |k: &str| format!("outputs.{name}.rotation.{k}");
    let policy = RotationPolicy {
        max_size: r
            .max_size
            .as_deref()
            .map(|s| parse_size(&key("max_size"), s))
            .transpose()?,
        period: r
            .period
            .as_deref()
            .map(|s| parse_duration(&key("period"), s))
            .transpose()?,
        align: r.align.unwrap_or(tz),
        suffix: r.suffix,
        keep: r.keep,
        max_age: r
            .max_age
            .as_deref()
            .map(|s| parse_duration(&key("max_age"), s))
            .transpose()?,
        gzip: r.gzip,
    };
    if !policy.rotates() && (policy.keep.is_some() || policy.max_age.is_some() || policy.gzip) {
        return Err(ConfigError::invalid(
            key("max_size"),
            "keep, max_age and gzip need a rotation trigger: set max_size and/or period",
        ));
    }
    if policy.keep == Some(0) {
        return Err(ConfigError::invalid(key("keep"), "must be at least 1"));
    }
    Ok(policy)
}

/// `message_timeout`: `"none"` (no limit) or a duration.
#[cfg(feature = "kafka")]
fn message_timeout(key: &str, s: &str) -> Result<Option<Duration>, ConfigError> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_duration(key, s).map(Some)
}

#[cfg(feature = "kafka")]
fn build_kafka(
    name: &str,
    oc: &OutputConfig,
    on_error: Option<KafkaErrorCallback>,
) -> Result<Box<dyn Output>, InitError> {
    let key = |k: &str| format!("outputs.{name}.{k}");
    let brokers = oc.brokers.clone().ok_or_else(|| {
        ConfigError::invalid(key("brokers"), "missing: a kafka output needs `brokers`")
    })?;
    let topic = oc.topic.clone().ok_or_else(|| {
        ConfigError::invalid(key("topic"), "missing: a kafka output needs `topic`")
    })?;
    if oc.buffer_messages == 0 {
        return Err(ConfigError::invalid(key("buffer_messages"), "must be at least 1").into());
    }
    let timeout = message_timeout(&key("message_timeout"), &oc.message_timeout)?;
    let spill = match oc.on_full {
        crate::config::KafkaOverflow::Drop => None,
        crate::config::KafkaOverflow::Spill => Some(oc.spill_path.clone().ok_or_else(|| {
            ConfigError::invalid(
                key("spill_path"),
                "missing: on_full = \"spill\" needs `spill_path`",
            )
        })?),
    };
    let settings = crate::outputs::kafka::KafkaSettings {
        name: name.to_string(),
        brokers,
        topic,
        buffer_messages: oc.buffer_messages,
        message_timeout: timeout,
        spill_path: spill,
        security: oc.security.clone(),
    };
    use crate::outputs::kafka::{KafkaOutput, KafkaOutputError};
    let out = KafkaOutput::new(settings, on_error).map_err(|e| match e {
        KafkaOutputError::Producer(e) => InitError::Kafka {
            output: name.to_string(),
            reason: e.to_string(),
        },
        KafkaOutputError::Security(e) => InitError::Kafka {
            output: name.to_string(),
            reason: e.to_string(),
        },
        KafkaOutputError::Spill { path, source } => InitError::Open {
            output: name.to_string(),
            path,
            source,
        },
    })?;
    Ok(Box::new(out))
}

#[cfg(not(feature = "kafka"))]
fn build_kafka(
    name: &str,
    _oc: &OutputConfig,
    _on_error: Option<KafkaErrorCallback>,
) -> Result<Box<dyn Output>, InitError> {
    Err(ConfigError::invalid(
        format!("outputs.{name}.kind"),
        "kind = \"kafka\" needs the logger crate's `kafka` feature; enable it in Cargo.toml",
    )
    .into())
}

impl OutputConfig {
    /// A console output on stderr, pattern format.
    pub fn console() -> Self {
        OutputConfig::default()
    }

    /// A file output at `path`, pattern format, no rotation.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        OutputConfig {
            kind: OutputKind::File,
            path: Some(path.into()),
            ..OutputConfig::default()
        }
    }

    /// A Kafka output (feature `kafka`), JSON format.
    pub fn kafka(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        OutputConfig {
            kind: OutputKind::Kafka,
            format: FormatKind::Json,
            brokers: Some(brokers.into()),
            topic: Some(topic.into()),
            ..OutputConfig::default()
        }
    }

    /// Least level for this output (`"debug"`).
    pub fn level(mut self, level: impl Into<String>) -> Self {
        self.level = level.into();
        self
    }

    /// JSON (ECS) lines.
    pub fn json(mut self) -> Self {
        self.format = FormatKind::Json;
        self.pattern = None;
        self
    }

    /// Text lines from `pattern`.
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.format = FormatKind::Pattern;
        self.pattern = Some(pattern.into());
        self
    }

    /// Time zone of this output's timestamps.
    pub fn timezone(mut self, tz: TimeZoneKind) -> Self {
        self.timezone = Some(tz);
        self
    }

    /// Console stream.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    /// Console colouring.
    pub fn color(mut self, color: crate::outputs::console::ColorMode) -> Self {
        self.color = color;
        self
    }

    /// File: rotate before the file exceeds `bytes`.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.rotation.max_size = Some(bytes.to_string());
        self
    }

    /// File: rotate every `period`, aligned to the clock.
    pub fn period(mut self, period: Duration) -> Self {
        self.rotation.period = Some(humantime::format_duration(period).to_string());
        self
    }

    /// File: naming of rotated files.
    pub fn suffix(mut self, suffix: Suffix) -> Self {
        self.rotation.suffix = suffix;
        self
    }

    /// File: keep at most `n` rotated files.
    pub fn keep(mut self, n: usize) -> Self {
        self.rotation.keep = Some(n);
        self
    }

    /// File: delete rotated files older than `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.rotation.max_age = Some(humantime::format_duration(age).to_string());
        self
    }

    /// File: gzip rotated files in the background.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.rotation.gzip = gzip;
        self
    }

    /// Kafka: what to do when the producer buffer is full; `Some(path)` spills there.
    pub fn spill_to(mut self, path: Option<PathBuf>) -> Self {
        match path {
            Some(p) => {
                self.on_full = crate::config::KafkaOverflow::Spill;
                self.spill_path = Some(p);
            }
            None => {
                self.on_full = crate::config::KafkaOverflow::Drop;
                self.spill_path = None;
            }
        }
        self
    }

    /// Kafka: messages buffered while the broker is away.
    pub fn buffer_messages(mut self, n: usize) -> Self {
        self.buffer_messages = n;
        self
    }

    /// Kafka: a librdkafka property (`librdkafka_options`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.security
            .librdkafka_options
            .0
            .insert(key.into(), value.into());
        self
    }

    /// Kafka: TLS and SASL (`security_protocol`, `sasl_*`, `tls_*`), and the
    /// `librdkafka_options`.
    pub fn kafka_security(mut self, security: crate::config::KafkaSecurity) -> Self {
        self.security = security;
        self
    }
}

/// Reads a TOML or INI config file and installs the logger it describes.
pub fn init_from_file(path: impl AsRef<Path>) -> Result<LoggerGuard, InitError> {
    let path = path.as_ref();
    let wrap = |e: InitError| match e {
        e @ InitError::Config(
            ConfigError::Read { .. } | ConfigError::Extension(_) | ConfigError::Syntax { .. },
        ) => e,
        other => InitError::InFile {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    };
    let cfg = LoggerConfig::from_file(path).map_err(|e| wrap(e.into()))?;
    Builder::from_config(cfg).init().map_err(wrap)
}
