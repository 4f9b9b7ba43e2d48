//! Environment overrides: `{PREFIX}_{SECTION}_{KEY}=value` sets `[section] key`.
//!
//! The prefix is upper-case (`LOGAGENT_`); the rest is matched case-insensitively against
//! the config's [`Schema`]: the section is the
//! longest known section name the rest of the variable starts with (so section names may
//! contain underscores), the key the remainder. A variable with the prefix that names no
//! known section and key is *not* an override: the orchestrator injects such variables
//! (Kubernetes sets `{SERVICE}_SERVICE_HOST`, `{SERVICE}_PORT`), and the program's flags use
//! the prefix too (`LOGAGENT_LOG_LEVEL` for `--log-level`). The caller warns about them once
//! and carries on. With an unknown schema every `{PREFIX}_{A}_{B}` is an override, split at
//! the first underscore after the prefix.

use crate::schema::{Field, Schema};

/// One environment variable that sets a config value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Override {
    /// The section, lower-case as in the files.
    pub section: String,
    /// The key, lower-case.
    pub key: String,
    /// The variable's value, as text.
    pub value: String,
    /// The variable's name, for messages.
    pub variable: String,
}

/// Environment variables with the prefix, split into overrides and the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvOverrides {
    /// Variables naming a known section and key, sorted by section and key.
    pub overrides: Vec<Override>,
    /// Variables with the prefix that name no known section and key, sorted.
    pub ignored: Vec<String>,
}

impl EnvOverrides {
    /// Sorts `vars` named `{PREFIX}_…` (`prefix` upper-cased) into overrides of `schema` and
    /// ignored variables; variables without the prefix are not looked at.
    pub fn from_vars(
        prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
        schema: &Schema,
    ) -> EnvOverrides {
        let wanted = format!("{}_", prefix.to_ascii_uppercase());
        let mut result = EnvOverrides::default();
        for (variable, value) in vars {
            let Some(rest) = variable.strip_prefix(&wanted) else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            match split(&rest, schema) {
                Some((section, key)) => result.overrides.push(Override {
                    section,
                    key,
                    value,
                    variable,
                }),
                None => result.ignored.push(variable),
            }
        }
        result.overrides.sort();
        result.ignored.sort();
        result
    }

    /// Reads the process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_env(prefix: &str, schema: &Schema) -> EnvOverrides {
        EnvOverrides::from_vars(
            prefix,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            schema,
        )
    }
}

/// `section_key` (lower-case) to the section and key it names in `schema`.
fn split(rest: &str, schema: &Schema) -> Option<(String, String)> {
    let Some(fields) = schema.fields() else {
        let (section, key) = rest.split_once('_')?;
        return (!section.is_empty() && !key.is_empty())
            .then(|| (section.to_owned(), key.to_owned()));
    };
    fields
        .iter()
        .filter(|(_, field)| !matches!(field, Field::Value))
        .filter_map(|(section, _)| {
            let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
            (!key.is_empty() && schema.accepts(section, key)).then_some((section, key))
        })
        .max_by_key(|(section, _)| section.len())
        .map(|(section, key)| (section.clone(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Kafka;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        kafka: Kafka,
        kafka_extra: Kafka,
        etcd: Kafka,
        level: String,
    }

    fn vars(names: &[(&str, &str)]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn known_sections_and_keys_override_the_rest_is_ignored() {
        let found = EnvOverrides::from_vars(
            "logagent",
            vars(&[
                ("LOGAGENT_KAFKA_CHAN_SIZE", "7"),
                ("LOGAGENT_ETCD_ADDRESS", "x"),
                ("LOGAGENT_KAFKA_EXTRA_ADDRESS", "y"),
                ("LOGAGENT_LOG_LEVEL", "debug"),
                ("LOGAGENT_SERVICE_HOST", "10.0.0.1"),
                ("LOGAGENT_KAFKA_CHAN_SISE", "typo"),
                ("LOGAGENT_LEVEL", "top-level values are not overridable"),
                ("LOGAGENT_NOKEY", "x"),
                ("OTHER_KAFKA_ADDRESS", "not ours"),
            ]),
            &Schema::of::<Conf>(),
        );
        let set: Vec<(&str, &str, &str)> = found
            .overrides
            .iter()
            .map(|o| (o.section.as_str(), o.key.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            set,
            vec![
                ("etcd", "address", "x"),
                ("kafka", "chan_size", "7"),
                ("kafka_extra", "address", "y"),
            ]
        );
        assert_eq!(
            found.ignored,
            vec![
                "LOGAGENT_KAFKA_CHAN_SISE",
                "LOGAGENT_LEVEL",
                "LOGAGENT_LOG_LEVEL",
                "LOGAGENT_NOKEY",
                "LOGAGENT_SERVICE_HOST",
            ]
        );
    }

    #[test]
    fn an_unknown_schema_splits_at_the_first_underscore() {
        let found = EnvOverrides::from_vars(
            "P",
            vars(&[
                ("P_A_B_C", "1"),
                ("P_NOKEY", "2"),
                ("P_x_Y", "3"),
                ("p_a_b", "no"),
            ]),
            &Schema::unknown(),
        );
        let set: Vec<(&str, &str)> = found
            .overrides
            .iter()
            .map(|o| (o.section.as_str(), o.key.as_str()))
            .collect();
        assert_eq!(set, vec![("a", "b_c"), ("x", "y")]);
        assert_eq!(found.ignored, vec!["P_NOKEY"]);
    }
}
