//! Committing the settled offsets: periodically while consuming, retried with backoff when a
//! commit fails, and once more, synchronously, at shutdown.
//!
//! Why every commit is synchronous (on a blocking thread): an asynchronous `commit` only
//! says the request was queued, and its outcome never reaches us. librdkafka (2.12) queues
//! the result of a manual asynchronous commit for the application only when
//! `offset_commit_cb` is set in its configuration, which rdkafka does not set (it enables
//! the commit event instead, which librdkafka emits for automatic commits only): seen here
//! with the mock cluster, a refused asynchronous commit never called
//! `ConsumerContext::commit_callback`, however long the stream was polled. Marking the
//! offsets committed when the request was queued is how a failed commit used to be lost for
//! good: the tracker believed it done and never offered it again, not even at shutdown. A
//! synchronous commit returns its outcome, so the tracker is told of a commit only once the
//! broker accepted it, and what failed stays to be committed by the next attempt.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use service_kit::backoff::Backoff;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::acks::OffsetTracker;

/// Offsets as the tracker gives them: `(topic, partition, next offset to read)`.
pub(crate) type Offsets = Vec<(Arc<str>, i32, i64)>;

/// The list librdkafka commits.
pub(crate) fn to_tpl(list: &[(Arc<str>, i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (t, p, next) in list {
        // Adding an offset to a fresh list cannot fail.
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*next));
    }
    tpl
}

/// `topic/partition@offset, ...` for messages.
pub(crate) fn describe(list: &[(Arc<str>, i32, i64)]) -> String {
    list.iter()
        .map(|(t, p, o)| format!("{t}/{p}@{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Commits `list` synchronously on a blocking thread; on success the tracker is told.
fn spawn_commit<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    tracker: &Arc<OffsetTracker>,
    list: Offsets,
) -> JoinHandle<(Offsets, Result<(), KafkaError>)> {
    let (consumer, tracker) = (consumer.clone(), tracker.clone());
    tokio::task::spawn_blocking(move || {
        let result = consumer.commit(&to_tpl(&list), CommitMode::Sync);
        if result.is_ok() {
            tracker.mark_committed(&list);
        }
        (list, result)
    })
}

/// The periodic commits of the consume loop: at most one in flight, and after a failure the
/// next attempt waits for the backoff (the failed offsets are still offered by the tracker,
/// together with whatever settled since).
pub(crate) struct PeriodicCommits<C: ConsumerContext + 'static> {
    consumer: Arc<StreamConsumer<C>>,
    tracker: Arc<OffsetTracker>,
    failures: Counter,
    backoff: Backoff,
    not_before: Option<Instant>,
    in_flight: Option<JoinHandle<(Offsets, Result<(), KafkaError>)>>,
}

impl<C: ConsumerContext + 'static> PeriodicCommits<C> {
    /// Retries start at `interval` and grow to 30 s (or `interval`, if longer).
    pub(crate) fn new(
        consumer: Arc<StreamConsumer<C>>,
        tracker: Arc<OffsetTracker>,
        failures: Counter,
        interval: Duration,
    ) -> Self {
        Self {
            consumer,
            tracker,
            failures,
            backoff: Backoff::new(interval, interval.max(Duration::from_secs(30))),
            not_before: None,
            in_flight: None,
        }
    }

    /// Starts a commit of what is settled, unless one is in flight or a failure's backoff
    /// has not elapsed.
    pub(crate) fn tick(&mut self) {
        if self.in_flight.is_some() || self.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let list = self.tracker.to_commit();
        if !list.is_empty() {
            self.in_flight = Some(spawn_commit(&self.consumer, &self.tracker, list));
        }
    }

    /// Whether a commit is in flight ([`finished`](Self::finished) then completes).
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Waits for the commit in flight and records its outcome (pending forever when none
    /// is: guard it with [`in_flight`](Self::in_flight)).
    pub(crate) async fn finished(&mut self) {
        let Some(task) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.in_flight = None;
        match outcome {
            Ok((_, Ok(()))) => {
                self.backoff.reset();
                self.not_before = None;
            }
            Ok((list, Err(e))) => {
                self.failures.inc();
                let delay = self.backoff.next_delay();
                self.not_before = Some(Instant::now() + delay);
                log::warn!(
                    "offset commit of {} failed: {e}; retrying in {} ms (failure {} in a row; until it succeeds a restart re-reads these records, onto the same documents)",
                    describe(&list),
                    delay.as_millis(),
                    self.backoff.attempts()
                );
            }
            // The blocking thread panicked or the runtime is shutting down: try again at
            // the next tick.
            Err(e) => log::warn!("offset commit did not complete: {e}"),
        }
    }

    /// Waits for a commit in flight, if any, for at most `within` (before the final commit,
    /// so that an older commit does not land after it; a broker that does not answer must
    /// not hold the shutdown longer).
    pub(crate) async fn settle(&mut self, within: Duration) {
        if self.in_flight() && tokio::time::timeout(within, self.finished()).await.is_err() {
            log::warn!(
                "the last periodic offset commit got no answer within {} ms",
                within.as_millis()
            );
        }
    }
}

/// Commits what is settled, synchronously, retrying failures with backoff for at most
/// `within` (an attempt the broker does not answer counts as a failure when it runs out).
/// Returns the offsets that could not be committed and the last error.
pub(crate) async fn commit_final<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    tracker: &Arc<OffsetTracker>,
    failures: &Counter,
    within: Duration,
) -> Result<(), (Offsets, KafkaError)> {
    let deadline = Instant::now() + within;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let list = tracker.to_commit();
        if list.is_empty() {
            return Ok(());
        }
        let attempt = spawn_commit(consumer, tracker, list.clone());
        let (list, result) = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(outcome)) => outcome,
            // The blocking thread did not complete (runtime shutting down).
            Ok(Err(_)) => (list, Err(KafkaError::Canceled)),
            Err(_) => (
                list,
                Err(KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                )),
            ),
        };
        let Err(e) = result else {
            return Ok(());
        };
        failures.inc();
        let delay = backoff.next_delay();
        if Instant::now() + delay >= deadline {
            return Err((list, e));
        }
        log::warn!(
            "final offset commit of {} failed: {e}; retrying in {} ms",
            describe(&list),
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::acks::Acknowledge;
    use crate::config::KafkaConfig;
    use crate::metrics::Metrics;
    use crate::sources::kafka::{KafkaSource, SourceError};

    const RECORDS: i64 = 100;
    const REFUSED: RDKafkaRespErr = RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;

    /// A one-broker mock cluster with `RECORDS` records in topic `t`, partition 0.
    fn cluster_with_records() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..RECORDS {
            let payload = format!("m {i}");
            producer
                .send(BaseRecord::<(), _>::to("t").payload(&payload).partition(0))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        cluster
    }

    /// The group's committed offset of `t`/0, read by another client.
    fn committed(bootstrap: &str, group: &str) -> Option<i64> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .create()
            .ok()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        let tpl = reader.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
        match tpl.find_partition("t", 0)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A source consuming `t` whose "sink" acknowledges every record as soon as it gets it.
    struct Running {
        source: Arc<KafkaSource>,
        tracker: Arc<OffsetTracker>,
        metrics: Metrics,
        stop: CancellationToken,
        run: JoinHandle<Result<(), SourceError>>,
        _topics: watch::Sender<Vec<String>>,
    }

    impl Running {
        fn start(bootstrap: &str, group: &str) -> Running {
            let tracker = Arc::new(OffsetTracker::default());
            let metrics = Metrics::default();
            let config = KafkaConfig {
                address: bootstrap.into(),
                group_id: group.into(),
                topics: "t".into(),
                commit_interval_ms: 50,
                ..KafkaConfig::default()
            };
            let source =
                Arc::new(KafkaSource::new(&config, tracker.clone(), metrics.clone()).unwrap());
            let (tx, mut rx) = mpsc::channel(16);
            let acker = tracker.clone();
            tokio::spawn(async move {
                while let Some(key) = rx.recv().await {
                    acker.ack(&[key]);
                }
            });
            let (topics, topics_rx) = watch::channel(vec!["t".to_owned()]);
            let stop = CancellationToken::new();
            let run = tokio::spawn({
                let (source, stop) = (source.clone(), stop.clone());
                async move { source.run(topics_rx, |event| event.key, tx, stop).await }
            });
            Running {
                source,
                tracker,
                metrics,
                stop,
                run,
                _topics: topics,
            }
        }

        fn all_settled(&self) -> bool {
            self.metrics.consumed.get() == RECORDS as u64 && self.tracker.in_flight() == 0
        }

        fn stop(&self) {
            self.stop.cancel();
        }
    }

    /// The broker refuses the first commits (a permanent error librdkafka does not retry
    /// itself): they are retried until it takes them. They used to be marked committed when
    /// queued, failed later, and were never tried again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_commit_is_retried_until_the_committed_offset_catches_up() {
        let cluster = cluster_with_records();
        let bootstrap = cluster.bootstrap_servers();
        cluster.request_errors(RDKafkaApiKey::OffsetCommit, &[REFUSED; 3]);
        let running = Running::start(&bootstrap, "retried");
        wait_for("three refused commits", || {
            running.metrics.commit_failures.get() >= 3
        })
        .await;
        wait_for("the committed offset to catch up", || {
            committed(&bootstrap, "retried") == Some(RECORDS)
        })
        .await;
        assert!(running.all_settled());
        running.stop();
        running.run.await.unwrap().unwrap();
        running
            .source
            .commit_final(Duration::from_secs(5))
            .await
            .unwrap();
    }

    /// Every commit while running is refused: the final one at shutdown is synchronous,
    /// retried, reported when it still fails, and commits everything once the broker takes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_final_commit_reports_failure_and_commits_what_earlier_commits_failed_to() {
        let cluster = cluster_with_records();
        let bootstrap = cluster.bootstrap_servers();
        cluster.request_errors(RDKafkaApiKey::OffsetCommit, &[REFUSED; 500]);
        let running = Running::start(&bootstrap, "final");
        wait_for("every record settled and a refused commit", || {
            running.all_settled() && running.metrics.commit_failures.get() >= 1
        })
        .await;
        running.stop();
        running.run.await.unwrap().unwrap();
        assert_eq!(committed(&bootstrap, "final"), None);

        let failed = running
            .source
            .commit_final(Duration::from_millis(500))
            .await
            .expect_err("the broker still refuses commits");
        let message = failed.to_string();
        assert!(message.contains("t/0@100"), "{message}");
        assert!(message.contains("\"final\""), "{message}");

        cluster.clear_request_errors(RDKafkaApiKey::OffsetCommit);
        running
            .source
            .commit_final(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(committed(&bootstrap, "final"), Some(RECORDS));
    }
}
