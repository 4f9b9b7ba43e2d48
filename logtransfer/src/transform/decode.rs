//! Kafka value -> Elasticsearch document (docs/dev/CONTRACTS.md, "Message formats").
//!
//! Three shapes arrive:
//! - logagent's JSON (`@timestamp`, `message`, `host.name`, `log.file.path`, `log.offset`...),
//!   taken as the document;
//! - anything that is not a JSON object (plain text from other producers), wrapped as
//!   `{"@timestamp", "message"}`;
//! - either of those whose `message` is itself a JSON line of our `logger` (it has
//!   `@timestamp` and `log.level`): its fields are lifted into the document, the agent's
//!   `host.name`, `log.file.path` and `log.offset` are kept, the raw line goes to
//!   `event.original`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// A decoded document and the time it is filed under.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The document source, with dotted keys expanded into objects.
    pub doc: Map<String, Value>,
    /// The record's own time (its `@timestamp`), which picks the daily index. Replays
    /// decode to the same time, hence the same index and the same document.
    pub timestamp: DateTime<Utc>,
}

/// Decodes one Kafka value. `kafka_timestamp_ms` (the record's CreateTime) dates records
/// without a usable `@timestamp`; it is stable across replays, unlike "now".
pub fn decode(payload: &[u8], kafka_timestamp_ms: Option<i64>) -> Decoded {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => decode_object(map, kafka_timestamp_ms),
        _ => {
            let mut map = Map::new();
            map.insert(
                "message".into(),
                Value::String(
                    String::from_utf8_lossy(payload)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                ),
            );
            finish(map, kafka_timestamp_ms)
        }
    }
}

/// [`decode`] for a value already parsed as a JSON object.
pub fn decode_object(map: Map<String, Value>, kafka_timestamp_ms: Option<i64>) -> Decoded {
    let mut doc = expand_dotted(map);
    lift_logger_line(&mut doc);
    finish(doc, kafka_timestamp_ms)
}

fn finish(mut doc: Map<String, Value>, kafka_timestamp_ms: Option<i64>) -> Decoded {
    let fallback = kafka_timestamp_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(Utc::now);
    let timestamp = match doc.get("@timestamp").and_then(parse_timestamp) {
        Some(ts) => ts,
        None => {
            // Only when absent: a present but unreadable @timestamp is kept so that
            // Elasticsearch's refusal sends the record to the dead-letter topic, visibly.
            if !doc.contains_key("@timestamp") {
                doc.insert(
                    "@timestamp".into(),
                    Value::String(fallback.to_rfc3339_opts(SecondsFormat::Micros, true)),
                );
            }
            fallback
        }
    };
    Decoded { doc, timestamp }
}

/// Reads `@timestamp` as RFC 3339 text or epoch milliseconds.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        _ => None,
    }
}

/// If `message` is a logger JSON line, merges its fields into `doc`.
fn lift_logger_line(doc: &mut Map<String, Value>) {
    let Some(Value::String(line)) = doc.get("message") else {
        return;
    };
    if !line.trim_start().starts_with('{') {
        return;
    }
    let Ok(Value::Object(inner)) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let inner = expand_dotted(inner);
    let has_level = inner
        .get("log")
        .and_then(|l| l.get("level"))
        .is_some_and(Value::is_string);
    if !inner.contains_key("@timestamp") || !has_level {
        return;
    }
    let Some(Value::String(original)) = doc.remove("message") else {
        return;
    };
    let mut inner = inner;
    // The logger's own time and message replace the agent's read time and raw line.
    if let Some(ts) = inner.remove("@timestamp")
        && parse_timestamp(&ts).is_some()
    {
        doc.insert("@timestamp".into(), ts);
    }
    doc.insert(
        "message".into(),
        inner
            .remove("message")
            .unwrap_or_else(|| Value::String(String::new())),
    );
    // Everything else fills in: on a clash the agent's value (host.name, log.file.path,
    // log.offset, agent.*) wins, because it says where the line really came from.
    merge_missing(doc, inner);
    let event = doc
        .entry("event")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(event) = event {
        event.insert("original".into(), Value::String(original));
    }
}

/// Inserts every field of `src` that `dst` lacks, descending into objects present in both.
fn merge_missing(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    for (key, value) in src {
        match (dst.get_mut(&key), value) {
            (None, value) => {
                dst.insert(key, value);
            }
            (Some(Value::Object(d)), Value::Object(s)) => merge_missing(d, s),
            (Some(_), _) => {}
        }
    }
}

/// `{"log.level": "info", "log": {"logger": "x"}}` -> `{"log": {"level": "info", "logger": "x"}}`,
/// so that documents have one shape whatever their producer wrote. A dotted key that
/// clashes with a non-object stays as written.
fn expand_dotted(mut map: Map<String, Value>) -> Map<String, Value> {
    let dotted: Vec<String> = map
        .keys()
        .filter(|k| k.contains('.') && !k.starts_with('.') && !k.ends_with('.'))
        .cloned()
        .collect();
    for key in dotted {
        let Some(value) = map.remove(&key) else {
            continue;
        };
        if let Err(value) = insert_path(&mut map, &key, value) {
            map.insert(key, value);
        }
    }
    map
}

/// Inserts `value` at the dotted `path`; gives it back when a non-object is in the way.
fn insert_path(map: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), Value> {
    match path.split_once('.') {
        None => match (map.get_mut(path), value) {
            (Some(Value::Object(existing)), Value::Object(new)) => {
                merge_missing(existing, new);
                Ok(())
            }
            (Some(_), value) => Err(value),
            (None, value) => {
                map.insert(path.to_owned(), value);
                Ok(())
            }
        },
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(child) => insert_path(child, rest, value),
                _ => Err(value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent(message: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "@timestamp": "2026-11-25T14:00:01.000001Z",
            "message": message,
            "host": {"name": "web-1"},
            "log": {"file": {"path": "/var/log/app.log"}, "offset": 120},
            "agent": {"type": "logagent", "version": "0.1.0"}
        }))
        .unwrap()
    }

    #[test]
    fn agent_message_is_the_document() {
        let d = decode(&agent("GET / 200"), Some(0));
        assert_eq!(d.doc["message"], "GET / 200");
        assert_eq!(d.doc["host"]["name"], "web-1");
        assert_eq!(d.doc["log"]["offset"], 120);
        assert_eq!(d.timestamp.to_rfc3339(), "2026-11-25T14:00:01.000001+00:00");
        assert!(!d.doc.contains_key("event"));
    }

    #[test]
    fn plain_text_is_wrapped_and_dated_by_kafka() {
        let d = decode(b"hello world\n", Some(1_764_079_200_000));
        assert_eq!(d.doc["message"], "hello world");
        assert_eq!(d.doc["@timestamp"], "2025-11-25T14:00:00.000000Z");
        assert_eq!(d.doc.len(), 2);
        // A JSON scalar is not a document either.
        assert_eq!(decode(b"42", Some(0)).doc["message"], "42");
    }

    #[test]
    fn logger_line_is_lifted_keeping_agent_origin() {
        let line = r#"{"@timestamp":"2026-11-24T23:59:59.5Z","log.level":"warn","message":"disk full","ecs.version":"8.11.0","log":{"logger":"app::db","origin":{"file":{"name":"src/db.rs","line":42},"function":"connect"},"offset":999},"host":{"name":"liar"},"user_id":7}"#;
        let d = decode(&agent(line), None);
        let doc = Value::Object(d.doc);
        assert_eq!(doc["message"], "disk full");
        assert_eq!(doc["@timestamp"], "2026-11-24T23:59:59.5Z");
        assert_eq!(doc["log"]["level"], "warn");
        assert_eq!(doc["log"]["logger"], "app::db");
        assert_eq!(doc["log"]["origin"]["file"]["name"], "src/db.rs");
        assert_eq!(doc["log"]["origin"]["file"]["line"], 42);
        assert_eq!(doc["log"]["origin"]["function"], "connect");
        assert_eq!(doc["log"]["offset"], 120, "the agent's offset wins");
        assert_eq!(doc["log"]["file"]["path"], "/var/log/app.log");
        assert_eq!(doc["host"]["name"], "web-1");
        assert_eq!(doc["ecs"]["version"], "8.11.0");
        assert_eq!(doc["user_id"], 7);
        assert_eq!(doc["event"]["original"], line);
        assert_eq!(d.timestamp.to_rfc3339(), "2026-11-24T23:59:59.500+00:00");
    }

    #[test]
    fn json_without_level_is_not_lifted() {
        let line = r#"{"@timestamp":"2026-11-24T23:59:59Z","msg":"x"}"#;
        let d = decode(&agent(line), None);
        assert_eq!(d.doc["message"], line);
        assert!(!d.doc.contains_key("event"));
    }

    #[test]
    fn missing_timestamp_comes_from_kafka_and_bad_one_is_kept() {
        let d = decode(br#"{"message":"m"}"#, Some(0));
        assert_eq!(d.doc["@timestamp"], "1970-01-01T00:00:00.000000Z");
        let d = decode(br#"{"message":"m","@timestamp":"yesterday"}"#, Some(0));
        assert_eq!(d.doc["@timestamp"], "yesterday");
        assert_eq!(d.timestamp.timestamp(), 0);
    }
}
