//! In-process cost of each step, median CPU time per call (`cargo bench -p sysagent --bench collect`).
//!
//! Measures each collector, a whole collection, the InfluxDB encoding and gzip of one sample,
//! and one `/metrics` rendering; and, for comparison, sysinfo's refreshes of the same data.
//! This is what decided "procfs for counters, sysinfo for identity/load/uptime" and
//! "render the latest sample per scrape" (see docs/bench/sysagent.md).

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;
use sysagent::collect::{Collector, Collectors, cpu, disk, diskio, mem, net, system};
use sysagent::config::CollectConfig;
use sysagent::sample::{HostInfo, Sample};
use sysagent::sinks::influxdb::Encoder;
use sysagent::sinks::prometheus::{Latest, NodeCollector};
use sysagent::stats::Stats;

fn thread_cpu_ns() -> u64 {
    // SAFETY: `ts` is a writable timespec; the clock id is valid on Linux.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Median CPU and wall microseconds of `f` over `n` calls (after 10 warm-up calls).
fn measure(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..10 {
        f();
    }
    let mut cpu = Vec::with_capacity(n);
    let mut wall = Vec::with_capacity(n);
    for _ in 0..n {
        let c0 = thread_cpu_ns();
        let w0 = Instant::now();
        f();
        wall.push(w0.elapsed().as_nanos() as u64);
        cpu.push(thread_cpu_ns() - c0);
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    println!(
        "| {name:<44} | {:>9.1} | {:>9.1} |",
        cpu[n / 2] as f64 / 1000.0,
        wall[n / 2] as f64 / 1000.0
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 20 } else { 1000 };
    let proc_ = Path::new("/proc");
    let host = Arc::new(sysagent::host::detect("", "/", vec![]));
    let config = CollectConfig::default();

    println!("| step | CPU µs (median) | wall µs (median) |");
    println!("|---|---:|---:|");

    let one = |c: Box<dyn Collector>| Collectors::from_parts(Arc::clone(&host), vec![c]);
    let mut c = one(Box::new(cpu::CpuCollector::new(proc_)));
    measure("collect cpu (/proc/stat)", n, || {
        black_box(c.collect());
    });
    let mut c = one(Box::new(mem::MemCollector::new(proc_)));
    measure("collect mem (/proc/meminfo)", n, || {
        black_box(c.collect());
    });
    let mut c = one(Box::new(disk::DiskCollector::new(
        proc_,
        PathBuf::from("/"),
        service_kit::split_list(&config.ignore_fs),
    )));
    measure("collect disk (mounts + statvfs)", n, || {
        black_box(c.collect());
    });
    let mut c = one(Box::new(diskio::DiskIoCollector::new(
        proc_,
        service_kit::split_list(&config.diskio_exclude),
    )));
    measure("collect diskio (/proc/diskstats)", n, || {
        black_box(c.collect());
    });
    let mut c = one(Box::new(net::NetCollector::new(proc_, vec![])));
    measure("collect net (/proc/net/dev)", n, || {
        black_box(c.collect());
    });
    let mut c = one(Box::new(system::SystemCollector::new(proc_, true)));
    measure("collect system (sysinfo load/uptime + readdir)", n, || {
        black_box(c.collect());
    });

    let mut all = Collectors::new(&config, Arc::clone(&host));
    measure("collect all (one sample)", n, || {
        black_box(all.collect());
    });

    let sample: Sample = {
        all.collect();
        all.collect().sample
    };
    let encoder = Encoder { percpu: true };
    let mut lines = Vec::new();
    measure("encode sample as line protocol", n, || {
        lines.clear();
        black_box(encoder.encode(&sample, &mut lines));
    });
    let body: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\n"].concat())
        .collect();
    measure(
        &format!("gzip the body ({} points, {} B)", lines.len(), body.len()),
        n,
        || {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).ok();
            black_box(e.finish().ok());
        },
    );

    let latest = Latest::default();
    latest.set(Arc::new(sample.clone()));
    let mut registry = Registry::default();
    let stats = Stats::default();
    stats.register(&mut registry);
    registry.register_collector(Box::new(NodeCollector::new(latest, stats.scrapes.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).ok();
    let size = out.len();
    measure(
        &format!("render /metrics from latest ({size} B)"),
        n,
        || {
            let mut out = String::with_capacity(4096);
            prometheus_client::encoding::text::encode(&mut out, &registry).ok();
            black_box(out);
        },
    );

    // sysinfo doing the same reads, for comparison.
    if let Ok(mut sys) = sysinfo::System::new() {
        measure("sysinfo refresh_cpu_all (usage % only)", n, || {
            sys.refresh_cpu_all();
        });
        measure("sysinfo refresh_memory", n, || {
            sys.refresh_memory();
        });
        let few = if quick { 3 } else { 50 };
        measure("sysinfo refresh_processes(All) (for a count)", few, || {
            black_box(sys.refresh_processes(sysinfo::ProcessesToUpdate::All, true));
        });
    }
    if let Ok(mut nets) = sysinfo::Networks::new_with_refreshed_list() {
        measure("sysinfo Networks::refresh (no drops)", n, || {
            nets.refresh(true);
        });
    }
    if let Ok(mut disks) = sysinfo::Disks::new_with_refreshed_list() {
        measure("sysinfo Disks::refresh (no inodes)", n, || {
            disks.refresh(true);
        });
    }
    let _ = HostInfo::default();
}
