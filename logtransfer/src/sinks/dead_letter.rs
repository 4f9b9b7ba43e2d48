//! The dead-letter topic: documents Elasticsearch refused for good, with the reason.
//!
//! Value (JSON): `{"@timestamp": <when>, "error": {"status": 400, "type": ..., "reason": ...,
//! ...Elasticsearch's error object}, "index": ..., "id": ..., "source": {"topic",
//! "partition", "offset"}, "document": <the document as sent>}`; key = the document `_id`.
//! A dead letter counts as handled only once Kafka acknowledged it.
//!
//! A letter over the producer's message size limit would be refused forever and wedge its
//! partition: its `document` is cut to fit (as a string prefix, with
//! `"document_truncated": {"original_bytes": n}`), keeping the reason and the Kafka
//! coordinates; when the broker's limit is lower still, the letter is cut further.
//!
//! The producer is idempotent; one that fails fatally (a broker's answers leave it unable to
//! know what was stored) refuses every later message, so it is replaced by a new one and the
//! letter is sent again.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use service_kit::backoff::Backoff;
use service_kit::kafka::{KafkaSecurity, KafkaSecurityError};
use tokio_util::sync::CancellationToken;

use super::{DeadLetters, Letter};

/// The producer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// librdkafka refused the settings.
    #[error("cannot create the dead-letter producer for brokers {brokers:?}: {source}")]
    Create {
        /// `[kafka] address`.
        brokers: String,
        /// The cause.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// `[kafka]`'s TLS or SASL keys are wrong.
    #[error(transparent)]
    Security(#[from] KafkaSecurityError),
}

/// Sends dead letters.
pub struct DeadLetter {
    /// The producer in use and how many were made before it (so that two sends that saw
    /// the same one fail replace it once).
    producer: parking_lot::Mutex<(u64, FutureProducer)>,
    brokers: String,
    /// `[kafka]` TLS and SASL, for the replacement producers too.
    security: KafkaSecurity,
    topic: String,
    /// The producer's `message.max.bytes`: letters are cut to fit.
    max_bytes: usize,
}

/// librdkafka's default `message.max.bytes`, about the brokers' default limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Room left in a message for the key and the record's framing.
const FRAMING_BYTES: usize = 1024;

/// The smallest limit a letter is cut to when the broker keeps refusing it as too large.
const MIN_LETTER_BYTES: usize = 4096;

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetter {
    /// A producer on `brokers` (with `[kafka]`'s TLS and SASL, `security`) writing to `topic`.
    pub fn new(
        brokers: &str,
        security: &KafkaSecurity,
        topic: &str,
    ) -> Result<Self, DeadLetterError> {
        Self::with_max_message_bytes(brokers, security, topic, DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// [`new`](Self::new) with the producer's `message.max.bytes` set to `max_bytes`.
    pub fn with_max_message_bytes(
        brokers: &str,
        security: &KafkaSecurity,
        topic: &str,
        max_bytes: usize,
    ) -> Result<Self, DeadLetterError> {
        let max_bytes = max_bytes.max(MIN_LETTER_BYTES);
        Ok(Self {
            producer: parking_lot::Mutex::new((0, Self::producer(brokers, security, max_bytes)?)),
            brokers: brokers.to_owned(),
            security: security.clone(),
            topic: topic.to_owned(),
            max_bytes,
        })
    }

    fn producer(
        brokers: &str,
        security: &KafkaSecurity,
        max_bytes: usize,
    ) -> Result<FutureProducer, DeadLetterError> {
        let mut config = service_kit::kafka::producer_config(brokers);
        config.set("message.max.bytes", max_bytes.to_string());
        security.apply("[kafka]", &mut config)?;
        config.create().map_err(|source| DeadLetterError::Create {
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
        match Self::producer(&self.brokers, &self.security, self.max_bytes) {
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

    /// The value written for `letter`, at most `max` bytes (the document is cut first,
    /// then the error's texts; the reason's type and status and the coordinates stay).
    pub fn encode_within(letter: &Letter<'_>, max: usize) -> Vec<u8> {
        let full = Self::encode(letter);
        if full.len() <= max {
            return full;
        }
        let original = letter.source.len();
        let mut budget = max.saturating_sub(full.len().saturating_sub(original));
        loop {
            let mut end = budget.min(original);
            let text = loop {
                // Cut on a character boundary.
                match std::str::from_utf8(&letter.source[..end]) {
                    Ok(text) => break std::borrow::Cow::Borrowed(text),
                    Err(e) if e.valid_up_to() > 0 && e.error_len().is_none() => {
                        end = e.valid_up_to()
                    }
                    Err(_) => break String::from_utf8_lossy(&letter.source[..end]),
                }
            };
            let value = Self::value(
                letter,
                Value::String(text.into_owned()),
                Some(original),
                None,
            );
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            if bytes.len() <= max {
                return bytes;
            }
            if budget == 0 {
                break;
            }
            // Escapes made it longer than the bytes it holds: try a shorter prefix.
            budget /= 2;
        }
        // The error itself is too big: keep its first characters only.
        let value = Self::value(letter, Value::Null, Some(original), Some(max / 4));
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The value written for `letter`.
    pub fn encode(letter: &Letter<'_>) -> Vec<u8> {
        let document = serde_json::from_slice::<Value>(letter.source)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(letter.source).into_owned()));
        serde_json::to_vec(&Self::value(letter, document, None, None)).unwrap_or_default()
    }

    /// The letter's JSON: `truncated` is the original document size when `document` was
    /// cut; `error_chars` cuts the error's strings.
    fn value(
        letter: &Letter<'_>,
        document: Value,
        truncated: Option<usize>,
        error_chars: Option<usize>,
    ) -> Value {
        let mut error = match &letter.error {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("reason".into(), other.clone());
                m
            }
        };
        if let Some(chars) = error_chars {
            for field in error.values_mut() {
                *field = match std::mem::take(field) {
                    Value::String(s) => Value::String(s.chars().take(chars).collect()),
                    v @ (Value::Number(_) | Value::Bool(_) | Value::Null) => v,
                    _ => Value::String("(cut: the dead letter was too large)".into()),
                };
            }
        }
        error.insert("status".into(), letter.status.into());
        let mut value = json!({
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
        if let Some(original) = truncated {
            value["document_truncated"] = json!({ "original_bytes": original });
        }
        value
    }

    /// Writes one letter, retrying until Kafka acknowledges it. Returns false only when
    /// `cancel` fired first (the record then stays uncommitted and is replayed).
    pub async fn send(&self, letter: &Letter<'_>, cancel: &CancellationToken) -> bool {
        let mut limit = self
            .max_bytes
            .saturating_sub(FRAMING_BYTES + letter.id.len());
        let mut payload = Self::encode_within(letter, limit);
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
                // The broker's limit is below ours: cut further rather than retry forever.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if limit > MIN_LETTER_BYTES =>
                {
                    limit = (limit / 2).max(MIN_LETTER_BYTES);
                    log::warn!(
                        "dead-letter topic {}: {key} too large for the broker; cutting it to {limit} bytes",
                        self.topic
                    );
                    payload = Self::encode_within(letter, limit);
                }
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

    /// `logs`/3/42, the record of the letters below.
    fn coordinates() -> DocKey {
        DocKey {
            topic: Arc::from("logs"),
            partition: 3,
            offset: 42,
        }
    }

    /// A letter for a mapping error of `source`.
    fn mapping_error<'a>(key: &'a DocKey, source: &'a [u8]) -> Letter<'a> {
        Letter {
            key,
            id: "logs-3-42",
            index: "logs-2026.11.25",
            source,
            status: 400,
            error: json!({"type": "mapper_parsing_exception", "reason": "too big"}),
        }
    }

    /// Sends a letter for `source` and waits at most 20 s for Kafka's acknowledgement.
    async fn send_within_20s(dead_letter: &DeadLetter, source: &[u8]) {
        let key = coordinates();
        let sent = tokio::time::timeout(
            Duration::from_secs(20),
            dead_letter.send(&mapping_error(&key, source), &CancellationToken::new()),
        )
        .await
        .expect("a letter over the limit was never acknowledged");
        assert!(sent);
    }

    /// A letter over the producer's message size limit is cut to fit and sent (it was
    /// retried forever, wedging its partition), keeping the reason and the coordinates.
    #[tokio::test]
    async fn a_letter_larger_than_the_message_limit_is_cut_and_sent() {
        use rdkafka::Message;
        use rdkafka::consumer::{BaseConsumer, Consumer};

        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("dlq", 1, 1).unwrap();
        let dead_letter = DeadLetter::with_max_message_bytes(
            &cluster.bootstrap_servers(),
            &KafkaSecurity::default(),
            "dlq",
            8_192,
        )
        .unwrap();
        let source = serde_json::to_vec(&json!({"message": "ü\"x".repeat(20_000)})).unwrap();
        send_within_20s(&dead_letter, &source).await;

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "check")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("dlq", 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let msg = match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(msg)) => msg.detach(),
            Some(Err(e)) => panic!("{e}"),
            None => panic!("no dead letter"),
        };
        let payload = msg.payload().unwrap();
        assert!(payload.len() <= 8_192, "{}", payload.len());
        let value: Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(value["error"]["type"], "mapper_parsing_exception");
        assert_eq!(value["error"]["status"], 400);
        assert_eq!(value["id"], "logs-3-42");
        assert_eq!(value["source"]["partition"], 3);
        assert_eq!(value["source"]["offset"], 42);
        assert_eq!(value["document_truncated"]["original_bytes"], source.len());
        assert!(
            source.starts_with(value["document"].as_str().unwrap().as_bytes()),
            "a prefix of the document"
        );
    }

    /// The same with the default producer: a letter over librdkafka's default
    /// `message.max.bytes` (what a document near Elasticsearch's `http.max_content_length`
    /// makes) is acknowledged instead of being refused on every retry.
    #[tokio::test]
    async fn a_letter_over_the_default_message_limit_is_acknowledged() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("dlq", 1, 1).unwrap();
        let dead_letter = DeadLetter::new(
            &cluster.bootstrap_servers(),
            &KafkaSecurity::default(),
            "dlq",
        )
        .unwrap();
        let source = serde_json::to_vec(&json!({"message": "x".repeat(1_500_000)})).unwrap();
        send_within_20s(&dead_letter, &source).await;
    }

    /// librdkafka's mock cluster injects the fault a real broker cannot be made to produce:
    /// OUT_OF_ORDER_SEQUENCE_NUMBER makes the idempotent producer fail fatally.
    #[tokio::test]
    async fn a_fatally_failed_producer_is_replaced_and_the_letter_still_sent() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("dlq", 1, 1).unwrap();
        let dead_letter = DeadLetter::new(
            &cluster.bootstrap_servers(),
            &KafkaSecurity::default(),
            "dlq",
        )
        .unwrap();
        let cancel = CancellationToken::new();
        let key = coordinates();
        let letter = mapping_error(&key, br#"{"message":"x"}"#);
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
