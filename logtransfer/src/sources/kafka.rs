//! The Kafka source: a consumer group member that hands each record to the stage it is
//! given, pauses while the channel downstream stays full, and commits only what the
//! acknowledgement window in [`acks`](crate::acks) says is settled. It knows Kafka only:
//! what a record becomes and where it goes is decided by [`topology`](crate::topology).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use service_kit::kafka::{BrokerCheck, BrokerReadiness, ResolvedSecurity};
use service_kit::readiness::Condition;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::acks::OffsetTracker;
use crate::config::KafkaConfig;
use crate::event::{DocKey, EVENT_ID_HEADER, Event};
use crate::metrics::{Metrics, PartitionLabels};
use crate::sources::offset_commit::{self, PeriodicCommits, to_tpl};
use crate::sources::partition_holds::PartitionHolds;

/// The consumer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// librdkafka refused the configuration.
    #[error("cannot create the Kafka consumer (brokers {brokers:?}, group {group:?}): {source}")]
    Create {
        /// `[kafka] address`.
        brokers: String,
        /// `[kafka] group_id`.
        group: String,
        /// The cause.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// The last commit, at shutdown, failed (after retries).
    #[error(
        "cannot commit offsets {offsets} for group {group:?} at shutdown: {source}; the records after them will be read again at the next start (onto the same documents: no duplicates); check the broker and the group's authorizations"
    )]
    FinalCommit {
        /// `topic/partition@offset, ...`.
        offsets: String,
        /// `[kafka] group_id`.
        group: String,
        /// The cause.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// `[kafka]`'s TLS or SASL keys are wrong, or the brokers refused them at start.
    #[error(transparent)]
    Security(#[from] service_kit::kafka::KafkaSecurityError),
    /// Subscribing failed.
    #[error("cannot subscribe to topics {topics:?}: {source} (check `[kafka] topics`)")]
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// The cause.
        source: Box<rdkafka::error::KafkaError>,
    },
}

/// Consumer context: on revocation, commit what is settled for the leaving partitions
/// and forget them; on assignment, give the new partitions the consume loop's pause state.
struct TrackingContext {
    tracker: Arc<OffsetTracker>,
    /// Whether the consume loop wants its partitions paused (see [`set_paused`]).
    paused: AtomicBool,
    /// Partitions paused on their own: too many records wait behind an unsettled one.
    holds: PartitionHolds,
    /// `/ready`'s `kafka` condition, from the broker states in librdkafka's statistics.
    readiness: BrokerReadiness,
}

impl ClientContext for TrackingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.readiness.on_error(&error, reason);
        log::error!("librdkafka: {error}: {reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.readiness.on_stats(statistics);
    }
}

impl ConsumerContext for TrackingContext {
    /// librdkafka keeps a partition's pause flag (set by `pause()`) across its revocation
    /// and re-assignment, while a partition it never paused arrives unpaused. The consume
    /// loop's pause state covers what is assigned when it pauses or resumes, so a partition
    /// paused, revoked, and assigned again after the loop resumed (the sink drained during
    /// the rebalance, with nothing assigned) would stay paused for good: its records would
    /// never be read. Every assignment therefore takes the loop's current state.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        if assigned.count() == 0 {
            return;
        }
        let pause = self.paused.load(Ordering::SeqCst);
        let r = if pause {
            consumer.pause(assigned)
        } else {
            consumer.resume(assigned)
        };
        if let Err(e) = r {
            log::warn!(
                "cannot {} the newly assigned partitions: {e}",
                if pause { "pause" } else { "resume" }
            );
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let leaving: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let list: Vec<_> = self
            .tracker
            .to_commit()
            .into_iter()
            .filter(|(t, p, _)| leaving.iter().any(|(lt, lp)| lt == &**t && lp == p))
            .collect();
        if !list.is_empty() {
            match consumer.commit(&to_tpl(&list), CommitMode::Sync) {
                Ok(()) => self.tracker.mark_committed(&list),
                Err(e) => log::warn!(
                    "commit on revocation failed: {e}; those records will be replayed (no duplicates: same _id)"
                ),
            }
        }
        for (t, p) in leaving {
            self.tracker.revoke(&t, p);
            self.holds.forget(&t, p);
        }
    }
}

type TransferConsumer = StreamConsumer<TrackingContext>;

/// Checks at start that the brokers accept `[kafka]`'s TLS and SASL
/// ([`KafkaSource::broker_checker`]).
pub struct BrokerChecker {
    /// The consumer's settings. Holds the password: never print it.
    config: ClientConfig,
    security: ResolvedSecurity,
}

impl BrokerChecker {
    /// Waits up to `timeout` for the brokers: a refused TLS handshake or SASL login is an
    /// error saying what to check; brokers down or silent are not (consuming waits).
    pub fn check(&self, timeout: Duration) -> Result<BrokerCheck, SourceError> {
        Ok(service_kit::kafka::check_brokers(
            &self.config,
            "[kafka]",
            &self.security,
            timeout,
        )?)
    }
}

/// Creates the group consumer (not yet subscribed), and the checker of its settings.
fn create_consumer(
    config: &KafkaConfig,
    tracker: Arc<OffsetTracker>,
) -> Result<(TransferConsumer, BrokerChecker), SourceError> {
    let mut cc = service_kit::kafka::consumer_config(&config.address, &config.group_id);
    cc.set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 3).max(100).to_string(),
        )
        .set(
            "queued.max.messages.kbytes",
            config.fetch_queue_kbytes.max(1).to_string(),
        )
        .set("enable.partition.eof", "false");
    BrokerReadiness::configure(&mut cc);
    fetch_settings(&mut cc, config);
    let security = config.security.apply("[kafka]", &mut cc)?;
    let consumer = cc
        .create_with_context(TrackingContext {
            tracker,
            paused: AtomicBool::new(false),
            holds: PartitionHolds::default(),
            readiness: BrokerReadiness::default(),
        })
        .map_err(|source| SourceError::Create {
            brokers: config.address.clone(),
            group: config.group_id.clone(),
            source: Box::new(source),
        })?;
    Ok((
        consumer,
        BrokerChecker {
            config: cc,
            security,
        },
    ))
}

/// How the consumer fetches: what decides how soon a produced record reaches the sink
/// (the latency benchmark gives its side consumer the same settings).
pub fn fetch_settings(cc: &mut ClientConfig, config: &KafkaConfig) {
    cc.set(
        "fetch.wait.max.ms",
        config.fetch_wait_max_ms.max(1).to_string(),
    );
}

/// How long the sink may stay full before the partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_millis(500);

fn subscribe(consumer: &TransferConsumer, topics: &[String]) -> Result<(), SourceError> {
    if topics.is_empty() {
        consumer.unsubscribe();
        return Ok(());
    }
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .map_err(|source| SourceError::Subscribe {
            topics: topics.to_vec(),
            source: Box::new(source),
        })
}

/// Pauses or resumes the assigned partitions. The state is also kept for the partitions
/// assigned later ([`TrackingContext::post_rebalance`]): a rebalance can leave nothing
/// assigned at this moment.
fn set_paused(consumer: &TransferConsumer, pause: bool) {
    consumer.context().paused.store(pause, Ordering::SeqCst);
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    if assignment.count() == 0 {
        return;
    }
    let r = if pause {
        consumer.pause(&assignment)
    } else {
        // A partition held for its own reason stays paused.
        consumer.resume(&consumer.context().holds.without_held(&assignment))
    };
    if let Err(e) = r {
        log::warn!(
            "cannot {} the consumer: {e}",
            if pause { "pause" } else { "resume" }
        );
    }
}

/// A consumer group member: consumes, pauses while the pipeline is full, and commits what
/// the acknowledgement window says is settled.
pub struct KafkaSource {
    consumer: Arc<TransferConsumer>,
    checker: Arc<BrokerChecker>,
    tracker: Arc<OffsetTracker>,
    metrics: Metrics,
    commit_interval: Duration,
    group: String,
    max_pending_per_partition: usize,
}

impl KafkaSource {
    /// The group consumer, not yet subscribed ([`run`](Self::run) subscribes). `tracker`
    /// is the window the sink acknowledges into.
    pub fn new(
        config: &KafkaConfig,
        tracker: Arc<OffsetTracker>,
        metrics: Metrics,
    ) -> Result<Self, SourceError> {
        let (consumer, checker) = create_consumer(config, tracker.clone())?;
        Ok(Self {
            consumer: Arc::new(consumer),
            checker: Arc::new(checker),
            tracker,
            metrics,
            commit_interval: Duration::from_millis(config.commit_interval_ms.max(10)),
            group: config.group_id.clone(),
            max_pending_per_partition: config.max_pending_per_partition.max(1),
        })
    }

    /// What checks at start that the brokers accept the consumer's TLS and SASL.
    pub fn broker_checker(&self) -> Arc<BrokerChecker> {
        Arc::clone(&self.checker)
    }

    /// Sets `readiness` (`/ready`'s `kafka` condition) from the consumer's broker states.
    pub fn with_readiness(self, readiness: Condition) -> Self {
        self.consumer.context().readiness.attach(readiness);
        self
    }

    /// The brokers' metadata as this consumer sees it (`--check-connections`); blocks for
    /// at most `timeout`.
    pub fn metadata(
        &self,
        timeout: Duration,
    ) -> Result<service_kit::check::KafkaMetadata, rdkafka::error::KafkaError> {
        service_kit::check::KafkaMetadata::fetch(self.consumer.client(), timeout)
    }

    /// The last commit, after [`run`](Self::run) returned and the sink settled what it
    /// could: commits what is settled synchronously, retrying failures for at most `within`.
    /// An error says which offsets are not committed (their records will be read again).
    pub async fn commit_final(&self, within: Duration) -> Result<(), SourceError> {
        let result = offset_commit::commit_final(
            &self.consumer,
            &self.tracker,
            &self.metrics.commit_failures,
            within,
        )
        .await;
        self.update_lag_metrics();
        result.map_err(|(list, source)| SourceError::FinalCommit {
            offsets: offset_commit::describe(&list),
            group: self.group.clone(),
            source: Box::new(source),
        })
    }

    /// `consumer_lag` per partition from the tracker.
    fn update_lag_metrics(&self) {
        let (tracker, metrics) = (&self.tracker, &self.metrics);
        let mut current = std::collections::HashSet::new();
        for (topic, partition, lag) in tracker.lag() {
            let labels = PartitionLabels {
                topic: topic.to_string(),
                partition: partition as i64,
            };
            metrics.consumer_lag.get_or_create(&labels).set(lag);
            current.insert(labels);
        }
        // Partitions that moved to another member: drop their series instead of freezing them.
        let mut shown = metrics.lag_partitions.lock();
        for gone in shown.difference(&current) {
            metrics.consumer_lag.remove(gone);
        }
        *shown = current;
    }

    /// Consumes until `stop`, feeding `output` with what `prepare` makes of each record. When
    /// `output` is full the assigned partitions are paused (the consumer keeps serving the
    /// group protocol) and resumed once it drains. Topics come from `topics` and follow its
    /// changes.
    pub async fn run<T>(
        &self,
        mut topics: watch::Receiver<Vec<String>>,
        mut prepare: impl FnMut(Event<'_>) -> T,
        output: mpsc::Sender<T>,
        stop: CancellationToken,
    ) -> Result<(), SourceError> {
        let consumer = &*self.consumer;
        let mut commits = PeriodicCommits::new(
            self.consumer.clone(),
            self.tracker.clone(),
            self.metrics.commit_failures.clone(),
            self.commit_interval,
        );
        let initial = topics.borrow_and_update().clone();
        subscribe(consumer, &initial)?;
        log::info!("consuming topics {initial:?}");
        let mut backlog: VecDeque<T> = VecDeque::new();
        let mut paused = false;
        let mut full_since: Option<tokio::time::Instant> = None;
        let mut topic_names: HashMap<String, Arc<str>> = HashMap::new();
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'consume: loop {
            while let Some(doc) = backlog.pop_front() {
                match output.try_send(doc) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(doc)) => {
                        backlog.push_front(doc);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break 'consume,
                }
            }
            let full = !backlog.is_empty();
            // A full channel for a moment is normal flow control: we just stop reading and
            // librdkafka's bounded prefetch fills. Only when it lasts (Elasticsearch slow or
            // down) are the partitions paused, so that we can keep polling the consumer (group
            // protocol, rebalances) without taking more records. Pausing at every full channel
            // would throw away the prefetch each time and crawl.
            let now = tokio::time::Instant::now();
            let since = match (full, full_since) {
                (true, Some(t)) => t,
                (true, None) => {
                    full_since = Some(now);
                    now
                }
                (false, _) => {
                    full_since = None;
                    now
                }
            };
            let pause_at = since + PAUSE_AFTER;
            if full && !paused && now >= pause_at {
                set_paused(consumer, true);
                paused = true;
                self.metrics.paused.set(1);
                log::info!(
                    "sink busy for {} ms: consumption paused",
                    PAUSE_AFTER.as_millis()
                );
            } else if !full && paused {
                set_paused(consumer, false);
                paused = false;
                self.metrics.paused.set(0);
                log::info!("sink drained: consumption resumed");
            }
            let read = !full || paused;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = commit_tick.tick() => {
                    commits.tick();
                    self.update_lag_metrics();
                    let holds = &consumer.context().holds;
                    holds.release_settled(
                        consumer,
                        &self.tracker,
                        self.max_pending_per_partition,
                        paused,
                    );
                    self.metrics.paused_partitions.set(holds.len() as i64);
                }
                _ = commits.finished(), if commits.in_flight() => {}
                changed = topics.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let list = topics.borrow_and_update().clone();
                    log::info!("topic list changed: now consuming {list:?}");
                    if let Err(e) = subscribe(consumer, &list) {
                        log::error!("{e}");
                    }
                }
                permit = output.reserve(), if full => match permit {
                    Ok(permit) => {
                        if let Some(doc) = backlog.pop_front() {
                            permit.send(doc);
                        }
                    }
                    Err(_) => break 'consume,
                },
                _ = tokio::time::sleep_until(pause_at), if full && !paused => {}
                msg = consumer.recv(), if read => match msg {
                    Ok(msg) => {
                        let topic = match topic_names.get(msg.topic()) {
                            Some(t) => t.clone(),
                            None => {
                                let t: Arc<str> = msg.topic().into();
                                topic_names.insert(msg.topic().to_owned(), t.clone());
                                t
                            }
                        };
                        let pending = self.tracker.register(&topic, msg.partition(), msg.offset());
                        if pending >= self.max_pending_per_partition {
                            let holds = &consumer.context().holds;
                            if holds.hold(consumer, &topic, msg.partition(), pending) {
                                self.metrics.paused_partitions.set(holds.len() as i64);
                            }
                        }
                        self.metrics.consumed.inc();
                        backlog.push_back(prepare(Event {
                            key: DocKey {
                                topic,
                                partition: msg.partition(),
                                offset: msg.offset(),
                            },
                            payload: msg.payload().unwrap_or_default(),
                            timestamp_ms: msg.timestamp().to_millis(),
                            event_id: msg.headers().and_then(|h| {
                                h.iter()
                                    .find(|h| h.key == EVENT_ID_HEADER)
                                    .and_then(|h| h.value)
                            }),
                        }));
                    }
                    Err(e) => {
                        log::warn!("Kafka consumer error: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        // Whatever is still in the backlog is not sent: it stays uncommitted and is replayed.
        // A periodic commit still in flight lands before the final one.
        commits
            .settle(self.commit_interval.max(Duration::from_secs(5)))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition paused, revoked, and assigned again after the loop resumed (the sink
    /// drained while nothing was assigned) is read again: librdkafka would otherwise keep
    /// it paused for good. Real broker (tansu): re-subscribing revokes and re-assigns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partition_paused_then_reassigned_takes_the_current_pause_state() {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use std::collections::HashSet;
        use tokio::time::{Instant, timeout};

        let kafka = test_servers::Kafka::start();
        kafka.create_topic("paused", 2);
        let producer: BaseProducer =
            service_kit::kafka::producer_config(&kafka.bootstrap_servers())
                .create()
                .unwrap();
        for i in 0..200 {
            let payload = format!("m {i}");
            let record = BaseRecord::<(), _>::to("paused")
                .payload(&payload)
                .partition(i % 2);
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();

        let config = KafkaConfig {
            address: kafka.bootstrap_servers(),
            group_id: "paused".into(),
            session_timeout_ms: 6_000,
            ..KafkaConfig::default()
        };
        let (consumer, _) = create_consumer(&config, Arc::new(OffsetTracker::default())).unwrap();
        let topics = vec!["paused".to_owned()];
        subscribe(&consumer, &topics).unwrap();
        // Polls (serving the group protocol) until `done` holds for the consumer and the
        // partitions read since the call.
        async fn poll_until(
            consumer: &TransferConsumer,
            what: &str,
            mut done: impl FnMut(&TransferConsumer, &HashSet<i32>) -> bool,
        ) {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut read = HashSet::new();
            while !done(consumer, &read) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                if let Ok(Ok(msg)) = timeout(Duration::from_millis(100), consumer.recv()).await {
                    read.insert(msg.partition());
                }
            }
        }
        let assigned = |c: &TransferConsumer| c.assignment().map_or(0, |a| a.count());
        poll_until(&consumer, "the first assignment", |c, read| {
            assigned(c) == 2 && !read.is_empty()
        })
        .await;

        set_paused(&consumer, true);
        subscribe(&consumer, &topics).unwrap();
        poll_until(&consumer, "the revocation", |c, _| assigned(c) == 0).await;
        // The sink drained during the rebalance.
        set_paused(&consumer, false);
        poll_until(&consumer, "records of both partitions", |c, read| {
            assigned(c) == 2 && read.len() == 2
        })
        .await;
    }

    /// A partition held because records pile up behind an unsettled one stays paused when
    /// the whole consumer is paused and resumed by back-pressure, and is read again once
    /// released. Real broker (tansu).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_partition_stays_paused_through_a_back_pressure_resume() {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use tokio::time::{Instant, timeout};

        let kafka = test_servers::Kafka::start();
        kafka.create_topic("held", 2);
        let producer: BaseProducer =
            service_kit::kafka::producer_config(&kafka.bootstrap_servers())
                .create()
                .unwrap();
        let send = |from: i32, to: i32| {
            for i in from..to {
                let payload = format!("m {i}");
                let record = BaseRecord::<(), _>::to("held")
                    .payload(&payload)
                    .partition(i % 2);
                producer.send(record).map_err(|(e, _)| e).unwrap();
            }
            producer.flush(Duration::from_secs(30)).unwrap();
        };
        send(0, 20);
        let config = KafkaConfig {
            address: kafka.bootstrap_servers(),
            group_id: "held".into(),
            session_timeout_ms: 6_000,
            ..KafkaConfig::default()
        };
        let tracker = Arc::new(OffsetTracker::default());
        let (consumer, _) = create_consumer(&config, tracker.clone()).unwrap();
        subscribe(&consumer, &["held".to_owned()]).unwrap();
        // Reads (registering in the tracker) until `done` holds for the partitions' counts
        // of records read since the call.
        async fn read_until(
            consumer: &TransferConsumer,
            tracker: &OffsetTracker,
            what: &str,
            mut done: impl FnMut(&[u32; 2]) -> bool,
        ) -> [u32; 2] {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut read = [0u32; 2];
            let topic: Arc<str> = "held".into();
            while !done(&read) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                if let Ok(Ok(msg)) = timeout(Duration::from_millis(100), consumer.recv()).await {
                    tracker.register(&topic, msg.partition(), msg.offset());
                    read[msg.partition() as usize] += 1;
                }
            }
            read
        }
        read_until(&consumer, &tracker, "the first records", |r| {
            r[0] == 10 && r[1] == 10
        })
        .await;

        let holds = &consumer.context().holds;
        assert!(holds.hold(&consumer, &"held".into(), 0, 10));
        set_paused(&consumer, true);
        set_paused(&consumer, false);
        send(20, 60);
        let read = read_until(&consumer, &tracker, "partition 1's new records", |r| {
            r[1] == 20
        })
        .await;
        assert_eq!(
            read[0], 0,
            "the held partition was resumed by the consumer's resume"
        );

        // Settled (nothing pending): released and read again.
        tracker.revoke("held", 0);
        tracker.register(&"held".into(), 0, 9);
        holds.release_settled(&consumer, &tracker, 10, false);
        assert_eq!(holds.len(), 0);
        read_until(&consumer, &tracker, "partition 0's new records", |r| {
            r[0] == 20
        })
        .await;
    }
}
