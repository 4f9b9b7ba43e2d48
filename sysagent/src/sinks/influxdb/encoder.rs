//! Samples to InfluxDB line protocol, with Telegraf's measurement, tag and field names so
//! Telegraf's dashboards work unchanged.
//!
//! | measurement | tags | fields |
//! |---|---|---|
//! | `cpu` | `cpu` = `cpu-total`, `cpu0`… | `usage_{user,system,idle,nice,iowait,irq,softirq,steal,guest,guest_nice}` (%), `time_*` (seconds) |
//! | `mem` | | `total available used free cached buffered active inactive slab shared …` (bytes), `used_percent`, `available_percent` |
//! | `swap` | | `total used free used_percent` |
//! | `disk` | `path device fstype mode` | `total free used used_percent inodes_total inodes_free inodes_used inodes_used_percent` |
//! | `diskio` | `name` | `reads writes read_bytes write_bytes read_time write_time io_time weighted_io_time iops_in_progress merged_reads merged_writes` |
//! | `net` | `interface` | `bytes_sent bytes_recv packets_sent packets_recv err_in err_out drop_in drop_out` |
//! | `system` | `os os_version` | `load1 load5 load15 n_cpus uptime uptime_format` |
//! | `processes` | | `total running blocked` |
//! | `kernel` | | `boot_time context_switches interrupts processes_forked` |
//!
//! Every point carries `host` and the configured `[collect] tags`. Timestamps are in
//! milliseconds (`precision=ms`).

use std::fmt::Write;

use crate::collect::mem::MemSummary;
use crate::sample::{CpuLine, CpuTimes, Sample};

/// Escape a measurement name: commas and spaces.
fn escape_measurement(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Escape a tag key, tag value or field key: commas, equals signs and spaces.
fn escape_key(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // A newline would end the line; line protocol has no escape for it.
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Builds one line: `measurement,tags fields timestamp`.
pub struct Line {
    buf: String,
    fields: usize,
}

impl Line {
    /// Start a line for `measurement` with `tags` (sorted here: InfluxDB indexes faster when
    /// tag keys come sorted). Empty tag values are left out: line protocol has no empty tags.
    pub fn new(measurement: &str, tags: &mut [(&str, &str)]) -> Self {
        let mut buf = String::with_capacity(256);
        escape_measurement(&mut buf, measurement);
        tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in tags.iter() {
            if k.is_empty() || v.is_empty() {
                continue;
            }
            buf.push(',');
            escape_key(&mut buf, k);
            buf.push('=');
            escape_key(&mut buf, v);
        }
        Line { buf, fields: 0 }
    }

    fn sep(&mut self, key: &str) {
        self.buf.push(if self.fields == 0 { ' ' } else { ',' });
        escape_key(&mut self.buf, key);
        self.buf.push('=');
        self.fields += 1;
    }

    /// A float field; NaN and infinities are skipped (InfluxDB refuses them).
    pub fn float(mut self, key: &str, v: f64) -> Self {
        if v.is_finite() {
            self.sep(key);
            // `{:?}` keeps a `.0` on whole numbers, so InfluxDB types the field as float
            // even on the first write, like Telegraf.
            let _ = write!(self.buf, "{v:?}");
        }
        self
    }

    /// An integer field (`123i`), saturated to i64.
    pub fn int(mut self, key: &str, v: u64) -> Self {
        self.sep(key);
        let _ = write!(self.buf, "{}i", v.min(i64::MAX as u64));
        self
    }

    /// A string field, quoted.
    pub fn string(mut self, key: &str, v: &str) -> Self {
        self.sep(key);
        self.buf.push('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\') {
                self.buf.push('\\');
            }
            self.buf.push(c);
        }
        self.buf.push('"');
        self
    }

    /// Finish with a timestamp in milliseconds; `None` when no field was written.
    pub fn finish(mut self, millis: i64) -> Option<String> {
        if self.fields == 0 {
            return None;
        }
        let _ = write!(self.buf, " {millis}");
        // Lines may wait in the buffer for a long outage: keep only what they need.
        self.buf.shrink_to_fit();
        Some(self.buf)
    }
}

/// Encoding options.
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    /// Emit one `cpu` point per core besides `cpu-total`.
    pub percpu: bool,
}

impl Encoder {
    /// Append the lines of one sample to `out`; returns how many were added.
    pub fn encode(&self, sample: &Sample, out: &mut Vec<String>) -> usize {
        encode_sample_with(sample, self.percpu, out)
    }
}

/// Append the lines of one sample (with per-core points) to `out`; returns how many were added.
pub fn encode_sample(sample: &Sample, out: &mut Vec<String>) -> usize {
    encode_sample_with(sample, true, out)
}

fn encode_sample_with(sample: &Sample, percpu: bool, out: &mut Vec<String>) -> usize {
    let before = out.len();
    let ts = sample.unix_millis();
    let host = &sample.host;
    let global: Vec<(&str, &str)> = std::iter::once(("host", host.hostname.as_str()))
        .chain(host.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();

    if let Some(cpu) = &sample.cpu {
        let mut name = String::new();
        for line in std::iter::once(&cpu.total).chain(cpu.cores.iter().filter(|_| percpu)) {
            name.clear();
            match line.core {
                None => name.push_str("cpu-total"),
                Some(n) => {
                    let _ = write!(name, "cpu{n}");
                }
            }
            let mut t = with_tags(&global, &[("cpu", &name)]);
            out.extend(cpu_line(&mut t, line).finish(ts));
        }
        let k = &cpu.kernel;
        out.extend(
            Line::new("kernel", &mut with_tags(&global, &[]))
                .int("boot_time", k.boot_time)
                .int("context_switches", k.context_switches)
                .int("interrupts", k.interrupts)
                .int("processes_forked", k.forks)
                .finish(ts),
        );
    }

    if let Some(m) = &sample.mem {
        let s = MemSummary::from_info(m);
        let mut l = Line::new("mem", &mut with_tags(&global, &[]))
            .int("total", s.total)
            .int("available", s.available)
            .int("used", s.used)
            .int("free", s.free)
            .int("cached", s.cached)
            .int("buffered", s.buffered)
            .float("used_percent", s.used_percent)
            .float("available_percent", s.available_percent);
        for (field, key) in [
            ("active", "Active"),
            ("inactive", "Inactive"),
            ("slab", "Slab"),
            ("shared", "Shmem"),
            ("sreclaimable", "SReclaimable"),
            ("sunreclaim", "SUnreclaim"),
            ("dirty", "Dirty"),
            ("write_back", "Writeback"),
            ("mapped", "Mapped"),
            ("page_tables", "PageTables"),
            ("commit_limit", "CommitLimit"),
            ("committed_as", "Committed_AS"),
            ("swap_total", "SwapTotal"),
            ("swap_free", "SwapFree"),
            ("swap_cached", "SwapCached"),
        ] {
            if let Some(v) = m.get(key) {
                l = l.int(field, v);
            }
        }
        out.extend(l.finish(ts));
        out.extend(
            Line::new("swap", &mut with_tags(&global, &[]))
                .int("total", s.swap_total)
                .int("used", s.swap_used)
                .int("free", s.swap_free)
                .float("used_percent", s.swap_used_percent)
                .finish(ts),
        );
    }

    for fs in &sample.filesystems {
        let device = fs.device.strip_prefix("/dev/").unwrap_or(&fs.device);
        let mode = if fs.readonly { "ro" } else { "rw" };
        let mut t = with_tags(
            &global,
            &[
                ("path", &fs.mountpoint),
                ("device", device),
                ("fstype", &fs.fstype),
                ("mode", mode),
            ],
        );
        let used = fs.size.saturating_sub(fs.free);
        // Like df: the share of what unprivileged users can use.
        let used_percent = if used + fs.avail == 0 {
            0.0
        } else {
            used as f64 / (used + fs.avail) as f64 * 100.0
        };
        let inodes_used = fs.files.saturating_sub(fs.files_free);
        let inodes_pct = if fs.files == 0 {
            0.0
        } else {
            inodes_used as f64 / fs.files as f64 * 100.0
        };
        out.extend(
            Line::new("disk", &mut t)
                .int("total", fs.size)
                .int("free", fs.avail)
                .int("used", used)
                .float("used_percent", used_percent)
                .int("inodes_total", fs.files)
                .int("inodes_free", fs.files_free)
                .int("inodes_used", inodes_used)
                .float("inodes_used_percent", inodes_pct)
                .finish(ts),
        );
    }

    for d in &sample.diskio {
        out.extend(
            Line::new("diskio", &mut with_tags(&global, &[("name", &d.name)]))
                .int("reads", d.reads)
                .int("writes", d.writes)
                .int("read_bytes", d.read_sectors.saturating_mul(512))
                .int("write_bytes", d.write_sectors.saturating_mul(512))
                .int("read_time", d.read_time_ms)
                .int("write_time", d.write_time_ms)
                .int("io_time", d.io_time_ms)
                .int("weighted_io_time", d.weighted_io_time_ms)
                .int("iops_in_progress", d.io_in_progress)
                .int("merged_reads", d.reads_merged)
                .int("merged_writes", d.writes_merged)
                .finish(ts),
        );
    }

    for n in &sample.net {
        out.extend(
            Line::new("net", &mut with_tags(&global, &[("interface", &n.name)]))
                .int("bytes_sent", n.tx_bytes)
                .int("bytes_recv", n.rx_bytes)
                .int("packets_sent", n.tx_packets)
                .int("packets_recv", n.rx_packets)
                .int("err_in", n.rx_errs)
                .int("err_out", n.tx_errs)
                .int("drop_in", n.rx_drop)
                .int("drop_out", n.tx_drop)
                .finish(ts),
        );
    }

    if let Some(s) = &sample.system {
        let mut t = with_tags(
            &global,
            &[("os", &host.os_name), ("os_version", &host.os_version)],
        );
        out.extend(
            Line::new("system", &mut t)
                .float("load1", s.load1)
                .float("load5", s.load5)
                .float("load15", s.load15)
                .int("n_cpus", u64::from(s.n_cpus))
                .int("uptime", s.uptime)
                .string("uptime_format", &uptime_format(s.uptime))
                .finish(ts),
        );
        let mut l = Line::new("processes", &mut with_tags(&global, &[])).int("total", s.processes);
        if let Some(cpu) = &sample.cpu {
            l = l
                .int("running", cpu.kernel.procs_running)
                .int("blocked", cpu.kernel.procs_blocked);
        }
        out.extend(l.finish(ts));
    }

    out.len() - before
}

/// The global tags plus a measurement's own; a configured tag may not shadow the latter.
fn with_tags<'a>(
    global: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut t: Vec<(&str, &str)> = Vec::with_capacity(global.len() + extra.len());
    t.extend_from_slice(global);
    for e in extra {
        t.retain(|(k, _)| *k != e.0);
        t.push(*e);
    }
    t
}

fn cpu_line(tags: &mut [(&str, &str)], line: &CpuLine) -> Line {
    let mut l = Line::new("cpu", tags);
    if let Some(u) = &line.usage {
        l = modes(l, "usage_", u);
    }
    modes(l, "time_", &line.times)
}

fn modes(mut l: Line, prefix: &str, t: &CpuTimes) -> Line {
    let mut key = String::with_capacity(20);
    for (name, v) in [
        ("user", t.user),
        ("system", t.system),
        ("idle", t.idle),
        ("nice", t.nice),
        ("iowait", t.iowait),
        ("irq", t.irq),
        ("softirq", t.softirq),
        ("steal", t.steal),
        ("guest", t.guest),
        ("guest_nice", t.guest_nice),
    ] {
        key.clear();
        key.push_str(prefix);
        key.push_str(name);
        l = l.float(&key, v);
    }
    l
}

/// Telegraf's `uptime_format`: `3 days, 4:05` or `4:05`.
pub fn uptime_format(secs: u64) -> String {
    let days = secs / 86400;
    let hours = secs % 86400 / 3600;
    let minutes = secs % 3600 / 60;
    match days {
        0 => format!("{hours:2}:{minutes:02}"),
        1 => format!("1 day, {hours:2}:{minutes:02}"),
        d => format!("{d} days, {hours:2}:{minutes:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::*;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn host() -> Arc<HostInfo> {
        Arc::new(HostInfo {
            hostname: "web 1".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "13".into(),
            tags: vec![("dc".into(), "eu,1".into())],
            ..Default::default()
        })
    }

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn escapes_follow_line_protocol() {
        let l = Line::new("my meas,x", &mut [("b k", "v=1"), ("a", "x,y")])
            .string("s", "say \"hi\" \\o/")
            .float("f", 1.0)
            .int("i", 7)
            .finish(42)
            .unwrap();
        assert_eq!(
            l,
            r#"my\ meas\,x,a=x\,y,b\ k=v\=1 s="say \"hi\" \\o/",f=1.0,i=7i 42"#
        );
    }

    #[test]
    fn empty_tags_and_non_finite_floats_are_left_out() {
        assert_eq!(
            Line::new("m", &mut [("t", "")])
                .float("nan", f64::NAN)
                .float("ok", 0.5)
                .finish(1)
                .unwrap(),
            "m ok=0.5 1"
        );
        assert_eq!(
            Line::new("m", &mut []).float("x", f64::INFINITY).finish(1),
            None
        );
    }

    #[test]
    fn cpu_points_use_telegraf_names() {
        let mut s = Sample::new(host());
        s.time = at(1_764_000_000_123);
        let times = CpuTimes {
            user: 10.0,
            idle: 90.0,
            ..Default::default()
        };
        let usage = CpuTimes {
            user: 25.0,
            idle: 75.0,
            ..Default::default()
        };
        s.cpu = Some(CpuStats {
            total: CpuLine {
                core: None,
                times,
                usage: Some(usage),
            },
            cores: vec![CpuLine {
                core: Some(0),
                times,
                usage: None,
            }],
            kernel: KernelStats::default(),
        });
        let mut out = Vec::new();
        assert_eq!(encode_sample(&s, &mut out), 3);
        assert!(
            out[0].starts_with(
                r"cpu,cpu=cpu-total,dc=eu\,1,host=web\ 1 usage_user=25.0,usage_system=0.0,usage_idle=75.0,"
            ),
            "{}",
            out[0]
        );
        assert!(out[0].contains(",time_user=10.0,"));
        assert!(out[0].ends_with(" 1764000000123"));
        assert!(out[1].starts_with(r"cpu,cpu=cpu0,dc=eu\,1,host=web\ 1 time_user=10.0,"));
        assert!(!out[1].contains("usage_"));
        assert!(out[2].starts_with("kernel,"));
    }

    #[test]
    fn mem_disk_net_diskio_system_points() {
        let mut s = Sample::new(host());
        s.time = at(5000);
        s.mem = Some(crate::collect::mem::parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 400 kB\nMemAvailable: 600 kB\nBuffers: 100 kB\nCached: 100 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        ));
        s.filesystems = vec![Filesystem {
            device: "/dev/vda".into(),
            mountpoint: "/".into(),
            fstype: "ext4".into(),
            readonly: false,
            size: 1000,
            free: 300,
            avail: 200,
            files: 10,
            files_free: 4,
        }];
        s.diskio = vec![DiskIo {
            name: "vda".into(),
            reads: 3,
            read_sectors: 2,
            ..Default::default()
        }];
        s.net = vec![NetDev {
            name: "eth0".into(),
            rx_bytes: 11,
            tx_bytes: 22,
            ..Default::default()
        }];
        s.system = Some(SystemStats {
            load1: 0.5,
            load5: 0.25,
            load15: 0.0,
            uptime: 90061,
            n_cpus: 2,
            processes: 88,
        });
        let mut out = Vec::new();
        encode_sample(&s, &mut out);
        let find = |p: &str| out.iter().find(|l| l.starts_with(p)).cloned().unwrap();
        let mem = find("mem,");
        assert!(mem.contains(" total=1024000i,available=614400i,used=409600i,free=409600i,cached=102400i,buffered=102400i,used_percent=40.0,available_percent=60.0"), "{mem}");
        assert!(mem.contains("swap_total=0i"));
        assert_eq!(
            find("swap,"),
            r"swap,dc=eu\,1,host=web\ 1 total=0i,used=0i,free=0i,used_percent=0.0 5000"
        );
        let disk = find("disk,");
        assert!(disk.starts_with(r"disk,dc=eu\,1,device=vda,fstype=ext4,host=web\ 1,mode=rw,path=/ total=1000i,free=200i,used=700i,used_percent=77.77"), "{disk}");
        assert!(disk.contains("inodes_used=6i,inodes_used_percent=60.0"));
        assert!(find("diskio,").contains(" reads=3i,writes=0i,read_bytes=1024i,"));
        assert!(find("net,").contains(",interface=eth0 bytes_sent=22i,bytes_recv=11i,"));
        assert_eq!(
            find("system,"),
            r#"system,dc=eu\,1,host=web\ 1,os=Debian\ GNU/Linux,os_version=13 load1=0.5,load5=0.25,load15=0.0,n_cpus=2i,uptime=90061i,uptime_format="1 day,  1:01" 5000"#
        );
        assert!(find("processes,").contains(" total=88i 5000"));
    }

    #[test]
    fn uptime_format_matches_telegraf() {
        assert_eq!(uptime_format(59), " 0:00");
        assert_eq!(
            uptime_format(3 * 86400 + 4 * 3600 + 5 * 60),
            "3 days,  4:05"
        );
    }
}
