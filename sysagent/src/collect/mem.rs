//! Memory and swap: every line of `/proc/meminfo`.
//!
//! All lines are kept (not just the dozen Telegraf shows) because node_exporter exports each
//! one as `node_memory_<Key>_bytes` and dashboards pick from all of them.

use std::path::Path;

use super::{CollectError, Collector, ProcFile};
use crate::sample::{MemEntry, MemInfo, Sample};

/// Reads `/proc/meminfo`.
#[derive(Debug)]
pub struct MemCollector {
    file: ProcFile,
}

impl MemCollector {
    pub fn new(procfs: &Path) -> Self {
        MemCollector {
            file: ProcFile::new(procfs.join("meminfo")),
        }
    }
}

impl Collector for MemCollector {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let text = self.file.read()?;
        let info = parse_meminfo(text);
        if info.get("MemTotal").is_none() {
            return Err(self.file.parse_error("no MemTotal line"));
        }
        sample.mem = Some(info);
        Ok(())
    }
}

/// Parse `/proc/meminfo`; lines that do not look like `Key: number [kB]` are skipped.
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut entries = Vec::with_capacity(64);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        let Some(value) = words.next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let kb = words.next() == Some("kB");
        entries.push(MemEntry {
            key: key.trim().to_string(),
            value: if kb {
                value.saturating_mul(1024)
            } else {
                value
            },
            bytes: kb,
        });
    }
    MemInfo { entries }
}

/// Telegraf's (gopsutil's) derived memory figures, all in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemSummary {
    pub total: u64,
    pub available: u64,
    pub free: u64,
    pub buffered: u64,
    /// Page cache plus reclaimable slab, as gopsutil counts it.
    pub cached: u64,
    /// `total - free - buffered - cached`.
    pub used: u64,
    pub used_percent: f64,
    pub available_percent: f64,
    pub swap_total: u64,
    pub swap_free: u64,
    pub swap_used: u64,
    pub swap_used_percent: f64,
}

impl MemSummary {
    /// Derive the summary the way Telegraf does, so its dashboards show the same numbers.
    pub fn from_info(m: &MemInfo) -> Self {
        let total = m.get_or_zero("MemTotal");
        let free = m.get_or_zero("MemFree");
        let buffered = m.get_or_zero("Buffers");
        let cached = m.get_or_zero("Cached") + m.get_or_zero("SReclaimable");
        // Kernels before 3.14 have no MemAvailable; gopsutil then estimates it like this.
        let available = m.get("MemAvailable").unwrap_or(free + buffered + cached);
        let used = total.saturating_sub(free + buffered + cached);
        let swap_total = m.get_or_zero("SwapTotal");
        let swap_free = m.get_or_zero("SwapFree");
        let swap_used = swap_total.saturating_sub(swap_free);
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                a as f64 / b as f64 * 100.0
            }
        };
        MemSummary {
            total,
            available,
            free,
            buffered,
            cached,
            used,
            used_percent: pct(used, total),
            available_percent: pct(available, total),
            swap_total,
            swap_free,
            swap_used,
            swap_used_percent: pct(swap_used, swap_total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683656 kB
MemFree:        20000000 kB
MemAvailable:   22000000 kB
Buffers:          100000 kB
Cached:          1500000 kB
SwapCached:            0 kB
Active(anon):     300000 kB
SwapTotal:       1000000 kB
SwapFree:         750000 kB
SReclaimable:     200000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn keeps_every_line_in_bytes_with_kernel_keys() {
        let m = parse_meminfo(MEMINFO);
        assert_eq!(m.entries.len(), 12);
        assert_eq!(m.get("MemTotal"), Some(24683656 * 1024));
        assert_eq!(m.get("Active(anon)"), Some(300000 * 1024));
        let huge = m
            .entries
            .iter()
            .find(|e| e.key == "HugePages_Total")
            .unwrap();
        assert!(!huge.bytes);
        assert_eq!(huge.value, 0);
    }

    #[test]
    fn summary_matches_gopsutil_formulas() {
        let s = MemSummary::from_info(&parse_meminfo(MEMINFO));
        let kb = 1024u64;
        assert_eq!(s.cached, 1_700_000 * kb);
        assert_eq!(s.used, (24683656 - 20000000 - 100000 - 1700000) * kb);
        assert_eq!(s.available, 22000000 * kb);
        assert_eq!(s.swap_used, 250000 * kb);
        assert_eq!(s.swap_used_percent, 25.0);
        assert!(s.used_percent > 0.0 && s.used_percent < 100.0);
    }

    #[test]
    fn live_meminfo_has_total_and_available() {
        let mut c = MemCollector::new(Path::new("/proc"));
        let mut s = Sample::new(Default::default());
        c.collect(&mut s).unwrap();
        let m = s.mem.unwrap();
        assert!(m.get("MemTotal").unwrap() > m.get("MemAvailable").unwrap());
    }
}
