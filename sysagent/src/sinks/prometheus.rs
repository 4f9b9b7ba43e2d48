//! `/metrics` with node_exporter's metric names, rendered from the latest sample.
//!
//! Why render the latest sample rather than collect on each scrape (as node_exporter does):
//! a scrape then costs only the text encoding, not the reads of `/proc`, and Prometheus
//! and InfluxDB see the very same numbers. The price is staleness of at most one
//! `[collect] interval`; set it to the scrape interval or shorter. Measured in
//! `docs/bench/sysagent.md`.
//!
//! The endpoint itself is `service_kit::metrics::serve`: the host metrics are a
//! prometheus-client [`Collector`] registered next to sysagent's own counters, so no route of
//! our own is needed.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Deserialize;

use crate::sample::{DiskIo, Filesystem, NetDev, Sample};

/// `[prometheus]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// `host:port` to serve `/metrics` on, e.g. `0.0.0.0:9101`. Empty: no Prometheus output.
    /// When the port is taken, sysagent says so, keeps collecting for InfluxDB and tries
    /// to bind again every collection.
    pub listen: String,
}

/// The latest sample, shared between the collection loop and the scrapes.
#[derive(Debug, Clone, Default)]
pub struct Latest(Arc<Mutex<Option<Arc<Sample>>>>);

impl Latest {
    pub fn set(&self, sample: Arc<Sample>) {
        // A panic elsewhere while holding this lock leaves a valid Option; keep going.
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(sample);
    }

    pub fn get(&self) -> Option<Arc<Sample>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Renders [`Latest`] in node_exporter's names on every scrape.
#[derive(Debug)]
pub struct NodeCollector {
    latest: Latest,
    scrapes: Counter,
}

impl NodeCollector {
    pub fn new(latest: Latest, scrapes: Counter) -> Self {
        NodeCollector { latest, scrapes }
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.scrapes.inc();
        match self.latest.get() {
            Some(sample) => render(&sample, &mut encoder),
            // Before the first collection there is nothing to say.
            None => Ok(()),
        }
    }
}

type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

/// One metric family with labelled series. Families with no series are left out.
fn family<L, V, I>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    series: I,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    V: Value,
    I: IntoIterator<Item = (L, V)>,
{
    let mut it = series.into_iter().peekable();
    if it.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in it {
        let me = m.encode_family(&labels)?;
        v.encode(ty, me)?;
    }
    Ok(())
}

/// One unlabelled series.
fn single<V: Value>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    v: V,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, ty)?;
    v.encode(ty, m)
}

/// Counter or gauge value: f64 for seconds, u64 for counts and bytes.
trait Value {
    fn encode(self, ty: MetricType, m: MetricEncoder) -> Result<(), std::fmt::Error>;
}

impl Value for f64 {
    fn encode(self, ty: MetricType, m: MetricEncoder) -> Result<(), std::fmt::Error> {
        match ty {
            MetricType::Counter => ConstCounter::new(self).encode(m),
            _ => ConstGauge::new(self).encode(m),
        }
    }
}

impl Value for u64 {
    fn encode(self, ty: MetricType, m: MetricEncoder) -> Result<(), std::fmt::Error> {
        match ty {
            MetricType::Counter => ConstCounter::new(self).encode(m),
            _ => ConstGauge::new(self).encode(m),
        }
    }
}

fn fs_labels(f: &Filesystem) -> Labels<'_, 3> {
    [
        ("device", f.device.as_str()),
        ("fstype", f.fstype.as_str()),
        ("mountpoint", f.mountpoint.as_str()),
    ]
}

fn dl(x: &DiskIo) -> Labels<'_, 1> {
    [("device", x.name.as_str())]
}

fn nl(x: &NetDev) -> Labels<'_, 1> {
    [("device", x.name.as_str())]
}

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Write every node_exporter-named family the sample has data for.
pub fn render(s: &Sample, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter as C, Gauge as G};

    if let Some(cpu) = &s.cpu {
        let ids: Vec<String> = cpu
            .cores
            .iter()
            .map(|c| c.core.unwrap_or(0).to_string())
            .collect();
        family(
            enc,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            C,
            cpu.cores.iter().zip(&ids).flat_map(|(c, id)| {
                let t = &c.times;
                let v = [
                    t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal,
                ];
                CPU_MODES
                    .iter()
                    .zip(v)
                    .map(move |(mode, v)| ([("cpu", id.as_str()), ("mode", *mode)], v))
            }),
        )?;
        family(
            enc,
            "node_cpu_guest_seconds",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            C,
            cpu.cores.iter().zip(&ids).flat_map(|(c, id)| {
                [
                    ([("cpu", id.as_str()), ("mode", "user")], c.times.guest),
                    ([("cpu", id.as_str()), ("mode", "nice")], c.times.guest_nice),
                ]
            }),
        )?;
        let k = &cpu.kernel;
        single(
            enc,
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            G,
            k.boot_time,
        )?;
        single(
            enc,
            "node_context_switches",
            "Total number of context switches.",
            C,
            k.context_switches,
        )?;
        single(enc, "node_forks", "Total number of forks.", C, k.forks)?;
        single(
            enc,
            "node_intr",
            "Total number of interrupts serviced.",
            C,
            k.interrupts,
        )?;
        single(
            enc,
            "node_procs_running",
            "Number of processes in runnable state.",
            G,
            k.procs_running,
        )?;
        single(
            enc,
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            G,
            k.procs_blocked,
        )?;
    }

    if let Some(sys) = &s.system {
        single(enc, "node_load1", "1m load average.", G, sys.load1)?;
        single(enc, "node_load5", "5m load average.", G, sys.load5)?;
        single(enc, "node_load15", "15m load average.", G, sys.load15)?;
        single(
            enc,
            "node_processes_pids",
            "Number of PIDs.",
            G,
            sys.processes,
        )?;
    }

    if let Some(mem) = &s.mem {
        let mut name = String::with_capacity(48);
        let mut help = String::with_capacity(64);
        for e in &mem.entries {
            name.clear();
            name.push_str("node_memory_");
            // node_exporter: `Active(anon)` becomes `Active_anon`.
            for c in e.key.chars() {
                match c {
                    '(' => name.push('_'),
                    ')' => {}
                    c if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                    _ => name.push('_'),
                }
            }
            if e.bytes {
                name.push_str("_bytes");
            }
            help.clear();
            help.push_str("Memory information field ");
            help.push_str(&name[12..]);
            help.push('.');
            single(enc, &name, &help, G, e.value)?;
        }
    }

    let fs = &s.filesystems;
    family(
        enc,
        "node_filesystem_size_bytes",
        "Filesystem size in bytes.",
        G,
        fs.iter().map(|f| (fs_labels(f), f.size)),
    )?;
    family(
        enc,
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
        G,
        fs.iter().map(|f| (fs_labels(f), f.free)),
    )?;
    family(
        enc,
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
        G,
        fs.iter().map(|f| (fs_labels(f), f.avail)),
    )?;
    family(
        enc,
        "node_filesystem_files",
        "Filesystem total file nodes.",
        G,
        fs.iter().map(|f| (fs_labels(f), f.files)),
    )?;
    family(
        enc,
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
        G,
        fs.iter().map(|f| (fs_labels(f), f.files_free)),
    )?;
    family(
        enc,
        "node_filesystem_readonly",
        "Filesystem read-only status.",
        G,
        fs.iter().map(|f| (fs_labels(f), u64::from(f.readonly))),
    )?;

    let d = &s.diskio;
    let ms = |v: u64| v as f64 / 1000.0;
    family(
        enc,
        "node_disk_reads_completed",
        "The total number of reads completed successfully.",
        C,
        d.iter().map(|x| (dl(x), x.reads)),
    )?;
    family(
        enc,
        "node_disk_reads_merged",
        "The total number of reads merged.",
        C,
        d.iter().map(|x| (dl(x), x.reads_merged)),
    )?;
    family(
        enc,
        "node_disk_read_bytes",
        "The total number of bytes read successfully.",
        C,
        d.iter()
            .map(|x| (dl(x), x.read_sectors.saturating_mul(512))),
    )?;
    family(
        enc,
        "node_disk_read_time_seconds",
        "The total number of seconds spent by all reads.",
        C,
        d.iter().map(|x| (dl(x), ms(x.read_time_ms))),
    )?;
    family(
        enc,
        "node_disk_writes_completed",
        "The total number of writes completed successfully.",
        C,
        d.iter().map(|x| (dl(x), x.writes)),
    )?;
    family(
        enc,
        "node_disk_writes_merged",
        "The number of writes merged.",
        C,
        d.iter().map(|x| (dl(x), x.writes_merged)),
    )?;
    family(
        enc,
        "node_disk_written_bytes",
        "The total number of bytes written successfully.",
        C,
        d.iter()
            .map(|x| (dl(x), x.write_sectors.saturating_mul(512))),
    )?;
    family(
        enc,
        "node_disk_write_time_seconds",
        "This is the total number of seconds spent by all writes.",
        C,
        d.iter().map(|x| (dl(x), ms(x.write_time_ms))),
    )?;
    family(
        enc,
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        G,
        d.iter().map(|x| (dl(x), x.io_in_progress)),
    )?;
    family(
        enc,
        "node_disk_io_time_seconds",
        "Total seconds spent doing I/Os.",
        C,
        d.iter().map(|x| (dl(x), ms(x.io_time_ms))),
    )?;
    family(
        enc,
        "node_disk_io_time_weighted_seconds",
        "The weighted # of seconds spent doing I/Os.",
        C,
        d.iter().map(|x| (dl(x), ms(x.weighted_io_time_ms))),
    )?;

    let n = &s.net;
    family(
        enc,
        "node_network_receive_bytes",
        "Network device statistic receive_bytes.",
        C,
        n.iter().map(|x| (nl(x), x.rx_bytes)),
    )?;
    family(
        enc,
        "node_network_receive_packets",
        "Network device statistic receive_packets.",
        C,
        n.iter().map(|x| (nl(x), x.rx_packets)),
    )?;
    family(
        enc,
        "node_network_receive_errs",
        "Network device statistic receive_errs.",
        C,
        n.iter().map(|x| (nl(x), x.rx_errs)),
    )?;
    family(
        enc,
        "node_network_receive_drop",
        "Network device statistic receive_drop.",
        C,
        n.iter().map(|x| (nl(x), x.rx_drop)),
    )?;
    family(
        enc,
        "node_network_transmit_bytes",
        "Network device statistic transmit_bytes.",
        C,
        n.iter().map(|x| (nl(x), x.tx_bytes)),
    )?;
    family(
        enc,
        "node_network_transmit_packets",
        "Network device statistic transmit_packets.",
        C,
        n.iter().map(|x| (nl(x), x.tx_packets)),
    )?;
    family(
        enc,
        "node_network_transmit_errs",
        "Network device statistic transmit_errs.",
        C,
        n.iter().map(|x| (nl(x), x.tx_errs)),
    )?;
    family(
        enc,
        "node_network_transmit_drop",
        "Network device statistic transmit_drop.",
        C,
        n.iter().map(|x| (nl(x), x.tx_drop)),
    )?;

    let h = &s.host;
    let mut uname = enc.encode_descriptor(
        "node_uname",
        "Labeled system information as provided by the uname system call.",
        None,
        MetricType::Info,
    )?;
    uname.encode_info(&[
        ("domainname", h.domainname.as_str()),
        ("machine", h.machine.as_str()),
        ("nodename", h.hostname.as_str()),
        ("release", h.release.as_str()),
        ("sysname", h.sysname.as_str()),
        ("version", h.version.as_str()),
    ])?;
    let mut os = enc.encode_descriptor(
        "node_os",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        None,
        MetricType::Info,
    )?;
    os.encode_info(&[
        ("id", h.os_id.as_str()),
        ("name", h.os_name.as_str()),
        ("version_id", h.os_version.as_str()),
    ])?;
    let secs = s.unix_millis() as f64 / 1000.0;
    single(
        enc,
        "node_time_seconds",
        "System time in seconds since epoch (1970), at the last collection.",
        G,
        secs,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::*;
    use prometheus_client::registry::Registry;
    use std::time::{Duration, SystemTime};

    fn sample() -> Sample {
        let host = Arc::new(HostInfo {
            hostname: "h1".into(),
            os_name: "Debian GNU/Linux".into(),
            os_id: "debian".into(),
            os_version: "13".into(),
            sysname: "Linux".into(),
            release: "6.1.0".into(),
            machine: "x86_64".into(),
            ..Default::default()
        });
        let mut s = Sample::new(host);
        s.time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_500);
        let t = CpuTimes {
            user: 1.5,
            idle: 10.0,
            ..Default::default()
        };
        s.cpu = Some(CpuStats {
            total: CpuLine {
                core: None,
                times: t,
                usage: None,
            },
            cores: vec![
                CpuLine {
                    core: Some(0),
                    times: t,
                    usage: None,
                },
                CpuLine {
                    core: Some(1),
                    times: t,
                    usage: None,
                },
            ],
            kernel: KernelStats {
                boot_time: 1_700_000_000,
                context_switches: 5,
                ..Default::default()
            },
        });
        s.mem = Some(crate::collect::mem::parse_meminfo(
            "MemTotal: 2 kB\nMemAvailable: 1 kB\nActive(anon): 1 kB\nHugePages_Total: 3\n",
        ));
        s.net = vec![NetDev {
            name: "eth0".into(),
            rx_bytes: 1234,
            ..Default::default()
        }];
        s.diskio = vec![DiskIo {
            name: "vda".into(),
            read_sectors: 2,
            io_time_ms: 1500,
            ..Default::default()
        }];
        s.filesystems = vec![Filesystem {
            device: "/dev/vda".into(),
            mountpoint: "/".into(),
            fstype: "ext4".into(),
            readonly: false,
            size: 100,
            free: 50,
            avail: 40,
            files: 10,
            files_free: 5,
        }];
        s.system = Some(SystemStats {
            load1: 0.5,
            ..Default::default()
        });
        s
    }

    fn text(latest: &Latest) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(NodeCollector::new(
            latest.clone(),
            Counter::default(),
        )));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn nothing_before_the_first_collection() {
        assert_eq!(text(&Latest::default()), "# EOF\n");
    }

    #[test]
    fn node_exporter_names_and_labels() {
        let latest = Latest::default();
        latest.set(Arc::new(sample()));
        let t = text(&latest);
        for expected in [
            "# TYPE node_cpu_seconds counter\n",
            "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1.5\n",
            "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 10.0\n",
            "node_cpu_guest_seconds_total{cpu=\"1\",mode=\"nice\"} 0.0\n",
            "node_boot_time_seconds 1700000000\n",
            "node_context_switches_total 5\n",
            "node_load1 0.5\n",
            "node_memory_MemTotal_bytes 2048\n",
            "node_memory_MemAvailable_bytes 1024\n",
            "node_memory_Active_anon_bytes 1024\n",
            "node_memory_HugePages_Total 3\n",
            "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 40\n",
            "node_filesystem_readonly{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 0\n",
            "node_disk_read_bytes_total{device=\"vda\"} 1024\n",
            "node_disk_io_time_seconds_total{device=\"vda\"} 1.5\n",
            "node_network_receive_bytes_total{device=\"eth0\"} 1234\n",
            "node_uname_info{domainname=\"\",machine=\"x86_64\",nodename=\"h1\",release=\"6.1.0\",sysname=\"Linux\",version=\"\"} 1\n",
            "node_os_info{id=\"debian\",name=\"Debian GNU/Linux\",version_id=\"13\"} 1\n",
            "node_time_seconds 1764000000.5\n",
        ] {
            assert!(t.contains(expected), "missing {expected:?} in\n{t}");
        }
        assert!(t.ends_with("# EOF\n"));
    }
}
