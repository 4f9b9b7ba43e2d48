//! A file, written in batches, with optional rotation. The live file always keeps its
//! path; rotated files get a suffix (see [`crate::rotation`]).
//!
//! When the disk refuses a write (full, quota, I/O error), the records not yet written
//! stay in the buffer, whole and in order, and are retried with back-off (10 ms doubling
//! to 1 s, on the writer's flushes and upkeep, never in a loop): a record cut halfway is
//! completed by the retry. The kept bytes are bounded ([`keep_limit`]); records past the
//! bound are dropped. Each record that meets the failure counts once in `write_errors`;
//! each one given up on (past the bound, or still unwritten at close) also counts in
//! `records_lost`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::outputs::{Output, OutputCounter, OutputCounters, RecordsFailed};
use crate::record::Record;
use crate::rotation::{Clock, Housekeeper, RotationPolicy, Suffix, with_suffix};

/// How often the live path is checked for having been deleted or moved.
const REOPEN_CHECK: Duration = Duration::from_millis(500);
/// First and longest wait before writing again to a disk that refused a write.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Bytes kept for a retry while the disk refuses writes: 16 buffers, at least 1 MiB.
pub fn keep_limit(buf_limit: usize) -> usize {
    buf_limit.saturating_mul(16).max(1 << 20)
}

/// The disk refused the last write: when to try again and what it said.
struct Retry {
    at: Instant,
    backoff: Duration,
    os_code: Option<i32>,
    kind: io::ErrorKind,
    text: String,
}

impl Retry {
    fn after(previous: Option<Retry>, e: &io::Error) -> Retry {
        let backoff = previous.map_or(RETRY_MIN, |p| (p.backoff * 2).min(RETRY_MAX));
        Retry {
            at: Instant::now() + backoff,
            backoff,
            os_code: e.raw_os_error(),
            kind: e.kind(),
            text: e.to_string(),
        }
    }

    fn error(&self) -> io::Error {
        match self.os_code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.text.clone()),
        }
    }
}

/// Appends lines to a file; see the module docs.
pub struct FileOutput {
    path: PathBuf,
    file: File,
    /// (device, inode) of the open file, to notice a delete or move of the path.
    id: (u64, u64),
    buf: Vec<u8>,
    buf_limit: usize,
    /// End offset in `buf` of each record it holds: records are counted, and kept whole,
    /// when a write stops halfway.
    ends: Vec<usize>,
    /// Records at the front of `ends` already counted in `write_errors`.
    counted: usize,
    /// Set while the disk refuses writes (the buffer is kept and retried).
    retry: Option<Retry>,
    keep_limit: usize,
    counters: Arc<OutputCounters>,
    /// Bytes in the live file, including what is still buffered.
    size: u64,
    policy: RotationPolicy,
    clock: Option<Arc<dyn Clock>>,
    next_boundary: Option<i64>,
    housekeeper: Option<Housekeeper>,
    rotations: u64,
    last_check: Instant,
    /// Tests: what each write(2) of the buffer does instead of (or before) the real one.
    #[cfg(test)]
    fault: Option<FaultFn>,
}

/// An injected outcome of one write of the buffer (tests).
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// The real write.
    Pass,
    /// Only the first n bytes are written.
    Short(usize),
    /// Nothing is written: ENOSPC.
    NoSpace,
}

/// Where the buffer goes: the file, through the injected fault in tests.
struct FileWriter<'a> {
    file: &'a mut File,
    #[cfg(test)]
    fault: &'a mut Option<FaultFn>,
}

#[cfg(test)]
type FaultFn = Box<dyn FnMut(usize) -> Fault + Send>;

/// The [`FileWriter`] of a `FileOutput`, borrowing only its file (and fault), not its buffer.
macro_rules! file_writer {
    ($out:expr) => {
        FileWriter {
            file: &mut $out.file,
            #[cfg(test)]
            fault: &mut $out.fault,
        }
    };
}

impl Write for FileWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(f) = self.fault.as_mut() {
            match f(b.len()) {
                Fault::Pass => {}
                Fault::Short(n) => return self.file.write(&b[..n.min(b.len())]),
                Fault::NoSpace => return Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            }
        }
        self.file.write(b)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl FileOutput {
    /// Opens (creating it and its directory if needed) `path` for appending.
    /// Fails when the file cannot be opened for writing.
    pub fn open(
        path: impl Into<PathBuf>,
        policy: RotationPolicy,
        clock: Option<Arc<dyn Clock>>,
        buf_limit: usize,
    ) -> io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let (file, meta) = open_append(&path)?;
        let housekeeper = if policy.rotates() {
            Some(Housekeeper::start(path.clone(), policy.clone())?)
        } else {
            None
        };
        let now = match &clock {
            Some(c) => c.now_us(),
            None => crate::clock::now_us(),
        };
        // A file left from an earlier period rotates on the first write, so each
        // rotated file holds one period.
        let mtime_us = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_micros() as i64)
            .unwrap_or(now);
        let since = if meta.len() > 0 {
            mtime_us.min(now)
        } else {
            now
        };
        Ok(FileOutput {
            id: (meta.dev(), meta.ino()),
            size: meta.len(),
            next_boundary: policy.next_boundary(since),
            path,
            file,
            buf: Vec::with_capacity(buf_limit),
            buf_limit,
            ends: Vec::new(),
            counted: 0,
            retry: None,
            keep_limit: keep_limit(buf_limit),
            counters: Arc::new(OutputCounters::default()),
            policy,
            clock,
            housekeeper,
            rotations: 0,
            last_check: Instant::now(),
            #[cfg(test)]
            fault: None,
        })
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many rotations this output has done.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Writes the buffer. What the disk refuses stays buffered (see the module docs).
    fn write_buf(&mut self) -> io::Result<()> {
        let mut done = 0;
        let mut res = Ok(());
        while done < self.buf.len() {
            match file_writer!(self).write(&self.buf[done..]) {
                Ok(0) => {
                    res = Err(io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        self.forget_written(done);
        match &res {
            Ok(()) => self.retry = None,
            Err(e) => self.retry = Some(Retry::after(self.retry.take(), e)),
        }
        res
    }

    /// Drops the first `done` bytes of the buffer, which are in the file.
    fn forget_written(&mut self, done: usize) {
        if done == self.buf.len() {
            self.buf.clear();
            self.ends.clear();
            self.counted = 0;
            return;
        }
        self.buf.drain(..done);
        let whole = self.ends.partition_point(|&end| end <= done);
        self.ends.drain(..whole);
        for end in &mut self.ends {
            *end -= done;
        }
        self.counted = self.counted.saturating_sub(whole);
    }

    /// Writes the buffer unless the disk refused the last write and its back-off has not
    /// passed yet.
    fn write_when_due(&mut self) -> io::Result<()> {
        match &self.retry {
            Some(r) if Instant::now() < r.at => Ok(()),
            _ => self.write_buf(),
        }
    }

    /// The result of a call: while the disk refuses writes, an error naming the records
    /// not counted yet (plus `dropped` ones), so each record counts once in
    /// `write_errors`; otherwise `res`.
    fn finish(&mut self, res: io::Result<()>, dropped: u64) -> io::Result<()> {
        let Some(retry) = &self.retry else {
            return res;
        };
        let records = (self.ends.len() - self.counted) as u64 + dropped;
        self.counted = self.ends.len();
        Err(io::Error::other(RecordsFailed {
            records,
            retried: Some(format!(
                "its records are kept (up to {} KiB) and retried; past that, and at close, \
                 they are dropped (counted in records_lost)",
                self.keep_limit / 1024
            )),
            source: retry.error(),
        }))
    }

    fn rotate(&mut self, now_us: i64, by_time: bool) -> io::Result<()> {
        // Everything buffered belongs to the old file: lines are never split.
        self.write_buf()?;
        let stamp_at = match (by_time, self.next_boundary) {
            (true, Some(b)) => b,
            _ => now_us,
        };
        let target = match self.policy.suffix {
            Suffix::Timestamp => {
                let base = format!(".{}", self.policy.stamp(stamp_at));
                let mut candidate = with_suffix(&self.path, &base);
                let mut n = 1;
                while candidate.exists() || with_suffix(&candidate, ".gz").exists() {
                    candidate = with_suffix(&self.path, &format!("{base}.{n}"));
                    n += 1;
                }
                candidate
            }
            // The housekeeper shifts the indexes; until then the file has a temporary name.
            Suffix::Index => with_suffix(
                &self.path,
                &format!(".rotating-{}-{}", std::process::id(), self.rotations),
            ),
        };
        fs::rename(&self.path, &target)?;
        let (file, meta) = open_append(&self.path)?;
        self.file = file;
        self.id = (meta.dev(), meta.ino());
        self.size = meta.len();
        self.rotations += 1;
        self.next_boundary = self.policy.next_boundary(now_us);
        if let Some(h) = &self.housekeeper {
            h.rotated(target);
        }
        Ok(())
    }

    /// Reopens the path if the open file is no longer the one at the path.
    fn check_reopen(&mut self) -> io::Result<()> {
        self.last_check = Instant::now();
        let same = match fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) == self.id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !same {
            self.write_buf()?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            let (file, meta) = open_append(&self.path)?;
            self.file = file;
            self.id = (meta.dev(), meta.ino());
            self.size = meta.len();
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<(File, fs::Metadata)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

impl FileOutput {
    /// When the next line of `len` bytes must go to a new file: `(now, by_time)`.
    #[inline]
    fn rotation_due(&self, len: usize, record: &Record) -> Option<(i64, bool)> {
        // While the disk refuses writes the kept lines belong to the current file, and a
        // rotation would only try the disk again per record: it waits for the retry.
        if !self.policy.rotates() || self.retry.is_some() {
            return None;
        }
        let now = match &self.clock {
            Some(c) => c.now_us(),
            None => record.time_us,
        };
        let by_time = self.next_boundary.is_some_and(|b| now >= b);
        let by_size = self
            .policy
            .max_size
            .is_some_and(|max| self.size > 0 && self.size + len as u64 > max);
        (by_time || by_size).then_some((now, by_time))
    }

    /// Takes the record of `len` bytes just appended to the buffer (`rotated`: how its
    /// rotation went): writes when the buffer is full, or when a retry is due.
    fn accepted(&mut self, len: usize, rotated: io::Result<()>) -> io::Result<()> {
        if self.retry.is_some() && self.buf.len() > self.keep_limit {
            // Past the bound: this record goes; those kept stay whole and in order.
            self.buf.truncate(self.buf.len() - len);
            self.counters.add(OutputCounter::Lost);
            return self.finish(Ok(()), 1);
        }
        self.ends.push(self.buf.len());
        self.size += len as u64;
        let wrote = if self.retry.is_some() || self.buf.len() >= self.buf_limit {
            self.write_when_due()
        } else {
            Ok(())
        };
        self.finish(wrote.and(rotated), 0)
    }
}

impl Output for FileOutput {
    fn write(&mut self, line: &[u8], record: &Record) -> io::Result<()> {
        let rotated = match self.rotation_due(line.len(), record) {
            Some((now, by_time)) => self.rotate(now, by_time),
            None => Ok(()),
        };
        // Even when the rotation failed the line is kept: it goes to the current file.
        self.buf.extend_from_slice(line);
        self.accepted(line.len(), rotated)
    }

    fn write_with(
        &mut self,
        record: &Record,
        format: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<io::Result<()>> {
        let start = self.buf.len();
        format(&mut self.buf);
        let len = self.buf.len() - start;
        let rotated = match self.rotation_due(len, record) {
            Some((now, by_time)) => {
                // The new line must not reach the old file: set it aside while rotating
                // (a failed rotation keeps older lines, so it goes after them).
                let line = self.buf.split_off(start);
                let r = self.rotate(now, by_time);
                self.buf.extend_from_slice(&line);
                r
            }
            None => Ok(()),
        };
        Some(self.accepted(len, rotated))
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut r = self.write_when_due();
        if r.is_ok() && self.retry.is_none() && self.last_check.elapsed() >= REOPEN_CHECK {
            r = self.check_reopen();
        }
        self.finish(r, 0)
    }

    fn tick(&mut self) -> io::Result<()> {
        // Idle upkeep retries a refused buffer; otherwise buffering is the flush's call.
        let mut r = if self.retry.is_some() {
            self.write_when_due()
        } else {
            Ok(())
        };
        if r.is_ok() && self.retry.is_none() && self.last_check.elapsed() >= REOPEN_CHECK {
            r = self.check_reopen();
        }
        self.finish(r, 0)
    }

    fn close(&mut self) -> io::Result<()> {
        // A last try whatever the back-off; what is still refused is given up on.
        let r = self.write_buf();
        let r = self.finish(r, 0);
        if !self.ends.is_empty() {
            self.counters
                .add_n(OutputCounter::Lost, self.ends.len() as u64);
            self.forget_written(self.buf.len());
            self.retry = None;
        }
        if let Some(mut h) = self.housekeeper.take() {
            h.stop();
        }
        r
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn stats(&self) -> Option<Arc<OutputCounters>> {
        Some(Arc::clone(&self.counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    fn line(i: usize) -> String {
        format!("record {i:04} with some padding to make it longer\n")
    }

    /// An output on a temp file whose writes follow `script`, then pass.
    fn faulty(
        dir: &Path,
        buf_limit: usize,
        script: Vec<Fault>,
    ) -> (FileOutput, Arc<Mutex<VecDeque<Fault>>>) {
        let mut out = FileOutput::open(
            dir.join("app.log"),
            RotationPolicy::default(),
            None,
            buf_limit,
        )
        .unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let s = Arc::clone(&script);
        out.fault = Some(Box::new(move |_| {
            s.lock().unwrap().pop_front().unwrap_or(Fault::Pass)
        }));
        (out, script)
    }

    /// Records a call's error counts in `write_errors` (what the writer adds up).
    fn counted(res: io::Result<()>) -> u64 {
        res.err().map_or(0, |e| RecordsFailed::of(&e).0)
    }

    /// The disk fills in the middle of a line and stays full for a while: every record
    /// arrives once space is back, whole and in order, and each that met the full disk
    /// counts once. Before, the whole buffer was dropped and the cut line stayed cut.
    #[test]
    fn records_refused_by_a_full_disk_are_kept_and_written_once_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let mut script = vec![Fault::Pass, Fault::Short(10)];
        script.extend([Fault::NoSpace; 5]);
        let (mut out, script) = faulty(dir.path(), 256, script);
        let r = Record::for_test("m");
        let mut errors = 0;
        for i in 0..200 {
            errors += counted(out.write(line(i).as_bytes(), &r));
            if i % 20 == 19 {
                errors += counted(out.flush());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert!(
            script.lock().unwrap().is_empty(),
            "the disk was full for a while"
        );
        for _ in 0..200 {
            let res = out.flush();
            let ok = res.is_ok();
            errors += counted(res);
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        out.close().unwrap();
        let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        let want: String = (0..200).map(line).collect();
        assert_eq!(text, want);
        assert!(
            errors > 0 && errors <= 200,
            "each record counts at most once: {errors}"
        );
        assert_eq!(out.counters.snapshot().lost, 0);
    }

    /// The disk stays full past the keep bound: records beyond it are dropped and each
    /// counted once, as a write error and as lost; those kept, and those after space
    /// returns, arrive whole and in order.
    #[test]
    fn past_the_keep_bound_records_are_dropped_and_counted_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = FileOutput::open(
            dir.path().join("app.log"),
            RotationPolicy::default(),
            None,
            256,
        )
        .unwrap();
        out.keep_limit = 1000;
        let full = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = Arc::clone(&full);
        out.fault = Some(Box::new(move |_| {
            if f.load(std::sync::atomic::Ordering::SeqCst) {
                Fault::NoSpace
            } else {
                Fault::Pass
            }
        }));
        let r = Record::for_test("m");
        let mut errors = 0;
        for i in 0..100 {
            errors += counted(out.write(line(i).as_bytes(), &r));
            errors += counted(out.flush());
        }
        let lost = out.counters.snapshot().lost;
        assert!(lost > 50, "most records went past the bound: {lost}");
        full.store(false, std::sync::atomic::Ordering::SeqCst);
        // Past the longest back-off, the next flush writes what was kept.
        std::thread::sleep(RETRY_MAX + Duration::from_millis(100));
        assert!(out.flush().is_ok());
        for i in 100..200 {
            errors += counted(out.write(line(i).as_bytes(), &r));
        }
        out.close().unwrap();
        assert_eq!(
            errors, 100,
            "each record that met the full disk counts once"
        );
        assert_eq!(out.counters.snapshot().lost, lost);
        let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        let kept = 100 - lost as usize;
        let want: String = (0..kept).chain(100..200).map(line).collect();
        assert_eq!(text, want);
    }
}
