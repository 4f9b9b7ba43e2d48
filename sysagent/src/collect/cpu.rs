//! CPU times (total and per core) and the kernel counters of `/proc/stat`.
//!
//! One read of `/proc/stat` feeds both, so the process counts of the `system` measurement that
//! live there (`procs_running`, `procs_blocked`) are read here too.

use std::path::Path;

use super::{CollectError, Collector, ProcFile};
use crate::sample::{CpuLine, CpuStats, CpuTimes, KernelStats, Sample};

/// Reads `/proc/stat`; remembers the previous times to compute percentages.
#[derive(Debug)]
pub struct CpuCollector {
    file: ProcFile,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    hz: f64,
    previous: Option<(CpuTimes, Vec<CpuTimes>)>,
}

impl CpuCollector {
    /// Reads `<procfs>/stat`. Per-core lines are always kept: Prometheus needs them
    /// (`node_cpu_seconds_total` is per core); the InfluxDB encoder may leave them out.
    pub fn new(procfs: &Path) -> Self {
        CpuCollector {
            file: ProcFile::new(procfs.join("stat")),
            hz: clock_ticks_per_second(),
            previous: None,
        }
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let hz = self.hz;
        let text = self.file.read()?;
        let parsed = parse_stat(text, hz);
        let (total, cores, kernel) = match parsed {
            Ok(p) => p,
            Err(what) => return Err(self.file.parse_error(what)),
        };

        let (prev_total, prev_cores) = match &self.previous {
            Some((t, c)) => (Some(*t), Some(c.as_slice())),
            None => (None, None),
        };
        let total_line = CpuLine {
            core: None,
            times: total,
            usage: prev_total.and_then(|p| usage(&p, &total, hz)),
        };
        // A core going offline shifts the list; then compare nothing until the next one.
        let same_cores = prev_cores.map(|p| p.len()) == Some(cores.len());
        let core_lines = cores
            .iter()
            .enumerate()
            .map(|(i, (n, t))| CpuLine {
                core: Some(*n),
                times: *t,
                usage: prev_cores
                    .filter(|_| same_cores)
                    .and_then(|p| p.get(i))
                    .and_then(|p| usage(p, t, hz)),
            })
            .collect();
        self.previous = Some((total, cores.iter().map(|(_, t)| *t).collect()));
        sample.cpu = Some(CpuStats {
            total: total_line,
            cores: core_lines,
            kernel,
        });
        Ok(())
    }
}

/// Percent of the time between `prev` and `cur` spent in each mode, like Telegraf's
/// `usage_*`. `None` when no time passed (two reads within one tick) or the counters went back.
/// Differences are taken in whole clock ticks (`hz` per second) so that 11 ticks of 100 are
/// 11.0 %, not 11.000000000001 %.
pub fn usage(prev: &CpuTimes, cur: &CpuTimes, hz: f64) -> Option<CpuTimes> {
    let ticks = |a: f64, b: f64| ((a - b) * hz).round();
    let dt = ticks(cur.total(), prev.total());
    if dt <= 0.0 {
        return None;
    }
    let pct = |a: f64, b: f64| (ticks(a, b) * 100.0 / dt).clamp(0.0, 100.0);
    Some(CpuTimes {
        user: pct(cur.user, prev.user),
        nice: pct(cur.nice, prev.nice),
        system: pct(cur.system, prev.system),
        idle: pct(cur.idle, prev.idle),
        iowait: pct(cur.iowait, prev.iowait),
        irq: pct(cur.irq, prev.irq),
        softirq: pct(cur.softirq, prev.softirq),
        steal: pct(cur.steal, prev.steal),
        guest: pct(cur.guest, prev.guest),
        guest_nice: pct(cur.guest_nice, prev.guest_nice),
    })
}

type Parsed = (CpuTimes, Vec<(u32, CpuTimes)>, KernelStats);

/// Parse the whole of `/proc/stat`; `hz` is clock ticks per second.
pub fn parse_stat(text: &str, hz: f64) -> Result<Parsed, String> {
    let mut total = None;
    let mut cores = Vec::new();
    let mut kernel = KernelStats::default();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(key) = words.next() else { continue };
        if let Some(rest) = key.strip_prefix("cpu") {
            let times = parse_times(words, hz)
                .ok_or_else(|| format!("a cpu line with fewer than 4 numbers: {line:?}"))?;
            if rest.is_empty() {
                total = Some(times);
            } else {
                let n: u32 = rest
                    .parse()
                    .map_err(|_| format!("cpu line with a bad core number: {line:?}"))?;
                cores.push((n, times));
            }
            continue;
        }
        let first = words.next().and_then(|w| w.parse::<u64>().ok());
        match (key, first) {
            ("btime", Some(v)) => kernel.boot_time = v,
            ("ctxt", Some(v)) => kernel.context_switches = v,
            ("processes", Some(v)) => kernel.forks = v,
            ("intr", Some(v)) => kernel.interrupts = v,
            ("procs_running", Some(v)) => kernel.procs_running = v,
            ("procs_blocked", Some(v)) => kernel.procs_blocked = v,
            _ => {}
        }
    }
    let total = total.ok_or_else(|| "no aggregate \"cpu\" line".to_string())?;
    Ok((total, cores, kernel))
}

fn parse_times<'a>(words: impl Iterator<Item = &'a str>, hz: f64) -> Option<CpuTimes> {
    let mut v = [0u64; 10];
    let mut n = 0;
    for (slot, w) in v.iter_mut().zip(words) {
        *slot = w.parse().ok()?;
        n += 1;
    }
    // Kernels before 2.6 had four columns; every later column is optional.
    if n < 4 {
        return None;
    }
    // Divide rather than multiply by 1/hz: 253 / 100 is exactly 2.53, 253 * 0.01 is not.
    let s = |i: usize| v[i] as f64 / hz;
    Some(CpuTimes {
        user: s(0),
        nice: s(1),
        system: s(2),
        idle: s(3),
        iowait: s(4),
        irq: s(5),
        softirq: s(6),
        steal: s(7),
        guest: s(8),
        guest_nice: s(9),
    })
}

/// `USER_HZ`, almost always 100.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  15299 0 3585 73155 446 0 60 17 0 0
cpu0 7266 0 1553 37423 40 0 13 6 0 0
cpu1 8033 0 2032 35731 405 0 47 10 0 0
intr 1234 0 9 0
ctxt 987654
btime 1764000000
processes 11127
procs_running 3
procs_blocked 1
softirq 55 1 2
";

    #[test]
    fn parses_totals_cores_and_kernel_counters() {
        let (total, cores, k) = parse_stat(STAT, 100.0).unwrap();
        assert_eq!(total.user, 152.99);
        assert_eq!(total.idle, 731.55);
        assert_eq!(total.iowait, 4.46);
        assert_eq!(total.steal, 0.17);
        assert_eq!(cores.len(), 2);
        assert_eq!(cores[1].0, 1);
        assert_eq!(cores[1].1.system, 20.32);
        assert_eq!(
            k,
            KernelStats {
                boot_time: 1764000000,
                context_switches: 987654,
                forks: 11127,
                interrupts: 1234,
                procs_running: 3,
                procs_blocked: 1,
            }
        );
    }

    #[test]
    fn old_kernels_with_four_columns_parse() {
        let (total, _, _) = parse_stat("cpu 1 2 3 4\n", 1.0).unwrap();
        assert_eq!(total.idle, 4.0);
        assert_eq!(total.iowait, 0.0);
    }

    #[test]
    fn missing_total_line_is_an_error() {
        assert!(parse_stat("cpu0 1 2 3 4\n", 1.0).is_err());
        assert!(parse_stat("cpu 1 2\n", 1.0).is_err());
    }

    #[test]
    fn usage_is_percent_of_elapsed_time() {
        let prev = CpuTimes {
            user: 10.0,
            system: 5.0,
            idle: 85.0,
            ..Default::default()
        };
        let cur = CpuTimes {
            user: 13.0,
            system: 6.0,
            idle: 90.0,
            iowait: 1.0,
            ..Default::default()
        };
        let u = usage(&prev, &cur, 100.0).unwrap();
        assert_eq!(u.user, 30.0);
        assert_eq!(u.system, 10.0);
        assert_eq!(u.idle, 50.0);
        assert_eq!(u.iowait, 10.0);
        assert!(usage(&cur, &cur, 100.0).is_none());
    }

    #[test]
    fn live_proc_stat_gives_plausible_percentages() {
        let mut c = CpuCollector::new(Path::new("/proc"));
        let host = std::sync::Arc::new(crate::sample::HostInfo::default());
        let mut s = Sample::new(host.clone());
        c.collect(&mut s).unwrap();
        assert!(s.cpu.as_ref().unwrap().total.usage.is_none());
        // Burn a little CPU so at least one tick passes between the two reads.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_add(1);
        }
        std::hint::black_box(x);
        let mut s = Sample::new(host);
        c.collect(&mut s).unwrap();
        let cpu = s.cpu.unwrap();
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        assert_eq!(cpu.cores.len() as i64, online as i64);
        let u = cpu.total.usage.expect("ticks passed, usage known");
        let sum = u.user + u.nice + u.system + u.idle + u.iowait + u.irq + u.softirq + u.steal;
        assert!(
            (sum - 100.0).abs() < 0.01,
            "modes add up to 100%, got {sum}"
        );
        assert!(cpu.kernel.boot_time > 1_000_000_000);
    }
}
