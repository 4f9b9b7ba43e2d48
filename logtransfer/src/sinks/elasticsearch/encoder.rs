//! Record -> the two `_bulk` lines (action + source), and the index name.
//!
//! The action is `index` (or `create`, `[es] op_type`) with `_id` =
//! `{topic}-{partition}-{offset}`: a record replayed after a crash lands on its own document
//! (overwrites it, or is refused with a 409 that means "already indexed") instead of adding
//! a second one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Map, Value};

use super::config::OpType;
use crate::event::DocKey;

/// One record ready for a `_bulk` body.
#[derive(Debug, Clone)]
pub struct EncodedDoc {
    /// Its origin (for offsets and the dead-letter topic).
    pub key: DocKey,
    /// Target index.
    pub index: Arc<str>,
    /// `action\nsource\n`.
    pub bytes: Vec<u8>,
    /// Length of the action line including its newline; the source follows.
    pub action_len: usize,
    /// The record's Kafka timestamp (Unix ms): for logagent's lines the time the line was
    /// read. Where `logtransfer_end_to_end_latency_seconds` starts; `None` when the record
    /// has none.
    pub read_at_ms: Option<i64>,
}

/// Error in the `[es] index` template.
#[derive(Debug, thiserror::Error)]
pub enum IndexTemplateError {
    /// An unknown `%` specifier.
    #[error(
        "index name template {template:?}: unknown specifier %{spec} (use %Y %m %d %H and {{topic}})"
    )]
    UnknownSpecifier {
        /// The template.
        template: String,
        /// The letter after `%`.
        spec: char,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Topic,
    Year,
    Month,
    Day,
    Hour,
}

/// `logs-{topic}-%Y.%m.%d`, parsed once, rendered per record (cached per topic and hour).
#[derive(Debug)]
pub struct IndexName {
    parts: Vec<Part>,
    cache: HashMap<(Arc<str>, i64), Arc<str>>,
}

impl IndexName {
    /// Parses the template.
    pub fn parse(template: &str) -> Result<Self, IndexTemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{topic}") {
                push_lit(&mut parts, &mut lit);
                parts.push(Part::Topic);
                rest = after;
                continue;
            }
            rest = &rest[c.len_utf8()..];
            if c != '%' {
                lit.push(c);
                continue;
            }
            let spec = rest.chars().next().unwrap_or(' ');
            let part = match spec {
                'Y' => Part::Year,
                'm' => Part::Month,
                'd' => Part::Day,
                'H' => Part::Hour,
                '%' => {
                    lit.push('%');
                    rest = &rest[1..];
                    continue;
                }
                _ => {
                    return Err(IndexTemplateError::UnknownSpecifier {
                        template: template.to_owned(),
                        spec,
                    });
                }
            };
            rest = &rest[1..];
            push_lit(&mut parts, &mut lit);
            parts.push(part);
        }
        push_lit(&mut parts, &mut lit);
        Ok(Self {
            parts,
            cache: HashMap::new(),
        })
    }

    /// The index pattern covering every name this template renders (`logs-*`), for the
    /// index template and Kibana.
    pub fn pattern(&self) -> String {
        // The literal prefix up to the first placeholder, then `*`: `logs-{topic}-%Y.%m.%d`
        // -> `logs-*`.
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                _ => {
                    out.push('*');
                    break;
                }
            }
        }
        out.to_lowercase()
    }

    /// Every name the template can make: each placeholder becomes `*` (`logs-{topic}-default`
    /// -> `logs-*-default`), the data streams' index pattern.
    pub fn full_pattern(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                _ if out.ends_with('*') => {}
                _ => out.push('*'),
            }
        }
        out.to_lowercase()
    }

    /// Whether names depend on the record's time (`%Y %m %d %H`).
    pub fn has_time(&self) -> bool {
        self.parts
            .iter()
            .any(|p| !matches!(p, Part::Lit(_) | Part::Topic))
    }

    /// The index of a record of `topic` written at `ts`. Elasticsearch wants lowercase.
    pub fn render(&mut self, topic: &Arc<str>, ts: DateTime<Utc>) -> Arc<str> {
        let hour_key = ts.timestamp().div_euclid(3600);
        if let Some(name) = self.cache.get(&(topic.clone(), hour_key)) {
            return name.clone();
        }
        let mut out = String::new();
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    Ok(())
                }
                Part::Topic => {
                    out.push_str(topic);
                    Ok(())
                }
                Part::Year => write!(out, "{:04}", ts.year()),
                Part::Month => write!(out, "{:02}", ts.month()),
                Part::Day => write!(out, "{:02}", ts.day()),
                Part::Hour => write!(out, "{:02}", ts.hour()),
            };
        }
        let name: Arc<str> = out.to_lowercase().into();
        if self.cache.len() > 4096 {
            self.cache.clear();
        }
        self.cache.insert((topic.clone(), hour_key), name.clone());
        name
    }
}

fn push_lit(parts: &mut Vec<Part>, lit: &mut String) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit)));
    }
}

/// Encodes one document as its bulk lines; `id` is its event id when it has a valid one
/// (else the `_id` is `topic-partition-offset`).
pub fn encode(
    key: DocKey,
    index: Arc<str>,
    op: OpType,
    id: Option<&str>,
    doc: &Map<String, Value>,
) -> EncodedDoc {
    let mut bytes = Vec::with_capacity(256);
    let action_len = write_action(&mut bytes, op, &key, id, &index);
    // Serialising a Map of Values to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut bytes, doc);
    bytes.push(b'\n');
    EncodedDoc {
        key,
        index,
        bytes,
        action_len,
        read_at_ms: None,
    }
}

/// Encodes a document whose source is already JSON (one line, no newline).
pub fn encode_source(
    key: DocKey,
    index: Arc<str>,
    op: OpType,
    id: Option<&str>,
    source: &[u8],
) -> EncodedDoc {
    let mut bytes = Vec::with_capacity(source.len() + 96);
    let action_len = write_action(&mut bytes, op, &key, id, &index);
    bytes.extend_from_slice(source);
    bytes.push(b'\n');
    EncodedDoc {
        key,
        index,
        bytes,
        action_len,
        read_at_ms: None,
    }
}

/// `{"index":{"_index":...,"_id":"topic-partition-offset"}}\n` (or `"create"`, or the
/// event id as `_id`); returns its length.
fn write_action(
    bytes: &mut Vec<u8>,
    op: OpType,
    key: &DocKey,
    id: Option<&str>,
    index: &str,
) -> usize {
    bytes.extend_from_slice(b"{\"");
    bytes.extend_from_slice(op.as_str().as_bytes());
    bytes.extend_from_slice(b"\":{\"_index\":");
    write_json_str(bytes, index);
    if let Some(id) = id {
        bytes.extend_from_slice(b",\"_id\":");
        write_json_str(bytes, id);
        bytes.extend_from_slice(b"}}\n");
        return bytes.len();
    }
    bytes.extend_from_slice(b",\"_id\":\"");
    // The topic is the only part that may need escaping; offsets and partitions are digits.
    let mut id = Vec::new();
    write_json_str(&mut id, &key.topic);
    bytes.extend_from_slice(&id[1..id.len() - 1]);
    bytes.push(b'-');
    bytes.extend_from_slice(itoa::Buffer::new().format(key.partition).as_bytes());
    bytes.push(b'-');
    bytes.extend_from_slice(itoa::Buffer::new().format(key.offset).as_bytes());
    bytes.extend_from_slice(b"\"}}\n");
    bytes.len()
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a str cannot fail.
    let _ = serde_json::to_writer(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn index_name_from_record_time_lowercased() {
        let mut t = IndexName::parse("logs-{topic}-%Y.%m.%d").unwrap();
        let ts = Utc.with_ymd_and_hms(2026, 1, 2, 23, 0, 0).unwrap();
        assert_eq!(&*t.render(&"Web".into(), ts), "logs-web-2026.01.02");
        assert_eq!(t.pattern(), "logs-*");
        assert!(IndexName::parse("logs-%Q").is_err());
        let mut t = IndexName::parse("x-%Y%%").unwrap();
        assert_eq!(&*t.render(&"a".into(), ts), "x-2026%");
    }

    #[test]
    fn bulk_lines() {
        let key = DocKey {
            topic: "we\"b".into(),
            partition: 3,
            offset: 77,
        };
        let mut doc = Map::new();
        doc.insert("message".into(), "hi\n".into());
        let e = encode(
            key.clone(),
            "logs-web-2026.01.02".into(),
            OpType::Index,
            None,
            &doc,
        );
        let text = String::from_utf8(e.bytes.clone()).unwrap();
        assert_eq!(
            text,
            "{\"index\":{\"_index\":\"logs-web-2026.01.02\",\"_id\":\"we\\\"b-3-77\"}}\n{\"message\":\"hi\\n\"}\n"
        );
        let action: Value = serde_json::from_slice(&e.bytes[..e.action_len]).unwrap();
        assert_eq!(action["index"]["_id"], "we\"b-3-77");
        let e = encode_source(key.clone(), "i".into(), OpType::Create, None, b"{}");
        assert_eq!(
            String::from_utf8(e.bytes).unwrap(),
            "{\"create\":{\"_index\":\"i\",\"_id\":\"we\\\"b-3-77\"}}\n{}\n"
        );
        let e = encode_source(key, "i".into(), OpType::Index, Some("h:\"x\"@7"), b"{}");
        let action: Value = serde_json::from_slice(&e.bytes[..e.action_len]).unwrap();
        assert_eq!(action["index"]["_id"], "h:\"x\"@7");
    }
}
