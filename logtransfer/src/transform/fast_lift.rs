//! The common case, fast: a logagent message whose `message` is a logger JSON line, written
//! straight to the document bytes. The logger line's values are copied as raw JSON
//! (`serde_json::value::RawValue`) instead of being built into a `Value` tree, merged and
//! serialised again; that tree was most of the cost of a lifted record (see
//! `docs/bench/logtransfer.md`).
//!
//! It produces the same document as [`decode`](super::decode::decode) (the reference; the
//! tests compare the two) and declines (`None`) whenever the input needs anything else than
//! the plain layout: nested clashes, dotted keys that would merge, escapes in keys. The
//! caller then takes the general path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The document source (JSON, no newline) and its time, or `None` for "take the general
/// path".
pub fn lift_to_json(payload: &[u8]) -> Option<(Vec<u8>, DateTime<Utc>)> {
    let outer: Map<String, Value> = serde_json::from_slice(payload).ok()?;
    lift_object(&outer, None)
}

/// [`lift_to_json`] for a message already parsed as a JSON object; `ingested` (RFC 3339
/// text, nothing to escape) becomes `event.ingested`.
pub fn lift_object(
    outer: &Map<String, Value>,
    ingested: Option<&str>,
) -> Option<(Vec<u8>, DateTime<Utc>)> {
    let Some(Value::String(line)) = outer.get("message") else {
        return None;
    };
    // A raw newline or CR in a JSON text can only be whitespace between tokens (inside
    // strings they are escaped), and the raw values copied below would carry it into the
    // NDJSON `_bulk` body, where a newline ends the document. Such lines (pretty-printed
    // events) are rare: the general path re-serialises them. (memchr2, not a byte loop: the
    // loop was ~1.8k instructions of a ~45k-instruction document, docs/BENCHMARKS.md.)
    if !line.starts_with('{')
        || memchr::memchr2(b'\n', b'\r', line.as_bytes()).is_some()
        || outer.keys().any(|k| k.contains('.'))
    {
        return None;
    }
    // The agent's `event` object (its `event.id`, docs/dev/CONTRACTS.md) is kept beside
    // the `event.original` and `event.ingested` written below; anything that would merge
    // with them declines.
    let outer_event = match outer.get("event") {
        None => None,
        Some(Value::Object(m)) if !m.contains_key("original") && !m.contains_key("ingested") => {
            Some(m)
        }
        Some(_) => return None,
    };
    let inner: BTreeMap<&str, &RawValue> = serde_json::from_str(line).ok()?;
    let ts_raw = *inner.get("@timestamp")?;
    let level_raw = *inner.get("log.level")?;
    if !level_raw.get().starts_with('"') {
        return None;
    }
    let ts_text: &str = serde_json::from_str(ts_raw.get()).ok()?;
    let timestamp = DateTime::parse_from_rfc3339(ts_text)
        .ok()?
        .with_timezone(&Utc);

    let outer_log = match outer.get("log") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return None,
    };
    let inner_log: BTreeMap<&str, &RawValue> = match inner.get("log") {
        None => BTreeMap::new(),
        Some(raw) => serde_json::from_str(raw.get()).ok()?,
    };
    if inner_log.contains_key("level") {
        return None;
    }

    let mut out = Vec::with_capacity(2 * line.len() + 256);
    out.extend_from_slice(b"{\"@timestamp\":");
    out.extend_from_slice(ts_raw.get().as_bytes());
    out.extend_from_slice(b",\"message\":");
    match inner.get("message") {
        Some(m) => out.extend_from_slice(m.get().as_bytes()),
        None => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"event\":{\"original\":");
    serde_json::to_writer(&mut out, line).ok()?;
    for (key, value) in outer_event.into_iter().flatten() {
        out.push(b',');
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }
    if let Some(at) = ingested {
        out.extend_from_slice(b",\"ingested\":\"");
        out.extend_from_slice(at.as_bytes());
        out.push(b'"');
    }
    out.push(b'}');

    for (key, value) in outer {
        if matches!(key.as_str(), "@timestamp" | "message" | "log" | "event") {
            continue;
        }
        out.push(b',');
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }

    // log: the agent's fields win; the logger's fill in (level, logger, origin...).
    out.extend_from_slice(b",\"log\":{");
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    if let Some(log) = outer_log {
        for (key, value) in log {
            if let Some(raw) = inner_log.get(key.as_str())
                && value.is_object()
                && raw.get().starts_with('{')
            {
                return None;
            }
            sep(&mut out);
            serde_json::to_writer(&mut out, key).ok()?;
            out.push(b':');
            serde_json::to_writer(&mut out, value).ok()?;
        }
    }
    if !outer_log.is_some_and(|l| l.contains_key("level")) {
        sep(&mut out);
        out.extend_from_slice(b"\"level\":");
        out.extend_from_slice(level_raw.get().as_bytes());
    }
    for (key, raw) in &inner_log {
        if outer_log.is_some_and(|l| l.contains_key(*key)) {
            continue;
        }
        sep(&mut out);
        write_raw_entry(&mut out, key, raw);
    }
    out.push(b'}');

    // The logger's other fields, where the agent has none; `a.b` keys become `a: {b}`.
    let mut heads: Vec<&str> = Vec::new();
    for (key, raw) in &inner {
        if matches!(*key, "@timestamp" | "message" | "log.level" | "log") {
            continue;
        }
        if let Some((head, tail)) = key.split_once('.') {
            if head.is_empty()
                || tail.is_empty()
                || tail.contains('.')
                || outer.contains_key(head)
                || inner.contains_key(head)
                || matches!(head, "event" | "log")
                || heads.contains(&head)
            {
                return None;
            }
            heads.push(head);
            out.push(b',');
            out.push(b'"');
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(b"\":{");
            write_raw_entry(&mut out, tail, raw);
            out.push(b'}');
            continue;
        }
        if matches!(*key, "event") {
            return None;
        }
        if let Some(existing) = outer.get(*key) {
            if existing.is_object() && raw.get().starts_with('{') {
                return None;
            }
            continue;
        }
        out.push(b',');
        write_raw_entry(&mut out, key, raw);
    }
    out.push(b'}');
    Some((out, timestamp))
}

/// `"key":raw`. The key was borrowed from the input, so it holds no escapes and is
/// written as it came.
fn write_raw_entry(out: &mut Vec<u8>, key: &str, raw: &RawValue) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(raw.get().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::decode::decode;
    use serde_json::json;

    fn agent(message: &str, extra: Value) -> Vec<u8> {
        let mut v = json!({
            "@timestamp": "2026-11-25T14:00:01.000001Z",
            "message": message,
            "host": {"name": "web-1"},
            "log": {"file": {"path": "/var/log/app.log"}, "offset": 120},
            "agent": {"type": "logagent", "version": "0.1.0"}
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// The fast path answers exactly what the general path does, or declines.
    fn same_as_reference(payload: &[u8]) -> bool {
        let reference = decode(payload, Some(0));
        match lift_to_json(payload) {
            None => false,
            Some((bytes, ts)) => {
                let fast: Value = serde_json::from_slice(&bytes).expect("valid JSON");
                assert_eq!(fast, Value::Object(reference.doc), "documents differ");
                assert_eq!(ts, reference.timestamp);
                true
            }
        }
    }

    #[test]
    fn same_documents_as_the_general_path() {
        let lines = [
            r#"{"@timestamp":"2026-11-24T23:59:59.5Z","log.level":"warn","message":"disk \"full\"\n","ecs.version":"8.11.0","log":{"logger":"app::db","origin":{"file":{"name":"src/db.rs","line":42},"function":"connect"}},"process":{"thread":{"name":"main","id":1}},"user_id":7,"ratio":0.5,"tags":["a","b"],"ok":true,"none":null}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","message":"ünïcødé ✓"}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59+02:00","log.level":"error"}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","message":"m","host":"liar","agent":"x","log":{"offset":999,"logger":"l"}}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","message":"m","service.name":"checkout","labels.env":"prod"}"#,
        ];
        for line in lines {
            assert!(same_as_reference(&agent(line, json!({}))), "{line}");
        }
        // With static fields from the agent, and without an agent log object.
        let line = lines[0];
        assert!(same_as_reference(&agent(
            line,
            json!({"fields": {"env": "demo"}})
        )));
        let bare =
            serde_json::to_vec(&json!({"@timestamp": "2026-11-25T00:00:00Z", "message": line}))
                .unwrap();
        assert!(same_as_reference(&bare));
        // The agent's event id (the contract's `event.id`) stays on the fast path.
        assert!(same_as_reference(&agent(
            line,
            json!({"event": {"id": "h-fp-120", "kind": "event"}})
        )));
    }

    #[test]
    fn declines_what_needs_the_general_path() {
        let declined = [
            // not a logger line
            "plain text",
            r#"{"@timestamp":"2026-11-24T23:59:59Z","msg":"no level"}"#,
            // level nested, not dotted
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log":{"level":"info"},"message":"m"}"#,
            // unreadable time: the agent's is kept
            r#"{"@timestamp":"yesterday","log.level":"info","message":"m"}"#,
            // an object clashing with the agent's object: deep merge
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","host":{"ip":"1.2.3.4"}}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","log":{"file":{"line":1}}}"#,
            // dotted keys that merge with something
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","host.ip":"1.2.3.4"}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","a.b":1,"a.c":2}"#,
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","a.b.c":1}"#,
            // escaped key
            r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","k\"ey":1}"#,
        ];
        for line in declined {
            let payload = agent(line, json!({}));
            assert!(lift_to_json(&payload).is_none(), "{line}");
        }
        assert!(lift_to_json(b"not json").is_none());
        // Raw newlines between tokens (pretty-printed): valid JSON the raw copy would break.
        for ws in ["\n", "\r", "\r\n"] {
            let line = format!(
                r#"{{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info","process":{{{ws}"thread":{{"id":1}}}}}}"#
            );
            assert!(lift_to_json(&agent(&line, json!({}))).is_none(), "{line:?}");
        }
        for event in [
            json!({"original": "x"}),
            json!({"ingested": "2026-11-24T23:59:59Z"}),
            json!("scalar"),
        ] {
            let with_event = agent(
                r#"{"@timestamp":"2026-11-24T23:59:59Z","log.level":"info"}"#,
                json!({ "event": event }),
            );
            assert!(lift_to_json(&with_event).is_none());
        }
    }
}
