//! The collection loop: collect every interval, hand the sample to the outputs, stop cleanly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use service_kit::readiness::Readiness;
use service_kit::shutdown::Shutdown;
use tokio::sync::oneshot;

use crate::collect::{Collection, Collectors};
use crate::config::{Config, ConfigError};
use crate::sinks::influxdb::{Encoder, InfluxSender, InfluxSink};
use crate::sinks::prometheus::{Latest, NodeCollector};
use crate::stats::Stats;

const BIND_RETRY: Duration = Duration::from_secs(5);
const BIND_LOG_EVERY: Duration = Duration::from_secs(300);
/// How long a stop waits for the collection in progress.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work; the message says which setting and the fix.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The collection thread could not be started.
    #[error("cannot start the collection thread: {0}; is the process out of threads or memory?")]
    Thread(#[source] std::io::Error),
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Collections run.
    pub collections: u64,
    /// Points left undelivered to InfluxDB when the flush gave up (0 without InfluxDB).
    pub undelivered: usize,
}

/// A configured agent, ready to [`run`](Agent::run).
#[derive(Debug)]
pub struct Agent {
    config: Config,
    collectors: Collectors,
    stats: Stats,
    latest: Latest,
}

impl Agent {
    /// Validate `config` and read the host's identity.
    pub fn new(config: Config) -> Result<Self, AgentError> {
        config.validate()?;
        let tags = config.collect.parsed_tags()?;
        let host = Arc::new(crate::host::detect(
            &config.collect.hostname,
            &config.collect.rootfs,
            tags,
        ));
        let collectors = Collectors::new(&config.collect, host);
        Ok(Agent {
            config,
            collectors,
            stats: Stats::default(),
            latest: Latest::default(),
        })
    }

    /// Collect with `collectors` instead of the standard set (tests, embedding).
    pub fn set_collectors(&mut self, collectors: Collectors) {
        self.collectors = collectors;
    }

    /// The counters (shared; they keep counting while the agent runs).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The latest sample (shared).
    pub fn latest(&self) -> Latest {
        self.latest.clone()
    }

    /// Collect twice, `gap` apart (CPU percentages need two reads), and return the second
    /// collection as InfluxDB line protocol: `sysagent --once` for demos and debugging.
    pub fn collect_lines(&mut self, gap: Duration) -> Vec<String> {
        self.collectors.collect();
        std::thread::sleep(gap);
        let collection = self.collectors.collect();
        for (name, e) in &collection.errors {
            log::warn!("collector {name} failed: {e}");
        }
        let mut lines = Vec::new();
        Encoder {
            percpu: self.config.collect.percpu,
        }
        .encode(&collection.sample, &mut lines);
        lines
    }

    /// Collect every interval until `shutdown`, then flush InfluxDB.
    ///
    /// Collection runs on a thread of its own which also hands each sample to the outputs, so
    /// that a collector stuck in the kernel (`statvfs` on a hung mount) stalls only collection,
    /// never `/metrics` or the delivery to InfluxDB, and a collection wakes up one thread only.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<RunReport, AgentError> {
        let mut registry = Registry::default();
        self.stats.register(&mut registry);
        registry.register_collector(Box::new(NodeCollector::new(
            self.latest.clone(),
            self.stats.scrapes.clone(),
        )));
        let registry = Arc::new(registry);
        // `/ready`: InfluxDB reachable, when it is written to (`/health` is liveness).
        let readiness = Readiness::new();

        let influx = if self.config.influxdb.address.trim().is_empty() {
            None
        } else {
            let ready = readiness.condition("influxdb", "no write answered yet");
            match InfluxSink::start(&self.config.influxdb, self.stats.clone(), ready) {
                Ok(sink) => {
                    log::info!(
                        "writing to InfluxDB at {} every {:?}",
                        self.config.influxdb.address,
                        self.config.collect.interval
                    );
                    Some(sink)
                }
                // validate() checked the same settings; this is a client that cannot be built.
                Err(e) => {
                    log::error!("[influxdb] {e}; continuing without InfluxDB");
                    None
                }
            }
        };

        let host = Arc::clone(self.collectors.host());
        let collectors =
            std::mem::replace(&mut self.collectors, Collectors::from_parts(host, vec![]));
        let abandoned = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            stats: self.stats.clone(),
            latest: self.latest.clone(),
            encoder: Encoder {
                percpu: self.config.collect.percpu,
            },
            influx: influx.as_ref().map(InfluxSink::sender),
            failing: Vec::new(),
            abandoned: Arc::clone(&abandoned),
        };
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        spawn_collector(
            collectors,
            self.config.collect.interval,
            publisher,
            stop_rx,
            done_tx,
        )
        .map_err(AgentError::Thread)?;

        let listen = self.config.prometheus.listen.trim().to_string();
        if !listen.is_empty() {
            let target = if influx.is_some() {
                " for InfluxDB"
            } else {
                ""
            };
            serve_metrics(&listen, registry, readiness, &shutdown, target).await;
        }
        shutdown.wait().await;

        // Wake the collection thread and let it finish the collection it may be in, so that
        // everything counted as collected is in the buffer before the flush.
        drop(stop_tx);
        if tokio::time::timeout(STOP_WAIT, done_rx).await.is_err() {
            abandoned.store(true, Ordering::SeqCst);
            log::warn!(
                "the collection thread did not stop within {STOP_WAIT:?} (a hung mount?); \
                 stopping without it"
            );
        }
        let collections = self.stats.collections.get();
        let undelivered = match influx {
            Some(sink) => sink.shutdown().await.undelivered,
            None => 0,
        };
        log::info!(
            "stopped after {collections} collections: {} points sent, {} dropped, {} failed, {undelivered} undelivered",
            self.stats.points_sent.get(),
            self.stats.points_dropped.get(),
            self.stats.points_failed.get(),
        );
        Ok(RunReport {
            collections,
            undelivered,
        })
    }
}

/// Serve `/metrics` on `listen`; when the address is taken, say so and retry every
/// [`BIND_RETRY`] until it works or `shutdown` (collection goes on meanwhile).
async fn serve_metrics(
    listen: &str,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: &Shutdown,
    target: &str,
) {
    let mut next_log = Instant::now();
    loop {
        let served = service_kit::metrics::serve(
            listen,
            Arc::clone(&registry),
            readiness.clone(),
            shutdown.clone(),
        );
        match served.await {
            Ok((addr, _handle)) => {
                log::info!("serving node_exporter-style metrics on http://{addr}/metrics");
                return;
            }
            Err(e) => {
                let why = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                // At the first failure, then every 5 minutes.
                if Instant::now() >= next_log {
                    next_log = Instant::now() + BIND_LOG_EVERY;
                    log::error!(
                        "cannot serve /metrics on {listen}: {why}; is another exporter \
                         (node_exporter?) on that port? Set [prometheus] listen to a free \
                         address. Still collecting{target}, retrying every {BIND_RETRY:?}"
                    );
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BIND_RETRY) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Hands each collection to the outputs; runs on the collection thread.
struct Publisher {
    stats: Stats,
    latest: Latest,
    encoder: Encoder,
    influx: Option<InfluxSender>,
    /// Collectors failing at the last collection, to log changes rather than every failure.
    failing: Vec<&'static str>,
    /// Set when the agent stopped without waiting for this thread: publish nothing more.
    abandoned: Arc<AtomicBool>,
}

impl Publisher {
    fn publish(&mut self, collection: Collection, took: Duration) {
        if self.abandoned.load(Ordering::SeqCst) {
            return;
        }
        self.stats.collections.inc();
        self.stats.collect_duration.set(took.as_secs_f64());
        let now_failing: Vec<&'static str> = collection.errors.iter().map(|(n, _)| *n).collect();
        for (name, e) in &collection.errors {
            self.stats
                .collect_errors
                .get_or_create(&vec![("collector".to_string(), name.to_string())])
                .inc();
            if !self.failing.contains(name) {
                log::warn!("collector {name} failed: {e}; the other collectors carry on");
            }
        }
        for name in &self.failing {
            if !now_failing.contains(name) {
                log::info!("collector {name} works again");
            }
        }
        self.failing = now_failing;

        let sample = Arc::new(collection.sample);
        if let Some(influx) = &self.influx {
            let mut lines = Vec::with_capacity(64);
            self.encoder.encode(&sample, &mut lines);
            influx.push(lines);
        }
        self.latest.set(sample);
    }
}

/// Collect and publish every `interval` until `stop` is signalled (or its sender dropped);
/// missed ticks are skipped. `done` is sent on exit.
fn spawn_collector(
    mut collectors: Collectors,
    interval: Duration,
    mut publisher: Publisher,
    stop: std::sync::mpsc::Receiver<()>,
    done: oneshot::Sender<()>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("collect".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                let started = Instant::now();
                let collection = collectors.collect();
                publisher.publish(collection, started.elapsed());
                let now = Instant::now();
                while next <= now {
                    next += interval;
                }
                match stop.recv_timeout(next - now) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = done.send(());
        })?;
    Ok(())
}
