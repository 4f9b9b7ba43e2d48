//! Loading a component's config struct from INI or TOML, with environment overrides.
//!
//! The file format is chosen by extension: `.ini`/`.conf`/`.cfg` are INI, `.toml` is TOML.
//! Environment variables `{PREFIX}_{SECTION}_{KEY}` override a file's values (section names
//! contain no underscore, keys may): `LOGAGENT_KAFKA_CHAN_SIZE=10` sets `[kafka] chan_size`.
//! INI and environment values are text; they are converted to the field's type when the
//! struct is built, and a value that does not convert is reported with its key.
//!
//! INI comments start with `;` or `#`, at the start of a line or after whitespace
//! (`chan_size = 100 ; lines`), as in the original tools' `conf.ini`; a value that must
//! contain ` ;` or ` #` is written in double quotes.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The two file formats a component's config can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[section]` headers and `key = value` lines; `;` and `#` start comments.
    Ini,
    /// TOML with one table per section.
    Toml,
}

impl Format {
    /// The format a file name's extension implies, if it implies one.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ini" | "conf" | "cfg" => Some(Format::Ini),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

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

/// Loads `T` from the file at `path` and applies `{env_prefix}_{SECTION}_{KEY}` overrides.
pub fn load<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat {
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
    format: Format,
    env_prefix: Option<&str>,
) -> Result<T, ConfigError> {
    build(text, format, env_prefix, "inline text")
}

/// Loads `T` from its defaults plus environment overrides only (no file given).
pub fn load_env_only<T: DeserializeOwned>(env_prefix: &str) -> Result<T, ConfigError> {
    build("", Format::Toml, Some(env_prefix), "environment")
}

fn build<T: DeserializeOwned>(
    text: &str,
    format: Format,
    env_prefix: Option<&str>,
    origin: &str,
) -> Result<T, ConfigError> {
    let (text, file_format) = match format {
        Format::Ini => (strip_inline_comments(text), config::FileFormat::Ini),
        Format::Toml => (text.to_owned(), config::FileFormat::Toml),
    };
    let mut builder =
        config::Config::builder().add_source(config::File::from_str(&text, file_format));
    if let Some(prefix) = env_prefix {
        for (key, value) in env_overrides(prefix, std::env::vars()) {
            builder = builder
                .set_override(key.as_str(), value)
                .map_err(|error| invalid("environment", error))?;
        }
    }
    let merged = builder.build().map_err(|error| invalid(origin, error))?;
    merged
        .try_deserialize()
        .map_err(|error| invalid(origin, error))
}

/// Removes `;`/`#` comments that follow a value after whitespace, outside double quotes,
/// and unquotes quoted values, which the INI parser would otherwise keep verbatim.
fn strip_inline_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_quotes = false;
        let mut previous_is_space = false;
        let mut cut = line.len();
        for (index, character) in line.char_indices() {
            match character {
                '"' => in_quotes = !in_quotes,
                ';' | '#' if !in_quotes && (index == 0 || previous_is_space) => {
                    cut = index;
                    break;
                }
                _ => {}
            }
            previous_is_space = character.is_whitespace();
        }
        let kept = line[..cut].trim_end();
        match kept.split_once('=') {
            Some((key, value)) => {
                let value = value.trim();
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                out.push_str(key.trim_end());
                out.push_str(" = ");
                out.push_str(unquoted);
            }
            None => out.push_str(kept),
        }
        out.push('\n');
    }
    out
}

/// The `section.key` paths and values that environment variables with `prefix` override.
fn env_overrides(
    prefix: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let wanted = format!("{}_", prefix.to_ascii_uppercase());
    let mut overrides: Vec<(String, String)> = vars
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(&wanted)?;
            let (section, key) = rest.split_once('_')?;
            if section.is_empty() || key.is_empty() {
                return None;
            }
            Some((
                format!(
                    "{}.{}",
                    section.to_ascii_lowercase(),
                    key.to_ascii_lowercase()
                ),
                value,
            ))
        })
        .collect();
    overrides.sort();
    overrides
}

fn invalid(origin: &str, error: config::ConfigError) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message: error.to_string(),
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
        let conf: Conf = load_str(INI, Format::Ini, None).unwrap();
        assert_eq!(conf.kafka.address, "10.0.0.1:9092, 10.0.0.2:9092");
        assert_eq!(conf.kafka.chan_size, 42);
    }

    #[test]
    fn comments_go_and_quoted_values_keep_their_semicolons() {
        let text = "; whole line\n# another\n[kafka]\naddress = \"a ; b\" ; comment\nchan_size = 5 # five\n";
        let conf: Conf = load_str(text, Format::Ini, None).unwrap();
        assert_eq!(conf.kafka.address, "a ; b");
        assert_eq!(conf.kafka.chan_size, 5);
    }

    #[test]
    fn toml_and_ini_give_the_same_struct() {
        let from_toml: Conf = load_str(
            "[kafka]\naddress = \"10.0.0.1:9092, 10.0.0.2:9092\"\nchan_size = 42\n",
            Format::Toml,
            None,
        )
        .unwrap();
        let from_ini: Conf = load_str(INI, Format::Ini, None).unwrap();
        assert_eq!(from_toml, from_ini);
    }

    #[test]
    fn missing_keys_take_defaults() {
        let conf: Conf = load_str("", Format::Ini, None).unwrap();
        assert_eq!(conf, Conf::default());
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key() {
        let err = load_str::<Conf>("[kafka]\nchan_size = lots\n", Format::Ini, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("chan_size"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name() {
        let err = load_str::<Conf>("[kafka]\nchan_sise = 1\n", Format::Ini, None).unwrap_err();
        assert!(err.to_string().contains("chan_sise"), "{err}");
    }

    #[test]
    fn env_names_map_to_section_and_key() {
        let vars = vec![
            ("LOGAGENT_KAFKA_CHAN_SIZE".to_owned(), "7".to_owned()),
            ("LOGAGENT_ETCD_ADDRESS".to_owned(), "x".to_owned()),
            ("LOGAGENT_NOKEY".to_owned(), "ignored".to_owned()),
            ("OTHER_KAFKA_ADDRESS".to_owned(), "ignored".to_owned()),
        ];
        assert_eq!(
            env_overrides("logagent", vars.into_iter()),
            vec![
                ("etcd.address".to_owned(), "x".to_owned()),
                ("kafka.chan_size".to_owned(), "7".to_owned()),
            ]
        );
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        // A prefix no other test uses: the process environment is shared between tests.
        // SAFETY: no other thread reads or writes this variable.
        unsafe { std::env::set_var("SVCKITTEST_KAFKA_CHAN_SIZE", "9") };
        let conf: Conf = load_str(INI, Format::Ini, Some("SVCKITTEST")).unwrap();
        unsafe { std::env::remove_var("SVCKITTEST_KAFKA_CHAN_SIZE") };
        assert_eq!(conf.kafka.chan_size, 9);
        assert_eq!(conf.kafka.address, "10.0.0.1:9092, 10.0.0.2:9092");
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/conf.ini")),
            Some(Format::Ini)
        );
        assert_eq!(Format::from_path(Path::new("a/b.TOML")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new("a/b.yaml")), None);
        let err = load::<Conf>(Path::new("/nonexistent/x.yaml"), "X").unwrap_err();
        assert!(matches!(err, ConfigError::UnknownFormat { .. }));
        let err = load::<Conf>(Path::new("/nonexistent/x.ini"), "X").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.ini"), "{err}");
    }
}
