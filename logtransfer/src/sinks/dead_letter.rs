//! The dead-letter topic: documents Elasticsearch refused for good, with the reason.
//!
//! Value (JSON): `{"@timestamp": <when>, "error": {"status": 400, "type": ..., "reason": ...,
//! ...Elasticsearch's error object}, "index": ..., "id": ..., "source": {"topic",
//! "partition", "offset"}, "document": <the document as sent>}`; key = the document `_id`.
//! A dead letter counts as handled only once Kafka acknowledged it.
//!
//! The producer is idempotent; one that fails fatally (a broker's answers leave it unable to
//! know what was stored) refuses every later message, so it is replaced by a new one and the
//! letter is sent again.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use service_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::{DeadLetters, Letter};

/// The producer could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the dead-letter producer for brokers {brokers:?}: {source}")]
pub struct DeadLetterError {
    brokers: String,
    source: Box<rdkafka::error::KafkaError>,
}

/// Sends dead letters.
pub struct DeadLetter {
    /// The producer in use and how many were made before it (so that two sends that saw
    /// the same one fail replace it once).
    producer: parking_lot::Mutex<(u64, FutureProducer)>,
    brokers: String,
    topic: String,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetter {
    /// A producer on `brokers` writing to `topic`.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, DeadLetterError> {
        Ok(Self {
            producer: parking_lot::Mutex::new((0, Self::producer(brokers)?)),
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
        })
    }

    fn producer(brokers: &str) -> Result<FutureProducer, DeadLetterError> {
        service_kit::kafka::producer_config(brokers)
            .create()
            .map_err(|source| DeadLetterError {
                brokers: brokers.to_owned(),
                source: Box::new(source),
            })
    }

    /// Replaces producer number `generation` if it failed fatally.
    fn replace_if_broken(&self, generation: u64, producer: &FutureProducer) {
        let Some((_, reason)) = producer.client().fatal_error() else {
            return;
        };
        let mut current = self.producer.lock();
        if current.0 != generation {
            return;
        }
        match Self::producer(&self.brokers) {
            Ok(fresh) => {
                log::warn!(
                    "dead-letter topic {}: the producer failed for good ({reason}); replaced by \
                     a new one",
                    self.topic
                );
                *current = (generation + 1, fresh);
            }
            Err(e) => log::error!("dead-letter topic {}: {e}; retrying", self.topic),
        }
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
            "id": letter.id,
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
        let key = letter.id;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let (generation, producer) = self.producer.lock().clone();
            let record = FutureRecord::to(&self.topic).key(key).payload(&payload);
            let sent = tokio::select! {
                r = producer.send(record, Duration::from_secs(30)) => r,
                _ = cancel.cancelled() => return false,
            };
            match sent {
                Ok(_) => return true,
                Err((e, _)) => {
                    self.replace_if_broken(generation, &producer);
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

impl DeadLetters for DeadLetter {
    fn send<'a>(
        &'a self,
        letter: &'a Letter<'_>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, bool> {
        Box::pin(DeadLetter::send(self, letter, cancel))
    }
}

/// No dead-letter topic (benchmarks): a refused document is logged at error level, whole,
/// and counts as handled.
#[derive(Debug, Default)]
pub struct LogDeadLetters;

impl DeadLetters for LogDeadLetters {
    fn send<'a>(
        &'a self,
        letter: &'a Letter<'_>,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, bool> {
        log::error!(
            "no dead-letter topic: refused document {}: {}",
            letter.id,
            String::from_utf8_lossy(&DeadLetter::encode(letter))
        );
        Box::pin(std::future::ready(true))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;
    use crate::event::DocKey;

    /// librdkafka's mock cluster injects the fault a real broker cannot be made to produce:
    /// OUT_OF_ORDER_SEQUENCE_NUMBER makes the idempotent producer fail fatally.
    #[tokio::test]
    async fn a_fatally_failed_producer_is_replaced_and_the_letter_still_sent() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("dlq", 1, 1).unwrap();
        let dead_letter = DeadLetter::new(&cluster.bootstrap_servers(), "dlq").unwrap();
        let cancel = CancellationToken::new();
        let key = DocKey {
            topic: Arc::from("logs"),
            partition: 0,
            offset: 7,
        };
        let letter = Letter {
            key: &key,
            id: "logs-0-7",
            index: "logs-2026.11.25",
            source: br#"{"message":"x"}"#,
            status: 400,
            error: json!({"type": "mapper_parsing_exception"}),
        };
        let send = |letter| {
            let (d, c) = (&dead_letter, &cancel);
            async move {
                tokio::time::timeout(Duration::from_secs(30), d.send(letter, c))
                    .await
                    .expect("the letter was never acknowledged")
            }
        };
        assert!(send(&letter).await);
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
        );
        assert!(send(&letter).await, "sent by the replacement producer");
        assert!(send(&letter).await);
        assert_eq!(dead_letter.producer.lock().0, 1, "replaced exactly once");
    }
}
