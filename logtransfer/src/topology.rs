//! The wiring: Kafka source -> prepare (decode + bulk encode) -> Elasticsearch sink, with
//! the acknowledgement window between the sink and the source's commits, the dead-letter
//! sink behind the Elasticsearch sink, and the topic list from the configuration or etcd.
//! The only module that knows every other one.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use service_kit::etcd::KeyWatcher;
use service_kit::kafka::BrokerCheck;
use service_kit::readiness::Readiness;
use service_kit::shutdown::Shutdown;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::acks::OffsetTracker;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::prepare::Prepare;
use crate::sinks::dead_letter::DeadLetter;
use crate::sinks::elasticsearch::encoder::IndexName;
use crate::sinks::elasticsearch::service::ElasticsearchService;
use crate::sinks::elasticsearch::sink::{self, SinkContext};
use crate::sinks::elasticsearch::template;
use crate::sources::etcd_topics;
use crate::sources::kafka::KafkaSource;

/// After this long without a request to Elasticsearch, a ping (`GET /`) tells `/ready`
/// whether it is still reachable.
const ES_READINESS_PING_AFTER: Duration = Duration::from_secs(10);

/// Runs the transfer until `shutdown` triggers, then finishes in-flight requests (for at
/// most `[transfer] shutdown_timeout_ms`), commits and returns.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let stop = shutdown.token();
    let index = IndexName::parse(&config.es.index)?;
    // Checked before anything starts: a configuration that cannot work is an error now.
    let installation = template::plan(&config.es, &index)?;
    let op_type = config.es.effective_op_type();
    let metrics = Metrics::default();
    // `/ready`: Kafka and Elasticsearch reachable (`/health` is liveness).
    let readiness = Readiness::new();
    let kafka_ready = readiness.condition("kafka", "no connection to a broker yet");
    let es_ready = readiness.condition("elasticsearch", "no request answered yet");
    if !config.transfer.metrics_address.is_empty() {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let (addr, _handle) = service_kit::metrics::serve(
            &config.transfer.metrics_address,
            Arc::new(registry),
            readiness,
            shutdown.clone(),
        )
        .await?;
        log::info!("metrics on http://{addr}/metrics");
    }

    let service = Arc::new(
        ElasticsearchService::new(&config.es)?
            .with_error_counter(metrics.es_request_errors.clone())
            .with_readiness(es_ready),
    );
    tokio::spawn(Arc::clone(&service).keep_readiness(ES_READINESS_PING_AFTER, stop.clone()));
    // The first request: a refusal retrying cannot end (credentials, TLS) stops the start.
    if config.es.install_template {
        if !template::install(&service, &installation, &stop).await? {
            return Ok(());
        }
    } else {
        template::check_access(&service).await?;
    }
    let dead_letter = Arc::new(DeadLetter::new(
        &config.kafka.address,
        &config.kafka.security,
        &config.transfer.dead_letter_topic,
    )?);

    // Topics: fixed, or followed in etcd.
    let (topics_tx, topics_rx) = watch::channel(service_kit::split_list(&config.kafka.topics));
    if let Some(etcd) = &config.etcd {
        let target = etcd.target()?;
        let client = service_kit::etcd::connect(&target).await?;
        let key = service_kit::host::expand_key_template(
            &etcd.key,
            &service_kit::host::primary_ipv4(),
            &service_kit::host::hostname(),
        );
        topics_tx.send_replace(Vec::new());
        // The client checked above serves the watch: etcd unreachable at start is an error,
        // later outages are retried by the watcher.
        let watcher = KeyWatcher::new(target, key).with_client(client);
        tokio::spawn(etcd_topics::watch_topics(watcher, topics_tx, stop.clone()));
    } else if topics_rx.borrow().is_empty() {
        return Err(Error::NoTopics);
    }

    let tracker = Arc::new(OffsetTracker::default());
    let source = KafkaSource::new(&config.kafka, tracker.clone(), metrics.clone())?
        .with_readiness(kafka_ready);
    // A refused TLS handshake or SASL login stops the start here (the dead-letter producer
    // uses the same brokers and `[kafka]` keys), instead of a consumer that retries in
    // silence. On a blocking thread: the check waits on librdkafka.
    let checker = source.broker_checker();
    match tokio::task::spawn_blocking(move || {
        checker.check(service_kit::kafka::STARTUP_CHECK_TIMEOUT)
    })
    .await
    {
        Ok(Ok(BrokerCheck::Reachable)) => log::info!(
            "Kafka brokers {} answered ([kafka] security_protocol = {})",
            config.kafka.address,
            config.kafka.security.security_protocol
        ),
        Ok(Ok(BrokerCheck::Unreachable(why))) => log::warn!(
            "Kafka brokers {} not reachable yet ({why}); consuming starts when they are",
            config.kafka.address
        ),
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => panic!("the broker check panicked: {e}"),
    }
    let sink_cancel = CancellationToken::new();
    let sink_ctx = Arc::new(SinkContext {
        service,
        dead_letter,
        acker: tracker.clone(),
        metrics: metrics.clone(),
        batch: config.batch.clone(),
        op_type,
        cancel: sink_cancel.clone(),
    });
    let mut prepare = Prepare::new(index)
        .with_op_type(op_type)
        .with_invalid_id_counter(metrics.event_id_invalid.clone());
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
    let committed = source.commit_final(grace).await;
    if let Err(e) = &committed {
        log::error!("{e}");
    }
    log::info!(
        "stopped: {} records consumed, {} indexed, {} dead-lettered",
        metrics.consumed.get(),
        metrics.indexed.get(),
        metrics.dead_lettered.get()
    );
    consumed?;
    committed?;
    Ok(())
}
