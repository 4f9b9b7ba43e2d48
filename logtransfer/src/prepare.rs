//! The per-record stage between the source and the Elasticsearch sink: decode the record
//! (a [`transform`](crate::transform)) and encode it as `_bulk` lines for its index. It runs
//! on the source's task, called once per record, so that the payload is read where it lies.

use crate::event::Event;
use crate::sinks::elasticsearch::encoder::{EncodedDoc, IndexName, encode, encode_source};
use crate::transform::{decode, fast_lift};

/// Turns consumed records into documents for the Elasticsearch sink.
#[derive(Debug)]
pub struct Prepare {
    index: IndexName,
}

impl Prepare {
    /// Documents go to the indices `index` renders.
    pub fn new(index: IndexName) -> Self {
        Self { index }
    }

    /// Decodes and encodes one record. A logger line carried by logagent, the common case,
    /// takes the fast path of [`fast_lift`]; anything else the general [`decode`] path.
    pub fn apply(&mut self, event: Event<'_>) -> EncodedDoc {
        let Event {
            key,
            payload,
            timestamp_ms,
        } = event;
        let decoded = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(serde_json::Value::Object(map)) => {
                if let Some((source, ts)) = fast_lift::lift_object(&map) {
                    let name = self.index.render(&key.topic, ts);
                    return encode_source(key, name, &source);
                }
                decode::decode_object(map, timestamp_ms)
            }
            _ => decode::decode(payload, timestamp_ms),
        };
        let name = self.index.render(&key.topic, decoded.timestamp);
        encode(key, name, &decoded.doc)
    }
}
