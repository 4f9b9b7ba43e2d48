//! One entry-point shape for the daemons (logagent, logtransfer, sysagent), and their own
//! logging configured the same way in each:
//!
//! ```text
//! main: parse the CLI (`-c/--config`, `#[command(flatten)] log: LogArgs`)
//!   -> Daemon::config_path: the flag, else <PREFIX>_CONFIG, else the daemon's default file
//!      if it exists, else none (defaults plus environment)
//!   -> Daemon::start: load the config (file or environment only), install the logger from
//!      its `[log]` section and `--log-level`, warn about ignored environment variables
//!   -> apply CLI overrides, validate (the binary's own business)
//!   -> Daemon::run: runtime, SIGINT/SIGTERM handlers, the service until it returns
//! ```
//!
//! The level is chosen, strongest first, by `--log-level`, `<PREFIX>_LOG_LEVEL` (an
//! environment override of `[log] level` like any other), `[log] level`, then `info`.

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{ConfigError, Loaded};
use crate::shutdown::Shutdown;

/// `[log]`: the daemon's own log (stderr, plus an optional JSON file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Level spec of our `logger`: `trace` .. `error`, optionally per target
    /// (`info,rdkafka=warn`). Default `info`.
    pub level: String,
    /// A file to write JSON records to as well; empty (the default) for standard error only.
    pub file: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            file: String::new(),
        }
    }
}

/// `--log-level`, shared by every binary: `#[command(flatten)] log: LogArgs`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log level of this program's own log: trace, debug, info, warn, error, optionally per
    /// target (info,rdkafka=warn). Wins over [log] level and <PREFIX>_LOG_LEVEL.
    // This comment is the `--help` text too, so it stays plain text, `<PREFIX>` included.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// How records reach the outputs: a property of the binary, not of its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// Written by the calling thread: for programs that log a few lines an hour, where a
    /// writer thread would wake up more often than it writes (sysagent).
    Sync,
    /// Queued and written by the logger's thread; `queue_capacity` records (`None`: the
    /// logger's default) for programs that must not wait on their log's output.
    Async {
        /// Records the queue holds.
        queue_capacity: Option<usize>,
    },
}

/// The logger could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up logging ([log] level {level:?}, file {file:?}): {source}")]
pub struct LogError {
    /// The level spec used.
    pub level: String,
    /// The file output, empty for none.
    pub file: String,
    /// The logger's reason.
    #[source]
    pub source: logger::InitError,
}

impl LogConfig {
    /// This section with `--log-level` applied.
    pub fn with_args(&self, args: &LogArgs) -> LogConfig {
        LogConfig {
            level: args.log_level.clone().unwrap_or_else(|| self.level.clone()),
            file: self.file.clone(),
        }
    }

    /// Installs the process's logger: a console output on stderr, plus the JSON file output
    /// when `file` is set. Keep the guard until exit: dropping it flushes.
    pub fn install(&self, mode: LogMode) -> Result<logger::LoggerGuard, LogError> {
        let mut builder = logger::Builder::new();
        builder = match mode {
            LogMode::Sync => builder.sync(),
            LogMode::Async {
                queue_capacity: Some(records),
            } => builder.queue_capacity(records),
            LogMode::Async {
                queue_capacity: None,
            } => builder,
        };
        builder = builder
            .level(self.level.clone())
            .output("console", logger::OutputConfig::console());
        if !self.file.is_empty() {
            builder = builder.output("file", logger::OutputConfig::file(&self.file).json());
        }
        builder.init().map_err(|source| LogError {
            level: self.level.clone(),
            file: self.file.clone(),
            source,
        })
    }
}

/// A daemon's config: whatever sections it has, plus `[log]`.
pub trait DaemonConfig: DeserializeOwned {
    /// The `[log]` section.
    fn log(&self) -> &LogConfig;
}

/// How many threads run the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only: for services that mostly wait (sysagent).
    Current,
    /// tokio's own choice: one worker per core, or `TOKIO_WORKER_THREADS` (logtransfer, whose
    /// parsing and encoding scale with the cores).
    PerCore,
    /// A multi-thread runtime with this many workers (at least one).
    Workers(usize),
}

/// Why a daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config could not be loaded.
    #[error("loading the config {}: {source}", path.as_deref().map_or_else(|| "from the environment".into(), |p| p.display().to_string()))]
    Config {
        /// The file, `None` when only the environment was read.
        path: Option<PathBuf>,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// The logger could not be installed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The tokio runtime could not be started.
    #[error("starting the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("installing the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// A started daemon: its config, and the logger guard to keep until exit.
#[derive(Debug)]
pub struct Started<C> {
    /// The loaded config (environment overrides applied, CLI overrides not yet).
    pub config: C,
    /// Keeps the logger installed; dropping it flushes.
    pub log_guard: logger::LoggerGuard,
}

/// The entry point every daemon shares (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Daemon {
    env_prefix: &'static str,
    log_mode: LogMode,
    default_config: Option<&'static str>,
}

impl Daemon {
    /// A daemon whose environment overrides are `{env_prefix}_{SECTION}_{KEY}`, logging
    /// asynchronously with the logger's default queue.
    pub fn new(env_prefix: &'static str) -> Self {
        Daemon {
            env_prefix,
            log_mode: LogMode::Async {
                queue_capacity: None,
            },
            default_config: None,
        }
    }

    /// The file read when neither `--config` nor `<PREFIX>_CONFIG` names one, if it exists
    /// (relative: to the working directory). Without it such a start uses defaults plus the
    /// environment.
    pub fn default_config(mut self, file: &'static str) -> Self {
        self.default_config = Some(file);
        self
    }

    /// The variable naming the config file when `--config` is not given: `<PREFIX>_CONFIG`.
    pub fn config_variable(&self) -> String {
        format!("{}_CONFIG", self.env_prefix)
    }

    /// The config file to load, one rule for every daemon: `flag` (`--config`), else
    /// `<PREFIX>_CONFIG` (empty counts as unset), else the [default
    /// file](Self::default_config) if it exists, else `None`: defaults plus environment.
    pub fn config_path(&self, flag: Option<PathBuf>) -> Option<PathBuf> {
        self.config_path_from(flag, std::env::var_os(self.config_variable()))
    }

    fn config_path_from(
        &self,
        flag: Option<PathBuf>,
        variable: Option<std::ffi::OsString>,
    ) -> Option<PathBuf> {
        flag.or_else(|| variable.filter(|v| !v.is_empty()).map(PathBuf::from))
            .or_else(|| {
                self.default_config
                    .map(PathBuf::from)
                    .filter(|default| default.exists())
            })
    }

    /// How this binary's records reach the outputs.
    pub fn log_mode(mut self, mode: LogMode) -> Self {
        self.log_mode = mode;
        self
    }

    /// Loads the config from `path` (`None`: defaults and environment only), installs the
    /// logger from its `[log]` section and `log_args`, and warns once about environment
    /// variables that name no section and key.
    pub fn start<C: DaemonConfig>(
        &self,
        path: Option<&Path>,
        log_args: &LogArgs,
    ) -> Result<Started<C>, DaemonError> {
        let Loaded {
            config,
            ignored_env,
        } = crate::config::load_reporting::<C>(path, self.env_prefix).map_err(|source| {
            DaemonError::Config {
                path: path.map(Path::to_owned),
                source,
            }
        })?;
        let log_guard = config.log().with_args(log_args).install(self.log_mode)?;
        // <PREFIX>_CONFIG names the file (see `config_path`): it is no section and key, but
        // it is not a stray variable either.
        let config_variable = self.config_variable();
        let ignored_env: Vec<String> = ignored_env
            .into_iter()
            .filter(|v| *v != config_variable)
            .collect();
        crate::config::warn_ignored(&ignored_env);
        Ok(Started { config, log_guard })
    }

    /// Runs `service` on a runtime of `threads` with SIGINT/SIGTERM wired to its
    /// [`Shutdown`], until it returns.
    pub fn run<T, E, F, Fut>(&self, threads: Threads, service: F) -> Result<T, E>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DaemonError>,
    {
        let runtime = match threads {
            Threads::Current => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Threads::PerCore => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
            Threads::Workers(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n.max(1))
                .enable_all()
                .build(),
        }
        .map_err(DaemonError::Runtime)?;
        runtime.block_on(async move {
            let shutdown = Shutdown::new();
            shutdown
                .install_signal_handlers()
                .map_err(DaemonError::Signals)?;
            service(shutdown).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        log: LogConfig,
    }

    #[test]
    fn the_flag_wins_over_the_section() {
        let section = LogConfig {
            level: "warn".into(),
            file: "/tmp/x.json".into(),
        };
        let none = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(section.with_args(&none.log), section);
        let flag = Cli::try_parse_from(["x", "--log-level", "debug,rdkafka=warn"]).unwrap();
        let chosen = section.with_args(&flag.log);
        assert_eq!(chosen.level, "debug,rdkafka=warn");
        assert_eq!(chosen.file, "/tmp/x.json");
    }

    #[test]
    fn the_log_section_loads_and_the_env_overrides_it() {
        let conf: Conf = crate::config::load_str(
            "[log]\nlevel = warn\nfile = /var/log/x.json\n",
            crate::config::ConfigFormat::Ini,
            None,
        )
        .unwrap();
        assert_eq!(conf.log.level, "warn");
        let defaults: Conf =
            crate::config::load_str("", crate::config::ConfigFormat::Ini, None).unwrap();
        assert_eq!(defaults.log, LogConfig::default());
        // A prefix of its own: the environment is shared between tests.
        // SAFETY: no other thread reads or writes this variable.
        unsafe { std::env::set_var("SVCKITDAEMON_LOG_LEVEL", "trace") };
        let conf = crate::config::load_env_only::<Conf>("SVCKITDAEMON");
        unsafe { std::env::remove_var("SVCKITDAEMON_LOG_LEVEL") };
        assert_eq!(conf.unwrap().log.level, "trace");
    }

    #[test]
    fn run_returns_what_the_service_returns() {
        let daemon = Daemon::new("SVCKITRUN");
        let out: Result<u32, DaemonError> = daemon.run(Threads::Current, |shutdown| async move {
            assert!(!shutdown.is_triggered());
            Ok(7)
        });
        assert_eq!(out.unwrap(), 7);
        let out: Result<(), DaemonError> = daemon.run(Threads::Workers(0), |_| async {
            Err(DaemonError::Runtime(std::io::Error::other("boom")))
        });
        assert!(out.unwrap_err().to_string().contains("boom"));
    }

    #[test]
    fn a_config_error_names_the_file() {
        let err = Daemon::new("SVCKITERR")
            .start::<ConfWithLog>(Some(Path::new("/nonexistent/x.ini")), &LogArgs::default())
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.ini"), "{err}");
    }

    #[test]
    fn the_config_file_is_the_flag_then_the_variable_then_an_existing_default() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present.ini");
        std::fs::write(&present, "").unwrap();
        let present: &'static str = String::leak(present.display().to_string());
        let daemon = Daemon::new("SVCKITPATH").default_config(present);
        assert_eq!(daemon.config_variable(), "SVCKITPATH_CONFIG");
        let flag = Some(PathBuf::from("flag.ini"));
        let var = Some(std::ffi::OsString::from("var.ini"));
        assert_eq!(
            daemon.config_path_from(flag.clone(), var.clone()),
            flag.clone()
        );
        assert_eq!(
            daemon.config_path_from(None, var.clone()),
            Some(PathBuf::from("var.ini"))
        );
        assert_eq!(
            daemon.config_path_from(None, Some("".into())),
            Some(PathBuf::from(present))
        );
        assert_eq!(
            daemon.config_path_from(None, None),
            Some(PathBuf::from(present))
        );
        let absent = Daemon::new("SVCKITPATH").default_config("/nonexistent/absent.ini");
        assert_eq!(absent.config_path_from(None, None), None);
        assert_eq!(Daemon::new("SVCKITPATH").config_path_from(None, None), None);
        assert_eq!(absent.config_path_from(flag.clone(), None), flag);
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct ConfWithLog {
        log: LogConfig,
    }
    impl DaemonConfig for ConfWithLog {
        fn log(&self) -> &LogConfig {
            &self.log
        }
    }
}
