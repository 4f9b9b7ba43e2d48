//! The Kafka sink: an idempotent, acks=all, compressing, batching rdkafka producer whose
//! delivery reports drive the checkpoints.
//!
//! librdkafka retries transient errors itself and, with `message.timeout.ms=0`, never gives
//! up on a message while the broker is unreachable: lines wait in its queue (bounded by
//! `chan_size` through [`InFlightLimit`]) until the broker is back. A delivered message's
//! token is acknowledged here. A delivery report with an error (rare: the producer was
//! fenced, a topic is not authorised yet, the broker refuses a message as too large) is
//! classified and handed, with the message, to the [`DeliveryReports`] given at creation:
//! the shipper's retry decides what becomes of the line. The sink only produces and reports.
//!
//! A fatal producer error (the idempotent producer lost track of its sequence numbers with
//! a broker) ends this producer for good: every later send fails. Then failed deliveries
//! are reported as [`Undelivered::Broken`]; [`Sink::broken`] says why, and the agent stops
//! so that a restart begins with a new producer and re-sends what Kafka did not acknowledge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use service_kit::check::KafkaMetadata;
use service_kit::kafka::{BrokerCheck, BrokerReadiness, KafkaSecurity, ResolvedSecurity};
use service_kit::readiness::Condition;

use super::{DeliveryReports, OwnedMessage, SendError, Sink, SinkError, Undelivered};
use crate::ack::AckToken;
use crate::config::KafkaConfig;
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;

/// Delivery callbacks, on librdkafka's polling thread.
pub struct AckContext {
    metrics: Arc<Metrics>,
    reports: Arc<dyn DeliveryReports>,
    /// Set when librdkafka reports a fatal error: failed deliveries are then reported as
    /// [`Undelivered::Broken`] (producing them again cannot succeed).
    broken: AtomicBool,
    /// `/ready`'s `kafka` condition, from the broker states in librdkafka's statistics.
    readiness: BrokerReadiness,
}

impl ClientContext for AckContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.broken.store(true, Ordering::Relaxed);
        }
        self.readiness.on_error(&error, reason);
        log::error!("librdkafka: {error}: {reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.readiness.on_stats(statistics);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<AckToken>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<AckToken>) {
        let token = *token;
        let undelivered = match result {
            Ok(msg) => {
                token.ack();
                self.metrics.lines_sent.inc();
                self.metrics.bytes_sent.inc_by(msg.payload_len() as u64);
                return;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), msg)) => {
                Undelivered::TooLarge {
                    topic: msg.topic().to_string(),
                    bytes: msg.payload_len(),
                    token,
                }
            }
            Err(_) if self.broken.load(Ordering::Relaxed) => Undelivered::Broken { token },
            Err((err, msg)) => Undelivered::Retriable {
                message: OwnedMessage {
                    topic: msg.topic().to_string(),
                    key: msg.key().map(<[u8]>::to_vec).unwrap_or_default(),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    // Always set by `try_send`; 0 would make librdkafka stamp the time of
                    // the new send, as for a record without a timestamp.
                    timestamp_ms: msg.timestamp().to_millis().unwrap_or(0),
                },
                token,
                reason: err.to_string(),
            },
        };
        self.reports.undelivered(undelivered);
    }
}

/// Produces lines to Kafka.
pub struct KafkaSink {
    producer: ThreadedProducer<AckContext>,
    /// The producer's settings, for [`KafkaSink::check_brokers`]. Holds the password: never
    /// print it.
    config: ClientConfig,
    /// `[kafka]` TLS and SASL as applied.
    security: ResolvedSecurity,
    /// Whether the event id also goes out as the header `event.id` (`[kafka] event_id_header`).
    event_id_header: bool,
}

impl KafkaSink {
    /// Creates the producer. Its own queue limits sit above `limit`, so the in-flight limit
    /// (which wakes waiters on each ack) is what pauses reading, not a queue-full error.
    /// Deliveries that fail are handed to `reports`. `security` is `[kafka]`'s TLS and SASL.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        brokers: &str,
        security: &KafkaSecurity,
        compression: &str,
        linger_ms: u64,
        message_max_bytes: usize,
        limit: &InFlightLimit,
        metrics: Arc<Metrics>,
        reports: Arc<dyn DeliveryReports>,
    ) -> Result<Self, SinkError> {
        let mut config: ClientConfig = service_kit::kafka::producer_config(brokers);
        config
            .set("compression.type", compression)
            .set("linger.ms", linger_ms.to_string())
            // Never expire a message: while the broker is down lines wait, they are not lost.
            .set("message.timeout.ms", "0")
            .set(
                "queue.buffering.max.messages",
                (limit.max_lines() + 1024).min(2_097_151).to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                (2 * limit.max_bytes() / 1024 + 1024)
                    .min(2_097_151)
                    .to_string(),
            )
            // Lines are cut to fit this when they are encoded (`encode::FileEncoder`).
            .set("message.max.bytes", message_max_bytes.to_string())
            .set("batch.num.messages", "10000");
        BrokerReadiness::configure(&mut config);
        let security = security.apply("[kafka]", &mut config)?;
        let context = AckContext {
            metrics,
            reports,
            broken: AtomicBool::new(false),
            readiness: BrokerReadiness::default(),
        };
        let producer: ThreadedProducer<AckContext> =
            config
                .create_with_context(context)
                .map_err(|source| SinkError::Create {
                    brokers: brokers.to_string(),
                    source,
                })?;
        Ok(KafkaSink {
            producer,
            config,
            security,
            event_id_header: false,
        })
    }

    /// Sets `readiness` (`/ready`'s `kafka` condition) from the producer's broker states.
    pub fn with_readiness(self, readiness: Condition) -> Self {
        self.producer.context().readiness.attach(readiness);
        self
    }

    /// The sink `[kafka]` describes: what the agent produces with, and what `--check`
    /// builds to test the same settings.
    pub fn from_config(
        config: &KafkaConfig,
        limit: &InFlightLimit,
        metrics: Arc<Metrics>,
        reports: Arc<dyn DeliveryReports>,
    ) -> Result<Self, SinkError> {
        Ok(Self::new(
            &config.brokers(),
            &config.security,
            &config.compression,
            config.linger_ms,
            config.message_max_bytes,
            limit,
            metrics,
            reports,
        )?
        .with_event_id_header(config.event_id_header))
    }

    /// The brokers' metadata as this producer sees it (`--check-connections`); blocks for
    /// at most `timeout`.
    pub fn metadata(&self, timeout: Duration) -> Result<KafkaMetadata, KafkaError> {
        KafkaMetadata::fetch(self.producer.client(), timeout)
    }

    /// Waits up to `timeout` for the brokers to answer, so that a refused TLS handshake or
    /// SASL login stops the start with an error saying what to check, instead of lines
    /// waiting for a connection that can never be made. Brokers that are down or silent are
    /// not an error (lines wait for them, as in an outage).
    pub fn check_brokers(&self, timeout: Duration) -> Result<BrokerCheck, SinkError> {
        Ok(service_kit::kafka::check_brokers(
            &self.config,
            "[kafka]",
            &self.security,
            timeout,
        )?)
    }

    /// Also sends each message's event id as the Kafka header `event.id`.
    pub fn with_event_id_header(mut self, on: bool) -> Self {
        self.event_id_header = on;
        self
    }
}

impl Sink for KafkaSink {
    fn try_send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: i64,
        ack: AckToken,
    ) -> Result<(), SendError> {
        // The read time as the Kafka timestamp; it also spares librdkafka a clock read per
        // message.
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(ack))
            .key(key)
            .payload(payload)
            .timestamp(timestamp_ms);
        // The event id also as a header when asked for, so a consumer can dedupe without
        // parsing the value (docs/dev/CONTRACTS.md, "Event id"). Found at the message's end,
        // so a re-sent message (delivery retry) carries it too. Opt-in: librdkafka allocates
        // and frees a header list per message (~1.5 µs CPU, measured).
        if let Some(id) = crate::encode::event_id(payload).filter(|_| self.event_id_header) {
            record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                key: "event.id",
                value: Some(id),
            }));
        }
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                Err(SendError::Full(*record.delivery_opaque))
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), record)) => {
                Err(SendError::Broken(*record.delivery_opaque))
            }
            Err((e, record)) => Err(SendError::Rejected(*record.delivery_opaque, e.to_string())),
        }
    }

    fn broken(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{reason} ({code:?})"))
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        if let Some(reason) = self.broken() {
            return Err(SinkError::Broken { reason });
        }
        match self.producer.flush(timeout) {
            Ok(()) => Ok(()),
            Err(_) => Err(SinkError::Flush {
                in_flight: self.producer.in_flight_count(),
                timeout,
            }),
        }
    }
}
