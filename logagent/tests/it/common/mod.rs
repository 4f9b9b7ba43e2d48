//! Shared scenario helpers: an in-process agent on its own runtime, etcd writes, topic
//! reads and metric scrapes. Everything here is blocking so the tests read top to bottom.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logagent::agent::AgentThread;
use logagent::config::LocalConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

pub const HOST: &str = "testhost";
pub const IP: &str = "10.9.8.7";
pub const KEY: &str = "/logagent/10.9.8.7/collect_config";

/// A config with short intervals, for `logs` under `dir`.
pub fn config(dir: &Path, kafka: &str, etcd: &str) -> LocalConfig {
    let mut c = LocalConfig::default();
    c.kafka.address = kafka.to_string();
    c.kafka.linger_ms = 1;
    c.etcd.address = etcd.to_string();
    c.etcd.timeout = 2;
    c.agent.data_dir = dir.join("data");
    c.agent.allowed_paths = format!("{}/logs/**", dir.display());
    c.agent.metrics_address = "127.0.0.1:0".to_string();
    c.agent.hostname = HOST.to_string();
    c.agent.ip = IP.to_string();
    c.agent.poll_interval_ms = 20;
    c.agent.scan_interval_ms = 100;
    c.agent.checkpoint_interval_ms = 200;
    c.agent.close_renamed_after_ms = 300;
    c.agent.flush_timeout = 30;
    c.agent.worker_threads = 2;
    c
}

/// Writes a TOML config for the agent binary: `kafka` and `etcd`, state in `dir/data`,
/// `logs` as the allowed directory, /metrics on `metrics_port`, quick polling. `extra_agent`
/// is appended to the `[agent]` section (`key = value` lines).
/// The binary tests also send the event id as a header (off by default), so that the
/// header path is covered by a test.
pub fn write_conf(
    dir: &Path,
    kafka: &str,
    etcd: &str,
    logs: &Path,
    metrics_port: u16,
    extra_agent: &str,
) -> PathBuf {
    let conf = dir.join("conf.toml");
    std::fs::write(
        &conf,
        format!(
            "[kafka]\naddress = \"{kafka}\"\nlinger_ms = 1\nevent_id_header = true\n[etcd]\naddress = \"{etcd}\"\ntimeout = 2\n\
             collect_log_key = \"/logagent/{{ip}}/collect_config\"\n\
             [agent]\ndata_dir = \"{}\"\nallowed_paths = \"{}/**\"\nmetrics_address = \"127.0.0.1:{metrics_port}\"\n\
             hostname = \"{HOST}\"\nip = \"{IP}\"\npoll_interval_ms = 20\nscan_interval_ms = 100\n{extra_agent}",
            dir.join("data").display(),
            logs.display()
        ),
    )
    .unwrap();
    conf
}

/// The agent, running in this process on its own runtime.
pub struct Agent {
    agent: AgentThread,
    pub metrics: SocketAddr,
}

impl Agent {
    pub fn start(config: LocalConfig) -> Agent {
        init_log();
        let agent =
            AgentThread::start(config).unwrap_or_else(|e| panic!("agent did not start: {e}"));
        let metrics = agent
            .metrics_addr()
            .expect("the test config serves /metrics");
        Agent { agent, metrics }
    }

    /// A metric's value (0 when not exported yet).
    pub fn metric(&self, name: &str) -> f64 {
        metric(&format!("http://{}/metrics", self.metrics), name)
    }

    /// Polls until `name` satisfies `ok`, or panics with its last value.
    pub fn wait_metric(&self, name: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.metric(name);
            if ok(v) {
                return v;
            }
            assert!(Instant::now() < deadline, "metric {name} stuck at {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the agent stopped on its own, then returns what it ended with.
    pub fn wait_for_exit(self, timeout: Duration) -> Result<(), logagent::agent::AgentError> {
        let deadline = Instant::now() + timeout;
        while !self.agent.is_finished() {
            assert!(Instant::now() < deadline, "the agent is still running");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.agent.stop()
    }

    /// SIGTERM-equivalent: stop reading, flush, write checkpoints.
    pub fn stop(self) {
        self.agent
            .stop()
            .unwrap_or_else(|e| panic!("agent stopped with an error: {e}"));
    }
}

/// One sample from a /metrics URL; NaN while the endpoint does not answer.
pub fn metric(url: &str, name: &str) -> f64 {
    test_servers::scrape_metric(url, name).unwrap_or(f64::NAN)
}

pub use test_servers::etcd_put;

/// One shipped line, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    pub key: String,
    pub path: String,
    pub offset: u64,
    pub message: String,
    pub value: serde_json::Value,
    /// The Kafka header `event.id`, if any.
    pub event_id_header: Option<String>,
}

/// Reads `topic` from the beginning until `expected` messages arrived, then until nothing
/// new came for 1.5 s (so extra messages, e.g. duplicates, are seen too). Partition order.
pub fn consume(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Shipped> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "logagent-tests")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            if n > 0 {
                break n;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut parts: Vec<Vec<(i64, Shipped)>> = vec![Vec::new(); partitions];
    let mut n = 0;
    let mut last_new = Instant::now();
    loop {
        if n >= expected && last_new.elapsed() > Duration::from_millis(1500) {
            break;
        }
        if n < expected && Instant::now() > deadline {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            let s = Shipped {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                path: value["log"]["file"]["path"].as_str().unwrap().to_string(),
                offset: value["log"]["offset"].as_u64().unwrap(),
                message: value["message"].as_str().unwrap().to_string(),
                value,
                event_id_header: m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "event.id")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                }),
            };
            parts[m.partition() as usize].push((m.offset(), s));
            n += 1;
            last_new = Instant::now();
        }
    }
    parts
        .into_iter()
        .flat_map(|mut v| {
            v.sort_by_key(|(o, _)| *o);
            v.into_iter().map(|(_, s)| s)
        })
        .collect()
}

/// The offset saved in `data_dir`'s checkpoint file for `path` (0 when there is none).
pub fn checkpoint_offset(data_dir: &Path, path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(data_dir.join("checkpoints.json")) else {
        return 0;
    };
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["checkpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["path"] == path.to_string_lossy().as_ref())
        .and_then(|c| c["offset"].as_u64())
        .unwrap_or(0)
}

/// Messages of one file, in topic order.
pub fn messages_of(shipped: &[Shipped], path: &Path) -> Vec<String> {
    let p = path.to_string_lossy();
    shipped
        .iter()
        .filter(|s| s.path == p)
        .map(|s| s.message.clone())
        .collect()
}

/// Appends `lines` to `path` (creating it), one write per call.
pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

pub fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i:06}")).collect()
}

pub fn logs_dir(dir: &Path) -> PathBuf {
    let d = dir.join("logs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn entry(path: &Path, topic: &str) -> String {
    format!(r#"{{"path":"{}","topic":"{topic}"}}"#, path.display())
}

/// The agent's log on stderr (shown for failing tests); level from TEST_LOG, default info.
pub fn init_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let level = std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into());
        if let Ok(guard) = logger::Builder::new()
            .level(level)
            .output("console", logger::OutputConfig::console())
            .init()
        {
            std::mem::forget(guard);
        }
    });
}

/// Runs `f` on its own thread and returns its result, or panics naming `what` when it takes
/// longer than `limit`: a frozen agent fails the test instead of hanging CI (the stuck
/// thread dies with the test's process).
pub fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {limit:?} (the agent is frozen)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{what}: failed (the panic above says why)")
        }
    }
}

/// [`Agent::wait_metric`] on a bare `/metrics` address, for use inside [`bounded`].
pub fn wait_metric_at(
    metrics: SocketAddr,
    name: &str,
    timeout: Duration,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let url = format!("http://{metrics}/metrics");
    let deadline = Instant::now() + timeout;
    loop {
        let v = metric(&url, name);
        if ok(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "metric {name} stuck at {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`write_conf`] with /metrics on a free port; returns the file and the /metrics URL.
pub fn binary_conf(
    dir: &Path,
    logs: &Path,
    kafka: &test_servers::Kafka,
    etcd: &test_servers::Etcd,
    extra_agent: &str,
) -> (PathBuf, String) {
    let port = test_servers::free_port();
    let kafka = kafka.bootstrap_servers();
    let conf = write_conf(dir, &kafka, &etcd.endpoint(), logs, port, extra_agent);
    (conf, format!("http://127.0.0.1:{port}/metrics"))
}

/// Starts the agent binary with `conf` (killed with SIGKILL by the tests that need it).
pub fn spawn_binary(conf: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_logagent"))
        .arg("--config")
        .arg(conf)
        .arg("--log-level")
        .arg("warn")
        .spawn()
        .unwrap()
}

/// Whether the metric is at least `at` (false while the endpoint is not up: NaN).
pub fn reached(url: &str, name: &str, at: f64) -> bool {
    metric(url, name) >= at
}
