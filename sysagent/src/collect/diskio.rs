//! Disk I/O per block device from `/proc/diskstats`.

use std::path::Path;

use super::{CollectError, Collector, ProcFile, matches_prefix};
use crate::sample::{DiskIo, Sample};

/// Reads `/proc/diskstats`.
#[derive(Debug)]
pub struct DiskIoCollector {
    file: ProcFile,
    exclude: Vec<String>,
}

impl DiskIoCollector {
    /// `exclude` lists device-name prefixes to skip (`loop` skips `loop0`…).
    pub fn new(procfs: &Path, exclude: Vec<String>) -> Self {
        DiskIoCollector {
            file: ProcFile::new(procfs.join("diskstats")),
            exclude,
        }
    }
}

impl Collector for DiskIoCollector {
    fn name(&self) -> &'static str {
        "diskio"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let text = self.file.read()?;
        let mut out = parse_diskstats(text);
        out.retain(|d| !matches_prefix(&d.name, &self.exclude));
        sample.diskio = out;
        Ok(())
    }
}

/// Parse `/proc/diskstats` (14 or more columns per line; older 7-column partition lines and
/// malformed lines are skipped).
pub fn parse_diskstats(text: &str) -> Vec<DiskIo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_ascii_whitespace();
        let (Some(_major), Some(_minor), Some(name)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let mut v = [0u64; 11];
        let mut n = 0;
        for (slot, word) in v.iter_mut().zip(&mut w) {
            match word.parse() {
                Ok(x) => *slot = x,
                Err(_) => break,
            }
            n += 1;
        }
        if n < 11 {
            continue;
        }
        out.push(DiskIo {
            name: name.to_string(),
            reads: v[0],
            reads_merged: v[1],
            read_sectors: v[2],
            read_time_ms: v[3],
            writes: v[4],
            writes_merged: v[5],
            write_sectors: v[6],
            write_time_ms: v[7],
            io_in_progress: v[8],
            io_time_ms: v[9],
            weighted_io_time_ms: v[10],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modern_lines_and_skips_short_ones() {
        let d = parse_diskstats(
            " 254       0 vda 36233 6465 3585434 21750 12850 26708 4573784 19914 0 7112 42303 4687 67 553872 549 1293 89\n   8 1 sda1 10 20 30 40\n",
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "vda");
        assert_eq!(d[0].reads, 36233);
        assert_eq!(d[0].read_sectors, 3585434);
        assert_eq!(d[0].writes, 12850);
        assert_eq!(d[0].io_time_ms, 7112);
        assert_eq!(d[0].weighted_io_time_ms, 42303);
    }

    #[test]
    fn excluded_prefixes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("diskstats"),
            "7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n254 0 vda 1 0 0 0 2 0 0 0 0 0 0\n253 0 zram0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        let mut c = DiskIoCollector::new(dir.path(), vec!["loop".into(), "zram".into()]);
        let mut s = Sample::new(Default::default());
        c.collect(&mut s).unwrap();
        let names: Vec<&str> = s.diskio.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["vda"]);
    }
}
