//! What the agent does every `checkpoint_interval_ms` besides shipping: write the
//! checkpoints (and forget stale ones), update the gauges, and say in the log when
//! something is off for a while (a failing checkpoint write, a delivery stall, a long
//! catch-up). Also where a broken producer is noticed, so that the agent stops.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::catch_up::{CatchUp, DeliveryStall};
use crate::checkpoint::{CheckpointStore, WriteSpell, WriteSpellReport};
use crate::file_lag::FileLagSeries;
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;
use crate::sinks::Sink;

/// How often checkpoints of files that are gone are looked for (a directory listing per
/// followed path, so not every round).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The periodic chores, and the state their reports keep between rounds.
pub struct Housekeeping {
    store: Arc<CheckpointStore>,
    sink: Arc<dyn Sink>,
    limit: InFlightLimit,
    metrics: Arc<Metrics>,
    catch_up: CatchUp,
    write_spell: WriteSpell,
    stall: DeliveryStall,
    file_lag: FileLagSeries,
    pruned: Option<Instant>,
    /// A prune is running (its thread may hang in a listing of a hung network mount).
    pruning: Arc<AtomicBool>,
}

impl Housekeeping {
    /// Chores over `store`, `sink` and `limit`, counted in `metrics`.
    pub fn new(
        store: Arc<CheckpointStore>,
        sink: Arc<dyn Sink>,
        limit: InFlightLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        Housekeeping {
            store,
            sink,
            limit,
            metrics,
            catch_up: CatchUp::default(),
            write_spell: WriteSpell::default(),
            stall: DeliveryStall::default(),
            file_lag: FileLagSeries::default(),
            pruned: None,
            pruning: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One round. `Break` when the producer failed for good: nothing more can be delivered
    /// by it, so the agent should stop (a restart re-sends from the checkpoints).
    pub fn run(&mut self) -> ControlFlow<()> {
        if let Some(reason) = self.sink.broken() {
            log::error!(
                "the Kafka producer failed for good ({reason}); stopping: nothing \
                 more can be delivered by it, a restart re-sends from the checkpoints"
            );
            return ControlFlow::Break(());
        }
        if self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.pruned = Some(Instant::now());
            self.prune();
        }
        // Writes only when a checkpoint changed; this round is the longest it waits.
        let written = self.store.flush();
        if written.is_err() {
            self.metrics.checkpoint_write_failures.inc();
        }
        match self.write_spell.observe(&written) {
            Some(WriteSpellReport::Failing(line)) => log::error!("{line}"),
            Some(WriteSpellReport::Recovered(line)) => log::info!("{line}"),
            None => {}
        }
        let waiting = self.limit.held_lines() as u64;
        let sent = self.metrics.lines_sent.get();
        if let Some(line) = self.stall.observe(sent, waiting, Instant::now()) {
            log::warn!("{line}");
        }
        let lag = self
            .file_lag
            .publish(&self.metrics, self.store.lag_by_path());
        self.metrics.send_lag_bytes.set(lag);
        if let Some(line) = self.catch_up.observe(lag, Instant::now()) {
            log::info!("{line}");
        }
        self.metrics.catch_up(self.catch_up.progress());
        self.metrics
            .lines_in_flight
            .set(self.limit.held_lines() as i64);
        ControlFlow::Continue(())
    }

    /// Forgets checkpoints of gone files on a thread of its own: it lists the directories
    /// of the checkpointed paths, and one on a hung network mount would otherwise stop the
    /// runtime thread this runs on (shipping, `/metrics`, shutdown). One at a time, so a
    /// hung listing holds one thread, not one a minute; left behind at exit.
    fn prune(&self) {
        if self.pruning.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, pruning) = (Arc::clone(&self.store), Arc::clone(&self.pruning));
        let started = std::thread::Builder::new()
            .name("logagent-prune".into())
            .spawn(move || {
                store.prune_gone();
                pruning.store(false, Ordering::Release);
            });
        if let Err(e) = started {
            self.pruning.store(false, Ordering::Release);
            log::warn!("cannot start the checkpoint pruning thread: {e}; retried later");
        }
    }
}
