//! Helpers shared by the scenario tests: producing to the real broker, running logtransfer
//! in-process or as a process, reading its /metrics and the index.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logtransfer::config::Config;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use service_kit::background::Background;
use test_servers::{Elasticsearch, Kafka, free_port, http_request, wait_until};

/// Produces `(key, payload, timestamp_ms)` messages and waits until all are acknowledged.
pub fn produce(kafka: &Kafka, topic: &str, messages: &[(String, Vec<u8>, Option<i64>)]) {
    let topic = topic.to_owned();
    let messages = messages.to_vec();
    with_producer(kafka, move |producer| async move {
        let sends = messages.iter().map(|(key, payload, ts)| {
            let mut record = FutureRecord::to(&topic).key(key).payload(payload);
            if let Some(ts) = ts {
                record = record.timestamp(*ts);
            }
            producer.send(record, Duration::from_secs(60))
        });
        for result in futures::future::join_all(sends).await {
            if let Err((e, _)) = result {
                panic!("produce to {topic} failed: {e}");
            }
        }
    });
}

/// Runs `send` with a producer to `kafka` on a thread and runtime of its own (the tests are
/// synchronous), and waits until it is done.
pub fn with_producer<F, Fut>(kafka: &Kafka, send: F)
where
    F: FnOnce(FutureProducer) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let brokers = kafka.bootstrap_servers();
    // Behind TLS, the harness' CA (and client certificate).
    let harness: Vec<(String, String)> = kafka
        .client_config()
        .config_map()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut config = service_kit::kafka::producer_config(&brokers);
            config.extend(harness);
            let producer: FutureProducer =
                config.set("message.timeout.ms", "60000").create().unwrap();
            send(producer).await;
        });
    })
    .join()
    .expect("producer thread");
}

/// A logagent-shaped message (docs/dev/CONTRACTS.md).
pub fn agent_message(
    timestamp: &str,
    message: &str,
    host: &str,
    path: &str,
    offset: u64,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "@timestamp": timestamp,
        "message": message,
        "host": {"name": host},
        "log": {"file": {"path": path}, "offset": offset},
        "agent": {"type": "logagent", "version": "0.1.0"}
    }))
    .unwrap()
}

/// `n` logagent-shaped records of one file (`h:/f`) dated `day`, messages `"{prefix} {i}"`.
pub fn agent_batch(day: &str, prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<i64>)> {
    (0..n)
        .map(|i| {
            (
                "h:/f".to_string(),
                agent_message(
                    &format!("{day}T08:00:00Z"),
                    &format!("{prefix} {i}"),
                    "h",
                    "/f",
                    i as u64,
                ),
                None,
            )
        })
        .collect()
}

/// A logger JSON line (ecs-logging layout).
pub fn logger_line(
    timestamp: &str,
    level: &str,
    message: &str,
    line: u32,
    function: &str,
) -> String {
    json!({
        "@timestamp": timestamp, "log.level": level, "message": message, "ecs.version": "8.11.0",
        "log": {"logger": "demo_app", "origin": {"file": {"name": "src/main.rs", "line": line}, "function": function}},
        "process": {"thread": {"name": "main", "id": 1}}
    })
    .to_string()
}

/// A config for tests: small batches, short waits, quick retries, metrics on a free port.
pub fn config(kafka: &Kafka, es_url: &str, topic: &str, group: &str) -> Config {
    let mut c = Config::default();
    c.kafka.address = kafka.bootstrap_servers();
    c.kafka.topics = topic.into();
    c.kafka.group_id = group.into();
    c.kafka.session_timeout_ms = 6_000;
    c.kafka.commit_interval_ms = 200;
    c.es.address = es_url.into();
    c.es.request_timeout_ms = 5_000;
    c.batch.max_docs = 100;
    c.batch.max_wait_ms = 100;
    c.batch.concurrency = 2;
    c.batch.retry_initial_ms = 50;
    c.batch.retry_max_ms = 500;
    c.transfer.dead_letter_topic = format!("{topic}-dead-letter");
    c.transfer.metrics_address = format!("127.0.0.1:{}", free_port());
    c.transfer.shutdown_timeout_ms = 20_000;
    c
}

/// logtransfer running in-process on its own runtime thread.
pub struct InProcess {
    service: Background<logtransfer::Error>,
    /// Where its /metrics is.
    pub metrics_url: String,
}

impl InProcess {
    /// Starts it.
    pub fn start(config: Config) -> InProcess {
        let metrics_url = format!("http://{}/metrics", config.transfer.metrics_address);
        let service = Background::spawn(2, move |shutdown| logtransfer::run(config, shutdown))
            .expect("a runtime thread for logtransfer");
        InProcess {
            service,
            metrics_url,
        }
    }

    /// A counter or gauge from /metrics (0 when absent or unreachable).
    pub fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics_url, name)
    }

    /// SIGTERM-equivalent: finish, commit, return; asserts a clean exit.
    pub fn stop(self) {
        self.service.stop().expect("logtransfer failed");
    }
}

/// Reads one sample (`logtransfer_indexed_total`) from a /metrics URL.
pub fn metric(url: &str, name: &str) -> f64 {
    test_servers::scrape_metric(url, name).unwrap_or(0.0)
}

/// All series of a labelled metric: `(labels, value)`.
pub fn metric_series(url: &str, name: &str) -> Vec<(String, f64)> {
    let Ok(resp) = http_request("GET", url, None, b"") else {
        return Vec::new();
    };
    let prefix = format!("{name}{{");
    resp.body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (labels, v) = rest.rsplit_once("} ")?;
            Some((labels.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// logtransfer as a child process (for kill -9).
pub struct Process {
    /// The child.
    pub child: Child,
    /// Its /metrics.
    pub metrics_url: String,
}

impl Process {
    /// Writes `config` as an INI file (the format operators use) and starts the binary on it.
    pub fn start(dir: &std::path::Path, config: &Config, name: &str) -> Process {
        Process::start_with(dir, config, name, &[], &[])
    }

    /// [`Process::start`] with extra arguments and environment variables; its stderr goes
    /// to `dir/{name}.log`.
    pub fn start_with(
        dir: &std::path::Path,
        config: &Config,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let ini = format!(
            "[kafka]\naddress = {}\ngroup_id = {}\ntopics = {}\nsession_timeout_ms = {}\ncommit_interval_ms = {}\n\
             [es]\naddress = {}\nrequest_timeout_ms = {}\nop_type = {}\n\
             [batch]\nmax_docs = {}\nmax_wait_ms = {}\nconcurrency = {}\nretry_initial_ms = {}\nretry_max_ms = {}\n\
             [transfer]\ndead_letter_topic = {}\nmetrics_address = {}\n[log]\nlevel = info\n",
            config.kafka.address,
            config.kafka.group_id,
            config.kafka.topics,
            config.kafka.session_timeout_ms,
            config.kafka.commit_interval_ms,
            config.es.address,
            config.es.request_timeout_ms,
            config.es.op_type.as_str(),
            config.batch.max_docs,
            config.batch.max_wait_ms,
            config.batch.concurrency,
            config.batch.retry_initial_ms,
            config.batch.retry_max_ms,
            config.transfer.dead_letter_topic,
            config.transfer.metrics_address,
        );
        Process::start_ini(dir, name, &ini, &config.transfer.metrics_address, args, env)
    }

    /// Writes `ini` to `dir/{name}.ini` and starts the binary on it with `args` and `env`;
    /// its stderr goes to `dir/{name}.log`, its /metrics is on `metrics_address`.
    pub fn start_ini(
        dir: &std::path::Path,
        name: &str,
        ini: &str,
        metrics_address: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let path = dir.join(format!("{name}.ini"));
        std::fs::write(&path, ini).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_logtransfer"))
            .arg("--config")
            .arg(&path)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the logtransfer binary");
        Process {
            child,
            metrics_url: format!("http://{metrics_address}/metrics"),
        }
    }

    /// A sample from its /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics_url, name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `index` holds exactly `n` documents; panics with the last count otherwise.
pub fn wait_count(es: &Elasticsearch, index: &str, n: u64, timeout: Duration) {
    let mut last = 0;
    let ok = wait_until(timeout, || {
        last = es.count(index);
        last >= n
    });
    assert!(
        ok,
        "{index}: {last} documents after {timeout:?}, expected {n}"
    );
}

/// Every document of `index` (up to 10,000), as `_search` hits.
pub fn all_docs(es: &Elasticsearch, index: &str) -> Vec<Value> {
    let resp = es.search(index, &json!({"size": 10000, "query": {"match_all": {}}}));
    resp["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("search of {index} failed: {resp}"))
}

/// GET a path of the ES API as JSON.
pub fn es_get(es: &Elasticsearch, path: &str) -> Value {
    http_request("GET", &format!("{}{path}", es.url()), None, b"")
        .unwrap()
        .json()
}

/// PUT JSON to a path of the ES API; asserts success.
pub fn es_put(es: &Elasticsearch, path: &str, body: &Value) {
    let r = http_request(
        "PUT",
        &format!("{}{path}", es.url()),
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert!(r.status < 300, "PUT {path}: {} {}", r.status, r.body);
}
