//! Level specs such as `info,mycrate::db=debug` (the `RUST_LOG` syntax).

use std::fmt;
use std::str::FromStr;

use crate::level::{LevelFilter, ParseLevelError};

/// A parsed level spec: a default level and per-module overrides.
///
/// `"info,mycrate::db=debug,hyper=off"`: modules under `mycrate::db` log from debug up,
/// `hyper` is silent, everything else logs from info up. A bare module name
/// (`"mycrate"`) enables every level for it, as `RUST_LOG` does. The longest matching
/// module prefix wins; matching respects `::` boundaries (`my` does not match `mycrate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelSpec {
    default: LevelFilter,
    /// Sorted longest module first so the first match is the most specific.
    directives: Vec<(String, LevelFilter)>,
}

/// Error for a level spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A level name in the spec is unknown.
    #[error("in level spec `{spec}`: {source}")]
    Level {
        /// The whole spec.
        spec: String,
        /// What was wrong with the level.
        source: ParseLevelError,
    },
    /// A directive has an empty module name (`=debug`).
    #[error(
        "in level spec `{spec}`: directive `{directive}` has an empty module name; write `module::path=level`"
    )]
    EmptyModule {
        /// The whole spec.
        spec: String,
        /// The offending directive.
        directive: String,
    },
}

impl Default for LevelSpec {
    fn default() -> Self {
        LevelSpec::new(LevelFilter::INFO)
    }
}

impl LevelSpec {
    /// A spec with only a default level.
    pub fn new(default: LevelFilter) -> Self {
        LevelSpec {
            default,
            directives: Vec::new(),
        }
    }

    /// Parses `RUST_LOG`-style text; an empty spec means `info`.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let mut out = LevelSpec::new(LevelFilter::INFO);
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let level_err = |source| SpecError::Level {
                spec: spec.to_string(),
                source,
            };
            match part.split_once('=') {
                Some((module, level)) => {
                    let module = module.trim();
                    if module.is_empty() {
                        return Err(SpecError::EmptyModule {
                            spec: spec.to_string(),
                            directive: part.to_string(),
                        });
                    }
                    let level = level.parse::<LevelFilter>().map_err(level_err)?;
                    out.set_module(module, level);
                }
                None => match part.parse::<LevelFilter>() {
                    Ok(level) => out.default = level,
                    // A bare word that is not a level names a module with everything on.
                    Err(_) if is_module_path(part) => out.set_module(part, LevelFilter::TRACE),
                    Err(e) => return Err(level_err(e)),
                },
            }
        }
        Ok(out)
    }

    fn set_module(&mut self, module: &str, level: LevelFilter) {
        self.directives.retain(|(m, _)| m != module);
        self.directives.push((module.to_string(), level));
        self.directives
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// The level that applies when no module directive matches.
    pub fn default_level(&self) -> LevelFilter {
        self.default
    }

    /// The filter that applies to records from `module`.
    pub fn level_for(&self, module: &str) -> LevelFilter {
        for (m, level) in &self.directives {
            if module.starts_with(m.as_str())
                && (module.len() == m.len() || module[m.len()..].starts_with("::"))
            {
                return *level;
            }
        }
        self.default
    }

    /// The most verbose level any module can log at.
    pub fn most_verbose(&self) -> LevelFilter {
        self.directives
            .iter()
            .fold(self.default, |acc, (_, l)| acc.most_verbose(*l))
    }
}

fn is_module_path(s: &str) -> bool {
    s.split("::").all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
}

impl FromStr for LevelSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LevelSpec::parse(s)
    }
}

impl fmt::Display for LevelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.default)?;
        for (m, l) in &self.directives {
            write!(f, ",{m}={l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::LevelFilter as F;

    #[test]
    fn longest_prefix_wins_and_respects_boundaries() {
        let s = LevelSpec::parse("warn, app=info, app::db=debug, noisy=off").unwrap();
        assert_eq!(s.level_for("app::db::pool"), F::DEBUG);
        assert_eq!(s.level_for("app::db"), F::DEBUG);
        assert_eq!(s.level_for("app::dbx"), F::INFO);
        assert_eq!(s.level_for("application"), F::WARN);
        assert_eq!(s.level_for("noisy::x"), F::Off);
        assert_eq!(s.most_verbose(), F::DEBUG);
    }

    #[test]
    fn bare_module_enables_everything_and_bad_levels_are_named() {
        let s = LevelSpec::parse("mycrate").unwrap();
        assert_eq!(s.level_for("mycrate::x"), F::TRACE);
        assert_eq!(s.default_level(), F::INFO);
        let e = LevelSpec::parse("info,db=loud").unwrap_err().to_string();
        assert!(e.contains("`loud`"), "{e}");
        assert!(LevelSpec::parse("=debug").is_err());
    }
}
