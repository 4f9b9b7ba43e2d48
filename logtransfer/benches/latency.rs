//! Write-to-searchable latency of the whole pipeline: lines appended to files at a steady
//! rate -> logagent -> Kafka (tansu) -> logtransfer -> Elasticsearch API (osmem-server),
//! every server real and started by `test-servers`, logagent and logtransfer in-process with
//! their default settings (except the addresses and what the environment below changes).
//!
//! `cargo bench -p logtransfer --bench latency`; environment:
//! - `LAT_RATE` lines per second over all files (default 200), `LAT_SECS` seconds of writing
//!   (default 20), `LAT_FILES` files (default 2, one topic and index each);
//! - `LAT_MAX_WAIT_MS` logtransfer `[batch] max_wait_ms` (default 200, the setting the first
//!   measurement used; the shipped default is 1000), `LAT_FLUSH_WHEN_IDLE` its
//!   `[batch] flush_when_idle` (default `true`, as shipped; `false` is the old behaviour);
//! - `LAT_FETCH_WAIT_MS` logtransfer `[kafka] fetch_wait_max_ms` (shipped default 100; the
//!   first measurement had librdkafka's 500);
//! - `LAT_POLL_MS` logagent `[agent] poll_interval_ms`, `LAT_LINGER_MS` logagent
//!   `[kafka] linger_ms` (shipped defaults when unset).
//!
//! Every line carries its file and sequence number. The times of each line at each hop:
//! - written: by the writer thread, right after the `write(2)` of the line returned;
//! - read: logagent's `@timestamp` (taken when it read the line);
//! - fetched: when a side consumer with logtransfer's fetch settings (`assign`, no group)
//!   got the message from the broker: produce (linger, broker append, ack) + fetch;
//! - bulk sent / acknowledged: a pass-through HTTP proxy in front of osmem-server sees the
//!   `_bulk` request arrive and its answer come back;
//! - searchable: a watcher thread polls `_count` of each index every `LAT_WATCH_MS`
//!   (default 2) **while** the lines are written (one partition per topic keeps a file's
//!   documents in order, so a count of `c` means its first `c` lines are searchable).
//!
//! osmem-server makes a document searchable when its bulk item is answered; real
//! Elasticsearch only after the next refresh (`index.refresh_interval`, 1 s by default and
//! skipped for idle shards), which adds up to that interval to the last hop.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use test_servers::{Elasticsearch, Etcd, Kafka};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wall-clock microseconds since the epoch (the pipeline's own timestamps are wall-clock).
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The times one line was seen at, µs since the epoch; 0 = not (yet) seen.
#[derive(Clone, Copy, Default)]
struct Times {
    written: i64,
    read: i64,
    fetched: i64,
    bulk_sent: i64,
    bulk_acked: i64,
    searchable: i64,
}

/// Times by (file, sequence number).
type Table = Arc<Mutex<Vec<Vec<Times>>>>;

fn record(table: &Table, file: usize, seq: usize, set: impl FnOnce(&mut Times)) {
    let mut t = table.lock().expect("times table");
    if let Some(times) = t.get_mut(file).and_then(|f| f.get_mut(seq)) {
        set(times);
    }
}

/// File and sequence number of a logger line written by [`line`] (or of the document made
/// from it: the lifted fields `lat_file` / `lat_seq`).
fn ids(value: &serde_json::Value) -> Option<(usize, usize)> {
    Some((
        value.get("lat_file")?.as_u64()? as usize,
        value.get("lat_seq")?.as_u64()? as usize,
    ))
}

/// One logger JSON line (the common, lifted case), ~230 bytes.
fn line(file: usize, seq: usize) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        "{{\"@timestamp\":\"{ts}\",\"log.level\":\"info\",\"message\":\"request {seq} served in 3 ms\",\
         \"ecs.version\":\"8.11.0\",\"log\":{{\"logger\":\"demo_app::http\"}},\"lat_file\":{file},\"lat_seq\":{seq}}}\n"
    )
}

/// A pass-through proxy in front of the ES API that notes when each `_bulk` request
/// arrived and when its answer came back, per line it carried.
fn start_proxy(upstream: String, table: Table) -> String {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("proxy runtime");
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let app = Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let client = client.clone();
                    let upstream = upstream.clone();
                    let table = table.clone();
                    async move {
                        let arrived = now_us();
                        let path = uri.path_and_query().map_or("/", |p| p.as_str());
                        let mut request = client.request(method, format!("{upstream}{path}"));
                        if let Some(ct) = headers.get("content-type") {
                            request = request.header("content-type", ct);
                        }
                        let lines: Vec<(usize, usize)> = if uri.path().ends_with("_bulk") {
                            body.split(|&b| b == b'\n')
                                .skip(1)
                                .step_by(2)
                                .filter_map(|doc| serde_json::from_slice(doc).ok())
                                .filter_map(|v| ids(&v))
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let answer = request.body(body).send().await;
                        let acked = now_us();
                        for (file, seq) in lines {
                            record(&table, file, seq, |t| {
                                t.bulk_sent = arrived;
                                t.bulk_acked = acked;
                            });
                        }
                        match answer {
                            Ok(r) => {
                                let status = StatusCode::from_u16(r.status().as_u16())
                                    .unwrap_or(StatusCode::BAD_GATEWAY);
                                let body = r.bytes().await.unwrap_or_default();
                                (status, [("content-type", "application/json")], body)
                            }
                            Err(e) => (
                                StatusCode::BAD_GATEWAY,
                                [("content-type", "text/plain")],
                                Bytes::from(e.to_string()),
                            ),
                        }
                    }
                },
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the proxy");
            addr_tx
                .send(listener.local_addr().expect("proxy address"))
                .expect("send the proxy address");
            axum::serve(listener, app).await.expect("proxy");
        });
    });
    format!("http://{}", addr_rx.recv().expect("proxy address"))
}

/// Reads every topic from the start with logtransfer's fetch settings and notes when each
/// line arrived and logagent's `@timestamp` (read time).
fn start_side_consumer(
    brokers: &str,
    kafka_config: &logtransfer::config::KafkaConfig,
    topics: Vec<String>,
    table: Table,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut cc = service_kit::kafka::consumer_config(brokers, "latency-side");
    logtransfer::sources::kafka::fetch_settings(&mut cc, kafka_config);
    let consumer: BaseConsumer = cc.create().expect("side consumer");
    let mut tpl = TopicPartitionList::new();
    for t in &topics {
        tpl.add_partition_offset(t, 0, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let fetched = now_us();
            let Some(payload) = m.payload() else { continue };
            let Ok(outer) = serde_json::from_slice::<serde_json::Value>(payload) else {
                continue;
            };
            let read = outer["@timestamp"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map_or(0, |t| t.timestamp_micros());
            let inner = outer["message"]
                .as_str()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
            if let Some((file, seq)) = inner.as_ref().and_then(ids) {
                record(&table, file, seq, |t| {
                    t.read = read;
                    t.fetched = fetched;
                });
            }
        }
    })
}

/// Polls `_count` of every index; a count of `c` makes the file's first `c` lines
/// searchable now.
fn start_watcher(
    es: String,
    indices: Vec<String>,
    table: Table,
    stop: Arc<AtomicBool>,
    every: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut seen = vec![0usize; indices.len()];
        while !stop.load(Ordering::Relaxed) {
            for (file, index) in indices.iter().enumerate() {
                let Ok(r) =
                    test_servers::http_request("GET", &format!("{es}/{index}/_count"), None, b"")
                else {
                    continue;
                };
                let count = r.json()["count"].as_u64().unwrap_or(0) as usize;
                if count > seen[file] {
                    let now = now_us();
                    let mut t = table.lock().expect("times table");
                    for seq in seen[file]..count.min(t[file].len()) {
                        t[file][seq].searchable = now;
                    }
                    seen[file] = count;
                }
            }
            std::thread::sleep(every);
        }
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "  {name:<34} p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}  mean {:>7.1} ms",
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        mean
    );
}

fn main() {
    let rate: f64 = env_or("LAT_RATE", 200.0);
    let secs: f64 = env_or("LAT_SECS", 20.0);
    let files: usize = env_or("LAT_FILES", 2).max(1);
    let max_wait_ms: u64 = env_or("LAT_MAX_WAIT_MS", 200);
    let watch_every = Duration::from_millis(env_or("LAT_WATCH_MS", 2));
    let total = (rate * secs) as usize;
    let per_file = total.div_ceil(files) + 1;

    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    let topics: Vec<String> = (0..files).map(|f| format!("lat-{f}")).collect();
    for t in &topics {
        kafka.create_topic(t, 1);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<_> = (0..files)
        .map(|f| dir.path().join(format!("app-{f}.log")))
        .collect();
    let mut outs: Vec<std::fs::File> = paths
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("log file")
        })
        .collect();

    let table: Table = Arc::new(Mutex::new(vec![vec![Times::default(); per_file]; files]));
    let proxy = start_proxy(es.url(), table.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = logtransfer::config::Config::default();
    config.kafka.fetch_wait_max_ms = env_or("LAT_FETCH_WAIT_MS", config.kafka.fetch_wait_max_ms);
    let side = start_side_consumer(
        &kafka.bootstrap_servers(),
        &config.kafka,
        topics.clone(),
        table.clone(),
        stop.clone(),
    );

    let mut agent_cfg = logagent::config::LocalConfig::default();
    agent_cfg.kafka.address = kafka.bootstrap_servers();
    if let Ok(v) = std::env::var("LAT_LINGER_MS") {
        agent_cfg.kafka.linger_ms = v.parse().expect("LAT_LINGER_MS: milliseconds");
    }
    if let Ok(v) = std::env::var("LAT_POLL_MS") {
        agent_cfg.agent.poll_interval_ms = v.parse().expect("LAT_POLL_MS: milliseconds");
    }
    agent_cfg.etcd.address = etcd.endpoint();
    agent_cfg.agent.data_dir = dir.path().join("agent-data");
    agent_cfg.agent.allowed_paths = format!("{}/**", dir.path().display());
    agent_cfg.agent.metrics_address = String::new();
    agent_cfg.agent.hostname = "lat-host".into();
    agent_cfg.agent.ip = "10.9.9.9".into();
    let collect: Vec<_> = paths
        .iter()
        .zip(&topics)
        .map(|(p, t)| json!({"path": p.display().to_string(), "topic": t}))
        .collect();
    test_servers::etcd_put(
        &etcd.endpoint(),
        "/logagent/10.9.9.9/collect_config",
        &serde_json::Value::Array(collect).to_string(),
    );
    let agent = logagent::agent::AgentThread::start(agent_cfg).expect("logagent starts");

    config.kafka.address = kafka.bootstrap_servers();
    config.kafka.topics = topics.join(",");
    config.kafka.group_id = "latency".into();
    config.es.address = proxy;
    config.es.index = "{topic}".into();
    config.batch.max_wait_ms = max_wait_ms;
    config.batch.flush_when_idle = env_or("LAT_FLUSH_WHEN_IDLE", true);
    config.transfer.metrics_address = String::new();
    let fetch_wait_max_ms = config.kafka.fetch_wait_max_ms;
    let shutdown = service_kit::shutdown::Shutdown::new();
    let transfer = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("logtransfer runtime")
                .block_on(logtransfer::run(config, shutdown))
        })
    };

    let watcher = start_watcher(
        es.url(),
        topics.clone(),
        table.clone(),
        stop.clone(),
        watch_every,
    );

    // Warm-up: line 0 of every file, until it is searchable (the consumer group join on
    // tansu alone takes ~5 s). Not measured.
    for (f, out) in outs.iter_mut().enumerate() {
        out.write_all(line(f, 0).as_bytes()).expect("write");
    }
    let warm = test_servers::wait_until(Duration::from_secs(120), || {
        let t = table.lock().expect("times table");
        (0..files).all(|f| t[f][0].searchable != 0)
    });
    assert!(warm, "the warm-up lines never became searchable");

    println!(
        "rate {rate} lines/s over {files} files for {secs} s ({total} lines), logtransfer max_wait_ms {max_wait_ms} flush_when_idle {} fetch_wait_max_ms {}, watcher every {} ms",
        env_or("LAT_FLUSH_WHEN_IDLE", true),
        fetch_wait_max_ms,
        watch_every.as_millis()
    );
    let t0 = Instant::now();
    let mut next = vec![1usize; files];
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let f = i % files;
        let seq = next[f];
        next[f] += 1;
        outs[f].write_all(line(f, seq).as_bytes()).expect("write");
        record(&table, f, seq, |t| t.written = now_us());
    }
    let write_secs = t0.elapsed().as_secs_f64();
    let done = test_servers::wait_until(Duration::from_secs(120), || {
        let t = table.lock().expect("times table");
        (0..files).all(|f| (1..next[f]).all(|s| t[f][s].searchable != 0))
    });
    // Let the side consumer and proxy notes settle.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    side.join().expect("side consumer");
    shutdown.trigger();
    let _ = transfer.join();
    let _ = agent.stop();
    assert!(done, "not every line became searchable within 120 s");

    let t = table.lock().expect("times table");
    let all: Vec<Times> = (0..files).flat_map(|f| t[f][1..next[f]].to_vec()).collect();
    let ms = |a: i64, b: i64| (b - a) as f64 / 1000.0;
    println!(
        "wrote {} lines in {write_secs:.1} s ({:.0} lines/s)",
        all.len(),
        all.len() as f64 / write_secs
    );
    summary(
        "write -> searchable",
        all.iter().map(|x| ms(x.written, x.searchable)).collect(),
    );
    let complete: Vec<&Times> = all
        .iter()
        .filter(|x| x.read != 0 && x.fetched != 0 && x.bulk_sent != 0)
        .collect();
    println!(
        "per hop ({} of {} lines seen at every hop):",
        complete.len(),
        all.len()
    );
    let hop = |name: &str, f: &dyn Fn(&Times) -> f64| {
        summary(name, complete.iter().map(|x| f(x)).collect());
    };
    hop("read (write -> logagent @timestamp)", &|x| {
        ms(x.written, x.read)
    });
    hop("produce+fetch (-> side consumer)", &|x| {
        ms(x.read, x.fetched)
    });
    hop("batch (-> _bulk sent)", &|x| ms(x.fetched, x.bulk_sent));
    hop("bulk (sent -> answered)", &|x| {
        ms(x.bulk_sent, x.bulk_acked)
    });
    hop("searchable (answered -> _count)", &|x| {
        ms(x.bulk_acked, x.searchable)
    });
    let mut per_request: HashMap<i64, usize> = HashMap::new();
    for x in &complete {
        *per_request.entry(x.bulk_sent).or_default() += 1;
    }
    println!(
        "  _bulk requests: {} ({:.1} lines each)",
        per_request.len(),
        complete.len() as f64 / per_request.len().max(1) as f64
    );
}
