//! Collectors: one per file, each reading one part of the host into a [`Sample`].
//!
//! Counters come straight from `/proc` (one `read` per file per collection, into a buffer
//! reused across collections) because sysinfo has no per-mode CPU seconds, no iowait, no
//! per-device I/O counts, no interface drops and no inode counts, and its refreshes read more
//! than we need; load average, uptime and the host's identity come from sysinfo. The numbers
//! behind this choice are in `docs/bench/sysagent.md`.

pub mod cpu;
pub mod disk;
pub mod diskio;
pub mod mem;
pub mod net;
pub mod system;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::CollectConfig;
use crate::sample::{HostInfo, Sample};

/// Why a collector could not read its part of the host.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file under procfs could not be read.
    #[error("cannot read {path}: {source} (is [collect] procfs pointing at a mounted /proc?)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but did not have the expected layout.
    #[error("unexpected content in {path}: {what}")]
    Parse { path: PathBuf, what: String },
    /// sysinfo could not answer.
    #[error("sysinfo could not read {what}: {message}")]
    Sysinfo { what: &'static str, message: String },
}

/// Reads one part of the host into a [`Sample`].
pub trait Collector: Send {
    /// Short name used in logs and in the `collector` label of error counters.
    fn name(&self) -> &'static str;
    /// Fill this collector's part of `sample`; leave it untouched on error.
    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError>;
}

/// A file under procfs kept open and re-read from the start each collection: procfs
/// regenerates the text on every read from offset 0, and this saves the `open`, the `close`
/// and the `statx` that `fs::read_to_string` adds (about a third of a collection's system
/// time, measured). The buffer is kept too, so a steady-state read allocates nothing.
#[derive(Debug)]
pub(crate) struct ProcFile {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl ProcFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        ProcFile {
            path,
            file: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The file's current content.
    pub(crate) fn read(&mut self) -> Result<&str, CollectError> {
        let reread = match self.file.as_mut() {
            Some(f) => fill(f, &mut self.buf).is_ok(),
            None => false,
        };
        if !reread {
            // First read, or the open file went bad (procfs remounted…): open it again.
            self.file = None;
            let mut f = File::open(&self.path).map_err(|source| self.read_error(source))?;
            fill(&mut f, &mut self.buf).map_err(|source| self.read_error(source))?;
            self.file = Some(f);
        }
        if std::str::from_utf8(&self.buf).is_err() {
            // Procfs text is ASCII but a mount point may hold any bytes: replace, not fail.
            self.buf = String::from_utf8_lossy(&self.buf).into_owned().into_bytes();
        }
        Ok(std::str::from_utf8(&self.buf).unwrap_or_default())
    }

    fn read_error(&self, source: std::io::Error) -> CollectError {
        CollectError::Read {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn parse_error(&self, what: impl Into<String>) -> CollectError {
        CollectError::Parse {
            path: self.path.clone(),
            what: what.into(),
        }
    }
}

/// Read `f` from its start into `buf` (cleared first).
fn fill(f: &mut File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(0))?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The result of one [`Collectors::collect`] call.
#[derive(Debug)]
pub struct Collection {
    pub sample: Sample,
    /// Collectors that failed, with why. The sample still holds the others' parts.
    pub errors: Vec<(&'static str, CollectError)>,
}

/// Every enabled collector, run in a fixed order.
pub struct Collectors {
    host: Arc<HostInfo>,
    collectors: Vec<Box<dyn Collector>>,
}

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.collectors.iter().map(|c| c.name()).collect();
        f.debug_struct("Collectors")
            .field("host", &self.host)
            .field("collectors", &names)
            .finish()
    }
}

impl Collectors {
    /// The standard set (cpu, mem, disk, diskio, net, system) configured by `config`.
    pub fn new(config: &CollectConfig, host: Arc<HostInfo>) -> Self {
        let procfs = PathBuf::from(&config.procfs);
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(cpu::CpuCollector::new(&procfs)),
            Box::new(mem::MemCollector::new(&procfs)),
            Box::new(disk::DiskCollector::new(
                &procfs,
                PathBuf::from(&config.rootfs),
                service_kit::split_list(&config.ignore_fs),
            )),
            Box::new(diskio::DiskIoCollector::new(
                &procfs,
                service_kit::split_list(&config.diskio_exclude),
            )),
            Box::new(net::NetCollector::new(
                &procfs,
                service_kit::split_list(&config.net_exclude),
            )),
            Box::new(system::SystemCollector::new(&procfs, config.processes)),
        ];
        Collectors { host, collectors }
    }

    /// A set made of the given collectors (tests, benches).
    pub fn from_parts(host: Arc<HostInfo>, collectors: Vec<Box<dyn Collector>>) -> Self {
        Collectors { host, collectors }
    }

    /// The host every sample is tagged with.
    pub fn host(&self) -> &Arc<HostInfo> {
        &self.host
    }

    /// Run every collector once. One failing collector does not stop the others.
    pub fn collect(&mut self) -> Collection {
        let mut sample = Sample::new(Arc::clone(&self.host));
        let mut errors = Vec::new();
        for c in &mut self.collectors {
            if let Err(e) = c.collect(&mut sample) {
                errors.push((c.name(), e));
            }
        }
        Collection { sample, errors }
    }
}

/// Whether `name` starts with one of `prefixes` (the exclude lists are prefixes: `loop`
/// matches `loop0`…`loop7`).
pub(crate) fn matches_prefix(name: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| name.starts_with(p.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_proc_file_gives_fresh_content_on_each_read() {
        let mut f = ProcFile::new(PathBuf::from("/proc/self/stat"));
        let first: u64 = f
            .read()
            .unwrap()
            .split_whitespace()
            .nth(13)
            .unwrap()
            .parse()
            .unwrap();
        // Burn CPU until utime moves (one tick, 10 ms at most).
        let mut x = 0u64;
        let later = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let t: u64 = f
                .read()
                .unwrap()
                .split_whitespace()
                .nth(13)
                .unwrap()
                .parse()
                .unwrap();
            if t != first {
                break t;
            }
        };
        assert!(later > first);
    }

    #[test]
    fn a_file_replaced_on_disk_is_read_through_the_open_handle_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "one").unwrap();
        let mut f = ProcFile::new(p.clone());
        assert_eq!(f.read().unwrap(), "one");
        std::fs::write(&p, "two, longer").unwrap();
        assert_eq!(f.read().unwrap(), "two, longer");
        std::fs::remove_file(&p).unwrap();
        let mut g = ProcFile::new(p);
        assert!(matches!(g.read(), Err(CollectError::Read { .. })));
    }
}
