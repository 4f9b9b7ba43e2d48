//! Where a followed file's bytes are read: on the runtime thread, or on a reader thread
//! waited for with a bound.
//!
//! A `pread` on a network file system whose server went away may never return (an NFS
//! `hard` mount retries forever, a FUSE file system waits for its daemon). On a runtime
//! thread that one call is the whole agent: every other file, `/metrics`, shutdown. So the
//! reads of a file on a network or user-space file system ([`remote_fs_name`], checked with
//! `fstatfs` when the file is opened) run on a small pool of dedicated reader threads. A
//! read that has not returned within the bound (`[agent] read_timeout_ms`) stalls only its
//! file: the tailer stops waiting, warns once, counts it in `reads_stalled`, and does not
//! read that file again until the abandoned read returns. The abandoned thread is counted
//! in `reader_threads_stuck` and replaced, at most [`MAX_STUCK_THREADS`] at a time; past
//! that, no file on such a file system is read until one comes back.
//!
//! Local files keep the inline read: it hits the page cache, and a hand-off to another
//! thread per 16 KiB chunk is work the hot path (about a million lines a second) does not
//! need. `[agent] blocking_reads = always` sends every file through the pool (tests use it
//! on local files), `never` keeps every read inline.
//!
//! Dedicated threads rather than `spawn_blocking`: a tokio runtime waits for its blocking
//! tasks when it is dropped, so one read stuck for ever would hang the agent's exit.
//! Threads of our own are left behind and end with the process.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::identity::FileIdentity;
use crate::metrics::Metrics;

/// Reader threads working at once (stuck ones are replaced and not counted here).
pub const READER_THREADS: usize = 4;

/// Abandoned reader threads at most: each holds a thread (and its stack) for as long as its
/// system call hangs, so a mount that never comes back must not grow them without end.
pub const MAX_STUCK_THREADS: usize = 16;

/// `[agent] blocking_reads`: which files are read on reader threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockingReads {
    /// Files on network and user-space file systems ([`remote_fs_name`]).
    #[default]
    Auto,
    /// Every file (costs a thread hand-off per read; for tests and odd mounts).
    Always,
    /// None: every read on the runtime thread, as before the bound existed.
    Never,
}

/// `statfs` `f_type` values of file systems whose calls can hang on something outside the
/// host (a server, a daemon), with their names for the log. From `linux/magic.h` and the
/// file systems' sources.
const REMOTE_FS: &[(u32, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x00C3_6400, "ceph"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "kafs"),
    (0x7375_7245, "coda"),
    (0x564C, "ncp"),
    (0x0116_1970, "gfs2"),
    (0x7461_636F, "ocfs2"),
    (0x0BD0_0BD0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x2003_0528, "orangefs"),
];

/// The name of the file system `file` is on when it is a network or user-space one (the
/// `f_type` list above).
#[cfg(target_os = "linux")]
pub fn remote_fs_name(file: &File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    let mut s = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is open for the call; `s` is written by the kernel on success.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstatfs succeeded, so the struct is initialised.
    let s = unsafe { s.assume_init() };
    // f_type is a signed word whose width depends on the platform; the magic numbers are 32
    // bits, and CIFS's is negative where the word is 32 bits wide.
    let magic = s.f_type as u32;
    REMOTE_FS.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n)
}

/// Other systems: no `f_type`; `blocking_reads = always` is the way to bound their reads.
#[cfg(not(target_os = "linux"))]
pub fn remote_fs_name(_file: &File) -> Option<&'static str> {
    None
}

/// What one read step saw: the read itself, then (so a truncation in between is noticed
/// before anything read is sent) whether the head still matches and the size.
#[derive(Debug)]
pub struct Step {
    /// Bytes read at the position, or why not.
    pub read: io::Result<usize>,
    /// Whether the first bytes are still the fingerprinted ones (true when unknown).
    pub head_ok: bool,
    /// The file's size (`u64::MAX` when unknown).
    pub size: u64,
}

/// A plain `pread` (the copy a copytruncate left), wherever it runs.
pub fn pread(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    hooks::before_read(file);
    file.read_at(buf, pos)
}

/// One read step, wherever it runs.
pub fn step(file: &File, buf: &mut [u8], pos: u64, identity: &FileIdentity) -> Step {
    hooks::before_read(file);
    let read = file.read_at(buf, pos);
    let head_ok = identity.head_matches(file).unwrap_or(true);
    let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    Step {
        read,
        head_ok,
        size,
    }
}

/// What became of a bounded call.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It returned in time.
    Done(T),
    /// It did not (or an earlier call on the file still has not, or too many threads are
    /// stuck): the file is not read for now.
    Stalled,
    /// The tailer was asked to stop while waiting.
    Cancelled,
}

/// How one open file is read.
#[derive(Debug)]
pub struct FileReads {
    blocking: bool,
    /// An abandoned call on this file that has not returned yet.
    abandoned: Option<Arc<JobState>>,
    /// Whether the stall was already warned about (once per stall, not per poll).
    warned: bool,
    /// The last call did not return a result (see [`Outcome::Stalled`]).
    stalled: bool,
}

impl FileReads {
    /// A file read inline on the runtime thread.
    pub fn inline() -> Self {
        FileReads {
            blocking: false,
            abandoned: None,
            warned: false,
            stalled: false,
        }
    }

    /// Whether the file's reads go through the reader threads.
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// Whether the last call on this file stalled: the file has more to give once the
    /// hung call returns, so it must be neither taken as drained nor closed.
    pub fn stalled(&self) -> bool {
        self.stalled
    }
}

/// Queued or running; the waiter may still take the result.
const PENDING: u8 = 0;
/// Returned; the result was sent.
const DONE: u8 = 1;
/// Abandoned after the bound: counted as stuck, and its thread was replaced.
const STUCK: u8 = 2;
/// Abandoned because the tailer stopped (shutdown): not counted, not replaced.
const LEFT: u8 = 3;

#[derive(Debug)]
struct JobState {
    /// [`PENDING`], [`DONE`], [`STUCK`] or [`LEFT`].
    state: AtomicU8,
    /// The call returned (or was skipped): its thread is free again.
    returned: AtomicBool,
}

impl JobState {
    fn new() -> Self {
        JobState {
            state: AtomicU8::new(PENDING),
            returned: AtomicBool::new(false),
        }
    }

    fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    fn is_stuck(&self) -> bool {
        self.state.load(Ordering::Acquire) == STUCK
    }

    fn has_returned(&self) -> bool {
        self.returned.load(Ordering::Acquire)
    }

    /// Moves from pending to `to`; false if the call already returned or was left.
    fn leave(&self, to: u8) -> bool {
        self.state
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

struct Job {
    state: Arc<JobState>,
    run: Box<dyn FnOnce() + Send>,
}

/// The reader threads and the policy, shared by every tailer.
#[derive(Clone)]
pub struct Reads {
    mode: BlockingReads,
    bound: Duration,
    pool: Arc<Pool>,
}

struct Pool {
    /// Dropped with the last [`Reads`]: the idle threads then end.
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

/// What the reader threads share with the waiters.
struct Shared {
    queue: Mutex<mpsc::Receiver<Job>>,
    /// Threads taking jobs (not stuck). Started on first use, so an agent with no remote
    /// file starts none.
    workers: AtomicUsize,
    stuck: AtomicUsize,
    max_stuck: usize,
    metrics: Arc<Metrics>,
}

impl Reads {
    /// Reads by `mode`, each call on a reader thread waited for at most `bound`.
    pub fn new(mode: BlockingReads, bound: Duration, metrics: Arc<Metrics>) -> Self {
        Self::with_max_stuck(mode, bound, MAX_STUCK_THREADS, metrics)
    }

    fn with_max_stuck(
        mode: BlockingReads,
        bound: Duration,
        max_stuck: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel();
        Reads {
            mode,
            bound,
            pool: Arc::new(Pool {
                jobs,
                shared: Arc::new(Shared {
                    queue: Mutex::new(queue),
                    workers: AtomicUsize::new(0),
                    stuck: AtomicUsize::new(0),
                    max_stuck,
                    metrics,
                }),
            }),
        }
    }

    /// How `file` (just opened, followed as `path`) is to be read.
    pub fn for_file(&self, file: &File, path: &Path) -> FileReads {
        let blocking = match self.mode {
            BlockingReads::Never => false,
            BlockingReads::Always => true,
            BlockingReads::Auto => match remote_fs_name(file) {
                Some(fs) => {
                    log::info!(
                        "{}: on {fs}; read on reader threads, each read waited for at most {:?}",
                        path.display(),
                        self.bound
                    );
                    true
                }
                None => false,
            },
        };
        FileReads {
            blocking,
            ..FileReads::inline()
        }
    }

    /// `f` on `file` and `buf` (a read step, a `pread`): inline for a local file, else on a
    /// reader thread within the bound. `buf` keeps its length whatever happens.
    pub async fn read_with<T: Send + 'static>(
        &self,
        reads: &mut FileReads,
        file: &Arc<File>,
        buf: &mut Vec<u8>,
        path: &Path,
        cancel: &CancellationToken,
        f: impl FnOnce(&File, &mut [u8]) -> T + Send + 'static,
    ) -> Outcome<T> {
        if !reads.blocking {
            return Outcome::Done(f(file, buf));
        }
        let file = Arc::clone(file);
        self.with_buf(reads, buf, path, cancel, move |b| f(&file, b))
            .await
    }

    /// Runs `f` on `buf` on a reader thread; `buf` keeps its length whatever happens.
    async fn with_buf<T: Send + 'static>(
        &self,
        reads: &mut FileReads,
        buf: &mut Vec<u8>,
        path: &Path,
        cancel: &CancellationToken,
        f: impl FnOnce(&mut [u8]) -> T + Send + 'static,
    ) -> Outcome<T> {
        let len = buf.len();
        let mut owned = std::mem::take(buf);
        let outcome = self
            .run(reads, path, cancel, move || {
                let v = f(&mut owned);
                (owned, v)
            })
            .await;
        match outcome {
            Outcome::Done((owned, s)) => {
                *buf = owned;
                Outcome::Done(s)
            }
            // The buffer stays with the abandoned call.
            Outcome::Stalled => {
                *buf = vec![0; len];
                Outcome::Stalled
            }
            Outcome::Cancelled => {
                *buf = vec![0; len];
                Outcome::Cancelled
            }
        }
    }

    /// Runs `f` (a system call on the file or its path) inline for a local file, else on a
    /// reader thread within the bound.
    pub async fn run<T: Send + 'static>(
        &self,
        reads: &mut FileReads,
        path: &Path,
        cancel: &CancellationToken,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Outcome<T> {
        if !reads.blocking {
            return Outcome::Done(f());
        }
        let outcome = match self.admit(reads, path) {
            true => match self.pool.submit(f) {
                Some((state, rx)) => self.wait(reads, path, cancel, state, rx).await,
                None => Outcome::Stalled,
            },
            false => Outcome::Stalled,
        };
        reads.stalled = matches!(outcome, Outcome::Stalled);
        outcome
    }

    /// Whether a call on the file may be started: not while an earlier one hangs, nor
    /// while [`MAX_STUCK_THREADS`] are stuck.
    fn admit(&self, reads: &mut FileReads, path: &Path) -> bool {
        if let Some(earlier) = &reads.abandoned {
            if !earlier.has_returned() {
                return false;
            }
            reads.abandoned = None;
            reads.warned = false;
            log::warn!(
                "{}: the stalled read returned; reading the file again",
                path.display()
            );
        }
        let pool = &self.pool.shared;
        if pool.stuck.load(Ordering::Acquire) >= pool.max_stuck {
            if !reads.warned {
                reads.warned = true;
                log::warn!(
                    "{}: not read: {} reader threads are stuck (a hung mount?); retried when \
                     one returns",
                    path.display(),
                    pool.max_stuck
                );
            }
            return false;
        }
        true
    }

    /// Waits for the call `state` and `rx` belong to, within the bound.
    async fn wait<T>(
        &self,
        reads: &mut FileReads,
        path: &Path,
        cancel: &CancellationToken,
        state: Arc<JobState>,
        mut rx: tokio::sync::oneshot::Receiver<T>,
    ) -> Outcome<T> {
        let pool = &self.pool.shared;
        tokio::select! {
            r = &mut rx => match r {
                Ok(v) => {
                    reads.warned = false;
                    Outcome::Done(v)
                }
                // Only if the job was dropped unrun (a worker panicked in it).
                Err(_) => Outcome::Stalled,
            },
            _ = tokio::time::sleep(self.bound) => {
                if !state.leave(STUCK) {
                    // It returned just now: the result is there.
                    return match rx.await {
                        Ok(v) => Outcome::Done(v),
                        Err(_) => Outcome::Stalled,
                    };
                }
                pool.stuck.fetch_add(1, Ordering::AcqRel);
                pool.metrics.reader_threads_stuck.inc();
                pool.metrics.reads_stalled.inc();
                // The stuck thread no longer takes jobs: another one does.
                pool.workers.fetch_sub(1, Ordering::AcqRel);
                pool.ensure_workers();
                reads.abandoned = Some(state);
                reads.warned = true;
                log::warn!(
                    "{}: a read did not return within {:?} (hung network file system?); the \
                     file is not read until it does, other files go on",
                    path.display(),
                    self.bound
                );
                Outcome::Stalled
            }
            _ = cancel.cancelled() => {
                if state.leave(LEFT) {
                    return Outcome::Cancelled;
                }
                match rx.await {
                    Ok(v) => Outcome::Done(v),
                    Err(_) => Outcome::Cancelled,
                }
            }
        }
    }
}

impl Pool {
    /// Queues `f`; its state and where its result comes, or `None` if no thread can take it.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<(Arc<JobState>, tokio::sync::oneshot::Receiver<T>)> {
        self.shared.ensure_workers();
        if self.shared.workers.load(Ordering::Acquire) == 0 {
            return None;
        }
        let state = Arc::new(JobState::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            state: Arc::clone(&state),
            run: Box::new(move || {
                let _ = tx.send(f());
            }),
        };
        self.jobs.send(job).ok()?;
        Some((state, rx))
    }
}

impl Shared {
    /// Starts threads until [`READER_THREADS`] take jobs.
    fn ensure_workers(self: &Arc<Self>) {
        loop {
            let n = self.workers.load(Ordering::Acquire);
            if n >= READER_THREADS {
                return;
            }
            if self
                .workers
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let pool = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("logagent-reader".into())
                .spawn(move || pool.work());
            if let Err(e) = started {
                self.workers.fetch_sub(1, Ordering::AcqRel);
                log::error!("cannot start a file reader thread: {e}");
                return;
            }
        }
    }

    fn work(&self) {
        loop {
            // The lock is held only while waiting for a job, never while running one.
            let job = match self.queue.lock().recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            // A job abandoned while queued is not run: its waiter is gone.
            if job.state.is_pending() {
                // A panic drops the job's sender: its waiter sees the file stalled, and the
                // thread goes on taking jobs.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run));
            }
            let abandoned = !job.state.leave(DONE);
            job.state.returned.store(true, Ordering::Release);
            if abandoned && job.state.is_stuck() {
                // This thread was replaced when the job was abandoned.
                self.stuck.fetch_sub(1, Ordering::AcqRel);
                self.metrics.reader_threads_stuck.dec();
                return;
            }
        }
    }
}

/// A test-only seam: reads of chosen files block their thread for ever, as on a hung mount.
#[cfg(feature = "test-hooks")]
pub mod hooks {
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use parking_lot::Mutex;

    static ANY: AtomicBool = AtomicBool::new(false);
    static HUNG: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

    /// From now on every read of the file at `path` (this inode) never returns.
    pub fn hang_reads_of(path: &Path) -> std::io::Result<()> {
        let m = std::fs::metadata(path)?;
        HUNG.lock().push((m.dev(), m.ino()));
        ANY.store(true, Ordering::Release);
        Ok(())
    }

    pub(super) fn before_read(file: &File) {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let Ok(m) = file.metadata() else { return };
        if HUNG.lock().contains(&(m.dev(), m.ino())) {
            loop {
                std::thread::park();
            }
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
mod hooks {
    #[inline(always)]
    pub(super) fn before_read(_file: &std::fs::File) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Receiver, sync_channel};

    fn reads(max_stuck: usize) -> (Reads, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let r = Reads::with_max_stuck(
            BlockingReads::Always,
            Duration::from_millis(100),
            max_stuck,
            Arc::clone(&metrics),
        );
        (r, metrics)
    }

    fn blocking() -> FileReads {
        FileReads {
            blocking: true,
            ..FileReads::inline()
        }
    }

    /// A call that waits until `release` sends.
    fn held(release: Receiver<()>) -> impl FnOnce() -> u32 + Send + 'static {
        move || {
            let _ = release.recv();
            7
        }
    }

    #[tokio::test]
    async fn a_hung_call_stalls_its_file_only_and_its_thread_is_counted_until_it_returns() {
        let (r, metrics) = reads(16);
        let cancel = CancellationToken::new();
        let path = Path::new("/hung");
        let mut hung = blocking();
        let (release, rx) = sync_channel(1);
        let out = r.run(&mut hung, path, &cancel, held(rx)).await;
        assert!(matches!(out, Outcome::Stalled));
        assert_eq!(metrics.reads_stalled.get(), 1);
        assert_eq!(metrics.reader_threads_stuck.get(), 1);
        // The file is not read again (no second thread) while the first call hangs.
        let out = r.run(&mut hung, path, &cancel, || 1).await;
        assert!(matches!(out, Outcome::Stalled));
        assert_eq!(metrics.reader_threads_stuck.get(), 1);
        // Other files are read meanwhile.
        let mut other = blocking();
        let out = r.run(&mut other, path, &cancel, || 2).await;
        assert!(matches!(out, Outcome::Done(2)));
        // Once the call returns, its thread is no longer counted and the file is read again.
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while metrics.reader_threads_stuck.get() != 0 {
            assert!(std::time::Instant::now() < deadline, "never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(hung.stalled(), "until it is called again");
        let out = r.run(&mut hung, path, &cancel, || 3).await;
        assert!(matches!(out, Outcome::Done(3)));
        assert!(!hung.stalled());
        assert_eq!(metrics.reads_stalled.get(), 1);
    }

    #[tokio::test]
    async fn stuck_threads_are_bounded_and_a_waiting_call_ends_on_cancel() {
        let (r, metrics) = reads(2);
        let cancel = CancellationToken::new();
        let path = Path::new("/hung");
        let mut releases = Vec::new();
        for _ in 0..2 {
            let (release, rx) = sync_channel(1);
            releases.push(release);
            let out = r.run(&mut blocking(), path, &cancel, held(rx)).await;
            assert!(matches!(out, Outcome::Stalled));
        }
        assert_eq!(metrics.reader_threads_stuck.get(), 2);
        // At the bound no thread is risked, not even for a file that would answer.
        let out = r.run(&mut blocking(), path, &cancel, || 1).await;
        assert!(matches!(out, Outcome::Stalled));
        assert_eq!(metrics.reader_threads_stuck.get(), 2);
        assert_eq!(metrics.reads_stalled.get(), 2);
        // Shutdown does not wait for a call in progress.
        drop(releases);
        let (r, _) = reads(2);
        let (_release, rx) = sync_channel(1);
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.cancel();
        });
        let slow = Reads {
            bound: Duration::from_secs(3600),
            ..r
        };
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            slow.run(&mut blocking(), path, &cancel, held(rx)),
        )
        .await
        .expect("cancel ends the wait");
        assert!(matches!(out, Outcome::Cancelled));
    }

    #[test]
    fn a_local_file_is_read_inline_under_auto() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "x\n").unwrap();
        let f = File::open(&p).unwrap();
        let metrics = Arc::new(Metrics::default());
        let auto = Reads::new(BlockingReads::Auto, Duration::from_secs(1), metrics);
        // The test's temporary directory is on a local file system (tmpfs, ext4, overlay).
        assert_eq!(remote_fs_name(&f), None);
        assert!(!auto.for_file(&f, &p).is_blocking());
        let always = Reads {
            mode: BlockingReads::Always,
            ..auto
        };
        assert!(always.for_file(&f, &p).is_blocking());
    }
}
