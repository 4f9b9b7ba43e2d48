//! Config file text to a [`toml::Table`], the same tree whichever format the user wrote:
//!
//! - [`ConfigFormat`]: INI or TOML, chosen by the file's extension;
//! - [`ini`]: the one INI dialect of the platform (`conf.ini` of the original Go tools and
//!   the logger's INI files alike);
//! - [`schema`]: the sections and keys a config struct accepts, read from its `Deserialize`
//!   implementation, so that environment overrides can be checked against them;
//! - [`env`](mod@env): `{PREFIX}_{SECTION}_{KEY}` environment variables matched against a schema.
//!
//! Deserializing the table into the config struct is left to the caller: the logger does it
//! strictly (TOML types), the daemons' loader leniently (INI and environment values are
//! text converted to the field's type).

pub mod env;
pub mod ini;
pub mod schema;

use std::path::Path;

pub use ini::{IniError, Scalars};

/// The two formats a config file can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// `[section]` headers and `key = value` lines; see [`ini`] for the comment rules.
    Ini,
    /// TOML with one table per section.
    Toml,
}

impl ConfigFormat {
    /// The format a file name's extension implies (`.ini`, `.conf`, `.cfg`: INI; `.toml`:
    /// TOML, in any case), if it implies one.
    pub fn from_path(path: &Path) -> Option<ConfigFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ini" | "conf" | "cfg" => Some(ConfigFormat::Ini),
            "toml" => Some(ConfigFormat::Toml),
            _ => None,
        }
    }
}

/// Why config text does not parse; the message names the line (and column for TOML).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Invalid INI.
    #[error(transparent)]
    Ini(#[from] IniError),
    /// Invalid TOML.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
}

/// Parses `text` in `format`; INI scalars are typed as `scalars` says (TOML's carry their
/// own types).
pub fn parse(
    text: &str,
    format: ConfigFormat,
    scalars: Scalars,
) -> Result<toml::Table, ParseError> {
    match format {
        ConfigFormat::Ini => Ok(ini::parse(text, scalars)?),
        ConfigFormat::Toml => Ok(text.parse::<toml::Table>()?),
    }
}

/// A config section the tests of several modules share.
#[cfg(test)]
mod fixtures {
    #[allow(dead_code)] // only its shape is read
    #[derive(serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    pub(crate) struct Kafka {
        address: String,
        #[serde(rename = "chan_size")]
        channel_size: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(
            ConfigFormat::from_path(Path::new("a/conf.ini")),
            Some(ConfigFormat::Ini)
        );
        assert_eq!(
            ConfigFormat::from_path(Path::new("a.CFG")),
            Some(ConfigFormat::Ini)
        );
        assert_eq!(
            ConfigFormat::from_path(Path::new("a.conf")),
            Some(ConfigFormat::Ini)
        );
        assert_eq!(
            ConfigFormat::from_path(Path::new("a/b.TOML")),
            Some(ConfigFormat::Toml)
        );
        assert_eq!(ConfigFormat::from_path(Path::new("a/b.yaml")), None);
        assert_eq!(ConfigFormat::from_path(Path::new("noext")), None);
    }

    #[test]
    fn ini_and_toml_give_the_same_tree() {
        let ini = parse(
            "top = 1\n[a.b]\nname = x\non = true\n",
            ConfigFormat::Ini,
            Scalars::Typed,
        )
        .unwrap();
        let toml = parse(
            "top = 1\n[a.b]\nname = \"x\"\non = true\n",
            ConfigFormat::Toml,
            Scalars::Typed,
        )
        .unwrap();
        assert_eq!(ini, toml);
        let err = parse("[a\n", ConfigFormat::Toml, Scalars::Text).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
