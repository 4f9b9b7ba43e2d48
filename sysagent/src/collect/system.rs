//! Load average, uptime, CPU count and process count.
//!
//! Load and uptime come from sysinfo (they are one small file each and sysinfo's static calls
//! read nothing else); the process count is the number of numeric entries of procfs, which
//! costs one directory listing where sysinfo would read every process's status.

use std::path::{Path, PathBuf};

use sysinfo::System;

use super::{CollectError, Collector};
use crate::sample::{Sample, SystemStats};

/// Load, uptime, CPUs online, processes.
#[derive(Debug)]
pub struct SystemCollector {
    procfs: PathBuf,
    count_processes: bool,
}

impl SystemCollector {
    /// `count_processes = false` skips the listing of procfs (a third of a collection's CPU
    /// time on a quiet host, measured) and reports 0 processes.
    pub fn new(procfs: &Path, count_processes: bool) -> Self {
        SystemCollector {
            procfs: procfs.to_path_buf(),
            count_processes,
        }
    }
}

impl Collector for SystemCollector {
    fn name(&self) -> &'static str {
        "system"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let load = System::load_average().map_err(|e| CollectError::Sysinfo {
            what: "the load average",
            message: e.to_string(),
        })?;
        let uptime = System::uptime().map_err(|e| CollectError::Sysinfo {
            what: "the uptime",
            message: e.to_string(),
        })?;
        let processes = if self.count_processes {
            count_processes(&self.procfs).map_err(|source| CollectError::Read {
                path: self.procfs.clone(),
                source,
            })?
        } else {
            0
        };
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        sample.system = Some(SystemStats {
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            uptime,
            n_cpus: u32::try_from(online).unwrap_or(0),
            processes,
        });
        Ok(())
    }
}

/// Numeric entries of procfs: one per process (threads are hidden under `task/`).
pub fn count_processes(procfs: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(procfs)? {
        let entry = entry?;
        if entry
            .file_name()
            .as_encoded_bytes()
            .first()
            .is_some_and(u8::is_ascii_digit)
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_numeric_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["1", "42", "self", "stat", "9999"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        assert_eq!(count_processes(dir.path()).unwrap(), 3);
    }

    #[test]
    fn live_values_are_plausible() {
        let mut c = SystemCollector::new(Path::new("/proc"), true);
        let mut s = Sample::new(Default::default());
        c.collect(&mut s).unwrap();
        let sys = s.system.unwrap();
        assert!(sys.processes >= 1);
        assert!(sys.n_cpus >= 1);
        assert!(sys.load1 >= 0.0);
        let proc_uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((sys.uptime as f64 - proc_uptime).abs() < 5.0);
    }
}
