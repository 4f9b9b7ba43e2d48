//! The Kafka message for one line (fixed in `docs/dev/CONTRACTS.md`, consumed by logtransfer).
//!
//! * key: `"{host}:{path}"`, so all lines of one file land in one partition, in order;
//! * value: ECS-shaped JSON
//!   `{"@timestamp","message","host":{"name"},"log":{"file":{"path"},"offset"},"agent":{"type","version"},"fields"?}`.
//!
//! `message` is the raw line without its newline, decoded as UTF-8 with invalid bytes replaced
//! by U+FFFD (shipped lossily, never dropped). A line that is itself a JSON record from our
//! `logger` is carried unchanged as that string; logtransfer parses and lifts it, so the agent
//! never has to understand the application's format.

/// Appended to a line cut at `max_line_bytes`.
pub const TRUNCATED_MARKER: &str = " [logagent: line truncated]";

/// The per-file parts of every message, computed once per file: everything except the
/// timestamp, the line and the offset is the same for every line of a file, so it is
/// escaped once here and copied per line.
#[derive(Debug, Clone)]
pub struct FileEncoder {
    path: String,
    key: Vec<u8>,
    /// `","host":{"name":…},"log":{"file":{"path":…},"offset":`
    middle: Vec<u8>,
    /// `},"agent":{…}` + `,"fields":{…}` if any + `}`
    tail: Vec<u8>,
}

impl FileEncoder {
    /// An encoder for the lines of `path` read on `host`.
    pub fn new(
        host: &str,
        path: &str,
        fields: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Self {
        let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
        let middle = format!(
            r#"","host":{{"name":{}}},"log":{{"file":{{"path":{}}},"offset":"#,
            json(host),
            json(path)
        );
        let mut tail = format!(
            r#"}},"agent":{{"type":"logagent","version":"{}"}}"#,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(f) = &fields
            && let Ok(f) = serde_json::to_string(f)
        {
            tail.push_str(r#","fields":"#);
            tail.push_str(&f);
        }
        tail.push('}');
        FileEncoder {
            path: path.to_string(),
            key: format!("{host}:{path}").into_bytes(),
            middle: middle.into_bytes(),
            tail: tail.into_bytes(),
        }
    }

    /// The message key shared by every line of this file.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The file path carried as `log.file.path`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Encodes one line read at `timestamp` (RFC 3339, µs, `Z`) starting at byte `offset`.
    pub fn encode(&self, timestamp: &str, line: &[u8], truncated: bool, offset: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.len() + self.middle.len() + self.tail.len() + 64);
        self.encode_into(&mut out, timestamp, line, truncated, offset);
        out
    }

    /// Like [`FileEncoder::encode`], appending to `out` (one buffer for many lines saves an
    /// allocation per line).
    pub fn encode_into(
        &self,
        out: &mut Vec<u8>,
        timestamp: &str,
        line: &[u8],
        truncated: bool,
        offset: u64,
    ) {
        out.extend_from_slice(br#"{"@timestamp":""#);
        out.extend_from_slice(timestamp.as_bytes());
        out.extend_from_slice(br#"","message":""#);
        match std::str::from_utf8(line) {
            Ok(text) => logger::format::json_escape(out, text),
            Err(_) => logger::format::json_escape(out, &String::from_utf8_lossy(line)),
        }
        if truncated {
            logger::format::json_escape(out, TRUNCATED_MARKER);
        }
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
        out.extend_from_slice(&self.tail);
    }
}

/// The current time as `@timestamp` wants it: RFC 3339 with microseconds and `Z`.
pub fn now_timestamp() -> String {
    read_time().0
}

/// The current time as `@timestamp` text and as Unix milliseconds (the Kafka message
/// timestamp), from one clock reading.
pub fn read_time() -> (String, i64) {
    let now = chrono::Utc::now();
    (
        now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        now.timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn message_follows_the_contract() {
        let enc = FileEncoder::new("web1", "/var/log/a.log", None);
        assert_eq!(enc.key(), b"web1:/var/log/a.log");
        let v: Value =
            serde_json::from_slice(&enc.encode("2026-11-25T14:00:00.123456Z", b"hello", false, 42))
                .unwrap();
        assert_eq!(
            v,
            json!({"@timestamp":"2026-11-25T14:00:00.123456Z","message":"hello","host":{"name":"web1"},
                   "log":{"file":{"path":"/var/log/a.log"},"offset":42},
                   "agent":{"type":"logagent","version":env!("CARGO_PKG_VERSION")}})
        );
    }

    #[test]
    fn logger_json_lines_are_carried_as_a_string_and_fields_are_added() {
        let mut fields = serde_json::Map::new();
        fields.insert("env".into(), json!("prod"));
        let enc = FileEncoder::new("h", "/p", Some(fields));
        let line = br#"{"@timestamp":"2026-11-25T14:00:00.1Z","log.level":"info","message":"x"}"#;
        let v: Value = serde_json::from_slice(&enc.encode("t", line, false, 0)).unwrap();
        assert_eq!(v["message"], std::str::from_utf8(line).unwrap());
        assert_eq!(v["fields"], json!({"env":"prod"}));
    }

    #[test]
    fn invalid_utf8_is_shipped_lossily_and_truncation_is_marked() {
        let enc = FileEncoder::new("h", "/p", None);
        let v: Value = serde_json::from_slice(&enc.encode("t", b"a\xffb", true, 0)).unwrap();
        assert_eq!(v["message"], format!("a\u{FFFD}b{TRUNCATED_MARKER}"));
    }

    #[test]
    fn escaping_matches_serde_json_for_every_awkward_character() {
        let enc = FileEncoder::new("h\"ost", "/p\\ath", None);
        let line =
            "quote \" backslash \\ tab \t nul \u{0} bell \u{7} del \u{7f} é 日本 \u{1f600} end";
        let v: Value =
            serde_json::from_slice(&enc.encode("t", line.as_bytes(), false, u64::MAX)).unwrap();
        assert_eq!(v["message"], line);
        assert_eq!(v["host"]["name"], "h\"ost");
        assert_eq!(v["log"]["file"]["path"], "/p\\ath");
        assert_eq!(v["log"]["offset"], u64::MAX);
        assert_eq!(enc.key(), "h\"ost:/p\\ath".as_bytes());
    }

    #[test]
    fn timestamp_has_microseconds_and_z() {
        let t = now_timestamp();
        assert_eq!(t.len(), "2026-11-25T14:00:00.123456Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
