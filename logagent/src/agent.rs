//! Wires the agent together: local config → checkpoints, metrics, Kafka sink → etcd watch
//! ([`KeyWatcher`]) → supervisor, and the shutdown sequence (stop reading, flush the producer, write
//! checkpoints).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use service_kit::background::Background;
use service_kit::etcd::{EtcdError, EtcdSecurityError, KeyUpdate, KeyWatcher};
use service_kit::kafka::BrokerCheck;
use service_kit::readiness::Readiness;
use service_kit::shutdown::Shutdown;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::atomic_file;
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::collect_config::{self, AllowedPaths, CollectConfig, CollectConfigError};
use crate::config::LocalConfig;
use crate::fd_limit;
use crate::housekeeping::Housekeeping;
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;
use crate::sinks::kafka::KafkaSink;
use crate::sinks::{Sink, SinkError};
use crate::sources::file::chunks::ChunkPool;
use crate::sources::file::events::FileEvents;
use crate::sources::file::lines::HeldBack;
use crate::sources::file::reads::Reads;
use crate::sources::file::retry::Retries;
use crate::sources::file::shipper::Shipper;
use crate::sources::file::tailer::{TailContext, TailSettings};
use crate::sources::file::turns::OpenFiles;
use crate::supervisor::Supervisor;

/// Name of the cached collect config inside `data_dir`.
pub const CACHED_CONFIG_FILE: &str = "collect_config.json";

/// Why the agent could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `data_dir` cannot be created.
    #[error(
        "cannot create data_dir {path}: {source}; set [agent] data_dir to a writable directory"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `allowed_paths` is invalid.
    #[error(transparent)]
    Policy(#[from] CollectConfigError),
    /// The `[etcd]` security settings are unusable (a file unreadable, a bad combination).
    #[error(transparent)]
    EtcdSettings(#[from] EtcdSecurityError),
    /// etcd refused the agent for a reason a retry cannot fix (wrong password, untrusted
    /// certificate, TLS on one side only, no credentials where etcd wants them).
    #[error(transparent)]
    Etcd(EtcdError),
    /// Checkpoints cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The producer cannot be created or flushed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The metrics endpoint cannot listen.
    #[error("cannot serve metrics on {address}: {reason}; change [agent] metrics_address")]
    Metrics {
        /// The address.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The runtime or thread of an [`AgentThread`] cannot be created.
    #[error("cannot start the agent's runtime thread: {0}; the system is out of threads or memory")]
    Runtime(#[source] std::io::Error),
    /// The agent's task panicked (a bug; the panic message is in the log).
    #[error("the agent's task panicked: {0}")]
    Panicked(String),
}

/// The agent on its own runtime in a background thread (`[agent] worker_threads`
/// threads), for programs that embed it, and for tests.
pub struct AgentThread {
    background: Background<AgentError>,
    metrics_addr: Option<SocketAddr>,
}

impl AgentThread {
    /// Starts the agent and returns once it runs (or failed to start).
    pub fn start(config: LocalConfig) -> Result<Self, AgentError> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let background =
            Background::spawn(config.agent.worker_threads, move |shutdown| async move {
                let agent = match start(config, shutdown).await {
                    Ok(agent) => agent,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = started_tx.send(Ok(agent.metrics_addr));
                agent
                    .task
                    .await
                    .map_err(|e| AgentError::Panicked(e.to_string()))?
            })
            .map_err(AgentError::Runtime)?;
        match started_rx.recv() {
            Ok(Ok(metrics_addr)) => Ok(AgentThread {
                background,
                metrics_addr,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AgentError::Panicked(
                "the agent ended while starting".into(),
            )),
        }
    }

    /// Where `/metrics` listens, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the agent stopped on its own (a fatal producer error); [`AgentThread::stop`]
    /// then returns why.
    pub fn is_finished(&self) -> bool {
        self.background.is_finished()
    }

    /// Stops it as SIGTERM does (stop reading, flush Kafka, write checkpoints) and returns
    /// how that went.
    pub fn stop(self) -> Result<(), AgentError> {
        self.background.stop()
    }
}

/// The last collect config the agent accepted, kept in `data_dir` for a start while etcd
/// does not answer.
#[derive(Serialize, Deserialize)]
pub(crate) struct CachedConfig {
    pub(crate) key: String,
    pub(crate) revision: i64,
    pub(crate) config: CollectConfig,
}

/// A started agent.
pub struct RunningAgent {
    /// Where `/metrics` listens, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The checkpoint file.
    pub checkpoint_path: PathBuf,
    /// Ends after shutdown was triggered and everything was flushed.
    pub task: JoinHandle<Result<(), AgentError>>,
}

struct State {
    supervisor: Supervisor,
    allowed: AllowedPaths,
    metrics: Arc<Metrics>,
    data_dir: PathBuf,
    key: String,
    applied_revision: Option<i64>,
    rejected_revision: Option<i64>,
}

/// Starts the agent; returns once the first collect config (from etcd, or the cache when
/// etcd does not answer within `[etcd] timeout`) is running.
pub async fn start(config: LocalConfig, shutdown: Shutdown) -> Result<RunningAgent, AgentError> {
    let data_dir = config.agent.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| AgentError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let allowed = AllowedPaths::new(&config.agent.allowed_path_globs())?;
    let etcd_target = config.etcd.target()?;
    // Before any socket or file is opened: with the budget below, collected files can no
    // longer take the descriptors the producer, etcd and the checkpoints need.
    let nofile = fd_limit::raise_nofile();
    let open_budget = fd_limit::budget(config.agent.max_open_files, nofile.map(|l| l.soft));
    log::info!(
        "max_open_files {open_budget} ({} descriptors kept for Kafka, etcd, checkpoints and \
         /metrics); more matching files take turns",
        fd_limit::RESERVED
    );
    let store = Arc::new(CheckpointStore::open(&data_dir)?);
    let metrics = Arc::new(Metrics::default());
    // `/ready`: Kafka reachable and the collect config's watch alive (`/health` is liveness).
    let readiness = Readiness::new();
    let kafka_ready = readiness.condition("kafka", "no connection to a broker yet");
    let etcd_ready = readiness.condition("etcd", "not watching the collect config yet");

    let metrics_addr = if config.agent.metrics_address.is_empty() {
        None
    } else {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let (addr, _task) = service_kit::metrics::serve(
            &config.agent.metrics_address,
            Arc::new(registry),
            readiness,
            shutdown.clone(),
        )
        .await
        .map_err(|e| AgentError::Metrics {
            address: config.agent.metrics_address.clone(),
            reason: e.to_string(),
        })?;
        log::info!("metrics on http://{addr}/metrics");
        Some(addr)
    };

    let limit = InFlightLimit::new(
        config.kafka.chan_size,
        (config.kafka.queue_max_kbytes as usize).saturating_mul(1024),
    );
    // The shipper's retry policy exists before the sink, which reports failed deliveries
    // into it; the shipper then starts it with the sink to produce them again.
    let retries = Retries::new(Arc::clone(&metrics));
    let sink = Arc::new(
        KafkaSink::from_config(
            &config.kafka,
            &limit,
            Arc::clone(&metrics),
            retries.reports(),
        )?
        .with_readiness(kafka_ready),
    );
    // On a blocking thread: the check waits on librdkafka, not on the runtime.
    let check = {
        let sink = Arc::clone(&sink);
        tokio::task::spawn_blocking(move || {
            sink.check_brokers(service_kit::kafka::STARTUP_CHECK_TIMEOUT)
        })
        .await
        .map_err(|e| AgentError::Panicked(e.to_string()))??
    };
    match check {
        BrokerCheck::Reachable => log::info!(
            "Kafka brokers {} answered ([kafka] security_protocol = {})",
            config.kafka.brokers(),
            config.kafka.security.security_protocol
        ),
        BrokerCheck::Unreachable(why) => log::warn!(
            "Kafka brokers {} not reachable yet ({why}); lines wait for them",
            config.kafka.brokers()
        ),
    }
    let host = config.agent.host_name();
    let chunks =
        ChunkPool::with_message_limit(config.agent.worker_threads, config.kafka.message_max_bytes);
    let ctx = Arc::new(TailContext {
        shipper: Shipper::new(
            Arc::clone(&sink) as Arc<dyn Sink>,
            limit.clone(),
            Arc::clone(&metrics),
            retries,
            chunks.clone(),
        ),
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        host,
        allowed: allowed.clone(),
        refusals: Default::default(),
        events: if config.agent.inotify {
            FileEvents::start()
        } else {
            FileEvents::disabled()
        },
        chunks,
        reads: Reads::new(
            config.agent.blocking_reads,
            Duration::from_millis(config.agent.read_timeout_ms.max(1)),
            Arc::clone(&metrics),
        ),
        open_files: OpenFiles::new(open_budget, Arc::clone(&metrics)),
        settings: TailSettings {
            max_line_bytes: config.agent.max_line_bytes,
            poll_interval: Duration::from_millis(config.agent.poll_interval_ms.max(1)),
            close_renamed_after: Duration::from_millis(config.agent.close_renamed_after_ms),
            // As much again as the in-flight bound: unfinished lines and multi-line events being
            // joined are not messages yet.
            held_back: HeldBack::new(
                (config.kafka.queue_max_kbytes as usize)
                    .saturating_mul(1024)
                    .max(config.agent.max_line_bytes),
            ),
        },
    });
    let key = config.collect_key();
    let mut state = State {
        supervisor: Supervisor::new(
            ctx,
            Duration::from_millis(config.agent.scan_interval_ms.max(10)),
        ),
        allowed,
        metrics: Arc::clone(&metrics),
        data_dir: data_dir.clone(),
        key: key.clone(),
        applied_revision: None,
        rejected_revision: None,
    };

    // Read the key, then watch it from the read's revision + 1; on any error (etcd restarted,
    // the watched revision compacted) back off, read again and re-watch. A value can arrive
    // twice; `State::apply` makes a repeated config a no-op.
    let (tx, mut rx) = mpsc::channel::<KeyUpdate>(16);
    let watch_cancel = CancellationToken::new();
    log::info!(
        "collect config key {key} on etcd {:?}",
        etcd_target.endpoints
    );
    // etcd down at start: run from the cache while the watcher retries. etcd refusing the
    // agent (password, certificate, TLS): stop here, a retry cannot fix it.
    let (watch, reachable) = match service_kit::etcd::connect(&etcd_target).await {
        Ok(client) => (
            KeyWatcher::new(etcd_target, key.clone())
                .with_client(client)
                .with_readiness(etcd_ready),
            true,
        ),
        Err(error) if error.is_unreachable() => {
            log::warn!("{error}; retrying in the background");
            (
                KeyWatcher::new(etcd_target, key.clone()).with_readiness(etcd_ready),
                false,
            )
        }
        Err(error) => return Err(AgentError::Etcd(error)),
    };
    let watch_task = tokio::spawn(watch.run(tx, watch_cancel.clone()));

    let first = match reachable {
        true => tokio::time::timeout(config.etcd.timeout(), rx.recv()).await,
        false => Ok(None),
    };
    match first {
        Ok(Some(update)) => {
            // A config rejected at startup has no running predecessor: the cached one is it.
            if !state.apply(update).await {
                state.run_cached().await;
            }
        }
        _ => state.run_cached().await,
    }

    let checkpoint_interval = Duration::from_millis(config.agent.checkpoint_interval_ms.max(10));
    let flush_timeout = Duration::from_secs(config.agent.flush_timeout);
    let checkpoint_path = store.path().to_path_buf();
    let mut housekeeping = Housekeeping::new(
        Arc::clone(&store),
        Arc::clone(&sink) as Arc<dyn Sink>,
        limit,
        Arc::clone(&metrics),
    );
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                update = rx.recv() => match update {
                    Some(u) => {
                        state.apply(u).await;
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if housekeeping.run().is_break() {
                        break;
                    }
                }
            }
        }
        log::info!("shutting down: stop reading, flush Kafka, write checkpoints");
        watch_cancel.cancel();
        state.supervisor.stop_all().await;
        let flushed = {
            let sink = Arc::clone(&sink);
            tokio::task::spawn_blocking(move || sink.flush(flush_timeout))
                .await
                .unwrap_or(Ok(()))
        };
        let _ = watch_task.await;
        store.flush()?;
        log::info!("checkpoints written to {}", store.path().display());
        match flushed {
            Err(broken @ SinkError::Broken { .. }) => Err(broken.into()),
            // Not everything acknowledged (broker down at shutdown) is not a loss: the
            // checkpoints stop before those lines and the next start re-sends them.
            Err(e) => {
                log::error!("{e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    });
    Ok(RunningAgent {
        metrics_addr,
        checkpoint_path,
        task,
    })
}

impl State {
    /// Applies an update; false when it was rejected (the running config stays).
    async fn apply(&mut self, update: KeyUpdate) -> bool {
        let config = match &update.value {
            None => {
                log::warn!(
                    "collect config key {} does not exist (or was deleted); collecting nothing",
                    self.key
                );
                CollectConfig::default()
            }
            Some(bytes) => match collect_config::parse(bytes, &self.allowed) {
                Ok(c) => c,
                Err(e) => {
                    if self.rejected_revision != Some(update.revision) {
                        self.rejected_revision = Some(update.revision);
                        self.metrics.configs_rejected.inc();
                    }
                    log::error!(
                        "rejected collect config at {} revision {}: {e}; still running the previous one",
                        self.key,
                        update.revision
                    );
                    return false;
                }
            },
        };
        let diff = self.supervisor.apply(&config).await;
        if !diff.is_empty() || self.applied_revision != Some(update.revision) {
            log::info!(
                "collect config revision {}: {} started, {} stopped, {} unchanged",
                update.revision,
                diff.added.len(),
                diff.removed.len(),
                diff.kept
            );
        }
        self.applied_revision = Some(update.revision);
        self.metrics.collect_config_revision.set(update.revision);
        let cached = CachedConfig {
            key: self.key.clone(),
            revision: update.revision,
            config,
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&cached)
            && let Err(e) = atomic_file::write(&self.data_dir.join(CACHED_CONFIG_FILE), &bytes)
        {
            log::warn!("cannot cache the collect config: {e}");
        }
        true
    }

    async fn run_cached(&mut self) {
        let path = self.data_dir.join(CACHED_CONFIG_FILE);
        match read_cached(&path, &self.allowed) {
            Ok(Some(cached)) => {
                log::warn!(
                    "etcd did not answer; running from the last good collect config cached in {} \
                     (key {}, revision {}) until it does",
                    path.display(),
                    cached.key,
                    cached.revision
                );
                self.supervisor.apply(&cached.config).await;
                self.applied_revision = Some(cached.revision);
                self.metrics.collect_config_revision.set(cached.revision);
            }
            Ok(None) => log::warn!(
                "etcd did not answer and no collect config is cached in {}; collecting nothing until etcd answers",
                path.display()
            ),
            Err(e) => log::error!(
                "etcd did not answer and the cached collect config {} is unusable: {e}",
                path.display()
            ),
        }
    }
}

/// The cached collect config in `path`, validated against `allowed`; `None` when there is none.
pub(crate) fn read_cached(
    path: &Path,
    allowed: &AllowedPaths,
) -> Result<Option<CachedConfig>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let cached: CachedConfig = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    collect_config::validate(&cached.config, allowed).map_err(|e| e.to_string())?;
    Ok(Some(cached))
}
