//! Follows one path: reads new lines, sends them, and survives rotation.
//!
//! * **Rename rotation** (`app.log` → `app.log.1`, new `app.log`): at end of file the path is
//!   stat'ed; when it names another inode the old file is already drained, so the new file is
//!   opened at once (its lines follow the old ones in the same partition). The old file stays
//!   open for `close_renamed_after_ms` and is still read if a slow writer appends to it.
//! * **copytruncate**: after every read the first bytes are compared with the fingerprint;
//!   a shrunk file or a changed head means truncation. Bytes not read before the truncation
//!   are read from the copy (a sibling whose name starts with the file's name and whose head
//!   matches the old fingerprint), then, once every earlier line is acknowledged, reading
//!   restarts at offset 0.
//! * **Deletion**: the file is drained, kept for `close_renamed_after_ms`, then released.
//! * **Turns**: a file is opened only with a turn at the `max_open_files` budget, and
//!   closed again, idle and acknowledged, when another file waits ([`super::turns`]); it is
//!   reopened when its path changes, by identity, like after a restart.
//!
//! File reads of local files are plain `pread`s on the runtime thread: they hit the page
//! cache for a file that is being written, and 16 KiB at a time keeps each one short. Files
//! on network file systems, whose reads can hang, are read on reader threads with a bound
//! (see [`super::reads`]).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::chunks::{ChunkLease, ChunkPool};
use super::events::FileEvents;
use super::generations::{self, Pending};
use super::lines::{HeldBack, Line, LineSplitter};
use super::multiline::MultilineJoiner;
use super::open::{OpenError, Refusals};
use super::reads::{self, FileReads, Outcome, Reads};
use super::shipper::{Cancelled, Destination, Shipper};
use super::turns::{OpenFiles, Turn};
use crate::ack::FileAcks;
use crate::checkpoint::{CheckpointStore, Claim};
use crate::collect_config::{AllowedPaths, CollectEntry, Multiline};
use crate::encode::FileEncoder;
use crate::identity::{EventKey, FINGERPRINT_BYTES, FileIdentity};
use crate::metrics::Metrics;

/// Tailing knobs, from `[agent]`.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// Longest line shipped whole.
    pub max_line_bytes: usize,
    /// Pause between checks of an idle file.
    pub poll_interval: Duration,
    /// How long a renamed or deleted file is kept open after it was drained.
    pub close_renamed_after: Duration,
    /// Shared bound on the unfinished lines of all files.
    pub held_back: HeldBack,
}

/// What every tailer shares.
pub struct TailContext {
    /// Hands lines to the sink.
    pub shipper: Shipper,
    /// Offsets.
    pub store: Arc<CheckpointStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `host.name`.
    pub host: String,
    /// Path policy, checked again on every file opened (see [`super::open`]).
    pub allowed: AllowedPaths,
    /// Files refused so far, so each is warned about once.
    pub refusals: Refusals,
    /// Wake-ups when a followed file changes.
    pub events: FileEvents,
    /// Read and encode buffers, shared by all tailers.
    pub chunks: ChunkPool,
    /// Where reads run: inline, or on reader threads with a bound.
    pub reads: Reads,
    /// Turns at the `max_open_files` budget.
    pub open_files: OpenFiles,
    /// Knobs.
    pub settings: TailSettings,
}

/// Why a tailer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum TailEnd {
    /// Asked to stop.
    Cancelled,
    /// The path does not exist (any more) and nothing is left to read.
    Gone,
    /// Another tailer reads this file for this topic.
    Busy,
    /// The path resolves outside `allowed_paths`, is not a regular file, or cannot be
    /// opened (warned about and counted by [`Refusals`]).
    Refused,
    /// No descriptor was left to open it (more than the limit is in use, e.g. by other
    /// processes); the path is tried again at the next scan.
    NoDescriptor,
}

struct Open {
    /// Shared with a reader thread while one reads it.
    file: Arc<File>,
    /// Inline or on reader threads; whether a read of it hangs.
    reads: FileReads,
    identity: FileIdentity,
    /// The content part of its lines' event ids.
    event_key: EventKey,
    /// The file's progress, and where its lines' acknowledgements settle.
    acks: Arc<FileAcks>,
    splitter: LineSplitter,
    /// Joins multi-line events, when the entry asks for it.
    joiner: Option<MultilineJoiner>,
}

impl Open {
    /// Passes each complete line of `chunk` (read at the splitter's position) on, through
    /// the multi-line joiner if there is one, with the key of the lines' event ids.
    fn lines(&mut self, chunk: &[u8], mut emit: impl FnMut(&EventKey, Line<'_>)) {
        let Open {
            file,
            splitter,
            joiner,
            event_key,
            ..
        } = self;
        if event_key.has_gap(splitter.position()) {
            // The read at open failed: try again, so ids stay stable.
            let _ = event_key.fill(file, splitter.position());
        }
        event_key.extend(splitter.position(), chunk);
        let key = &*event_key;
        let mut emit = |l: Line<'_>| emit(key, l);
        match joiner {
            Some(j) => splitter.push(chunk, |l| j.push(l, &mut emit)),
            None => splitter.push(chunk, emit),
        }
    }

    /// Passes on what is held back because the file will not grow any more: the
    /// unterminated last line and the event being joined.
    fn finish(&mut self, mut emit: impl FnMut(&EventKey, Line<'_>)) {
        let Open {
            splitter,
            joiner,
            event_key,
            ..
        } = self;
        let key = &*event_key;
        let mut emit = |l: Line<'_>| emit(key, l);
        match joiner {
            Some(j) => {
                splitter.finish(|l| j.push(l, &mut emit));
                j.flush(emit);
            }
            None => splitter.finish(emit),
        }
    }
}

/// A tailer for one path and topic.
pub struct Tailer {
    ctx: Arc<TailContext>,
    path: PathBuf,
    topic: String,
    encoder: FileEncoder,
    multiline: Option<Multiline>,
}

impl Tailer {
    /// A tailer for `path`, one of the files of `entry`.
    pub fn new(ctx: Arc<TailContext>, path: PathBuf, entry: &CollectEntry) -> Self {
        let encoder = FileEncoder::new(&ctx.host, &path.to_string_lossy(), entry.fields.clone());
        Tailer {
            ctx,
            path,
            topic: entry.topic.clone(),
            encoder,
            multiline: entry.multiline.clone(),
        }
    }

    fn splitter(&self, offset: u64) -> LineSplitter {
        let s = &self.ctx.settings;
        LineSplitter::bounded(offset, s.max_line_bytes, s.held_back.clone())
    }

    fn joiner(&self) -> Option<MultilineJoiner> {
        let m = self.multiline.as_ref()?;
        let s = &self.ctx.settings;
        MultilineJoiner::bounded(m, s.max_line_bytes, s.held_back.clone())
    }

    /// Runs until cancelled or until the path is gone and drained.
    pub async fn run(mut self, cancel: CancellationToken) -> TailEnd {
        let mut current: Option<Open> = None;
        let mut lingering: Vec<(Open, Instant)> = Vec::new();
        // The right to hold files of the path open (see `turns`), and what the path was
        // when the file was closed to give it back.
        let mut turn: Option<Turn> = None;
        let mut set_aside: Option<AtPath> = None;
        // When the file last grew, for `Turn::should_yield`.
        let mut grew = Instant::now();
        // The poll below is what guarantees progress; the wake-up makes it prompt.
        let changed = self.ctx.events.watch_file(&self.path);
        let end = loop {
            if cancel.is_cancelled() {
                break TailEnd::Cancelled;
            }
            if current.is_none() {
                // Closed while idle: a turn is asked for only once there is something to read.
                if let Some(was) = set_aside.as_mut()
                    && was.is_now(&self.path)
                {
                    if was.kept.elapsed() >= KEEP_CHECKPOINT_EVERY {
                        // Still followed: not one of the checkpoints forgotten after a week.
                        self.ctx.store.keep(&self.topic, &was.identity);
                        was.kept = Instant::now();
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break TailEnd::Cancelled,
                        _ = tokio::time::sleep(self.ctx.settings.poll_interval) => {}
                        _ = changed.changed() => {}
                    }
                    continue;
                }
                set_aside = None;
                if turn.is_none() {
                    turn = tokio::select! {
                        t = self.ctx.open_files.take() => Some(t),
                        _ = cancel.cancelled() => break TailEnd::Cancelled,
                    };
                }
                grew = Instant::now();
                match self.open() {
                    Ok((open, leftovers)) => {
                        current = Some(open);
                        // Older content first: it was written before the current file's.
                        if let Err(Cancelled) = self.drain_leftovers(leftovers, &cancel).await {
                            break TailEnd::Cancelled;
                        }
                    }
                    Err(end) if lingering.is_empty() => break end,
                    Err(_) => {}
                }
            }
            let mut busy = false;
            if let Some(mut open) = current.take() {
                match self.read_some(&mut open, &cancel).await {
                    Err(Cancelled) => {
                        current = Some(open);
                        break TailEnd::Cancelled;
                    }
                    Ok(true) => {
                        busy = true;
                        grew = Instant::now();
                        current = Some(open);
                    }
                    Ok(false) => {
                        if self.still_at_path(&mut open, &cancel).await {
                            current = Some(open);
                        } else {
                            log::info!(
                                "{}: renamed or deleted; drained, following the path from now on",
                                self.path.display()
                            );
                            lingering.push((
                                open,
                                Instant::now() + self.ctx.settings.close_renamed_after,
                            ));
                            // Open the successor right away: no gap, and order is kept.
                            continue;
                        }
                    }
                }
            }
            let mut i = 0;
            while i < lingering.len() {
                match self.read_some(&mut lingering[i].0, &cancel).await {
                    Err(Cancelled) => break,
                    Ok(true) => {
                        busy = true;
                        lingering[i].1 = Instant::now() + self.ctx.settings.close_renamed_after;
                        i += 1;
                    }
                    // A stalled file may hold more: kept until its hung read returns.
                    Ok(false)
                        if Instant::now() >= lingering[i].1 && !lingering[i].0.reads.stalled() =>
                    {
                        let (mut open, _) = lingering.swap_remove(i);
                        if self.ship_rest(&mut open, &cancel).await.is_err() {
                            lingering.push((open, Instant::now()));
                            break;
                        }
                        self.close(open);
                    }
                    Ok(false) => i += 1,
                }
            }
            if cancel.is_cancelled() {
                break TailEnd::Cancelled;
            }
            // Another file waits for a turn: give ours back if this one is idle, or has
            // had it long enough (see `turns`).
            if lingering.is_empty()
                && turn.as_ref().is_some_and(|t| t.should_yield(grew))
                && let Some(mut open) = current.take()
            {
                if let Err(Cancelled) = self.give_back(&mut open, &cancel).await {
                    current = Some(open);
                    break TailEnd::Cancelled;
                }
                set_aside = Some(AtPath::of(&open));
                self.ctx.store.set_aside(open.acks.progress());
                self.ctx.metrics.files_watched.dec();
                drop(open);
                turn = None;
                log::debug!(
                    "{}: closed to give its turn to another file",
                    self.path.display()
                );
                continue;
            }
            if !busy {
                // A multi-line event waiting for more lines is shipped at its timeout.
                let wait = current
                    .iter()
                    .chain(lingering.iter().map(|(o, _)| o))
                    .filter_map(|o| o.joiner.as_ref()?.due_in())
                    .fold(self.ctx.settings.poll_interval, Duration::min);
                tokio::select! {
                    _ = cancel.cancelled() => break TailEnd::Cancelled,
                    _ = tokio::time::sleep(wait) => {}
                    _ = changed.changed() => {}
                }
            }
        };
        if let Some(open) = current {
            self.close(open);
        }
        for (open, _) in lingering {
            self.close(open);
        }
        end
    }

    /// Opens the path and claims it; also claims the siblings holding the unread rest of
    /// content that was at the path when the agent last read it (see
    /// [`CheckpointStore::leftovers`]).
    fn open(&self) -> Result<(Open, Vec<Open>), TailEnd> {
        let ctx = &self.ctx;
        let file = match ctx.refusals.open(&self.path, &ctx.allowed, &ctx.metrics) {
            Ok(opened) => opened.file,
            Err(OpenError::NotFound) => return Err(TailEnd::Gone),
            Err(OpenError::Refused(_)) => return Err(TailEnd::Refused),
            Err(OpenError::NoDescriptor) => {
                log::warn!(
                    "{}: out of file descriptors (lower [agent] max_open_files, or raise the \
                     hard limit); trying again at the next scan",
                    self.path.display()
                );
                return Err(TailEnd::NoDescriptor);
            }
        };
        let path = self.path.to_string_lossy();
        let leftovers = self.ctx.store.leftovers(&self.topic, &path, &file);
        // Generations rotated away before they were finished: found before the file at the
        // path is claimed, so that it is never mistaken for one of them.
        let unfinished = match file.metadata() {
            Ok(current) => generations::unfinished(
                &self.path,
                &current,
                &leftovers,
                |id| self.ctx.store.is_live(&self.topic, id),
                |p| checked_open(ctx, p),
            ),
            Err(_) => Vec::new(),
        };
        let claim = self
            .ctx
            .store
            .claim(&self.topic, &path, &file)
            .map_err(|e| {
                log::warn!("{}: cannot read identity: {e}", self.path.display());
                TailEnd::Refused
            })?;
        let (progress, offset) = match claim {
            Claim::Granted { progress, offset } => (progress, offset),
            Claim::Busy => return Err(TailEnd::Busy),
        };
        let identity = progress.committed().0;
        log::info!(
            "{}: tailing for topic {} from offset {offset}",
            self.path.display(),
            self.topic
        );
        self.ctx.metrics.files_watched.inc();
        let event_key = resumed_key(&self.path, &file, &identity, offset);
        let current = Open {
            reads: ctx.reads.for_file(&file, &self.path),
            file: Arc::new(file),
            identity,
            event_key,
            acks: self.ctx.shipper.acks_for(progress),
            splitter: self.splitter(offset),
            joiner: self.joiner(),
        };
        let leftovers = unfinished
            .into_iter()
            .filter_map(|g| self.open_generation(g))
            .collect();
        Ok((current, leftovers))
    }

    /// Claims a generation rotated away before it was finished, to be read before the file
    /// now at the path.
    fn open_generation(&self, g: Pending) -> Option<Open> {
        let Pending { sibling, offset } = g;
        let path = self.path.to_string_lossy();
        let claim = self
            .ctx
            .store
            .claim_leftover(&self.topic, &path, &sibling.file, offset)
            .ok()?;
        let Claim::Granted { progress, offset } = claim else {
            return None;
        };
        log::warn!(
            "{}: was rotated while the agent was not reading it; shipping {} from offset \
             {offset} first",
            self.path.display(),
            sibling.path.display()
        );
        let file = sibling.file;
        self.ctx.metrics.files_watched.inc();
        Some(Open {
            reads: self.ctx.reads.for_file(&file, &sibling.path),
            event_key: resumed_key(&sibling.path, &file, &progress.committed().0, offset),
            file: Arc::new(file),
            identity: progress.committed().0,
            acks: self.ctx.shipper.acks_for(progress),
            splitter: self.splitter(offset),
            joiner: self.joiner(),
        })
    }

    /// Reads each leftover to its end, ships its last line, and releases it.
    async fn drain_leftovers(
        &mut self,
        leftovers: Vec<Open>,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let mut rest = leftovers.into_iter();
        while let Some(mut open) = rest.next() {
            let drained = self.drain(&mut open, cancel).await;
            self.close(open);
            if drained.is_err() {
                rest.for_each(|o| self.close(o));
                return drained;
            }
        }
        Ok(())
    }

    /// Reads a file that will not grow any more to its end and ships everything.
    async fn drain(
        &mut self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        loop {
            if self.read_some(open, cancel).await? {
                continue;
            }
            if !open.reads.stalled() {
                break;
            }
            // Its end is not known yet: wait for the hung read instead of cutting it short.
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(self.ctx.settings.poll_interval) => {}
            }
        }
        self.ship_rest(open, cancel).await
    }

    fn close(&self, open: Open) {
        self.ctx.store.release(open.acks.progress());
        self.ctx.metrics.files_watched.dec();
    }

    /// Whether `path` still names the open file. A path on a hung mount is not stat'ed on
    /// the runtime thread; while that file is stalled it is taken to be still there.
    async fn still_at_path(&self, open: &mut Open, cancel: &CancellationToken) -> bool {
        let stat = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
        // Local files keep the plain inline stat (no closure moved, no path cloned).
        let at_path = if open.reads.is_blocking() {
            let path = self.path.clone();
            let on_thread = move || stat(&path);
            let run = self
                .ctx
                .reads
                .run(&mut open.reads, &self.path, cancel, on_thread);
            run.await
        } else {
            Outcome::Done(stat(&self.path))
        };
        match at_path {
            Outcome::Done(Ok((dev, ino))) => dev == open.identity.dev && ino == open.identity.ino,
            Outcome::Done(Err(_)) => false,
            Outcome::Stalled | Outcome::Cancelled => true,
        }
    }

    /// Reads and sends one chunk; `Ok(false)` at end of file (after checking for truncation).
    async fn read_some(
        &mut self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<bool, Cancelled> {
        let mut chunk = self.lease(cancel).await?;
        let pos = open.splitter.position();
        // A truncation between our last look and this read would make the buffer hold bytes
        // of the new content: the head check after the read catches that before anything is
        // sent. A file whose read hangs (stalled) is idle until the read returns.
        let Open {
            file,
            reads,
            identity,
            ..
        } = open;
        // A read on a reader thread may take up to its bound: the chunk's turn is lent
        // meanwhile, so other files keep flowing.
        let loan = reads.is_blocking().then(|| self.ctx.chunks.lend_turn());
        let identity = *identity;
        let step = self.ctx.reads.read_with(
            reads,
            file,
            &mut chunk.read,
            &self.path,
            cancel,
            move |f, b| reads::step(f, b, pos, &identity),
        );
        let step = step.await;
        drop(loan);
        let (n, head_ok, size) = match step {
            Outcome::Done(s) => match s.read {
                Ok(n) => (n, s.head_ok, s.size),
                Err(e) => {
                    log::warn!("{}: read failed at offset {pos}: {e}", self.path.display());
                    return Ok(false);
                }
            },
            Outcome::Stalled => return Ok(false),
            Outcome::Cancelled => return Err(Cancelled),
        };
        if !head_ok || size < pos {
            drop(chunk);
            self.truncated(open, cancel).await?;
            return Ok(true);
        }
        if n == 0 {
            self.ship_due_event(open, &mut chunk, cancel).await?;
            // Only a file resumed past its (short) fingerprint has a gap that reads will not
            // fill; everything else grows the fingerprint from what was read, below.
            let covers = u64::from(open.identity.fingerprint_len);
            if covers < pos.min(FINGERPRINT_BYTES as u64)
                && let Outcome::Done(Ok((id, _))) = self.identity_of(open, cancel).await
            {
                open.identity = id;
            }
            open.acks.progress().observe(open.identity, size);
            return Ok(false);
        }
        // The size on every read, not only at the end of the file: during a catch-up the
        // reading waits for acknowledgements long before it reaches the end, and the lag
        // (`send_lag_bytes`, the catch-up's progress) is measured against this size.
        // (u64::MAX: the size could not be read; the last one known stays.)
        open.identity.extend(pos, &chunk.read[..n]);
        if size != u64::MAX {
            open.acks.progress().observe(open.identity, size);
        }
        self.ship_read(open, &mut chunk, n, cancel).await?;
        Ok(true)
    }

    /// [`FileIdentity::of`] the open file, on a reader thread for a remote one.
    async fn identity_of(
        &self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Outcome<std::io::Result<(FileIdentity, u64)>> {
        let file = Arc::clone(&open.file);
        let of = move || FileIdentity::of(&file);
        self.ctx
            .reads
            .run(&mut open.reads, &self.path, cancel, of)
            .await
    }

    async fn lease(&self, cancel: &CancellationToken) -> Result<ChunkLease, Cancelled> {
        tokio::select! {
            chunk = self.ctx.chunks.lease() => Ok(chunk),
            _ = cancel.cancelled() => Err(Cancelled),
        }
    }

    /// Ships the rest of the old content from the copy, waits until it is acknowledged,
    /// then restarts at 0.
    async fn truncated(
        &mut self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let pos = open.splitter.position();
        log::info!(
            "{}: truncated (copytruncate?) at offset {pos}",
            self.path.display()
        );
        if let Some(copy) = find_copy(&self.ctx, &self.path, &open.identity, pos) {
            let copy = Arc::new(copy);
            let mut at = pos;
            loop {
                let mut chunk = self.lease(cancel).await?;
                let loan = open
                    .reads
                    .is_blocking()
                    .then(|| self.ctx.chunks.lend_turn());
                let read = self.ctx.reads.read_with(
                    &mut open.reads,
                    &copy,
                    &mut chunk.read,
                    &self.path,
                    cancel,
                    move |f, b| reads::pread(f, b, at),
                );
                let read = read.await;
                drop(loan);
                let n = match read {
                    Outcome::Done(Ok(0) | Err(_)) => break,
                    Outcome::Done(Ok(n)) => n,
                    // Not reset yet: the truncation is seen again once reads answer, and
                    // the copy is read on from where this stopped.
                    Outcome::Stalled => return Ok(()),
                    Outcome::Cancelled => return Err(Cancelled),
                };
                at += n as u64;
                self.ship_read(open, &mut chunk, n, cancel).await?;
            }
        }
        self.ship_rest(open, cancel).await?;
        // The checkpoint must not mix the old content's offsets with the new content's.
        self.wait_acknowledged(open, cancel).await?;
        if let Outcome::Done(Ok((id, _))) = self.identity_of(open, cancel).await {
            open.identity = id;
            open.acks.progress().reset(id);
        }
        open.splitter.reset(0);
        open.event_key = EventKey::new();
        Ok(())
    }

    /// Readies `open` to be closed so that another file gets its turn: ships the
    /// multi-line event being joined (as its timeout would: reopening only when the file
    /// changes would otherwise hold it back for as long as the file is quiet), then waits
    /// until every line handed over is acknowledged, so its checkpoint is exact.
    async fn give_back(
        &self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        if open.joiner.as_ref().is_some_and(|j| j.due_in().is_some()) {
            let mut chunk = self.lease(cancel).await?;
            self.ship_joined(open, &mut chunk, cancel).await?;
        }
        self.wait_acknowledged(open, cancel).await
    }

    /// Waits until every line of `open` handed to the sink is acknowledged.
    async fn wait_acknowledged(
        &self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        while open.acks.progress().in_flight() > 0 {
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        Ok(())
    }

    /// Ships the lines completed by the first `n` bytes of the chunk's read buffer.
    async fn ship_read(
        &self,
        open: &mut Open,
        chunk: &mut ChunkLease,
        n: usize,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        self.ctx.metrics.bytes_read.inc_by(n as u64);
        let chunk = &mut **chunk;
        let ts = chunk.batch.start();
        open.lines(&chunk.read[..n], |key, l| {
            chunk.batch.push(&self.encoder, key, &ts, l)
        });
        self.ctx
            .shipper
            .ship(&open.acks, self.to(), &chunk.batch, cancel)
            .await
    }

    /// Ships the multi-line event being joined once no line was added for its timeout.
    async fn ship_due_event(
        &self,
        open: &mut Open,
        chunk: &mut ChunkLease,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        if open.joiner.as_ref().and_then(|j| j.due_in()) != Some(Duration::ZERO) {
            return Ok(());
        }
        self.ship_joined(open, chunk, cancel).await
    }

    /// Ships the multi-line event being joined, whatever its timeout says.
    async fn ship_joined(
        &self,
        open: &mut Open,
        chunk: &mut ChunkLease,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let Some(joiner) = open.joiner.as_mut() else {
            return Ok(());
        };
        let chunk = &mut **chunk;
        let ts = chunk.batch.start();
        let key = &open.event_key;
        joiner.flush(|l| chunk.batch.push(&self.encoder, key, &ts, l));
        self.ctx
            .shipper
            .ship(&open.acks, self.to(), &chunk.batch, cancel)
            .await
    }

    /// Ships what content that will not grow any more holds back: its unterminated last
    /// line and the multi-line event being joined.
    async fn ship_rest(
        &mut self,
        open: &mut Open,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let mut chunk = self.lease(cancel).await?;
        let ts = chunk.batch.start();
        open.finish(|key, l| chunk.batch.push(&self.encoder, key, &ts, l));
        self.ctx
            .shipper
            .ship(&open.acks, self.to(), &chunk.batch, cancel)
            .await
    }

    fn to(&self) -> Destination<'_> {
        Destination {
            topic: &self.topic,
            key: self.encoder.key(),
            path: &self.path,
        }
    }
}

/// The event-id key of content resumed at `offset` (see [`EventKey`]): its head is read from
/// the file. Should that read fail (and the retry before the next read too), lines are still
/// shipped, with ids of this file's own ([`EventKey::unread`]).
fn resumed_key(path: &Path, file: &File, identity: &FileIdentity, offset: u64) -> EventKey {
    // A head that is not the checkpointed content's (rewritten since) must not name the
    // old content's lines: they would take the ids of the new content's lines.
    EventKey::resumed(file, offset)
        .and_then(|key| {
            key.agrees_with(identity)
                .then_some(key)
                .ok_or_else(|| std::io::Error::other("the head changed"))
        })
        .unwrap_or_else(|e| {
            log::warn!(
                "{}: cannot read the head for event ids: {e}",
                path.display()
            );
            EventKey::unread(identity)
        })
}

/// What a path named when its file was closed to give the turn back: the file is worth
/// reopening once the path names another inode, or the file's size or modification time
/// changed (a `stat`, no descriptor).
struct AtPath {
    identity: FileIdentity,
    /// Bytes read; a file closed before its end (it had its turn long enough) differs
    /// from it at once, so it queues again right away.
    len: u64,
    modified: Option<std::time::SystemTime>,
    /// When its checkpoint was last marked as still in use.
    kept: Instant,
}

/// How often the checkpoint of a file closed for its turn is marked as still in use.
const KEEP_CHECKPOINT_EVERY: Duration = Duration::from_secs(3600);

impl AtPath {
    fn of(open: &Open) -> Self {
        let meta = open.file.metadata().ok();
        AtPath {
            identity: open.identity,
            len: open.splitter.position(),
            modified: meta.and_then(|m| m.modified().ok()),
            kept: Instant::now(),
        }
    }

    /// Whether `path` still names this file, unchanged.
    fn is_now(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| {
            let id = &self.identity;
            (m.dev(), m.ino(), m.len()) == (id.dev, id.ino, self.len)
                && m.modified().ok() == self.modified
        })
    }
}

/// The copy a copytruncate left next to `path`: head matching the fingerprint of the content
/// we were reading, another inode, and longer than what we read.
fn find_copy(ctx: &TailContext, path: &Path, identity: &FileIdentity, pos: u64) -> Option<File> {
    let copy = generations::siblings(path, |p| checked_open(ctx, p))
        .into_iter()
        .find(|s| {
            !(s.meta.ino() == identity.ino && s.meta.dev() == identity.dev)
                && s.meta.len() > pos
                && identity.head_matches(&s.file).unwrap_or(false)
        })?;
    log::info!(
        "{}: reading the rest of the truncated content from {}",
        path.display(),
        copy.path.display()
    );
    Some(copy.file)
}

/// A sibling opened the way the followed file is: allowlist checked on the opened file,
/// regular files only, refusals counted once.
fn checked_open(ctx: &TailContext, path: &Path) -> Option<(File, std::fs::Metadata)> {
    let opened = ctx.refusals.open(path, &ctx.allowed, &ctx.metrics).ok()?;
    Some((opened.file, opened.metadata))
}
