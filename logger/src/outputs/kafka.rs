//! A Kafka topic, through librdkafka (feature `kafka`).
//!
//! The application is never slowed by the broker: `write` hands the line to
//! librdkafka's bounded in-memory queue and returns. When that queue is full (broker
//! down or slow) the record is dropped and counted, or appended to a fallback file.
//! librdkafka retries queued messages until they are delivered (or, if one is set, until
//! `message_timeout`): a broker that is away for any time gets what the buffer held once
//! it is back. A message that fails for good (refused by the broker, or past a set
//! timeout) is counted in `kafka_delivery_errors` and passed to the error callback.
//! Memory is bounded by the buffer: `buffer_messages` messages, and librdkafka's
//! `queue.buffering.max.kbytes` (1 GiB unless set in `librdkafka_options`), whichever is reached
//! first; past it `on_full` drops or spills, counted.
//!
//! The producer is idempotent, and an idempotent producer can fail fatally (a broker's
//! answers leave it unable to know what was stored): from then on it refuses every
//! message. The output then replaces it with a new producer (counted in
//! `kafka_producer_replaced`, told to the error callback) and goes on; what the old one
//! still held is lost and counted as delivery errors.
//!
//! TLS and SASL are the platform's Kafka keys (`secure_transport::kafka`). At creation the
//! output waits (up to 10 s) for the brokers to answer: a refused TLS handshake or SASL login
//! is an [`InitError`](crate::InitError) saying what to check, while brokers that are down
//! are not an error (the output buffers until they are back).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use secure_transport::kafka::{
    BrokerCheck, KafkaSecurity, KafkaSecurityError, STARTUP_CHECK_TIMEOUT,
};

use crate::outputs::{KafkaErrorCallback, Output, OutputCounter, OutputCounters, RecordsFailed};
use crate::record::Record;

/// How long `close` waits for buffered messages at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolved settings of a Kafka output.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Output name (for errors and the callback).
    pub name: String,
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Bound of librdkafka's queue (`queue.buffering.max.messages`).
    pub buffer_messages: usize,
    /// How long librdkafka retries a message (`message.timeout.ms`); `None`: until the
    /// broker takes it (0, librdkafka's "infinite").
    pub message_timeout: Option<Duration>,
    /// Fallback file when the queue is full; `None` drops.
    pub spill_path: Option<PathBuf>,
    /// TLS, SASL and extra librdkafka properties (`librdkafka_options`, applied last).
    pub security: KafkaSecurity,
}

/// Why a Kafka output cannot be made; the builder names the output and the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KafkaOutputError {
    /// librdkafka refused the settings.
    #[error("cannot create Kafka producer: {0}")]
    Producer(#[source] KafkaError),
    /// The TLS or SASL keys are wrong, or the brokers refused them.
    #[error(transparent)]
    Security(#[from] KafkaSecurityError),
    /// The spill file (or its directory) cannot be opened.
    #[error("cannot open spill file {path}: {source}")]
    Spill {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

struct Ctx {
    name: String,
    counters: Arc<OutputCounters>,
    on_error: Option<KafkaErrorCallback>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => self.counters.add(OutputCounter::Delivered),
            Err((e, _)) => {
                self.counters.add(OutputCounter::DeliveryErrors);
                if let Some(cb) = &self.on_error {
                    tell(cb, &self.name, &e.to_string());
                }
            }
        }
    }
}

/// Calls the application's error callback. It runs on librdkafka's thread or on the
/// logger's writer thread, and the writer may be waiting for librdkafka's thread (a
/// producer being replaced or closed joins it): a callback that logs must not wait for
/// room in the queue, so its records are dropped and counted when the queue is full.
fn tell(cb: &KafkaErrorCallback, name: &str, error: &str) {
    crate::writer::without_waiting(|| cb(name, error));
}

/// Produces each formatted line (without its newline) as one message.
pub struct KafkaOutput {
    settings: KafkaSettings,
    producer: ThreadedProducer<Ctx>,
    counters: Arc<OutputCounters>,
    on_error: Option<KafkaErrorCallback>,
    spill: Option<File>,
}

/// librdkafka's settings for `settings`. Holds the password: never print it.
fn client_config(
    settings: &KafkaSettings,
) -> Result<(ClientConfig, secure_transport::kafka::ResolvedSecurity), KafkaSecurityError> {
    // 0 is librdkafka's "no limit": a message waits out any outage in the bounded
    // buffer, rather than being discarded after a few minutes.
    let timeout_ms = settings.message_timeout.map_or(0, |t| t.as_millis().max(1));
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &settings.brokers)
        .set(
            "queue.buffering.max.messages",
            settings.buffer_messages.to_string(),
        )
        .set("message.timeout.ms", timeout_ms.to_string())
        // Retries after an outage must not duplicate records.
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    let security = settings
        .security
        .apply(&format!("outputs.{}", settings.name), &mut cc)?;
    Ok((cc, security))
}

/// A producer for `settings`; it connects in the background.
fn producer(
    settings: &KafkaSettings,
    counters: &Arc<OutputCounters>,
    on_error: &Option<KafkaErrorCallback>,
) -> Result<ThreadedProducer<Ctx>, KafkaOutputError> {
    let (cc, _) = client_config(settings)?;
    let ctx = Ctx {
        name: settings.name.clone(),
        counters: counters.clone(),
        on_error: on_error.clone(),
    };
    cc.create_with_context(ctx)
        .map_err(KafkaOutputError::Producer)
}

impl KafkaOutput {
    /// Creates the producer; it connects in the background, so a broker that is down
    /// now is not an error. Brokers that refuse the TLS handshake or the SASL login are.
    pub(crate) fn new(
        settings: KafkaSettings,
        on_error: Option<KafkaErrorCallback>,
    ) -> Result<Self, KafkaOutputError> {
        let counters = Arc::new(OutputCounters::default());
        let producer = producer(&settings, &counters, &on_error)?;
        let (config, security) = client_config(&settings)?;
        let section = format!("outputs.{}", settings.name);
        // Unreachable brokers are not an error: records wait in the buffer, as in an outage.
        let _: BrokerCheck = secure_transport::kafka::check_brokers(
            &config,
            &section,
            &security,
            STARTUP_CHECK_TIMEOUT,
        )?;
        let spill = match &settings.spill_path {
            Some(p) => {
                let open = || {
                    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    OpenOptions::new().create(true).append(true).open(p)
                };
                Some(open().map_err(|source| KafkaOutputError::Spill {
                    path: p.clone(),
                    source,
                })?)
            }
            None => None,
        };
        Ok(KafkaOutput {
            settings,
            producer,
            counters,
            on_error,
            spill,
        })
    }

    /// Hands one message to the producer's queue.
    fn send(&self, payload: &[u8]) -> Result<(), KafkaError> {
        let rec: BaseRecord<'_, (), [u8], ()> =
            BaseRecord::to(&self.settings.topic).payload(payload);
        self.producer.send(rec).map_err(|(e, _)| e)
    }

    /// Replaces a producer that failed fatally; false if a new one cannot be made.
    fn replace_producer(&mut self) -> bool {
        let reason = self
            .producer
            .client()
            .fatal_error()
            .map(|(_, reason)| reason)
            .unwrap_or_default();
        let Ok(fresh) = producer(&self.settings, &self.counters, &self.on_error) else {
            return false;
        };
        // The old one's queue can never be delivered: don't wait for it on drop.
        self.producer
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        self.producer = fresh;
        self.counters.add(OutputCounter::Replaced);
        if let Some(cb) = &self.on_error {
            tell(
                cb,
                &self.settings.name,
                &format!(
                    "the Kafka producer failed for good ({reason}); replaced by a new one, \
                     the messages it still held are lost"
                ),
            );
        }
        true
    }
}

impl Output for KafkaOutput {
    fn write(&mut self, line: &[u8], _record: &Record) -> io::Result<()> {
        let payload = line.strip_suffix(b"\n").unwrap_or(line);
        let mut sent = self.send(payload);
        if matches!(
            sent,
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fatal))
        ) && self.replace_producer()
        {
            sent = self.send(payload);
        }
        match sent {
            Ok(()) => Ok(()),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                match &mut self.spill {
                    Some(f) => {
                        f.write_all(line)?;
                        self.counters.add(OutputCounter::Spilled);
                    }
                    None => self.counters.add(OutputCounter::Dropped),
                }
                Ok(())
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Never wait for the broker here: this runs on every batch and on `fatal!`,
        // and the broker may be down. librdkafka sends in the background.
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(f) = &mut self.spill {
            f.flush()?;
        }
        self.producer.flush(CLOSE_TIMEOUT).map_err(|e| {
            // What librdkafka still holds is lost with the producer: count each message.
            let held = self.producer.in_flight_count().max(0) as u64;
            self.counters.add_n(OutputCounter::Lost, held);
            io::Error::other(RecordsFailed {
                records: held,
                retried: None,
                source: io::Error::other(format!(
                    "{e} ({held} messages still buffered at shutdown are lost)"
                )),
            })
        })
    }

    fn describe(&self) -> String {
        format!(
            "kafka {} topic {}",
            self.settings.brokers, self.settings.topic
        )
    }

    fn stats(&self) -> Option<Arc<OutputCounters>> {
        Some(Arc::clone(&self.counters))
    }
}
