//! Where encoded lines go. One implementation per file: [`kafka`].

pub mod kafka;

use std::time::Duration;

use crate::ack::AckToken;

/// A line the sink could not take right now.
#[derive(Debug)]
pub enum SendError {
    /// The sink's queue is full; try again shortly with the same token.
    Full(AckToken),
    /// The sink refused the line for good (for example an invalid topic).
    Rejected(AckToken, String),
    /// The sink can deliver nothing any more (a fatal producer error): keep the line
    /// unacknowledged; the agent stops and a restart re-sends it from the checkpoint.
    Broken(AckToken),
}

/// A message the sink accepted but could not deliver, handed back with its token: what
/// becomes of it (produced again, skipped, or left for a restart) is the shipper's policy
/// (`sources::file::retry`), not the sink's.
#[derive(Debug)]
pub enum Undelivered {
    /// Producing it again may succeed (the producer was fenced, a topic not authorised yet).
    Retriable {
        /// The message, copied out of the sink's delivery report.
        message: OwnedMessage,
        /// The line's acknowledgement.
        token: AckToken,
        /// What the sink said.
        reason: String,
    },
    /// The broker refuses it as larger than it accepts: producing it again cannot succeed.
    TooLarge {
        /// Its topic.
        topic: String,
        /// Its size.
        bytes: usize,
        /// The line's acknowledgement.
        token: AckToken,
    },
    /// The sink can deliver nothing any more (a fatal producer error).
    Broken {
        /// The line's acknowledgement.
        token: AckToken,
    },
}

/// A message to produce again, as [`Sink::try_send`] takes it.
#[derive(Debug)]
pub struct OwnedMessage {
    /// Kafka topic.
    pub topic: String,
    /// Message key.
    pub key: Vec<u8>,
    /// Message value.
    pub payload: Vec<u8>,
    /// Read time (Unix milliseconds) of the first send.
    pub timestamp_ms: i64,
}

/// Where a sink reports the messages it could not deliver. Called on the sink's delivery
/// thread, so it must not block; only failures are reported (a delivered message's token
/// is acknowledged by the sink itself).
pub trait DeliveryReports: Send + Sync {
    /// `message` was not delivered.
    fn undelivered(&self, message: Undelivered);
}

/// Why the sink could not be created or flushed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The producer could not be created from the configuration.
    #[error(
        "cannot create the Kafka producer for brokers {brokers:?}: {source}; check [kafka] in the local config"
    )]
    Create {
        /// The configured brokers.
        brokers: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// `[kafka]`'s TLS or SASL keys are wrong, or the brokers refused them at start.
    #[error(transparent)]
    Security(#[from] service_kit::kafka::KafkaSecurityError),
    /// Not everything was acknowledged before the timeout.
    #[error(
        "Kafka did not acknowledge {in_flight} messages within {timeout:?}; they are re-sent from the checkpoint on the next start"
    )]
    Flush {
        /// Messages still unacknowledged.
        in_flight: i32,
        /// How long we waited.
        timeout: Duration,
    },
    /// The producer hit a fatal error and can deliver nothing any more.
    #[error(
        "the Kafka producer failed for good: {reason}; the agent stopped so that a restart \
         begins with a new producer, and re-sends from the checkpoints every line Kafka did \
         not acknowledge (run it under a supervisor that restarts it, e.g. systemd \
         Restart=on-failure)"
    )]
    Broken {
        /// librdkafka's description of the fatal error.
        reason: String,
    },
}

/// A destination for encoded lines that acknowledges each one asynchronously.
pub trait Sink: Send + Sync {
    /// Hands one message, read at `timestamp_ms` (Unix milliseconds), to the sink without
    /// blocking. The sink settles the token with [`AckToken::ack`] once the message is
    /// durably stored, and hands it to its [`DeliveryReports`] when delivery failed; a
    /// token it drops leaves the line unacknowledged, so the checkpoint does not pass it.
    fn try_send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: i64,
        ack: AckToken,
    ) -> Result<(), SendError>;

    /// Waits until everything handed over is acknowledged, up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;

    /// Why the sink can deliver nothing any more, once that happened (a fatal producer
    /// error); `None` while it works or waits for a broker.
    fn broken(&self) -> Option<String> {
        None
    }
}
