//! The per-record stage between the source and the Elasticsearch sink: decode the record
//! (a [`transform`](crate::transform)) and encode it as `_bulk` lines for its index. It runs
//! on the source's task, called once per record, so that the payload is read where it lies.

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
}

impl Prepare {
    /// Documents go to the indices `index` renders, as `index` actions.
    pub fn new(index: IndexName) -> Self {
        Self {
            index,
            op: OpType::Index,
            invalid_ids: Counter::default(),
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
    pub fn apply(&mut self, event: Event<'_>) -> EncodedDoc {
        let Event {
            key,
            payload,
            timestamp_ms,
            event_id,
        } = event;
        let (decoded, id) = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(map)) => {
                if let Some((source, ts)) = fast_lift::lift_object(&map) {
                    let id = self.event_id(event_id, Some(&map));
                    let name = self.index.render(&key.topic, ts);
                    return encode_source(key, name, self.op, id, &source);
                }
                let id = self.event_id(event_id, Some(&map)).map(str::to_owned);
                (decode::decode_object(map, timestamp_ms), id)
            }
            _ => (
                decode::decode(payload, timestamp_ms),
                self.event_id(event_id, None).map(str::to_owned),
            ),
        };
        let name = self.index.render(&key.topic, decoded.timestamp);
        encode(key, name, self.op, id.as_deref(), &decoded.doc)
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
}
