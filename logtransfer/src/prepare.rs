//! The per-record stage between the source and the Elasticsearch sink: decode the record
//! (a [`transform`](crate::transform)) and encode it as `_bulk` lines for its index. It runs
//! on the source's task, called once per record, so that the payload is read where it lies.
//! Every document gets `event.ingested`, the time it was prepared (docs/dev/CONTRACTS.md).

use chrono::{DateTime, SecondsFormat};
use prometheus_client::metrics::counter::Counter;
use serde_json::{Map, Value};

use crate::event::{Event, valid_event_id};
use crate::sinks::elasticsearch::config::OpType;
use crate::sinks::elasticsearch::encoder::{EncodedDoc, IndexName, encode, encode_source};
use crate::transform::{decode, fast_lift};

/// Turns consumed records into documents for the Elasticsearch sink.
#[derive(Debug)]
pub struct Prepare {
    index: IndexName,
    op: OpType,
    invalid_ids: Counter,
    ingested: IngestClock,
}

/// The text of `event.ingested`: RFC 3339 UTC with milliseconds. Records come one at a time
/// from the consumer, so there is no batch to stamp once; the text is formatted at most once
/// per millisecond instead (a clock read per record, ~20 ns; the formatting, ~150 ns, is
/// shared by every record of the same millisecond) and copied into each document.
#[derive(Debug, Default)]
struct IngestClock {
    ms: i64,
    text: String,
}

impl IngestClock {
    /// Brings `text` to the current millisecond.
    fn tick(&mut self) {
        let now = chrono::Utc::now().timestamp_millis();
        if now != self.ms || self.text.is_empty() {
            self.ms = now;
            self.text = DateTime::from_timestamp_millis(now)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true);
        }
    }
}

/// Sets `event.ingested` in a document made by the general path (a producer's own value is
/// replaced: it is this pipeline's to set). A non-object `event` is kept as the producer sent
/// it, without the field.
fn stamp_ingested(doc: &mut Map<String, Value>, at: &str) {
    if let Value::Object(event) = doc
        .entry("event")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        event.insert("ingested".into(), Value::String(at.to_owned()));
    }
}

impl Prepare {
    /// Documents go to the indices `index` renders, as `index` actions.
    pub fn new(index: IndexName) -> Self {
        Self {
            index,
            op: OpType::Index,
            invalid_ids: Counter::default(),
            ingested: IngestClock::default(),
        }
    }

    /// Counts event ids that could not be the `_id` (too long, empty, not UTF-8).
    pub fn with_invalid_id_counter(mut self, counter: Counter) -> Self {
        self.invalid_ids = counter;
        self
    }

    /// The document `_id` when the record carries a usable event id: the `event.id` header,
    /// else the value's `event.id` field (docs/dev/CONTRACTS.md, "Event id"). `None`: the
    /// `topic-partition-offset` fallback.
    fn event_id<'a>(
        &self,
        header: Option<&'a [u8]>,
        map: Option<&'a Map<String, Value>>,
    ) -> Option<&'a str> {
        let candidate = header.or_else(|| {
            let map = map?;
            let field = match map.get("event") {
                Some(Value::Object(event)) => event.get("id"),
                _ => map.get("event.id"),
            };
            field.and_then(Value::as_str).map(str::as_bytes)
        })?;
        let id = valid_event_id(candidate);
        if id.is_none() {
            self.invalid_ids.inc();
        }
        id
    }

    /// The `_bulk` action to write (`[es] op_type`).
    pub fn with_op_type(mut self, op: OpType) -> Self {
        self.op = op;
        self
    }

    /// Decodes and encodes one record. A logger line carried by logagent, the common case,
    /// takes the fast path of [`fast_lift`]; anything else the general [`decode`] path.
    /// The record's Kafka timestamp goes with the document as [`EncodedDoc::read_at_ms`].
    pub fn apply(&mut self, event: Event<'_>) -> EncodedDoc {
        let Event {
            key,
            payload,
            timestamp_ms,
            event_id,
        } = event;
        self.ingested.tick();
        let (mut decoded, id) = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(map)) => {
                if let Some((source, ts)) = fast_lift::lift_object(&map, Some(&self.ingested.text))
                {
                    let id = self.event_id(event_id, Some(&map));
                    let name = self.index.render(&key.topic, ts);
                    let mut doc = encode_source(key, name, self.op, id, &source);
                    doc.read_at_ms = timestamp_ms;
                    return doc;
                }
                let id = self.event_id(event_id, Some(&map)).map(str::to_owned);
                (decode::decode_object(map, timestamp_ms), id)
            }
            _ => (
                decode::decode(payload, timestamp_ms),
                self.event_id(event_id, None).map(str::to_owned),
            ),
        };
        stamp_ingested(&mut decoded.doc, &self.ingested.text);
        let name = self.index.render(&key.topic, decoded.timestamp);
        let mut doc = encode(key, name, self.op, id.as_deref(), &decoded.doc);
        doc.read_at_ms = timestamp_ms;
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DocKey;

    /// Whatever the record, its bulk lines are exactly two: any valid JSON must index.
    #[test]
    fn a_record_is_always_two_ndjson_lines() {
        let mut prepare = Prepare::new(IndexName::parse("logs-{topic}").unwrap());
        let pretty = "{\"@timestamp\":\"2026-11-25T08:00:00Z\",\"log.level\":\"info\",\r\n\"process\":{\n\"thread\":{\"id\":1}},\"message\":\"m\"}";
        let payloads = [
            serde_json::to_vec(&serde_json::json!({"message": pretty, "log": {"offset": 1}}))
                .unwrap(),
            pretty.as_bytes().to_vec(),
            b"{\n\"message\": \"top-level pretty\"\r\n}".to_vec(),
            b"line\nwith newline".to_vec(),
        ];
        for payload in payloads {
            let doc = prepare.apply(Event {
                key: DocKey {
                    topic: "t".into(),
                    partition: 0,
                    offset: 0,
                },
                payload: &payload,
                timestamp_ms: Some(0),
                event_id: None,
            });
            let text = String::from_utf8(doc.bytes).unwrap();
            assert_eq!(text.matches('\n').count(), 2, "{text}");
            assert!(!text.contains('\r'), "{text}");
            let source: serde_json::Value =
                serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
            assert!(source.get("message").is_some(), "{text}");
        }
    }

    fn prepared(prepare: &mut Prepare, payload: &[u8]) -> (Value, Option<i64>) {
        let doc = prepare.apply(Event {
            key: DocKey {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            },
            payload,
            timestamp_ms: Some(1_700_000_000_123),
            event_id: None,
        });
        let source = serde_json::from_slice(&doc.bytes[doc.action_len..]).unwrap();
        (source, doc.read_at_ms)
    }

    /// Every document says when the pipeline took it in: the lifted fast path, the general
    /// path (agent JSON, plain text) alike; a producer's own `event.ingested` is replaced.
    #[test]
    fn every_document_gets_event_ingested_and_keeps_its_read_time() {
        let mut prepare = Prepare::new(IndexName::parse("logs-{topic}").unwrap());
        let logger_line =
            r#"{"@timestamp":"2026-11-25T08:00:00Z","log.level":"info","message":"m"}"#;
        let payloads = [
            // lifted on the fast path, with the agent's event id
            serde_json::json!({"@timestamp": "2026-11-25T08:00:01Z", "message": logger_line,
                "event": {"id": "h:k:0"}})
            .to_string(),
            // the general path: plain agent JSON, and a producer claiming its own time
            serde_json::json!({"@timestamp": "2026-11-25T08:00:01Z", "message": "plain"})
                .to_string(),
            serde_json::json!({"message": logger_line,
                "event": {"id": "x", "ingested": "1999-01-01T00:00:00Z"}})
            .to_string(),
            "not json".to_string(),
        ];
        let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
        for payload in &payloads {
            let (source, read_at) = prepared(&mut prepare, payload.as_bytes());
            let text = source["event"]["ingested"]
                .as_str()
                .unwrap_or_else(|| panic!("no event.ingested in {source}"));
            // RFC 3339, UTC, milliseconds.
            assert_eq!(text.len(), "2026-11-25T08:00:00.000Z".len(), "{text}");
            assert!(text.ends_with('Z'), "{text}");
            let at = DateTime::parse_from_rfc3339(text).unwrap();
            assert!(at >= before && at <= chrono::Utc::now(), "{text}");
            assert_eq!(read_at, Some(1_700_000_000_123), "{source}");
        }
        // The rest of the event object is kept.
        let (source, _) = prepared(&mut prepare, payloads[0].as_bytes());
        assert_eq!(source["event"]["id"], "h:k:0");
        assert_eq!(source["event"]["original"], logger_line);
        // A producer's scalar `event` is left as it came (no room for the field).
        let (source, _) = prepared(&mut prepare, br#"{"message":"m","event":"login"}"#);
        assert_eq!(source["event"], "login");
    }
}
