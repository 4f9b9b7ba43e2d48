//! The neutral model every collector fills and every sink reads.
//!
//! Values are kept as the kernel reports them (counters since boot, bytes, seconds) so that each
//! sink can apply its own naming convention: Telegraf's for InfluxDB, node_exporter's for
//! Prometheus. Nothing here knows about either.

use std::sync::Arc;
use std::time::SystemTime;

/// One collection: everything read from the host at (about) one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the collection started.
    pub time: SystemTime,
    /// Who this host is; shared by every sample.
    pub host: Arc<HostInfo>,
    /// `/proc/stat`: CPU times and kernel counters. `None` when the CPU collector failed.
    pub cpu: Option<CpuStats>,
    /// `/proc/meminfo`. `None` when the memory collector failed.
    pub mem: Option<MemInfo>,
    /// One entry per mounted filesystem kept by the `ignore_fs` filter.
    pub filesystems: Vec<Filesystem>,
    /// One entry per block device kept by the `diskio_exclude` filter.
    pub diskio: Vec<DiskIo>,
    /// One entry per network interface kept by the `net_exclude` filter.
    pub net: Vec<NetDev>,
    /// Load, uptime and process count. `None` when the system collector failed.
    pub system: Option<SystemStats>,
}

impl Sample {
    /// An empty sample for `host`, stamped now.
    pub fn new(host: Arc<HostInfo>) -> Self {
        Sample {
            time: SystemTime::now(),
            host,
            cpu: None,
            mem: None,
            filesystems: Vec::new(),
            diskio: Vec::new(),
            net: Vec::new(),
            system: None,
        }
    }

    /// Milliseconds since the Unix epoch of [`Sample::time`].
    pub fn unix_millis(&self) -> i64 {
        match self.time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// Identity of the host, read once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Host name (configured, or the kernel's node name).
    pub hostname: String,
    /// OS name, e.g. `Debian GNU/Linux` (from sysinfo).
    pub os_name: String,
    /// OS version, e.g. `13` (from sysinfo).
    pub os_version: String,
    /// Distribution id from os-release, e.g. `debian` (from sysinfo).
    pub os_id: String,
    /// `uname -s`, e.g. `Linux`.
    pub sysname: String,
    /// `uname -r`, the kernel release.
    pub release: String,
    /// `uname -v`, the kernel build string.
    pub version: String,
    /// `uname -m`, e.g. `x86_64`.
    pub machine: String,
    /// `uname`'s domain name, `(none)` on most hosts.
    pub domainname: String,
    /// Extra `key=value` tags from the config, in order.
    pub tags: Vec<(String, String)>,
}

/// Seconds spent in each CPU mode since boot (one `cpu` line of `/proc/stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: f64,
    /// Niced processes in user mode.
    pub nice: f64,
    /// Kernel mode.
    pub system: f64,
    /// Idle.
    pub idle: f64,
    /// Idle while I/O was outstanding.
    pub iowait: f64,
    /// Servicing hardware interrupts.
    pub irq: f64,
    /// Servicing softirqs.
    pub softirq: f64,
    /// Stolen by the hypervisor for other guests.
    pub steal: f64,
    /// Already included in `user` by the kernel.
    pub guest: f64,
    /// Already included in `nice` by the kernel.
    pub guest_nice: f64,
}

impl CpuTimes {
    /// Every mode the kernel accounts as time passing; guest time is inside user/nice already.
    pub fn total(&self) -> f64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// Percent of the last interval spent in each mode, 0–100.
pub type CpuUsage = CpuTimes;

/// One CPU line: the total over all cores or one core.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLine {
    /// `None` for the total, `Some(n)` for core `n`.
    pub core: Option<u32>,
    /// Counters since boot, in seconds.
    pub times: CpuTimes,
    /// Percentages since the previous collection; `None` on the first one.
    pub usage: Option<CpuUsage>,
}

/// What `/proc/stat` says besides CPU times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KernelStats {
    /// Boot time, seconds since the Unix epoch (`btime`).
    pub boot_time: u64,
    /// Context switches since boot (`ctxt`).
    pub context_switches: u64,
    /// Processes and threads created since boot (`processes`).
    pub forks: u64,
    /// Interrupts serviced since boot (first number of `intr`).
    pub interrupts: u64,
    /// Runnable tasks right now (`procs_running`).
    pub procs_running: u64,
    /// Tasks blocked on I/O right now (`procs_blocked`).
    pub procs_blocked: u64,
}

/// The CPU collector's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuStats {
    /// The all-cores line.
    pub total: CpuLine,
    /// One line per core, in `/proc/stat` order.
    pub cores: Vec<CpuLine>,
    /// The other counters of `/proc/stat`.
    pub kernel: KernelStats,
}

/// One line of `/proc/meminfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemEntry {
    /// The kernel's key, e.g. `MemAvailable` or `Active(anon)`.
    pub key: String,
    /// The value, converted to bytes when the kernel gave kB.
    pub value: u64,
    /// Whether the kernel gave kB (so `value` is bytes).
    pub bytes: bool,
}

/// Everything `/proc/meminfo` lists, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// One entry per line.
    pub entries: Vec<MemEntry>,
}

impl MemInfo {
    /// The value of `key` (bytes for kB lines); `None` when this kernel does not report it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value)
    }

    /// Like [`MemInfo::get`], 0 when absent.
    pub fn get_or_zero(&self, key: &str) -> u64 {
        self.get(key).unwrap_or(0)
    }
}

/// One mounted filesystem, from `/proc/self/mounts` and `statvfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// Source device as mounted, e.g. `/dev/vda1`.
    pub device: String,
    /// Mount point as the host sees it (without the configured `rootfs` prefix).
    pub mountpoint: String,
    /// e.g. `ext4`.
    pub fstype: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Total size in bytes.
    pub size: u64,
    /// Free bytes, including the blocks reserved for root.
    pub free: u64,
    /// Bytes available to unprivileged users.
    pub avail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// One block device's counters from `/proc/diskstats` (times in milliseconds, sectors of 512 B).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskIo {
    /// Device name, e.g. `vda`, `nvme0n1`.
    pub name: String,
    /// Reads completed.
    pub reads: u64,
    /// Adjacent reads merged into one.
    pub reads_merged: u64,
    /// Sectors read.
    pub read_sectors: u64,
    /// Time spent reading.
    pub read_time_ms: u64,
    /// Writes completed.
    pub writes: u64,
    /// Adjacent writes merged into one.
    pub writes_merged: u64,
    /// Sectors written.
    pub write_sectors: u64,
    /// Time spent writing.
    pub write_time_ms: u64,
    /// I/Os in flight right now.
    pub io_in_progress: u64,
    /// Time the device had I/O in flight.
    pub io_time_ms: u64,
    /// `io_time` weighted by the number of I/Os in flight.
    pub weighted_io_time_ms: u64,
}

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errs: u64,
    /// Received packets dropped.
    pub rx_drop: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errs: u64,
    /// Packets dropped on transmit.
    pub tx_drop: u64,
}

/// Load, uptime, process count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SystemStats {
    /// Load average over 1 minute.
    pub load1: f64,
    /// Load average over 5 minutes.
    pub load5: f64,
    /// Load average over 15 minutes.
    pub load15: f64,
    /// Seconds since boot.
    pub uptime: u64,
    /// Logical CPUs online.
    pub n_cpus: u32,
    /// Processes (not threads) alive: numeric entries of `/proc`.
    pub processes: u64,
}
