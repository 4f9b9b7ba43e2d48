//! The Kafka message for one line (fixed in `docs/dev/CONTRACTS.md`, consumed by logtransfer).
//!
//! * key: `"{host}:{path}"`, so all lines of one file land in one partition, in order;
//! * value: ECS-shaped JSON
//!   `{"@timestamp","message","host":{"name"},"log":{"file":{"path"},"offset"},"agent":{"type","version"},"fields"?,"event":{"id"}}`.
//!
//! `event.id` is `{host}:{content key, 16 hex digits}:{offset}`: where the line is, not when
//! it was sent, so a line sent again (after a restart, from a renamed or copied file) has the
//! same id and logtransfer indexes it as the same document. The content key is
//! [`crate::identity::EventKey`]; in the host name, characters JSON would escape (`"`, `\`,
//! controls) become `_`, so the id reads the same in the JSON value and in the Kafka header
//! `event.id` that [`event_id`] finds at the message's end. `event` is written last for that.
//!
//! `message` is the raw line without its newline, decoded as UTF-8 with invalid bytes replaced
//! by U+FFFD (shipped lossily, never dropped). A line that is itself a JSON record from our
//! `logger` is carried unchanged as that string; logtransfer parses and lifts it, so the agent
//! never has to understand the application's format.
//!
//! A cut line (at `max_line_bytes`, or because its message would exceed the producer's
//! `message.max.bytes` after escaping) ends with [`TRUNCATED_MARKER`] and carries
//! `"log":{…,"flags":["truncated"]}`, as Filebeat marks its cut lines.

/// Appended to a line cut at `max_line_bytes`.
pub const TRUNCATED_MARKER: &str = " [logagent: line truncated]";

/// Added inside `log` after the offset of a cut line (see the module documentation).
const TRUNCATED_FLAGS: &[u8] = br#","flags":["truncated"]"#;

/// The per-file parts of every message, computed once per file: everything except the
/// timestamp, the line and the offset is the same for every line of a file, so it is
/// escaped once here and copied per line.
#[derive(Debug, Clone)]
pub struct FileEncoder {
    path: String,
    key: Vec<u8>,
    /// `{host}:` as the event id starts (see the module documentation).
    id_prefix: Vec<u8>,
    /// `","host":{"name":…},"log":{"file":{"path":…},"offset":`
    middle: Vec<u8>,
    /// `},"agent":{…}` + `,"fields":{…}` if any + `,"event":{"id":"`
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
        tail.push_str(r#","event":{"id":""#);
        let mut id_prefix: Vec<u8> = host
            .bytes()
            .map(|b| {
                if b < 0x20 || b == b'"' || b == b'\\' {
                    b'_'
                } else {
                    b
                }
            })
            .collect();
        id_prefix.push(b':');
        FileEncoder {
            path: path.to_string(),
            key: format!("{host}:{path}").into_bytes(),
            id_prefix,
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

    /// Encodes one line read at `timestamp` (RFC 3339, µs, `Z`) starting at byte `offset`,
    /// of a file whose [`crate::identity::EventKey`] for this line is `content`.
    pub fn encode(
        &self,
        timestamp: &str,
        line: &[u8],
        truncated: bool,
        offset: u64,
        content: u64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            line.len() + self.middle.len() + self.tail.len() + self.id_prefix.len() + 64,
        );
        self.encode_into(&mut out, timestamp, line, truncated, offset, content);
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
        content: u64,
    ) {
        start_message(out, timestamp);
        escape_line(out, line);
        self.finish(out, truncated, offset, content);
    }

    /// Like [`FileEncoder::encode_into`], but a message longer than `max` bytes has its
    /// `message` cut (at a character, never inside an escape) so that the whole message is
    /// at most `max` bytes, and is marked truncated. Returns whether it was cut. A message
    /// that fits costs one comparison more than `encode_into`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one line as the batch has them; a struct would be built per \
                  line only to be taken apart here"
    )]
    pub fn encode_within(
        &self,
        out: &mut Vec<u8>,
        timestamp: &str,
        line: &[u8],
        truncated: bool,
        offset: u64,
        content: u64,
        max: usize,
    ) -> bool {
        let start = out.len();
        self.encode_into(out, timestamp, line, truncated, offset, content);
        if out.len() - start <= max {
            return false;
        }
        // Rare: encode again, measuring what the message text may take.
        out.truncate(start);
        start_message(out, timestamp);
        let text_start = out.len();
        let mut marker = Vec::with_capacity(TRUNCATED_MARKER.len());
        logger::format::json_escape(&mut marker, TRUNCATED_MARKER);
        let offset_len = itoa::Buffer::new().format(offset).len();
        let rest = marker.len()
            + self.middle.len()
            + offset_len
            + TRUNCATED_FLAGS.len()
            + self.tail.len()
            + self.id_prefix.len()
            + 16
            + 1
            + offset_len
            + EVENT_END.len();
        let room = max.saturating_sub(text_start - start + rest);
        escape_line(out, line);
        let keep = escaped_prefix(&out[text_start..], room);
        out.truncate(text_start + keep);
        out.extend_from_slice(&marker);
        self.finish_after_marker(out, true, offset, content);
        true
    }

    /// Appends the marker of a cut line, then everything after `message`.
    fn finish(&self, out: &mut Vec<u8>, truncated: bool, offset: u64, content: u64) {
        if truncated {
            logger::format::json_escape(out, TRUNCATED_MARKER);
        }
        self.finish_after_marker(out, truncated, offset, content);
    }

    fn finish_after_marker(&self, out: &mut Vec<u8>, truncated: bool, offset: u64, content: u64) {
        let mut digits = itoa::Buffer::new();
        let offset = digits.format(offset).as_bytes();
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(offset);
        if truncated {
            out.extend_from_slice(TRUNCATED_FLAGS);
        }
        out.extend_from_slice(&self.tail);
        // The event id, written straight into the message: no allocation per line.
        out.extend_from_slice(&self.id_prefix);
        push_hex16(out, content);
        out.push(b':');
        out.extend_from_slice(offset);
        out.extend_from_slice(EVENT_END);
    }
}

/// What follows the event id: the end of `event` and of the message.
const EVENT_END: &[u8] = b"\"}}";

/// Appends `n` as 16 lower-case hex digits.
fn push_hex16(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend_from_slice(&digits);
}

/// The event id of a message made by [`FileEncoder`], for the Kafka header `event.id`:
/// found from the end (where `event` is written), so without parsing the message. `None`
/// for anything else.
pub fn event_id(message: &[u8]) -> Option<&[u8]> {
    let body = message.strip_suffix(EVENT_END)?;
    let start = body.iter().rposition(|&b| b == b'"')? + 1;
    body[..start]
        .ends_with(br#""event":{"id":""#)
        .then_some(&body[start..])
        .filter(|id| !id.is_empty())
}

/// Appends everything before the `message` text.
fn start_message(out: &mut Vec<u8>, timestamp: &str) {
    out.extend_from_slice(br#"{"@timestamp":""#);
    out.extend_from_slice(timestamp.as_bytes());
    out.extend_from_slice(br#"","message":""#);
}

/// Appends `line` as JSON string content, invalid UTF-8 replaced by U+FFFD.
fn escape_line(out: &mut Vec<u8>, line: &[u8]) {
    match std::str::from_utf8(line) {
        Ok(text) => logger::format::json_escape(out, text),
        Err(_) => logger::format::json_escape(out, &String::from_utf8_lossy(line)),
    }
}

/// The length of the longest prefix of the escaped JSON string content `escaped` that is at
/// most `room` bytes and ends between two characters: never inside an escape sequence
/// (`\"`, `\u001f`) or a multi-byte UTF-8 character, so the cut text is still valid JSON.
fn escaped_prefix(escaped: &[u8], room: usize) -> usize {
    let mut at = 0;
    while let Some(&b) = escaped.get(at) {
        let len = match b {
            b'\\' if escaped.get(at + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        if at + len > room {
            break;
        }
        at += len;
    }
    at
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
        let v: Value = serde_json::from_slice(&enc.encode(
            "2026-11-25T14:00:00.123456Z",
            b"hello",
            false,
            42,
            0xabc,
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"@timestamp":"2026-11-25T14:00:00.123456Z","message":"hello","host":{"name":"web1"},
                   "log":{"file":{"path":"/var/log/a.log"},"offset":42},
                   "agent":{"type":"logagent","version":env!("CARGO_PKG_VERSION")},
                   "event":{"id":"web1:0000000000000abc:42"}})
        );
    }

    #[test]
    fn logger_json_lines_are_carried_as_a_string_and_fields_are_added() {
        let mut fields = serde_json::Map::new();
        fields.insert("env".into(), json!("prod"));
        let enc = FileEncoder::new("h", "/p", Some(fields));
        let line = br#"{"@timestamp":"2026-11-25T14:00:00.1Z","log.level":"info","message":"x"}"#;
        let v: Value = serde_json::from_slice(&enc.encode("t", line, false, 0, 1)).unwrap();
        assert_eq!(v["message"], std::str::from_utf8(line).unwrap());
        assert_eq!(v["fields"], json!({"env":"prod"}));
    }

    #[test]
    fn invalid_utf8_is_shipped_lossily_and_truncation_is_marked() {
        let enc = FileEncoder::new("h", "/p", None);
        let v: Value = serde_json::from_slice(&enc.encode("t", b"a\xffb", true, 0, 1)).unwrap();
        assert_eq!(v["message"], format!("a\u{FFFD}b{TRUNCATED_MARKER}"));
        assert_eq!(v["log"]["flags"], json!(["truncated"]));
        assert_eq!(v["log"]["offset"], 0);
    }

    #[test]
    fn a_message_over_the_limit_is_cut_between_characters_to_fit_and_marked() {
        let enc = FileEncoder::new("h", "/p", None);
        // Every kind of character escaping treats differently, so every cut position
        // lands next to an escape or a multi-byte character somewhere.
        let line = "a\"\\\u{1}é日\u{1f600}".repeat(50);
        let whole = enc.encode("t", line.as_bytes(), false, 9, u64::MAX);
        for max in [0, 10, 200, 201, 202, 203, 204, 205, 300, whole.len() - 1] {
            let mut out = b"before".to_vec();
            assert!(enc.encode_within(&mut out, "t", line.as_bytes(), false, 9, u64::MAX, max));
            let msg = &out[b"before".len()..];
            let v: Value = serde_json::from_slice(msg).unwrap_or_else(|e| panic!("{max}: {e}"));
            let text = v["message"].as_str().unwrap();
            let cut = text.strip_suffix(TRUNCATED_MARKER).unwrap();
            assert!(line.starts_with(cut), "{max}: a prefix of the line");
            assert_eq!(v["log"]["flags"], json!(["truncated"]));
            assert_eq!(v["log"]["offset"], 9);
            assert_eq!(v["event"]["id"], "h:ffffffffffffffff:9");
            assert_eq!(event_id(msg), Some(&b"h:ffffffffffffffff:9"[..]));
            if max >= 300 {
                assert!(msg.len() <= max, "{max}: {} bytes", msg.len());
                assert!(msg.len() + 12 > max, "{max}: cut no more than needed");
            }
        }
        let mut out = Vec::new();
        assert!(!enc.encode_within(
            &mut out,
            "t",
            line.as_bytes(),
            false,
            9,
            u64::MAX,
            whole.len()
        ));
        assert_eq!(out, whole, "a message that fits is not touched");
    }

    #[test]
    fn escaping_matches_serde_json_for_every_awkward_character() {
        let enc = FileEncoder::new("h\"ost", "/p\\ath", None);
        let line =
            "quote \" backslash \\ tab \t nul \u{0} bell \u{7} del \u{7f} é 日本 \u{1f600} end";
        let v: Value =
            serde_json::from_slice(&enc.encode("t", line.as_bytes(), false, u64::MAX, 7)).unwrap();
        assert_eq!(v["message"], line);
        assert_eq!(v["host"]["name"], "h\"ost");
        assert_eq!(v["log"]["file"]["path"], "/p\\ath");
        assert_eq!(v["log"]["offset"], u64::MAX);
        assert_eq!(enc.key(), "h\"ost:/p\\ath".as_bytes());
        let id = format!("h_ost:0000000000000007:{}", u64::MAX);
        assert_eq!(v["event"]["id"], id.as_str(), "the id needs no escaping");
        let msg = enc.encode("t", b"x", false, u64::MAX, 7);
        assert_eq!(event_id(&msg), Some(id.as_bytes()));
    }

    #[test]
    fn the_event_id_is_found_at_the_end_even_with_fields_and_nothing_else_has_one() {
        let mut fields = serde_json::Map::new();
        fields.insert("event".into(), json!({"id": "not this"}));
        let enc = FileEncoder::new("h", "/p", Some(fields));
        let msg = enc.encode("t", br#"x","event":{"id":"y"}}"#, false, 5, 1);
        assert_eq!(event_id(&msg), Some(&b"h:0000000000000001:5"[..]));
        let v: Value = serde_json::from_slice(&msg).unwrap();
        assert_eq!(v["fields"]["event"]["id"], "not this");
        assert_eq!(event_id(br#"{"message":"x"}"#), None);
        assert_eq!(event_id(br#"{"a":"b"}}"#), None);
        assert_eq!(event_id(br#"{"event":{"id":""}}"#), None);
    }

    #[test]
    fn timestamp_has_microseconds_and_z() {
        let t = now_timestamp();
        assert_eq!(t.len(), "2026-11-25T14:00:00.123456Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
