//! Loading a component's config struct from INI or TOML, with environment overrides.
//!
//! The file format is chosen by extension: `.ini`/`.conf`/`.cfg` are INI, `.toml` is TOML.
//! Environment variables `{PREFIX}_{SECTION}_{KEY}` override a file's values:
//! `LOGAGENT_KAFKA_CHAN_SIZE=10` sets `[kafka] chan_size`. Only variables naming a section
//! and key the config struct has count; others with the prefix (Kubernetes'
//! `LOGAGENT_SERVICE_HOST`, the `--log-level` flag's `LOGAGENT_LOG_LEVEL` when the config has
//! no `[log]` section) are logged once as ignored, never an error.
//! INI and environment values are text; they are converted to the field's type when the
//! struct is built, and a value that does not convert is reported with its key.
//!
//! The INI dialect is [`conf_file::ini`]'s, shared with the logger's files: comments start
//! with `;` or `#`, at the start of a line or after whitespace (`chan_size = 100 ; lines`),
//! as in the original tools' `conf.ini`; a value that must contain ` ;` or ` #` is written
//! in double quotes.

use std::path::{Path, PathBuf};

use conf_file::env::EnvOverrides;
use conf_file::schema::Schema;
use conf_file::{ParseError, Scalars};
use serde::de::DeserializeOwned;

pub use conf_file::ConfigFormat;

/// Why a config could not be loaded. Every variant names the input that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}; check the path given with --config")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The extension does not say INI or TOML.
    #[error(
        "config file {path} has no known extension; name it *.ini (or *.conf) for INI or *.toml for TOML"
    )]
    UnknownFormat {
        /// The file that was asked for.
        path: PathBuf,
    },
    /// The text is not valid INI/TOML, or a key has a value of the wrong type, or a key is unknown.
    #[error("invalid config in {origin}: {message}")]
    Invalid {
        /// The file name, or "environment" / "inline text".
        origin: String,
        /// The parser's or the schema's explanation, naming the key where known.
        message: String,
    },
}

/// A loaded config and what the caller should warn about once its log is set up.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The config.
    pub config: T,
    /// Environment variables with the prefix that name no known section and key, ignored.
    pub ignored_env: Vec<String>,
}

impl<T> Loaded<T> {
    /// Logs the ignored environment variables (one warning) and returns the config.
    pub fn warn_and_take(self) -> T {
        warn_ignored(&self.ignored_env);
        self.config
    }
}

/// One warning listing the ignored variables (none: nothing logged).
pub fn warn_ignored(ignored_env: &[String]) {
    if !ignored_env.is_empty() {
        log::warn!(
            "ignoring environment variables {} : they name no config section and key (overrides are <PREFIX>_<SECTION>_<KEY>)",
            ignored_env.join(", ")
        );
    }
}

/// Loads `T` from the file at `path` and applies `{env_prefix}_{SECTION}_{KEY}` overrides;
/// ignored variables are logged (see [`load_reporting`] to log them later).
pub fn load<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, ConfigError> {
    load_reporting(Some(path), env_prefix).map(Loaded::warn_and_take)
}

/// Loads `T` from the file at `path` (`None`: defaults only) plus environment overrides,
/// returning the ignored variables for the caller to log once its logger is installed.
pub fn load_reporting<T: DeserializeOwned>(
    path: Option<&Path>,
    env_prefix: &str,
) -> Result<Loaded<T>, ConfigError> {
    let Some(path) = path else {
        return build("", ConfigFormat::Toml, Some(env_prefix), "environment");
    };
    let format = ConfigFormat::from_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    build(&text, format, Some(env_prefix), &path.display().to_string())
}

/// Loads `T` from text; with `env_prefix` set, environment overrides apply too.
pub fn load_str<T: DeserializeOwned>(
    text: &str,
    format: ConfigFormat,
    env_prefix: Option<&str>,
) -> Result<T, ConfigError> {
    build(text, format, env_prefix, "inline text").map(Loaded::warn_and_take)
}

/// Loads `T` from its defaults plus environment overrides only (no file given).
pub fn load_env_only<T: DeserializeOwned>(env_prefix: &str) -> Result<T, ConfigError> {
    load_reporting(None, env_prefix).map(Loaded::warn_and_take)
}

fn build<T: DeserializeOwned>(
    text: &str,
    format: ConfigFormat,
    env_prefix: Option<&str>,
    origin: &str,
) -> Result<Loaded<T>, ConfigError> {
    // Text scalars: the `config` crate converts text to each field's type, as it did when it
    // parsed the INI itself (`0123` stays `0123` for a string field).
    let table = conf_file::parse(text, format, Scalars::Text).map_err(|error| match error {
        ParseError::Ini(e) => invalid_message(origin, e.to_string()),
        ParseError::Toml(e) => invalid_message(origin, e.to_string()),
    })?;
    let mut builder = config::Config::builder().add_source(TableSource(table));
    let mut ignored_env = Vec::new();
    if let Some(prefix) = env_prefix {
        let env = EnvOverrides::from_env(prefix, &Schema::of::<T>());
        for o in env.overrides {
            builder = builder
                .set_override(format!("{}.{}", o.section, o.key), o.value)
                .map_err(|error| invalid("environment", error))?;
        }
        ignored_env = env.ignored;
    }
    let merged = builder.build().map_err(|error| invalid(origin, error))?;
    let config = merged
        .try_deserialize()
        .map_err(|error| invalid(origin, error))?;
    Ok(Loaded {
        config,
        ignored_env,
    })
}

/// A parsed table as a `config` source: the `config` crate merges it with the overrides and
/// converts text values to the fields' types.
#[derive(Debug, Clone)]
struct TableSource(toml::Table);

impl config::Source for TableSource {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self
            .0
            .iter()
            .map(|(key, value)| (key.clone(), to_config_value(value)))
            .collect())
    }
}

fn to_config_value(value: &toml::Value) -> config::Value {
    let kind = match value {
        toml::Value::String(s) => config::ValueKind::String(s.clone()),
        toml::Value::Integer(i) => config::ValueKind::I64(*i),
        toml::Value::Float(f) => config::ValueKind::Float(*f),
        toml::Value::Boolean(b) => config::ValueKind::Boolean(*b),
        toml::Value::Datetime(d) => config::ValueKind::String(d.to_string()),
        toml::Value::Array(items) => {
            config::ValueKind::Array(items.iter().map(to_config_value).collect())
        }
        toml::Value::Table(table) => config::ValueKind::Table(
            table
                .iter()
                .map(|(k, v)| (k.clone(), to_config_value(v)))
                .collect(),
        ),
    };
    config::Value::new(None, kind)
}

fn invalid(origin: &str, error: config::ConfigError) -> ConfigError {
    invalid_message(origin, error.to_string())
}

fn invalid_message(origin: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Kafka {
        address: String,
        chan_size: u64,
        compress: bool,
    }
    impl Default for Kafka {
        fn default() -> Self {
            Kafka {
                address: "127.0.0.1:9092".into(),
                chan_size: 100_000,
                compress: false,
            }
        }
    }
    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Conf {
        kafka: Kafka,
    }

    const INI: &str = "[kafka]\naddress = 10.0.0.1:9092, 10.0.0.2:9092 ; brokers\nchan_size = 42\n";

    #[test]
    fn ini_values_are_converted_to_field_types_and_comments_dropped() {
        let conf: Conf = load_str(INI, ConfigFormat::Ini, None).unwrap();
        assert_eq!(conf.kafka.address, "10.0.0.1:9092, 10.0.0.2:9092");
        assert_eq!(conf.kafka.chan_size, 42);
    }

    #[test]
    fn comments_go_and_quoted_values_keep_their_semicolons() {
        let text = "; whole line\n# another\n[kafka]\naddress = \"a ; b\" ; comment\nchan_size = 5 # five\n";
        let conf: Conf = load_str(text, ConfigFormat::Ini, None).unwrap();
        assert_eq!(conf.kafka.address, "a ; b");
        assert_eq!(conf.kafka.chan_size, 5);
    }

    #[test]
    fn toml_and_ini_give_the_same_struct() {
        let from_toml: Conf = load_str(
            "[kafka]\naddress = \"10.0.0.1:9092, 10.0.0.2:9092\"\nchan_size = 42\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        let from_ini: Conf = load_str(INI, ConfigFormat::Ini, None).unwrap();
        assert_eq!(from_toml, from_ini);
    }

    #[test]
    fn missing_keys_take_defaults() {
        let conf: Conf = load_str("", ConfigFormat::Ini, None).unwrap();
        assert_eq!(conf, Conf::default());
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key() {
        let err =
            load_str::<Conf>("[kafka]\nchan_size = lots\n", ConfigFormat::Ini, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("chan_size"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name() {
        let err =
            load_str::<Conf>("[kafka]\nchan_sise = 1\n", ConfigFormat::Ini, None).unwrap_err();
        assert!(err.to_string().contains("chan_sise"), "{err}");
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        // A prefix no other test uses: the process environment is shared between tests.
        // SAFETY: no other thread reads or writes this variable.
        unsafe { std::env::set_var("SVCKITTEST_KAFKA_CHAN_SIZE", "9") };
        let conf: Conf = load_str(INI, ConfigFormat::Ini, Some("SVCKITTEST")).unwrap();
        unsafe { std::env::remove_var("SVCKITTEST_KAFKA_CHAN_SIZE") };
        assert_eq!(conf.kafka.chan_size, 9);
        assert_eq!(conf.kafka.address, "10.0.0.1:9092, 10.0.0.2:9092");
    }

    /// `LOGAGENT_LOG_LEVEL=debug` (the flag's variable) and Kubernetes'
    /// `LOGAGENT_SERVICE_HOST` used to fail the load with "unknown field": they name no
    /// section and key, so they are ignored and reported instead.
    #[test]
    fn env_variables_naming_no_section_and_key_are_ignored_not_fatal() {
        // A prefix no other test uses: the process environment is shared between tests.
        // SAFETY: no other thread reads or writes these variables.
        unsafe {
            std::env::set_var("SVCKITIGN_LOG_LEVEL", "debug");
            std::env::set_var("SVCKITIGN_SERVICE_HOST", "10.0.0.1");
            std::env::set_var("SVCKITIGN_KAFKA_CHAN_SIZE", "8");
        }
        let loaded = build::<Conf>(INI, ConfigFormat::Ini, Some("SVCKITIGN"), "inline text");
        let from_env_only = load_env_only::<Conf>("SVCKITIGN");
        unsafe {
            std::env::remove_var("SVCKITIGN_LOG_LEVEL");
            std::env::remove_var("SVCKITIGN_SERVICE_HOST");
            std::env::remove_var("SVCKITIGN_KAFKA_CHAN_SIZE");
        }
        let loaded = loaded.unwrap();
        assert_eq!(
            loaded.config.kafka.chan_size, 8,
            "a known key still overrides"
        );
        assert_eq!(
            loaded.ignored_env,
            vec!["SVCKITIGN_LOG_LEVEL", "SVCKITIGN_SERVICE_HOST"]
        );
        assert_eq!(from_env_only.unwrap().kafka.chan_size, 8);
    }

    #[test]
    fn an_env_value_of_the_wrong_type_names_the_key() {
        // SAFETY: as above, a prefix of its own.
        unsafe { std::env::set_var("SVCKITBAD_KAFKA_CHAN_SIZE", "lots") };
        let err = load_str::<Conf>(INI, ConfigFormat::Ini, Some("SVCKITBAD")).unwrap_err();
        unsafe { std::env::remove_var("SVCKITBAD_KAFKA_CHAN_SIZE") };
        assert!(err.to_string().contains("chan_size"), "{err}");
    }

    #[test]
    fn ini_syntax_errors_name_the_origin_and_line() {
        let err = load_str::<Conf>(
            "[kafka]
no separator
",
            ConfigFormat::Ini,
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("inline text") && text.contains("line 2"),
            "{text}"
        );
    }

    /// Which extension is which format is conf-file's (`ConfigFormat::from_path`, tested there).
    #[test]
    fn the_format_follows_the_extension() {
        let err = load::<Conf>(Path::new("/nonexistent/x.yaml"), "X").unwrap_err();
        assert!(matches!(err, ConfigError::UnknownFormat { .. }));
        let err = load::<Conf>(Path::new("/nonexistent/x.ini"), "X").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.ini"), "{err}");
    }
}
