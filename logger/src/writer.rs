//! How records reach the outputs: under a lock on the caller's thread (sync), or
//! through the bounded queue to the writer thread (async), which batches, flushes on
//! an interval and does the outputs' upkeep while idle. Callers only ever publish into
//! the queue; everything after it runs here.

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::dispatch::Dispatch;
use crate::queue::{Consumer, Producer};
use crate::record::Record;
use crate::stats::Counters;

/// What to do when the queue to the writer thread is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Wait for room: nothing is lost, a flood slows the caller down.
    #[default]
    Block,
    /// Drop the record and count it ([`Stats::dropped`](crate::Stats::dropped)).
    Drop,
}

/// Requests to the writer besides records. Each carries the queue position it must
/// drain up to first, so it sees every record its caller logged before asking.
enum Ctl {
    Flush {
        upto: usize,
        ack: Sender<()>,
    },
    Shutdown {
        upto: usize,
    },
    /// Ends the writer thread with a panic, as a bug past every guard would.
    #[cfg(test)]
    Die,
}

/// How the writer side is reached.
pub(crate) enum Writer {
    /// The outputs, and the counters for records that cannot reach them.
    Sync(Mutex<Dispatch>, Arc<Counters>),
    Async(AsyncWriter),
}

thread_local! {
    /// Whether this thread must never wait for the outputs: the writer thread always, a
    /// sync caller while it holds them, and a thread the outputs themselves wait for
    /// (librdkafka's, running the Kafka error callback). Logging from there (an output or
    /// the callback that logs) would otherwise wait for itself.
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

fn must_not_wait() -> bool {
    NO_WAIT.with(Cell::get)
}

/// Marks the current thread as one that must not wait until dropped (also on unwind).
struct NoWait(bool);

impl NoWait {
    fn enter() -> NoWait {
        NoWait(NO_WAIT.with(|d| d.replace(true)))
    }
}

impl Drop for NoWait {
    fn drop(&mut self) {
        NO_WAIT.with(|d| d.set(self.0));
    }
}

/// Runs `f` (code the outputs may wait for, such as the Kafka error callback) so that
/// logging from it never waits: a record that cannot be queued at once is dropped and
/// counted in `Stats::dropped`, and `flush` returns at once.
#[cfg(feature = "kafka")]
pub(crate) fn without_waiting<R>(f: impl FnOnce() -> R) -> R {
    let _no_wait = NoWait::enter();
    f()
}

/// Locks the sync outputs, marking the thread as one that must not wait; `None` when it
/// already is (an output logging): waiting for the lock would wait for itself.
fn lock_sync(d: &Mutex<Dispatch>) -> Option<(NoWait, parking_lot::MutexGuard<'_, Dispatch>)> {
    if must_not_wait() {
        return None;
    }
    let guard = d.lock();
    Some((NoWait::enter(), guard))
}

pub(crate) struct AsyncWriter {
    queue: Producer<Record>,
    ctl: Sender<Ctl>,
    overflow: Overflow,
    writer: Thread,
    /// Set by the writer before a long park; a caller that sees it after publishing a
    /// record wakes the writer. While the writer polls, callers make no syscall at all.
    writer_sleeping: Arc<AtomicBool>,
    /// Set when the writer thread no longer takes records: it panicked (past every
    /// guard) or it is shutting down. Callers then drop and count rather than wait.
    gone: Arc<AtomicBool>,
    /// Queue position up to which records stranded by a gone writer have been counted
    /// as dropped (`None` until the first count).
    stranded: Mutex<Option<usize>>,
    join: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// Settings of the async writer.
#[derive(Clone, Debug)]
pub(crate) struct AsyncSettings {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) flush_interval: Duration,
}

/// What became of a record offered to [`Writer::enqueue_with`].
pub(crate) enum Enqueue<F> {
    /// Built into a queue slot.
    Queued,
    /// The queue is full in drop mode: dropped and counted.
    Dropped,
    /// Not queued yet (sync mode, or a full queue in block mode): the caller builds the
    /// record and hands it to [`Writer::submit`].
    Slow(F),
}

impl Writer {
    pub(crate) fn sync(dispatch: Dispatch) -> Writer {
        let counters = Arc::clone(dispatch.counters());
        Writer::Sync(Mutex::new(dispatch), counters)
    }

    /// Starts the writer thread.
    pub(crate) fn spawn(dispatch: Dispatch, settings: AsyncSettings) -> io::Result<Writer> {
        let counters = Arc::clone(dispatch.counters());
        let (queue, consumer) = crate::queue::bounded(settings.capacity.max(1));
        let (ctl, ctl_rx) = crossbeam_channel::unbounded();
        let interval = settings.flush_interval;
        let writer_sleeping = Arc::new(AtomicBool::new(false));
        let sleeping = Arc::clone(&writer_sleeping);
        let gone = Arc::new(AtomicBool::new(false));
        let exit = WriterExit(Arc::clone(&gone));
        let join = std::thread::Builder::new()
            .name("logger-writer".into())
            .spawn(move || {
                // Dropped last, also when the loop panics.
                let exit = exit;
                let _no_wait = NoWait::enter();
                writer_loop(consumer, ctl_rx, dispatch, interval, &sleeping, &exit.0)
            })?;
        let writer = join.thread().clone();
        Ok(Writer::Async(AsyncWriter {
            queue,
            ctl,
            overflow: settings.overflow,
            writer,
            writer_sleeping,
            gone,
            stranded: Mutex::new(None),
            join: Mutex::new(Some(join)),
            counters,
        }))
    }

    /// The hot path: takes a queue slot first and builds the record straight into it
    /// (no copy). A panicking `Display` of an argument still fills the taken slot, with
    /// `panicked()`.
    #[inline(always)]
    pub(crate) fn enqueue_with<F: FnOnce() -> Record>(
        &self,
        build: F,
        panicked: fn() -> Record,
    ) -> Enqueue<F> {
        if let Writer::Async(a) = self {
            if let Some(claim) = a.queue.claim() {
                claim.publish_with(build, panicked);
                a.wake_if_sleeping();
                return Enqueue::Queued;
            }
            if a.overflow == Overflow::Drop {
                a.writer.unpark();
                a.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Enqueue::Dropped;
            }
        }
        Enqueue::Slow(build)
    }

    /// Writes (sync) or queues (async) a built record, waiting for room or dropping it
    /// as the overflow policy says. From inside the outputs (an output or the Kafka
    /// error callback logging) it never waits: a record that cannot go at once is
    /// dropped and counted.
    pub(crate) fn submit(&self, r: Record) {
        match self {
            Writer::Sync(d, counters) => match lock_sync(d) {
                Some((_no_wait, mut d)) => {
                    let mut r = r;
                    d.write(&mut r);
                    d.flush();
                }
                None => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            Writer::Async(a) => match a.queue.push(r) {
                Ok(()) => a.wake_if_sleeping(),
                Err(r) => {
                    a.writer.unpark();
                    if a.overflow == Overflow::Block && !must_not_wait() {
                        a.push_blocking(r);
                    } else {
                        a.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        }
    }

    /// Best effort for the panic hook, then a flush: the sync lock is only tried (the
    /// panicking thread may hold it), and the writer thread itself must not wait for
    /// room it alone can make.
    pub(crate) fn submit_from_panic(&self, r: Record) {
        match self {
            Writer::Sync(d, _) => {
                if let Some(mut d) = d.try_lock() {
                    let _no_wait = NoWait::enter();
                    let mut r = r;
                    d.write(&mut r);
                    d.flush();
                }
            }
            Writer::Async(a) => {
                if let Err(r) = a.queue.push(r)
                    && !must_not_wait()
                {
                    a.writer.unpark();
                    a.push_blocking(r);
                }
                self.flush();
            }
        }
    }

    /// Writes everything queued so far to the outputs and returns when that is done.
    pub(crate) fn flush(&self) {
        match self {
            Writer::Sync(d, _) => {
                if let Some((_no_wait, mut d)) = lock_sync(d) {
                    d.flush();
                }
            }
            Writer::Async(a) => {
                // The writer cannot wait for itself (a panic or fatal on the writer thread).
                if must_not_wait() {
                    return;
                }
                let (ack, ack_rx) = crossbeam_channel::bounded(1);
                let upto = a.queue.tail();
                if a.ctl.send(Ctl::Flush { upto, ack }).is_ok() {
                    a.writer.unpark();
                    // An error means the writer thread ended without answering.
                    let _ = ack_rx.recv();
                }
                if a.gone.load(Ordering::Acquire) {
                    a.count_stranded();
                }
            }
        }
    }

    /// Drains the queue, closes the outputs and stops the writer thread. Call once.
    pub(crate) fn shutdown(&self) {
        match self {
            Writer::Sync(d, _) => {
                if let Some((_no_wait, mut d)) = lock_sync(d) {
                    d.close();
                }
            }
            Writer::Async(a) => {
                let upto = a.queue.tail();
                if a.ctl.send(Ctl::Shutdown { upto }).is_ok() {
                    a.writer.unpark();
                }
                let join = a.join.lock().take();
                if let Some(j) = join
                    && !must_not_wait()
                {
                    let _ = j.join();
                    // Whatever was queued after the shutdown request is never written.
                    a.count_stranded();
                }
            }
        }
    }
}

/// How long the idle writer sleeps at first and at most while it polls. Callers do not
/// wake a polling writer (that would cost a syscall per call).
const IDLE_MIN: Duration = Duration::from_micros(20);
const IDLE_MAX: Duration = Duration::from_millis(1);
/// Once polling found nothing up to IDLE_MAX, the writer announces that it sleeps and parks
/// for this long at most (the housekeeping tick); the next record wakes it. Polling at
/// IDLE_MAX for ever would wake an idle process a thousand times a second.
const DEEP_IDLE: Duration = Duration::from_millis(200);
/// Records handled between checks of the flush interval.
const BATCH: usize = 4096;

impl AsyncWriter {
    /// Wakes the writer if it announced a long park. A relaxed load: a caller that misses
    /// the announcement only delays its record until the park times out (at most
    /// DEEP_IDLE), it never loses it.
    #[inline]
    fn wake_if_sleeping(&self) {
        if self.writer_sleeping.load(Ordering::Relaxed) {
            self.writer.unpark();
        }
    }

    /// Waits for room: spin, then yield, then nap. Parking on a futex would cost a
    /// wake-up round-trip per record while the queue stays full. A writer that is gone
    /// will never make room: the record is dropped and counted instead.
    fn push_blocking(&self, mut r: Record) {
        if self.gone.load(Ordering::Acquire) {
            return self.dropped_for_gone_writer();
        }
        let mut round = 0u32;
        // Once full, wait for a run of free slots rather than one: taking each slot as
        // the writer frees it keeps both threads on the same cache lines, and that
        // ping-pong, not the work, then sets the pace.
        let want = (self.queue.capacity() / 16).clamp(1, 256);
        loop {
            if round == 0 || self.queue.free() >= want {
                match self.queue.push(r) {
                    Ok(()) => return,
                    Err(back) => r = back,
                }
            }
            round += 1;
            if round <= 6 {
                for _ in 0..(1u32 << round) {
                    std::hint::spin_loop();
                }
            } else if round <= 20 {
                std::thread::yield_now();
            } else {
                if self.gone.load(Ordering::Acquire) {
                    return self.dropped_for_gone_writer();
                }
                self.writer.unpark();
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Counts a record that a gone writer will never take (and whatever is stranded in
    /// the queue).
    #[cold]
    fn dropped_for_gone_writer(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        self.count_stranded();
    }

    /// Counts the records left in the queue of a gone writer as dropped, each once: the
    /// writer's position no longer moves, so everything between it and the tail is lost.
    fn count_stranded(&self) {
        let tail = self.queue.tail();
        let mut counted = self.stranded.lock();
        let from = counted.unwrap_or_else(|| self.queue.head());
        let n = tail.wrapping_sub(from);
        if n as isize > 0 {
            self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
            *counted = Some(tail);
        }
    }
}

/// Owned by the writer thread; when the thread ends (returns or panics) it tells the
/// callers, so block mode stops waiting for room, and says so once on stderr if the
/// thread panicked.
struct WriterExit(Arc<AtomicBool>);

impl Drop for WriterExit {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        if std::thread::panicking() {
            eprintln!(
                "logger: the writer thread panicked; records logged from now on are dropped \
                 (counted in Stats::dropped)"
            );
        }
    }
}

/// Writes queued records until `head` reaches `upto` (records a flush or shutdown
/// request must see). A slot taken but not yet filled is waited for.
fn drain_until(q: &mut Consumer<Record>, d: &mut Dispatch, upto: usize) {
    while (upto.wrapping_sub(q.head()) as isize) > 0 {
        if !q.consume(|r| d.write(r)) {
            std::thread::yield_now();
        }
    }
}

fn writer_loop(
    mut q: Consumer<Record>,
    ctl: Receiver<Ctl>,
    mut d: Dispatch,
    interval: Duration,
    sleeping: &AtomicBool,
    gone: &AtomicBool,
) {
    let mut last_flush = Instant::now();
    let mut last_tick = Instant::now();
    let mut dirty = false;
    let mut idle = IDLE_MIN;
    loop {
        let mut n = 0;
        while n < BATCH && q.consume(|r| d.write(r)) {
            n += 1;
        }
        if n > 0 {
            dirty = true;
            d.publish();
        }
        while let Ok(c) = ctl.try_recv() {
            match c {
                Ctl::Flush { upto, ack } => {
                    drain_until(&mut q, &mut d, upto);
                    d.flush();
                    dirty = false;
                    last_flush = Instant::now();
                    let _ = ack.send(());
                }
                Ctl::Shutdown { upto } => {
                    drain_until(&mut q, &mut d, upto);
                    // Nothing queued from now on is written: a caller must not wait for
                    // room (librdkafka's thread, logging from the error callback while
                    // the Kafka output closes, would hold the close up).
                    gone.store(true, Ordering::Release);
                    d.close();
                    return;
                }
                #[cfg(test)]
                Ctl::Die => panic!("writer thread told to die (test)"),
            }
        }
        let now = Instant::now();
        if dirty && now.duration_since(last_flush) >= interval {
            d.flush();
            dirty = false;
            last_flush = now;
        }
        if n == 0 {
            if now.duration_since(last_tick) >= Duration::from_millis(200) {
                d.tick();
                last_tick = now;
            }
            let deep = idle >= IDLE_MAX;
            let nap = if deep { DEEP_IDLE } else { idle };
            let wait = if dirty {
                nap.min(interval.saturating_sub(now.duration_since(last_flush)))
            } else {
                nap
            };
            if deep {
                sleeping.store(true, Ordering::SeqCst);
                // A record published before the announcement was visible to its caller
                // would otherwise wait for the whole park.
                if q.consume(|r| d.write(r)) {
                    sleeping.store(false, Ordering::Relaxed);
                    dirty = true;
                    d.publish();
                    idle = IDLE_MIN;
                    continue;
                }
            }
            std::thread::park_timeout(wait.max(Duration::from_micros(1)));
            if deep {
                sleeping.store(false, Ordering::Relaxed);
            }
            idle = (idle * 2).min(IDLE_MAX);
        } else {
            idle = IDLE_MIN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer thread that dies (a panic past every guard) must not leave block-mode
    /// callers waiting for room for ever: they drop and count, and so are the records
    /// stranded in the queue. Before, `submit` spun on the full queue without end.
    #[test]
    fn block_mode_callers_do_not_wait_for_a_dead_writer() {
        let counters = Arc::new(Counters::new(Vec::new()));
        let dispatch = Dispatch::new(Vec::new(), Arc::clone(&counters));
        let settings = AsyncSettings {
            capacity: 4,
            overflow: Overflow::Block,
            flush_interval: Duration::from_millis(50),
        };
        let writer = Arc::new(Writer::spawn(dispatch, settings).unwrap());
        let Writer::Async(a) = &*writer else {
            unreachable!()
        };
        a.ctl.send(Ctl::Die).unwrap();
        a.writer.unpark();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.gone.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the writer thread did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let w = Arc::clone(&writer);
        std::thread::spawn(move || {
            for i in 0..100 {
                w.submit(Record::for_test(&format!("r{i}")));
            }
            w.flush();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a block-mode caller hung on the queue of a dead writer");
        writer.shutdown();
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 100);
    }
}
