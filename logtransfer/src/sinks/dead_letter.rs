//! The dead-letter topic: documents Elasticsearch refused for good, with the reason.
//!
//! Value (JSON): `{"@timestamp": <when>, "error": {"status": 400, "type": ..., "reason": ...,
//! ...Elasticsearch's error object}, "index": ..., "id": ..., "source": {"topic",
//! "partition", "offset"}, "document": <the document as sent>}`; key = the document `_id`.
//! A dead letter counts as handled only once Kafka acknowledged it.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::elasticsearch::encoder::DocKey;
use super::elasticsearch::retry::Backoff;

/// The producer could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the dead-letter producer for brokers {brokers:?}: {source}")]
pub struct DeadLetterError {
    brokers: String,
    source: Box<rdkafka::error::KafkaError>,
}

/// Sends dead letters.
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("topic", &self.topic)
            .finish()
    }
}

/// One refused document.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    /// Where it came from.
    pub key: &'a DocKey,
    /// Where it was going.
    pub index: &'a str,
    /// The document JSON as sent.
    pub source: &'a [u8],
    /// HTTP status of the refusal.
    pub status: u16,
    /// Elasticsearch's error object (or our own reason).
    pub error: Value,
}

impl DeadLetter {
    /// A producer on `brokers` writing to `topic`.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, DeadLetterError> {
        let producer = service_kit::kafka::producer_config(brokers)
            .create()
            .map_err(|source| DeadLetterError {
                brokers: brokers.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// The value written for `letter`.
    pub fn encode(letter: &Letter<'_>) -> Vec<u8> {
        let mut error = match &letter.error {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("reason".into(), other.clone());
                m
            }
        };
        error.insert("status".into(), letter.status.into());
        let document = serde_json::from_slice::<Value>(letter.source)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(letter.source).into_owned()));
        let value = json!({
            "@timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "error": error,
            "index": letter.index,
            "id": letter.key.id(),
            "source": {
                "topic": &*letter.key.topic,
                "partition": letter.key.partition,
                "offset": letter.key.offset,
            },
            "document": document,
        });
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// Writes one letter, retrying until Kafka acknowledges it. Returns false only when
    /// `cancel` fired first (the record then stays uncommitted and is replayed).
    pub async fn send(&self, letter: &Letter<'_>, cancel: &CancellationToken) -> bool {
        let payload = Self::encode(letter);
        let key = letter.key.id();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            let sent = tokio::select! {
                r = self.producer.send(record, Duration::from_secs(30)) => r,
                _ = cancel.cancelled() => return false,
            };
            match sent {
                Ok(_) => return true,
                Err((e, _)) => {
                    log::warn!(
                        "dead-letter topic {}: cannot write {key}: {e}; retrying",
                        self.topic
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = cancel.cancelled() => return false,
                    }
                }
            }
        }
    }
}
