//! What travels between the stages, named here so that the source, the sinks and the
//! acknowledgement window share it without importing one another.

use std::sync::Arc;

/// Where a record came from; also its document `_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocKey {
    /// Kafka topic.
    pub topic: Arc<str>,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

impl DocKey {
    /// The document `_id`.
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }
}

/// One consumed record, as the source hands it to the stage that prepares it for a sink.
/// The payload is borrowed from the consumer's message: preparing it copies nothing first.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Its origin.
    pub key: DocKey,
    /// The message value (empty when the message has none).
    pub payload: &'a [u8],
    /// The message timestamp, for records that carry no time of their own.
    pub timestamp_ms: Option<i64>,
    /// The value of the record's `event.id` header ([`EVENT_ID_HEADER`]), if any: the
    /// producer's stable id of the event, preferred as the document `_id`.
    pub event_id: Option<&'a [u8]>,
}

/// The Kafka header carrying a stable event id (docs/dev/CONTRACTS.md, "Event id").
pub const EVENT_ID_HEADER: &str = "event.id";

/// Longest `_id` Elasticsearch accepts, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// An event id usable as a document `_id`: UTF-8, not empty, at most [`MAX_ID_BYTES`].
pub fn valid_event_id(id: &[u8]) -> Option<&str> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return None;
    }
    std::str::from_utf8(id).ok()
}
