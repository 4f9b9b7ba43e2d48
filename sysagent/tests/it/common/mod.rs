//! Running an agent in the background of a test, and small readers for the real servers.

#![allow(dead_code)]

use std::thread::JoinHandle;
use std::time::Duration;

use service_kit::shutdown::Shutdown;
use sysagent::sinks::prometheus::Latest;
use sysagent::stats::Stats;
use sysagent::{Agent, Config, RunReport};

/// An agent running on its own thread (single-threaded runtime, like the binary).
pub struct Running {
    pub stats: Stats,
    pub latest: Latest,
    shutdown: Shutdown,
    thread: Option<JoinHandle<RunReport>>,
}

impl Running {
    pub fn start(config: Config) -> Running {
        let agent = Agent::new(config).expect("valid test config");
        let stats = agent.stats();
        let latest = agent.latest();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(agent.run(s))
                .expect("agent runs")
        });
        Running {
            stats,
            latest,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Trigger the shutdown and wait for the flush.
    pub fn stop(mut self) -> RunReport {
        self.shutdown.trigger();
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("agent thread panicked")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Poll `f` every 50 ms for up to `secs`; panic with `what` if it never holds.
pub fn wait_for(secs: u64, what: &str, f: impl FnMut() -> bool) {
    assert!(
        test_servers::wait_until(Duration::from_secs(secs), f),
        "timed out after {secs}s waiting for {what}"
    );
}

/// The first value column of the first row of an InfluxQL answer, if any.
pub fn influx_scalar(answer: &serde_json::Value) -> Option<serde_json::Value> {
    answer["results"][0]["series"][0]["values"][0]
        .get(1)
        .cloned()
}

/// Every row of the first series of an InfluxQL answer (columns by name).
pub fn influx_rows(answer: &serde_json::Value) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<String> = series["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    series["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    columns
                        .iter()
                        .cloned()
                        .zip(row.as_array().cloned().unwrap_or_default())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `key` of /proc/meminfo in bytes.
pub fn proc_meminfo(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .expect("a number");
            return kb * 1024;
        }
    }
    panic!("no {key} in /proc/meminfo");
}

/// Logical CPUs online.
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as u64 }
}

/// A config writing to `influx_url` every `interval_ms`, including loopback traffic.
pub fn influx_config(influx_url: &str, interval_ms: u64) -> Config {
    let mut c = Config::default();
    c.collect.interval = Duration::from_millis(interval_ms);
    c.collect.hostname = "test-host".into();
    c.collect.net_exclude = String::new();
    c.influxdb.address = influx_url.into();
    c.influxdb.database = "sysagent".into();
    c.influxdb.max_backoff = Duration::from_millis(500);
    c
}

/// Every query of a provisioned Grafana dashboard: `(panel title, query text)`.
pub fn dashboard_queries(file: &str, field: &str) -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose/grafana/dashboards")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        for t in panel["targets"].as_array().expect("targets") {
            out.push((title.clone(), t[field].as_str().expect("query").to_string()));
        }
    }
    assert!(out.len() >= 10, "{file} has {} queries", out.len());
    out
}

/// cpu-total points stored in the `sysagent` database (0 while there are none).
pub fn count_cpu_total(influx: &test_servers::Influx) -> u64 {
    let a = influx.query(
        "sysagent",
        "SELECT count(time_idle) FROM cpu WHERE cpu = 'cpu-total'",
    );
    influx_scalar(&a).and_then(|v| v.as_u64()).unwrap_or(0)
}
