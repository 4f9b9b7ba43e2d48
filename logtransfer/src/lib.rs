//! Consumes Kafka and indexes into Elasticsearch with batched `_bulk` requests.
//!
//! The path of a record, wired by [`topology`]: [`sources::kafka`] (consumer group,
//! pause/resume, commits) -> [`prepare`] ([`transform`]s: agent JSON, plain text, lifted
//! logger JSON; then the bulk encoder) -> [`sinks::elasticsearch`] (request builder,
//! service, retry, driver loop) -> acknowledged into the window in [`acks`], whose settled
//! prefix the source commits; documents Elasticsearch refuses for good go to
//! [`sinks::dead_letter`]. Sources, sinks and transforms do not import one another: what
//! they share is in [`event`], [`acks`], [`metrics`] and [`config`]; every retry loop waits
//! with `service_kit::backoff::Backoff`, the one backoff of the platform.
//!
//! Guarantee: a record's offset is committed only after its document was acknowledged by
//! Elasticsearch or its dead letter by Kafka, and its `_id` is its event id (header or
//! `event.id` field) or else `{topic}-{partition}-{offset}`, so a crash replays records onto
//! their own documents: every record ends up exactly once in Elasticsearch (or in the
//! dead-letter topic), and a record re-sent with the same event id is the same document.
//!
//! [`check`]: `--check` / `--check-connections`.

#![warn(missing_docs)]

pub mod acks;
pub mod check;
pub mod config;
pub mod event;
pub mod metrics;
pub mod prepare;
pub mod sinks;
pub mod sources;
pub mod topology;
pub mod transform;

pub use topology::run;

use crate::sinks::dead_letter::DeadLetterError;
use crate::sinks::elasticsearch::encoder::IndexTemplateError;
use crate::sinks::elasticsearch::service::ServiceError;
use crate::sinks::elasticsearch::template::TemplateError;
use crate::sources::kafka::SourceError;

/// Why logtransfer could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `[es] index` is not a valid name template.
    #[error(transparent)]
    IndexName(#[from] IndexTemplateError),
    /// The Elasticsearch client could not be built.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The dead-letter producer could not be built.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The index template or lifecycle policy cannot be installed, its settings cannot
    /// work, or Elasticsearch refused the first request (credentials, TLS): not worth
    /// retrying.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The consumer could not be built or subscribed, or the last commit failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `/metrics` could not listen.
    #[error(transparent)]
    Metrics(#[from] service_kit::metrics::MetricsError),
    /// etcd was configured but could not be reached, or refused logtransfer (password,
    /// certificate, TLS).
    #[error(transparent)]
    Etcd(#[from] service_kit::etcd::EtcdError),
    /// The `[etcd]` security settings are unusable (a file unreadable, a bad combination).
    #[error(transparent)]
    EtcdSettings(#[from] service_kit::etcd::EtcdSecurityError),
    /// Nothing to consume.
    #[error("no topics: set [kafka] topics (comma-separated) or an [etcd] key holding them")]
    NoTopics,
}
