//! The collect config stored in etcd: which files go to which Kafka topic.
//!
//! The value under the agent's key is a JSON array:
//!
//! ```json
//! [
//!   {"path": "/var/log/nginx/access.log", "topic": "nginx"},
//!   {"path": "/var/log/app/*.log", "topic": "app", "fields": {"env": "prod"}}
//! ]
//! ```
//!
//! * `path` (required): an absolute file path or glob (`*`, `?`, `[...]`, `**`). It must lie
//!   under one of the agent's `allowed_paths`; `..` components are refused.
//! * `topic` (required): the Kafka topic, 1–249 characters of `A-Z a-z 0-9 . _ -`.
//! * `fields` (optional): a JSON object copied into every message as `fields`, for example
//!   to tag the environment or the team owning the file.
//! * `multiline` (optional): `{"start_pattern": "<regex>", "timeout_ms": 1000,
//!   "max_lines": 500}` joins the lines of one event (a stack trace) into one message: a
//!   line matching `start_pattern` starts an event, other lines are appended to it with
//!   `\n`. Or, with `continue_pattern` instead, a line matching it is appended to the
//!   event before it and any other line starts one. See logagent's `sources/file/multiline.rs`.
//!
//! Unknown fields are rejected, so a typo (`"topc"`) is an error and not a silently ignored
//! setting. logagent validates with this crate, and so does `etcd-put` before anything is
//! written; it depends on serde, glob, globset and regex only, not on the agent.

use std::collections::HashSet;
use std::path::{Component, Path};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// One collected path (file or glob) and where its lines go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectEntry {
    /// Absolute file path or glob.
    pub path: String,
    /// Kafka topic the lines are produced to.
    pub topic: String,
    /// Static fields added to every message of this entry as `fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Join the lines of multi-line events into one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiline: Option<Multiline>,
}

/// How the lines of one event are recognised: exactly one of the two patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    /// A regular expression (Rust `regex` syntax) matching the first line of an event, for
    /// example `^\\d{4}-\\d{2}-\\d{2}` for lines that start with a date, or `^\\S` when
    /// continuation lines are indented. Every other line continues the event before it
    /// (Vector's `halt_before`-style `start_pattern`, Filebeat's `negate: true, match: after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_pattern: Option<String>,
    /// A regular expression matching the lines that continue the event before them, for
    /// example `^[[:space:]]+(at |\\.\\.\\. )|^Caused by:` for Java stack traces; every
    /// other line starts an event (Vector's `continue_through`, Filebeat's `negate: false,
    /// match: after`). Use it when continuation lines are easier to describe than first ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_pattern: Option<String>,
    /// Milliseconds without a new line after which the last event of a file is shipped.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
    /// Most lines in one event; the next line starts a new one.
    #[serde(default = "default_multiline_max_lines")]
    pub max_lines: usize,
}

fn default_multiline_timeout_ms() -> u64 {
    1000
}

fn default_multiline_max_lines() -> usize {
    500
}

/// Which lines of a file belong to the event before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultilineRule<'a> {
    /// A line matching this starts an event; others continue one.
    Start(&'a str),
    /// A line matching this continues the event before it; others start one.
    Continue(&'a str),
}

impl Multiline {
    /// The rule, when exactly one pattern is given (what validation requires).
    pub fn rule(&self) -> Result<MultilineRule<'_>, String> {
        match (&self.start_pattern, &self.continue_pattern) {
            (Some(p), None) => Ok(MultilineRule::Start(p)),
            (None, Some(p)) => Ok(MultilineRule::Continue(p)),
            (None, None) => Err(
                "multiline needs `start_pattern` (matches the first line of \
                                 an event) or `continue_pattern` (matches the lines that \
                                 continue one)"
                    .into(),
            ),
            (Some(_), Some(_)) => Err("multiline has both `start_pattern` and \
                                       `continue_pattern`; give one of them"
                .into()),
        }
    }
}

impl CollectEntry {
    /// A stable identity for diffing: two entries with the same path, topic and fields are
    /// the same running task.
    pub fn identity(&self) -> String {
        // serde_json's Map is ordered (BTreeMap), so this string is canonical.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{}\u{0}{}", self.path, self.topic))
    }
}

/// A validated collect config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CollectConfig {
    /// The entries, in the order written.
    pub entries: Vec<CollectEntry>,
}

/// Why a collect config was refused.
#[derive(Debug, thiserror::Error)]
pub enum CollectConfigError {
    /// Not JSON, or JSON that does not fit the schema (wrong type, unknown or missing field).
    #[error(
        "collect config does not match the schema: {0}; expected a JSON array of \
         {{\"path\": \"<file or glob>\", \"topic\": \"<kafka topic>\", \"fields\"?: {{...}}, \"multiline\"?: {{\"start_pattern\" or \"continue_pattern\": \"<regex>\"}}}}"
    )]
    Schema(#[source] serde_json::Error),
    /// One entry is wrong; `index` counts from 0 in the array.
    #[error("collect config entry #{index} (path {path:?}, topic {topic:?}): {problem}")]
    Entry {
        /// Position in the JSON array, from 0.
        index: usize,
        /// The entry's path as written.
        path: String,
        /// The entry's topic as written.
        topic: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The agent's own `allowed_paths` cannot be compiled.
    #[error(
        "allowed_paths glob {glob:?} is invalid: {source}; fix [agent] allowed_paths in the local config"
    )]
    AllowedGlob {
        /// The glob as written.
        glob: String,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
}

/// The agent's path policy: etcd may only name files matching one of these globs.
#[derive(Debug, Clone)]
pub struct AllowedPaths {
    globs: Vec<String>,
    set: GlobSet,
}

impl AllowedPaths {
    /// Compiles `allowed_paths`. `*` stays within one directory, `**` crosses directories.
    pub fn new(globs: &[String]) -> Result<Self, CollectConfigError> {
        let mut builder = GlobSetBuilder::new();
        for glob in globs {
            builder.add(compile_glob(glob)?);
        }
        let set = builder
            .build()
            .map_err(|source| CollectConfigError::AllowedGlob {
                glob: globs.join(","),
                source,
            })?;
        Ok(AllowedPaths {
            globs: globs.to_vec(),
            set,
        })
    }

    /// A policy that allows everything (`etcd-put` without `--allowed-paths`).
    pub fn any() -> Self {
        // "/**" is a constant that always compiles.
        Self::new(&["/**".to_string()]).unwrap_or(AllowedPaths {
            globs: Vec::new(),
            set: GlobSet::empty(),
        })
    }

    /// Whether a concrete path (or a glob taken literally) lies under the policy.
    pub fn allows(&self, path: &Path) -> bool {
        self.set.is_match(path)
    }

    /// The globs, for error messages.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }
}

fn compile_glob(glob: &str) -> Result<Glob, CollectConfigError> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|source| CollectConfigError::AllowedGlob {
            glob: glob.to_string(),
            source,
        })
}

/// Parses and validates a collect config against the schema and the path policy.
pub fn parse(bytes: &[u8], allowed: &AllowedPaths) -> Result<CollectConfig, CollectConfigError> {
    let entries: Vec<CollectEntry> =
        serde_json::from_slice(bytes).map_err(CollectConfigError::Schema)?;
    let config = CollectConfig { entries };
    validate(&config, allowed)?;
    Ok(config)
}

/// Checks every entry: absolute path without `..`, a glob that compiles, a valid topic, no
/// duplicate (path, topic) pair, and the path under `allowed`.
pub fn validate(config: &CollectConfig, allowed: &AllowedPaths) -> Result<(), CollectConfigError> {
    let mut seen = HashSet::new();
    for (index, entry) in config.entries.iter().enumerate() {
        let fail = |problem: String| CollectConfigError::Entry {
            index,
            path: entry.path.clone(),
            topic: entry.topic.clone(),
            problem,
        };
        let path = Path::new(&entry.path);
        if entry.path.is_empty() {
            return Err(fail(
                "path is empty; give an absolute file path or glob".into(),
            ));
        }
        if !path.is_absolute() {
            return Err(fail(
                "path is relative; give an absolute path such as /var/log/app.log".into(),
            ));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(fail(
                "path contains `..`; write the path without parent-directory steps".into(),
            ));
        }
        if entry.path.contains('\0') {
            return Err(fail("path contains a NUL byte".into()));
        }
        if let Err(e) = glob::Pattern::new(&entry.path) {
            return Err(fail(format!("path is not a valid glob: {e}")));
        }
        if let Err(problem) = check_topic(&entry.topic) {
            return Err(fail(problem));
        }
        if let Some(m) = &entry.multiline {
            let (key, pattern) = match m.rule().map_err(&fail)? {
                MultilineRule::Start(p) => ("start_pattern", p),
                MultilineRule::Continue(p) => ("continue_pattern", p),
            };
            if let Err(e) = regex::bytes::Regex::new(pattern) {
                return Err(fail(format!(
                    "multiline.{key} {pattern:?} is not a valid regular expression: {e}"
                )));
            }
            if m.max_lines == 0 {
                return Err(fail(
                    "multiline.max_lines is 0; give at least 1 (default 500)".into(),
                ));
            }
        }
        if !allowed.allows(path) {
            return Err(fail(format!(
                "path is outside allowed_paths [{}]; collect a file under those, or extend \
                 [agent] allowed_paths in the agent's local config",
                allowed.globs().join(", ")
            )));
        }
        if !seen.insert((entry.path.as_str(), entry.topic.as_str())) {
            return Err(fail(
                "the same path and topic appear twice; remove one of them".into(),
            ));
        }
    }
    Ok(())
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic is empty; name the Kafka topic the lines go to".into());
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "topic is {} characters long; Kafka allows at most {MAX_TOPIC_LEN}",
            topic.len()
        ));
    }
    if topic == "." || topic == ".." {
        return Err("topic may not be `.` or `..`".into());
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic contains {c:?}; Kafka topics use only A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedPaths {
        AllowedPaths::new(&["/var/log/**".to_string(), "/tmp/agent-*/**".to_string()]).unwrap()
    }

    fn err(json: &str) -> String {
        parse(json.as_bytes(), &allowed()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_config_with_fields_parses() {
        let c = parse(
            br#"[{"path":"/var/log/a.log","topic":"a"},{"path":"/var/log/app/*.log","topic":"app","fields":{"env":"prod"}}]"#,
            &allowed(),
        )
        .unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[1].fields.as_ref().unwrap()["env"], "prod");
        assert_eq!(parse(b"[]", &allowed()).unwrap().entries.len(), 0);
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_schema_errors_with_position() {
        let e = err(r#"[{"path":"/var/log/a.log","topc":"a"}]"#);
        assert!(e.contains("unknown field `topc`"), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
        assert!(err(r#"{"path":"/var/log/a.log","topic":"a"}"#).contains("expected a sequence"));
        assert!(err(r#"[{"path":"/var/log/a.log"}]"#).contains("missing field `topic`"));
        assert!(err("not json").contains("does not match the schema"));
    }

    #[test]
    fn paths_outside_policy_relative_or_with_parent_steps_are_refused() {
        let e =
            err(r#"[{"path":"/var/log/a.log","topic":"a"},{"path":"/etc/passwd","topic":"a"}]"#);
        assert!(
            e.contains("entry #1") && e.contains("outside allowed_paths"),
            "{e}"
        );
        assert!(err(r#"[{"path":"/var/log/../../etc/shadow","topic":"a"}]"#).contains("`..`"));
        assert!(err(r#"[{"path":"var/log/a.log","topic":"a"}]"#).contains("relative"));
        assert!(err(r#"[{"path":"/var/log*/a.log","topic":"a"}]"#).contains("outside"));
        assert!(parse(br#"[{"path":"/var/log/**/*.log","topic":"a"}]"#, &allowed()).is_ok());
    }

    #[test]
    fn bad_topics_and_duplicates_are_refused() {
        assert!(err(r#"[{"path":"/var/log/a.log","topic":""}]"#).contains("topic is empty"));
        assert!(err(r#"[{"path":"/var/log/a.log","topic":"a b"}]"#).contains("' '"));
        let long = "t".repeat(250);
        assert!(
            err(&format!(
                r#"[{{"path":"/var/log/a.log","topic":"{long}"}}]"#
            ))
            .contains("at most 249")
        );
        let dup =
            err(r#"[{"path":"/var/log/a.log","topic":"a"},{"path":"/var/log/a.log","topic":"a"}]"#);
        assert!(dup.contains("entry #1") && dup.contains("twice"), "{dup}");
    }

    #[test]
    fn multiline_takes_defaults_and_refuses_bad_patterns() {
        let c = parse(
            br#"[{"path":"/var/log/a.log","topic":"a","multiline":{"start_pattern":"^\\d{4}-"}}]"#,
            &allowed(),
        )
        .unwrap();
        let m = c.entries[0].multiline.as_ref().unwrap();
        assert_eq!((m.timeout_ms, m.max_lines), (1000, 500));
        let e =
            err(r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"start_pattern":"(("}}]"#);
        assert!(
            e.contains("entry #0") && e.contains("not a valid regular expression"),
            "{e}"
        );
        let e = err(
            r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"start_pattern":"x","max_lines":0}}]"#,
        );
        assert!(e.contains("max_lines is 0"), "{e}");
        assert!(
            err(r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"pattern":"x"}}]"#)
                .contains("unknown field `pattern`")
        );
        let c = parse(
            br#"[{"path":"/var/log/a.log","topic":"a","multiline":{"continue_pattern":"^\\s"}}]"#,
            &allowed(),
        )
        .unwrap();
        let m = c.entries[0].multiline.as_ref().unwrap();
        assert_eq!(m.rule(), Ok(MultilineRule::Continue(r"^\s")));
        let e =
            err(r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"continue_pattern":"["}}]"#);
        assert!(
            e.contains("multiline.continue_pattern") && e.contains("not a valid regular"),
            "{e}"
        );
        let e = err(r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"timeout_ms":5}}]"#);
        assert!(
            e.contains("entry #0") && e.contains("needs `start_pattern`"),
            "{e}"
        );
        let e = err(
            r#"[{"path":"/var/log/a.log","topic":"a","multiline":{"start_pattern":"x","continue_pattern":"y"}}]"#,
        );
        assert!(e.contains("give one of them"), "{e}");
    }

    #[test]
    fn the_example_collect_config_is_valid() {
        let c = parse(
            include_bytes!("../../logagent/examples/collect.json"),
            &allowed(),
        )
        .unwrap();
        assert_eq!(c.entries.len(), 2);
    }

    #[test]
    fn identity_ignores_nothing_that_changes_output() {
        let a = CollectEntry {
            path: "/var/log/a".into(),
            topic: "t".into(),
            fields: None,
            multiline: None,
        };
        let mut b = a.clone();
        assert_eq!(a.identity(), b.identity());
        b.topic = "u".into();
        assert_ne!(a.identity(), b.identity());
    }
}
