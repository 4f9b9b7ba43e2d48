//! Text lines from a pattern such as `{time} {level} [{thread}] {file}:{line} {message}`.

use std::io::Write as _;

use crate::format::{Format, FormatCtx};
use crate::record::{Record, Value};

/// The pattern used when none is given.
pub const DEFAULT_PATTERN: &str =
    "{time} {level} [{thread}] {module} {file}:{line} {function}: {message}{fields}";

/// Every placeholder a pattern may use.
pub const PLACEHOLDERS: &[&str] = &[
    "time",
    "level",
    "file",
    "line",
    "module",
    "function",
    "thread",
    "thread_id",
    "message",
    "fields",
    "pid",
];

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(Vec<u8>),
    Time,
    Level,
    File,
    Line,
    Module,
    Function,
    Thread,
    ThreadId,
    Message,
    Fields,
    Pid,
}

/// Error for a pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `{name}` that is not a known placeholder.
    #[error("unknown placeholder `{{{name}}}` in pattern `{pattern}`; known: {known}")]
    Unknown {
        /// The placeholder name.
        name: String,
        /// The whole pattern.
        pattern: String,
        /// Known placeholders, comma-separated.
        known: String,
    },
    /// A `{` without its `}`.
    #[error("unclosed `{{` in pattern `{0}`; write `{{{{` for a literal brace")]
    Unclosed(String),
}

/// The pattern format: placeholders in `{}` and literal text.
#[derive(Clone, Debug)]
pub struct PatternFormat {
    pieces: Vec<Piece>,
    pid: u32,
}

impl Default for PatternFormat {
    fn default() -> Self {
        PatternFormat::new(DEFAULT_PATTERN).unwrap_or_else(|_| PatternFormat {
            pieces: vec![Piece::Message],
            pid: std::process::id(),
        })
    }
}

impl PatternFormat {
    /// Parses a pattern; `{{` and `}}` are literal braces.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut rest = pattern;
        while let Some(i) = rest.find(['{', '}']) {
            lit.extend_from_slice(&rest.as_bytes()[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                lit.push(tail.as_bytes()[0]);
                rest = &tail[2..];
                continue;
            }
            if let Some(after) = tail.strip_prefix('}') {
                lit.push(b'}');
                rest = after;
                continue;
            }
            let Some(end) = tail.find('}') else {
                return Err(PatternError::Unclosed(pattern.to_string()));
            };
            let name = &tail[1..end];
            let piece = match name.trim() {
                "time" => Piece::Time,
                "level" => Piece::Level,
                "file" => Piece::File,
                "line" => Piece::Line,
                "module" | "target" => Piece::Module,
                "function" => Piece::Function,
                "thread" => Piece::Thread,
                "thread_id" => Piece::ThreadId,
                "message" => Piece::Message,
                "fields" => Piece::Fields,
                "pid" => Piece::Pid,
                _ => {
                    return Err(PatternError::Unknown {
                        name: name.to_string(),
                        pattern: pattern.to_string(),
                        known: PLACEHOLDERS.join(", "),
                    });
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
            rest = &tail[end + 1..];
        }
        lit.extend_from_slice(rest.as_bytes());
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(PatternFormat {
            pieces,
            pid: std::process::id(),
        })
    }
}

fn level_color(level: crate::Level) -> &'static [u8] {
    match level {
        crate::Level::Trace => b"\x1b[90m",
        crate::Level::Debug => b"\x1b[36m",
        crate::Level::Info => b"\x1b[32m",
        crate::Level::Warn => b"\x1b[33m",
        crate::Level::Error => b"\x1b[31m",
        crate::Level::Fatal => b"\x1b[1;41;97m",
    }
}

impl Format for PatternFormat {
    fn writes_captured_messages(&self) -> bool {
        true
    }

    fn format(&self, r: &Record, ctx: &mut FormatCtx, buf: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Lit(l) => buf.extend_from_slice(l),
                Piece::Time => ctx.write_time(r.time_us, buf),
                Piece::Level => {
                    if ctx.color {
                        buf.extend_from_slice(level_color(r.level));
                        buf.extend_from_slice(r.level.as_padded_upper().as_bytes());
                        buf.extend_from_slice(b"\x1b[0m");
                    } else {
                        buf.extend_from_slice(r.level.as_padded_upper().as_bytes());
                    }
                }
                Piece::File => buf.extend_from_slice(r.file().as_bytes()),
                Piece::Line => {
                    buf.extend_from_slice(itoa::Buffer::new().format(r.line()).as_bytes())
                }
                Piece::Module => buf.extend_from_slice(r.target().as_bytes()),
                Piece::Function => buf.extend_from_slice(r.function().unwrap_or("-").as_bytes()),
                Piece::Thread => match r.thread_name {
                    Some(n) => buf.extend_from_slice(n.as_bytes()),
                    None => {
                        buf.extend_from_slice(itoa::Buffer::new().format(r.thread_id).as_bytes())
                    }
                },
                Piece::ThreadId => {
                    buf.extend_from_slice(itoa::Buffer::new().format(r.thread_id).as_bytes())
                }
                Piece::Message => r.message.write_to(buf),
                Piece::Fields => {
                    for (k, v) in &r.fields {
                        buf.push(b' ');
                        buf.extend_from_slice(k.as_bytes());
                        buf.push(b'=');
                        match v {
                            Value::Str(s) if s.contains([' ', '"', '=']) || s.is_empty() => {
                                buf.push(b'"');
                                crate::format::json_escape(buf, s);
                                buf.push(b'"');
                            }
                            Value::Str(s) => buf.extend_from_slice(s.as_bytes()),
                            other => {
                                let _ = write!(buf, "{other}");
                            }
                        }
                    }
                }
                Piece::Pid => {
                    buf.extend_from_slice(itoa::Buffer::new().format(self.pid).as_bytes())
                }
            }
        }
        buf.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::TimeZoneKind;
    use crate::record::Origin;
    use std::borrow::Cow;

    fn rec() -> Record {
        Record {
            level: crate::Level::Warn,
            time_us: 1_764_079_200_000_042,
            origin: Origin::other("app::db", "src/db.rs", 42, Some(Cow::Borrowed("connect"))),
            thread_id: 7,
            thread_name: Some("main"),
            message: "pool exhausted".into(),
            fields: vec![
                (Cow::Borrowed("size"), Value::U64(10)),
                (Cow::Borrowed("who"), Value::Str(Cow::Borrowed("a b"))),
            ],
        }
    }

    #[test]
    fn default_pattern_renders_every_part() {
        let f = PatternFormat::default();
        let mut ctx = FormatCtx::new(TimeZoneKind::Utc, false);
        let mut buf = Vec::new();
        f.format(&rec(), &mut ctx, &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2025-11-25T14:00:00.000042Z WARN  [main] app::db src/db.rs:42 connect: pool exhausted size=10 who=\"a b\"\n"
        );
    }

    #[test]
    fn braces_and_errors() {
        let f = PatternFormat::new("{{{level}}} {line}").unwrap();
        let mut ctx = FormatCtx::new(TimeZoneKind::Utc, true);
        let mut buf = Vec::new();
        f.format(&rec(), &mut ctx, &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\x1b[33mWARN \x1b[0m} 42\n"
        );
        let e = PatternFormat::new("{time} {lvl}").unwrap_err().to_string();
        assert!(e.contains("`{lvl}`"), "{e}");
        assert!(PatternFormat::new("{time").is_err());
    }
}
