//! A file, written in batches, with optional rotation. The live file always keeps its
//! path; rotated files get a suffix (see [`crate::rotation`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::outputs::Output;
use crate::record::Record;
use crate::rotation::{Clock, Housekeeper, RotationPolicy, Suffix, with_suffix};

/// How often the live path is checked for having been deleted or moved.
const REOPEN_CHECK: Duration = Duration::from_millis(500);

/// Appends lines to a file; see the module docs.
pub struct FileOutput {
    path: PathBuf,
    file: File,
    /// (device, inode) of the open file, to notice a delete or move of the path.
    id: (u64, u64),
    buf: Vec<u8>,
    buf_limit: usize,
    /// Bytes in the live file, including what is still buffered.
    size: u64,
    policy: RotationPolicy,
    clock: Option<Arc<dyn Clock>>,
    next_boundary: Option<i64>,
    housekeeper: Option<Housekeeper>,
    rotations: u64,
    last_check: Instant,
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
            policy,
            clock,
            housekeeper,
            rotations: 0,
            last_check: Instant::now(),
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

    fn write_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r
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
        if !self.policy.rotates() {
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

    fn after_append(&mut self, len: usize) -> io::Result<()> {
        self.size += len as u64;
        if self.buf.len() >= self.buf_limit {
            self.write_buf()?;
        }
        Ok(())
    }
}

impl Output for FileOutput {
    fn write(&mut self, line: &[u8], record: &Record) -> io::Result<()> {
        if let Some((now, by_time)) = self.rotation_due(line.len(), record) {
            self.rotate(now, by_time)?;
        }
        self.buf.extend_from_slice(line);
        self.after_append(line.len())
    }

    fn write_with(
        &mut self,
        record: &Record,
        format: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<io::Result<()>> {
        let start = self.buf.len();
        format(&mut self.buf);
        let len = self.buf.len() - start;
        if let Some((now, by_time)) = self.rotation_due(len, record) {
            // The new line must not reach the old file: set it aside while rotating.
            let line = self.buf.split_off(start);
            if let Err(e) = self.rotate(now, by_time) {
                return Some(Err(e));
            }
            self.buf.extend_from_slice(&line);
        }
        Some(self.after_append(len))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buf()?;
        if self.last_check.elapsed() >= REOPEN_CHECK {
            self.check_reopen()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        if self.last_check.elapsed() >= REOPEN_CHECK {
            self.check_reopen()?;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let r = self.write_buf();
        if let Some(mut h) = self.housekeeper.take() {
            h.stop();
        }
        r
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}
