//! Scenario against a real Prometheus: it scrapes sysagent, `up == 1`, and node_exporter's
//! series are queryable with the host's values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use service_kit::shutdown::Shutdown;
use sysagent::collect::{CollectError, Collector, Collectors};
use sysagent::sample::{HostInfo, Sample};
use sysagent::{Agent, Config};
use test_servers::{Prometheus, free_port, http_request};

fn scalar(result: &serde_json::Value) -> Option<f64> {
    result[0]["value"][1].as_str().and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_node_exporter_names() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut config = Config::default();
    config.collect.interval = Duration::from_millis(500);
    config.collect.net_exclude = String::new();
    config.prometheus.listen = listen.clone();
    let agent = Running::start(config);

    let prometheus = Prometheus::start(&[&listen]);
    wait_for(30, "up == 1 for sysagent", || {
        scalar(&prometheus.query("up{job=\"test\"}")) == Some(1.0)
    });
    wait_for(30, "node_memory_MemTotal_bytes in Prometheus", || {
        scalar(&prometheus.query("node_memory_MemTotal_bytes")).is_some()
    });

    assert_eq!(
        scalar(&prometheus.query("node_memory_MemTotal_bytes")),
        Some(proc_meminfo("MemTotal") as f64)
    );
    let avail = scalar(&prometheus.query("node_memory_MemAvailable_bytes")).unwrap();
    assert!(avail > 0.0 && avail <= proc_meminfo("MemTotal") as f64);

    // One idle series per core, like node_exporter.
    assert_eq!(
        scalar(&prometheus.query("count(node_cpu_seconds_total{mode=\"idle\"})")),
        Some(online_cpus() as f64)
    );
    assert_eq!(
        scalar(&prometheus.query("count(count by (mode) (node_cpu_seconds_total))")),
        Some(8.0),
        "user nice system idle iowait irq softirq steal"
    );
    let lo = scalar(&prometheus.query("node_network_receive_bytes_total{device=\"lo\"}")).unwrap();
    assert!(lo > 0.0, "loopback carried the scrapes");
    assert!(scalar(&prometheus.query("node_load1")).unwrap() >= 0.0);
    assert!(scalar(&prometheus.query("node_boot_time_seconds")).unwrap() > 1.0e9);
    assert_eq!(
        scalar(&prometheus.query("count(node_uname_info{sysname=\"Linux\"})")),
        Some(1.0)
    );

    // CPU busy share computed the node_exporter way is a percentage.
    wait_for(30, "a CPU rate over two scrapes", || {
        scalar(
            &prometheus.query("100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\"}[5s])))"),
        )
        .is_some()
    });
    let busy = scalar(
        &prometheus.query("100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\"}[5s])))"),
    )
    .unwrap();
    assert!((0.0..=100.0).contains(&busy), "busy {busy}%");

    // The provisioned Grafana dashboard's queries find data.
    let latest = agent.latest.get().expect("a sample");
    let has_disks = !latest.filesystems.is_empty() && !latest.diskio.is_empty();
    for (title, q) in dashboard_queries("host-prometheus.json", "expr") {
        let q = q
            .replace("$instance", ".*")
            .replace("$__rate_interval", "5s");
        if (q.contains("node_filesystem") || q.contains("node_disk")) && !has_disks {
            continue;
        }
        let r = prometheus.query(&q);
        assert!(
            r.as_array().is_some_and(|a| !a.is_empty()),
            "{title}: no data for {q}"
        );
    }

    // sysagent's own counters are on the same endpoint.
    let body = http_request("GET", &format!("http://{listen}/metrics"), None, b"")
        .expect("scrape")
        .body;
    assert!(body.contains("sysagent_collections_total "), "{body}");
    assert!(agent.stats.scrapes.get() >= 2);
    agent.stop();
}

/// Blocks on its second call until released: a `statvfs` on a hung mount, say.
struct StuckCollector {
    calls: Arc<AtomicU64>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Collector for StuckCollector {
    fn name(&self) -> &'static str {
        "stuck"
    }

    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
            let _ = self.release.lock().unwrap().recv();
        }
        Ok(())
    }
}

#[test]
fn a_stuck_collector_does_not_stop_the_endpoint() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut config = Config::default();
    config.collect.interval = Duration::from_millis(100);
    config.prometheus.listen = listen.clone();
    let mut agent = Agent::new(config).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let (release, rx) = std::sync::mpsc::channel();
    let host = Arc::new(HostInfo::default());
    agent.set_collectors(Collectors::from_parts(
        host,
        vec![Box::new(StuckCollector {
            calls: Arc::clone(&calls),
            release: Mutex::new(rx),
        })],
    ));
    let stats = agent.stats();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(agent.run(s))
    });

    wait_for(20, "the collector to get stuck", || {
        calls.load(Ordering::SeqCst) >= 2
    });
    let scrape = || http_request("GET", &format!("http://{listen}/metrics"), None, b"");
    wait_for(20, "/metrics while the collector is stuck", || {
        scrape().is_ok_and(|r| r.status == 200)
    });
    let body = scrape().unwrap().body;
    assert!(
        body.contains("sysagent_collections_total 1\n"),
        "one collection done, the second stuck: {body}"
    );

    release.send(()).unwrap();
    wait_for(20, "collection to resume", || stats.collections.get() >= 3);
    shutdown.trigger();
    let report = thread.join().unwrap().unwrap();
    assert!(report.collections >= 3);
}
