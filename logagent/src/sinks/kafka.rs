//! The Kafka sink: an idempotent, acks=all, compressing, batching rdkafka producer whose
//! delivery reports drive the checkpoints.
//!
//! librdkafka retries transient errors itself and, with `message.timeout.ms=0`, never gives
//! up on a message while the broker is unreachable: lines wait in its queue (bounded by
//! `chan_size` through [`InFlightLimit`]) until the broker is back. A delivery report with an
//! error (rare: the producer was fenced, a topic is not authorised yet) is counted and the
//! message is produced again after a backoff, so a line is never silently dropped. The one
//! exception is a message the broker refuses as too large: retrying cannot succeed, so it
//! is counted in `lines_failed`, logged as an error naming the setting to change, and passed.
//!
//! A fatal producer error (the idempotent producer lost track of its sequence numbers with
//! a broker) ends this producer for good: every later send fails. Then nothing is skipped
//! or acknowledged; [`Sink::broken`] says why, and the agent stops so that a restart
//! begins with a new producer and re-sends what Kafka did not acknowledge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::{SendError, Sink, SinkError};
use crate::ack::AckToken;
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;

/// A failed message waiting to be produced again.
struct Retry {
    topic: String,
    timestamp_ms: Option<i64>,
    key: Vec<u8>,
    payload: Vec<u8>,
    token: Box<AckToken>,
}

/// Delivery callbacks, on librdkafka's polling thread.
pub struct AckContext {
    metrics: Arc<Metrics>,
    retries: parking_lot::Mutex<mpsc::Sender<Retry>>,
    /// Set when librdkafka reports a fatal error: failed deliveries are then left
    /// unacknowledged instead of produced again (which cannot succeed).
    broken: AtomicBool,
}

impl ClientContext for AckContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.broken.store(true, Ordering::Relaxed);
        }
        log::error!("librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<AckToken>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<AckToken>) {
        match result {
            Ok(msg) => {
                (*token).ack();
                self.metrics.lines_sent.inc();
                self.metrics.bytes_sent.inc_by(msg.payload_len() as u64);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), msg)) => {
                // The broker will refuse this message however often it is sent; retrying
                // would hold the file's checkpoint back forever. Counted, logged, passed.
                self.metrics.lines_failed.inc();
                log::error!(
                    "Kafka refused a {} byte message for topic {} as too large; skipping that \
                     line: raise the broker's message.max.bytes (topic max.message.bytes) above \
                     [agent] max_line_bytes plus 1 KiB, or lower max_line_bytes",
                    msg.payload_len(),
                    msg.topic()
                );
                (*token).ack();
            }
            Err(_) if self.broken.load(Ordering::Relaxed) => {
                // Dropped unacknowledged (its permit returns): the checkpoint stays before
                // this line, and the agent, stopping because of the fatal error, re-sends it
                // after a restart.
                self.metrics.lines_failed.inc();
            }
            Err((err, msg)) => {
                self.metrics.lines_failed.inc();
                log::warn!(
                    "Kafka delivery to topic {} failed: {err}; producing the line again",
                    msg.topic()
                );
                let retry = Retry {
                    topic: msg.topic().to_string(),
                    timestamp_ms: msg.timestamp().to_millis(),
                    key: msg.key().map(<[u8]>::to_vec).unwrap_or_default(),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    token,
                };
                if self.retries.lock().send(retry).is_err() {
                    // The sink is being dropped: the line stays unacknowledged, so the
                    // checkpoint does not pass it and the next start re-sends it.
                    log::warn!(
                        "producer is shutting down; the failed line is re-sent after restart"
                    );
                }
            }
        }
    }
}

/// Produces lines to Kafka.
pub struct KafkaSink {
    producer: Arc<ThreadedProducer<AckContext>>,
    retry_thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaSink {
    /// Creates the producer. Its own queue limits sit above `limit`, so the in-flight limit
    /// (which wakes waiters on each ack) is what pauses reading, not a queue-full error.
    pub fn new(
        brokers: &str,
        compression: &str,
        linger_ms: u64,
        limit: &InFlightLimit,
        metrics: Arc<Metrics>,
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
            // A 1 MiB line plus its JSON envelope must fit one message.
            .set("message.max.bytes", (8 * 1024 * 1024).to_string())
            .set("batch.num.messages", "10000");
        let (tx, rx) = mpsc::channel::<Retry>();
        let context = AckContext {
            metrics,
            retries: parking_lot::Mutex::new(tx),
            broken: AtomicBool::new(false),
        };
        let producer: ThreadedProducer<AckContext> =
            config
                .create_with_context(context)
                .map_err(|source| SinkError::Create {
                    brokers: brokers.to_string(),
                    source,
                })?;
        let producer = Arc::new(producer);
        let weak = Arc::downgrade(&producer);
        let retry_thread = std::thread::Builder::new()
            .name("logagent-retry".into())
            .spawn(move || retry_loop(rx, weak))
            .ok();
        Ok(KafkaSink {
            producer,
            retry_thread,
        })
    }
}

fn retry_loop(rx: mpsc::Receiver<Retry>, producer: std::sync::Weak<ThreadedProducer<AckContext>>) {
    // Failures come in bursts (a fenced producer, a broker refusing a topic): a fixed pause
    // per message keeps a permanent error from spinning the CPU.
    while let Ok(mut retry) = rx.recv() {
        std::thread::sleep(Duration::from_millis(200));
        loop {
            let Some(p) = producer.upgrade() else { return };
            if p.client().fatal_error().is_some() {
                // Nothing can be produced any more; the line stays unacknowledged (see
                // `AckContext::broken`).
                break;
            }
            let mut record = BaseRecord::with_opaque_to(&retry.topic, retry.token)
                .key(&retry.key)
                .payload(&retry.payload);
            if let Some(ts) = retry.timestamp_ms {
                record = record.timestamp(ts);
            }
            match p.send(record) {
                Ok(()) => break,
                Err((_, record)) => {
                    retry.token = record.delivery_opaque;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
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
        let record = BaseRecord::with_opaque_to(topic, Box::new(ack))
            .key(key)
            .payload(payload)
            .timestamp(timestamp_ms);
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

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // The retry thread holds only a weak reference and ends when the context's sender
        // goes away with the producer.
        let _ = self.retry_thread.take();
    }
}
