//! The platform's one INI dialect, read into the same tree TOML gives.
//!
//! - `[section]` starts a section; dots nest (`[outputs.app]` is table `app` in `outputs`);
//!   lines before the first section belong to the top level.
//! - `key = value` (or `key: value`, the first `=` or `:` separates); keys and values are
//!   trimmed; a later line with the same key wins.
//! - Comments start with `;` or `#` at the start of a line, or after whitespace anywhere in
//!   it (`chan_size = 100 ; lines`), outside double quotes. A value that must contain ` ;`
//!   or ` #` is written in double quotes (`"a ; b"`); a `;` or `#` not preceded by
//!   whitespace is part of the value (`color=#fff`).
//! - A value wrapped in double or single quotes is the text inside them.
//! - Backslashes are literal (`C:\logs`, `\d+`).
//!
//! These rules are the union of the two dialects this replaces (the logger's whole-line
//! comments and single quotes; the daemons' inline comments and `:` separators), so a file
//! either accepted means the same under both, except a value that contained ` ;` or ` #`
//! unquoted in a logger file, which now ends at the comment.

use std::fmt;

/// How INI values become TOML scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalars {
    /// Every value is a string: for consumers that convert text to each field's type
    /// themselves (the daemons' loader), so `0123` stays `0123`.
    Text,
    /// Unquoted `true`/`false` are booleans and unquoted integers are integers, the rest
    /// strings: for consumers that deserialize strictly with TOML's types (the logger).
    Typed,
}

/// What is wrong on which line of an INI text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct IniError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: IniErrorKind,
}

/// The kinds of INI syntax errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IniErrorKind {
    /// `[name` without the closing bracket (the line is kept).
    UnclosedSection(String),
    /// `[]`, `[a..b]` or `[.a]`.
    EmptySectionName(String),
    /// A line that is neither a section, a comment nor `key = value`.
    NotKeyValue(String),
    /// `= value`.
    EmptyKey(String),
    /// A name used both for a value and for a section.
    KeyAndSection(String),
}

impl fmt::Display for IniErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IniErrorKind::UnclosedSection(line) => {
                write!(f, "section header `{line}` lacks `]`")
            }
            IniErrorKind::EmptySectionName(line) => {
                write!(f, "empty name in section `{line}`")
            }
            IniErrorKind::NotKeyValue(line) => write!(f, "expected `key = value`, got `{line}`"),
            IniErrorKind::EmptyKey(line) => write!(f, "no key before `=` in `{line}`"),
            IniErrorKind::KeyAndSection(name) => {
                write!(f, "`{name}` is both a key and a section")
            }
        }
    }
}

/// Parses INI `text` (see the [module docs](self)) into a table, nesting dotted sections.
pub fn parse(text: &str, scalars: Scalars) -> Result<toml::Table, IniError> {
    let mut root = toml::Table::new();
    let mut section: Vec<String> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let error = |kind| IniError {
            line: index + 1,
            kind,
        };
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(error(IniErrorKind::UnclosedSection(line.to_owned())));
            };
            section = name.split('.').map(|s| s.trim().to_owned()).collect();
            if section.iter().any(String::is_empty) {
                return Err(error(IniErrorKind::EmptySectionName(line.to_owned())));
            }
            // Created by its first key: an empty section is as good as none (the logger
            // never created one, and a section's defaults are the same either way).
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(error(IniErrorKind::NotKeyValue(line.to_owned())));
        };
        let key = line[..split].trim();
        if key.is_empty() {
            return Err(error(IniErrorKind::EmptyKey(line.to_owned())));
        }
        let value = scalar(line[split + 1..].trim(), scalars);
        let table = table_at(&mut root, &section).map_err(error)?;
        if matches!(table.get(key), Some(toml::Value::Table(_))) {
            return Err(error(IniErrorKind::KeyAndSection(key.to_owned())));
        }
        table.insert(key.to_owned(), value);
    }
    Ok(root)
}

/// The line without its comment: from the first `;` or `#` that starts the line or follows
/// whitespace, outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut previous_is_space = true;
    for (index, character) in line.char_indices() {
        match character {
            '"' => in_quotes = !in_quotes,
            ';' | '#' if !in_quotes && previous_is_space => return &line[..index],
            _ => {}
        }
        previous_is_space = character.is_whitespace();
    }
    line
}

fn scalar(value: &str, scalars: Scalars) -> toml::Value {
    let quoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
    if let Some(inner) = quoted {
        return toml::Value::String(inner.to_owned());
    }
    if scalars == Scalars::Typed {
        if value == "true" || value == "false" {
            return toml::Value::Boolean(value == "true");
        }
        if let Ok(integer) = value.parse::<i64>() {
            return toml::Value::Integer(integer);
        }
    }
    toml::Value::String(value.to_owned())
}

/// The table for `path` below `root`, created as needed.
fn table_at<'t>(
    root: &'t mut toml::Table,
    path: &[String],
) -> Result<&'t mut toml::Table, IniErrorKind> {
    let mut table = root;
    for part in path {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(IniErrorKind::KeyAndSection(part.clone())),
        };
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(table: &toml::Table, section: &str, key: &str) -> Option<String> {
        table.get(section)?.get(key)?.as_str().map(str::to_owned)
    }

    #[test]
    fn whole_line_and_inline_comments_go_quoted_text_stays() {
        let t = parse(
            "; whole line\n# another\n  ; indented\n[kafka] ; the brokers\n\
             address = 10.0.0.1:9092, 10.0.0.2:9092 ; brokers\n\
             quoted = \"a ; b # c\" ; comment\nchan_size = 5 # five\ncolor = #fff\n\
             hash=a#b;c\n",
            Scalars::Text,
        )
        .unwrap();
        assert_eq!(
            text(&t, "kafka", "address").as_deref(),
            Some("10.0.0.1:9092, 10.0.0.2:9092")
        );
        assert_eq!(text(&t, "kafka", "quoted").as_deref(), Some("a ; b # c"));
        assert_eq!(text(&t, "kafka", "chan_size").as_deref(), Some("5"));
        assert_eq!(
            text(&t, "kafka", "color").as_deref(),
            Some(""),
            "` #` starts a comment, even right after `=`"
        );
        assert_eq!(text(&t, "kafka", "hash").as_deref(), Some("a#b;c"));
        assert_eq!(t["kafka"].as_table().unwrap().len(), 5);
    }

    #[test]
    fn a_value_that_is_only_a_comment_is_empty() {
        let t = parse("[a]\nk = ; nothing\n", Scalars::Text).unwrap();
        assert_eq!(text(&t, "a", "k").as_deref(), Some(""));
    }

    #[test]
    fn dotted_sections_nest_and_top_level_keys_stay_on_top() {
        let t = parse(
            "level = warn,app=debug\n[outputs.app]\nkind = file\n[ outputs . app . rotation ]\nkeep = 3\n",
            Scalars::Typed,
        )
        .unwrap();
        assert_eq!(t["level"].as_str(), Some("warn,app=debug"));
        assert_eq!(t["outputs"]["app"]["kind"].as_str(), Some("file"));
        assert_eq!(
            t["outputs"]["app"]["rotation"]["keep"].as_integer(),
            Some(3)
        );
    }

    #[test]
    fn typed_scalars_unless_quoted_and_text_scalars_always_text() {
        let source = "[s]\nn = 42\nz = 0123\nb = true\nq = \"7\"\nsq = 'false'\nf = 1.5\n";
        let typed = parse(source, Scalars::Typed).unwrap();
        assert_eq!(typed["s"]["n"].as_integer(), Some(42));
        assert_eq!(typed["s"]["b"].as_bool(), Some(true));
        assert_eq!(typed["s"]["q"].as_str(), Some("7"));
        assert_eq!(typed["s"]["sq"].as_str(), Some("false"));
        assert_eq!(typed["s"]["f"].as_str(), Some("1.5"));
        let text_only = parse(source, Scalars::Text).unwrap();
        assert_eq!(text_only["s"]["n"].as_str(), Some("42"));
        assert_eq!(text_only["s"]["z"].as_str(), Some("0123"));
        assert_eq!(text_only["s"]["b"].as_str(), Some("true"));
    }

    #[test]
    fn colon_separates_when_it_comes_first_and_backslashes_are_literal() {
        let t = parse(
            "[s]\nname: web\nurl = http://h:1/?a=b\nre = \\d+\\.log\n",
            Scalars::Text,
        )
        .unwrap();
        assert_eq!(text(&t, "s", "name").as_deref(), Some("web"));
        assert_eq!(text(&t, "s", "url").as_deref(), Some("http://h:1/?a=b"));
        assert_eq!(text(&t, "s", "re").as_deref(), Some("\\d+\\.log"));
    }

    #[test]
    fn later_keys_win_and_empty_sections_are_left_out() {
        let t = parse("[a]\nk = 1\n[b]\n[a]\nk = 2\n", Scalars::Text).unwrap();
        assert_eq!(text(&t, "a", "k").as_deref(), Some("2"));
        assert!(!t.contains_key("b"));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases = [
            ("[a]\n[b\n", 2, "lacks `]`"),
            ("[a..b]\n", 1, "empty name"),
            ("[a]\njust words\n", 2, "expected `key = value`"),
            ("[a]\n= 3\n", 2, "no key"),
            ("[a]\nb = 1\n[a.b]\nc = 2\n", 4, "both a key and a section"),
            ("[a.b]\nk = 1\n[a]\nb = 1\n", 4, "both a key and a section"),
        ];
        for (source, line, message) in cases {
            let err = parse(source, Scalars::Text).unwrap_err();
            assert_eq!(err.line, line, "{source:?}: {err}");
            assert!(err.to_string().contains(message), "{source:?}: {err}");
        }
    }
}
