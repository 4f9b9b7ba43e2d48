//! Consumes Kafka and indexes into Elasticsearch with batched `_bulk` requests.
//!
//! The path of a record: [`sources::kafka`] (consumer group, pause/resume, offset
//! tracking) -> [`transform::decode`] (agent JSON, plain text, lifted logger JSON) ->
//! [`sinks::elasticsearch`] (encoder, request builder, service, retry, driver loop) ->
//! acknowledged back to the offset tracker; documents Elasticsearch refuses for good go to
//! [`sinks::dead_letter`].
//!
//! Guarantee: a record's offset is committed only after its document was acknowledged by
//! Elasticsearch or its dead letter by Kafka, and its `_id` is `{topic}-{partition}-{offset}`,
//! so a crash replays records onto their own documents: every record ends up exactly once
//! in Elasticsearch (or in the dead-letter topic).

#![warn(missing_docs)]

pub mod acks;
pub mod backoff;
pub mod config;
pub mod event;
pub mod metrics;
pub mod prepare;
pub mod sinks;
pub mod sources;
pub mod transform;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use service_kit::shutdown::Shutdown;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::acks::OffsetTracker;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::prepare::Prepare;
use crate::sinks::dead_letter::{DeadLetter, DeadLetterError};
use crate::sinks::elasticsearch::encoder::{IndexName, IndexTemplateError};
use crate::sinks::elasticsearch::service::{ElasticsearchService, ServiceError};
use crate::sinks::elasticsearch::sink::{self, SinkContext};
use crate::sinks::elasticsearch::template::index_template;
use crate::sources::kafka::{KafkaSource, SourceError};

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
    /// The consumer could not be built or subscribed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `/metrics` could not listen.
    #[error(transparent)]
    Metrics(#[from] service_kit::metrics::MetricsError),
    /// etcd was configured but could not be reached.
    #[error(transparent)]
    Etcd(#[from] service_kit::etcd::EtcdError),
    /// Nothing to consume.
    #[error("no topics: set [kafka] topics (comma-separated) or an [etcd] key holding them")]
    NoTopics,
}

/// Installs the index template, retrying while Elasticsearch is not up yet. False when
/// `stop` fired first.
async fn install_template(
    service: &ElasticsearchService,
    config: &Config,
    pattern: &str,
    stop: &CancellationToken,
) -> bool {
    let path = format!("/_index_template/{}", config.es.template_name);
    let body = index_template(pattern);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match service.put_json(&path, &body).await {
            Ok(()) => {
                log::info!(
                    "index template {:?} installed for {pattern}",
                    config.es.template_name
                );
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                log::warn!(
                    "cannot install index template: {e}; retrying in {} ms",
                    delay.as_millis()
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
    }
}

/// Runs the transfer until `shutdown` triggers, then finishes in-flight requests (for at
/// most `[transfer] shutdown_timeout_ms`), commits and returns.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let stop = shutdown.token();
    let index = IndexName::parse(&config.es.index)?;
    let pattern = index.pattern();
    let metrics = Metrics::default();
    if !config.transfer.metrics_address.is_empty() {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let (addr, _handle) = service_kit::metrics::serve(
            &config.transfer.metrics_address,
            Arc::new(registry),
            shutdown.clone(),
        )
        .await?;
        log::info!("metrics on http://{addr}/metrics");
    }

    let service = Arc::new(ElasticsearchService::new(&config.es)?);
    if config.es.install_template && !install_template(&service, &config, &pattern, &stop).await {
        return Ok(());
    }
    let dead_letter = Arc::new(DeadLetter::new(
        &config.kafka.address,
        &config.transfer.dead_letter_topic,
    )?);

    // Topics: fixed, or followed in etcd.
    let (topics_tx, topics_rx) = watch::channel(service_kit::split_list(&config.kafka.topics));
    if let Some(etcd) = &config.etcd {
        let endpoints = service_kit::split_list(&etcd.address);
        let client =
            service_kit::etcd::connect(&endpoints, Duration::from_millis(etcd.timeout_ms)).await?;
        let key = service_kit::host::expand_key_template(
            &etcd.key,
            &service_kit::host::primary_ipv4(),
            &service_kit::host::hostname(),
        );
        topics_tx.send_replace(Vec::new());
        tokio::spawn(sources::etcd_topics::watch_topics(
            client,
            key,
            topics_tx,
            stop.clone(),
        ));
    } else if topics_rx.borrow().is_empty() {
        return Err(Error::NoTopics);
    }

    let tracker = Arc::new(OffsetTracker::default());
    let source = KafkaSource::new(&config.kafka, tracker.clone(), metrics.clone())?;
    let sink_cancel = CancellationToken::new();
    let sink_ctx = Arc::new(SinkContext {
        service,
        dead_letter,
        acker: tracker.clone(),
        metrics: metrics.clone(),
        batch: config.batch.clone(),
        cancel: sink_cancel.clone(),
    });
    let mut prepare = Prepare::new(index);
    let (tx, rx) = mpsc::channel(config.batch.max_docs.max(1) * 2);
    let mut sink_task = tokio::spawn(sink::run(sink_ctx, rx));

    let consumed = source
        .run(topics_rx, |event| prepare.apply(event), tx, stop.clone())
        .await;

    // The source dropped its sender: the sink flushes what it holds and settles it.
    let grace = Duration::from_millis(config.transfer.shutdown_timeout_ms);
    if tokio::time::timeout(grace, &mut sink_task).await.is_err() {
        log::warn!(
            "in-flight bulk requests not settled after {} ms; giving up on them (their records are not committed and will be replayed)",
            grace.as_millis()
        );
        sink_cancel.cancel();
        let _ = sink_task.await;
    }
    source.commit(true);
    log::info!(
        "stopped: {} records consumed, {} indexed, {} dead-lettered",
        metrics.consumed.get(),
        metrics.indexed.get(),
        metrics.dead_lettered.get()
    );
    consumed?;
    Ok(())
}
