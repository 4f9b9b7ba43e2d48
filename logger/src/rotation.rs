//! File rotation: when to rotate, what the rotated file is called, and the background
//! upkeep (gzip, retention) that runs off the writer thread.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::format::{TimeZoneKind, civil};

/// A source of wall-clock time, injectable for tests of time-based rotation.
pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        crate::clock::now_us()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `us` microseconds since the epoch.
    pub fn new(us: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(us)))
    }
    /// Sets the time.
    pub fn set_us(&self, us: i64) {
        self.0.store(us, Ordering::SeqCst)
    }
    /// Moves the time forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_micros() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a rotated file is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suffix {
    /// `app.log.20261125-140000` (rotation time; `.1`, `.2` added on a clash).
    #[default]
    Timestamp,
    /// `app.log.1` is the newest, older ones shift up.
    Index,
}

/// When to rotate and what to keep. No trigger set means never rotate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RotationPolicy {
    /// Rotate before a line would take the file past this many bytes.
    pub max_size: Option<u64>,
    /// Rotate at every multiple of this period, aligned to the clock (`1h` rotates at
    /// the top of each hour, `1d` at midnight in `align`'s zone).
    pub period: Option<Duration>,
    /// Time zone the period boundaries and timestamp suffixes are aligned to.
    pub align: TimeZoneKind,
    /// Naming of rotated files.
    pub suffix: Suffix,
    /// Keep at most this many rotated files (oldest deleted first).
    pub keep: Option<usize>,
    /// Delete rotated files older than this.
    pub max_age: Option<Duration>,
    /// Gzip rotated files in the background (`app.log.20261125-140000.gz`).
    pub gzip: bool,
}

impl RotationPolicy {
    /// Whether any trigger is set.
    pub fn rotates(&self) -> bool {
        self.max_size.is_some() || self.period.is_some()
    }

    fn offset_us(&self, now_us: i64) -> i64 {
        match self.align {
            TimeZoneKind::Utc => 0,
            TimeZoneKind::Local => {
                use chrono::{Offset, TimeZone};
                match chrono::Local.timestamp_opt(now_us.div_euclid(1_000_000), 0) {
                    chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                        t.offset().fix().local_minus_utc() as i64 * 1_000_000
                    }
                    chrono::LocalResult::None => 0,
                }
            }
        }
    }

    /// The first period boundary strictly after `t_us`.
    pub fn next_boundary(&self, t_us: i64) -> Option<i64> {
        let p = self.period?.as_micros().max(1) as i64;
        let off = self.offset_us(t_us);
        Some((t_us + off).div_euclid(p) * p + p - off)
    }

    pub(crate) fn stamp(&self, t_us: i64) -> String {
        let (y, mo, d, h, mi, s) = civil((t_us + self.offset_us(t_us)).div_euclid(1_000_000));
        format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
    }
}

/// Work for the housekeeper thread.
enum Job {
    /// A rotated file, already renamed away from the live path.
    Rotated(PathBuf),
    Stop,
}

/// Runs gzip, index shifting and retention on its own thread so the writer thread
/// only pays for one rename per rotation.
pub(crate) struct Housekeeper {
    tx: Sender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeper {
    pub(crate) fn start(live: PathBuf, policy: RotationPolicy) -> io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("logger-rotate".into())
            .spawn(move || housekeep(rx, &live, &policy))?;
        Ok(Housekeeper {
            tx,
            thread: Some(thread),
        })
    }

    pub(crate) fn rotated(&self, path: PathBuf) {
        let _ = self.tx.send(Job::Rotated(path));
    }

    /// Finishes queued work and stops the thread.
    pub(crate) fn stop(&mut self) {
        let _ = self.tx.send(Job::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Housekeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn housekeep(rx: Receiver<Job>, live: &Path, policy: &RotationPolicy) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Stop => return,
            Job::Rotated(p) => {
                if let Err(e) = finish_rotation(live, policy, &p) {
                    eprintln!(
                        "logger: upkeep of rotated file {} failed: {e}; the file is left as it is",
                        p.display()
                    );
                }
                if let Err(e) = apply_retention(live, policy, SystemTime::now()) {
                    eprintln!(
                        "logger: retention for {} failed: {e}; old files are kept",
                        live.display()
                    );
                }
            }
        }
    }
}

fn finish_rotation(live: &Path, policy: &RotationPolicy, rotated: &Path) -> io::Result<()> {
    let target = match policy.suffix {
        Suffix::Timestamp => rotated.to_path_buf(),
        Suffix::Index => {
            let existing = rotated_files(live)?;
            let mut indexed: Vec<(u64, PathBuf)> = existing
                .into_iter()
                .filter_map(|(p, _)| index_of(live, &p).map(|i| (i, p)))
                .collect();
            indexed.sort_by_key(|e| std::cmp::Reverse(e.0));
            for (i, p) in indexed {
                let gz = p.to_string_lossy().ends_with(".gz");
                let to = with_suffix(live, &format!(".{}{}", i + 1, if gz { ".gz" } else { "" }));
                fs::rename(&p, &to)?;
            }
            let to = with_suffix(live, ".1");
            fs::rename(rotated, &to)?;
            to
        }
    };
    if policy.gzip {
        gzip_file(&target)?;
    }
    Ok(())
}

/// Compresses `p` to `p.gz` (via a temporary name, so a reader never sees half a gzip)
/// and removes `p`.
pub(crate) fn gzip_file(p: &Path) -> io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", p.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", p.display()));
    {
        let mut input = fs::File::open(p)?;
        let out = fs::File::create(&tmp)?;
        let mut enc =
            flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::fast());
        io::copy(&mut input, &mut enc)?;
        let w = enc.finish()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&tmp, &gz)?;
    fs::remove_file(p)
}

pub(crate) fn with_suffix(live: &Path, suffix: &str) -> PathBuf {
    let mut s = live.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn index_of(live: &Path, p: &Path) -> Option<u64> {
    let name = p.file_name()?.to_str()?;
    let base = live.file_name()?.to_str()?;
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    rest.parse().ok()
}

/// Rotated siblings of `live` (`live.*`, not temporary files), with their mtimes.
pub(crate) fn rotated_files(live: &Path) -> io::Result<Vec<(PathBuf, SystemTime)>> {
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(base) = live.file_name().and_then(|b| b.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{base}.");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&prefix) || name.ends_with(".tmp") || name.contains(".rotating-") {
            continue;
        }
        let mtime = entry.metadata()?.modified()?;
        out.push((entry.path(), mtime));
    }
    Ok(out)
}

/// Age order of timestamp names when mtimes tie: `(stamp, clash index)`, so that
/// `app.log.20261125-140000.10` is newer than `….9`.
fn name_order(p: &Path) -> (String, u64) {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    match name.rsplit_once('.') {
        Some((head, n)) if n.chars().all(|c| c.is_ascii_digit()) && !head.ends_with(".log") => {
            (head.to_string(), n.parse().unwrap_or(0))
        }
        _ => (name.to_string(), 0),
    }
}

/// Deletes rotated files beyond `keep` (oldest first) and older than `max_age`.
pub(crate) fn apply_retention(
    live: &Path,
    policy: &RotationPolicy,
    now: SystemTime,
) -> io::Result<()> {
    if policy.keep.is_none() && policy.max_age.is_none() {
        return Ok(());
    }
    let mut files = rotated_files(live)?;
    // Newest first; names break ties (timestamp and index names both sort by age).
    files.sort_by(|a, b| match policy.suffix {
        Suffix::Index => index_of(live, &a.0).cmp(&index_of(live, &b.0)),
        Suffix::Timestamp => {
            b.1.cmp(&a.1)
                .then_with(|| name_order(&b.0).cmp(&name_order(&a.0)))
        }
    });
    for (i, (p, mtime)) in files.iter().enumerate() {
        let too_many = policy.keep.is_some_and(|k| i >= k);
        let too_old = policy
            .max_age
            .is_some_and(|age| now.duration_since(*mtime).is_ok_and(|d| d > age));
        if too_many || too_old {
            fs::remove_file(p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clash_indexes_sort_numerically() {
        let a = name_order(Path::new("/x/app.log.20261125-140000.9"));
        let b = name_order(Path::new("/x/app.log.20261125-140000.10.gz"));
        let c = name_order(Path::new("/x/app.log.20261125-140000"));
        assert!(c < a && a < b, "{c:?} {a:?} {b:?}");
    }

    #[test]
    fn boundaries_align_to_the_period() {
        let p = RotationPolicy {
            period: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        // 2026-11-25T14:20:00Z -> 15:00:00Z
        let t = 1_795_616_400_000_000;
        assert_eq!(p.next_boundary(t), Some(1_795_618_800_000_000));
        assert_eq!(
            p.next_boundary(1_795_618_800_000_000),
            Some(1_795_622_400_000_000)
        );
        assert_eq!(p.stamp(1_795_618_800_000_000), "20261125-150000");
    }
}
