//! Throughput of the transfer itself: pre-encoded logagent messages through decode ->
//! bulk encode -> request building -> HTTP `_bulk` into an in-process endpoint that answers
//! `{"errors":false,...}` at once. Measures docs/s (wall) and CPU time per 1k documents of
//! the pipeline thread (getrusage RUSAGE_THREAD): the pipeline runs on ONE thread (a
//! current-thread tokio runtime), the endpoint on another thread that is not counted.
//!
//! `cargo bench -p logtransfer --bench throughput` (env: `LT_BENCH_DOCS`, default 200000;
//! `LT_BENCH_RUNS`, default 5). Prints the median of the runs per scenario.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use logtransfer::acks::NoAck;
use logtransfer::config::BatchConfig;
use logtransfer::config::ElasticsearchConfig;
use logtransfer::event::{DocKey, Event};
use logtransfer::metrics::Metrics;
use logtransfer::prepare::Prepare;
use logtransfer::sinks::dead_letter::LogDeadLetters;
use logtransfer::sinks::elasticsearch::encoder::IndexName;
use logtransfer::sinks::elasticsearch::service::ElasticsearchService;
use logtransfer::sinks::elasticsearch::sink::{self, SinkContext};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Documents the endpoint acknowledged, and when it saw its first request.
#[derive(Default)]
struct EndpointStats {
    docs: std::sync::atomic::AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    /// The endpoint thread's own CPU time, microseconds (to subtract from the process).
    cpu_us: std::sync::atomic::AtomicU64,
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// An endpoint that acknowledges every document at once.
fn start_endpoint(stats: Arc<EndpointStats>) -> String {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("endpoint runtime");
        rt.block_on(async move {
            let cache: Arc<Mutex<HashMap<usize, Arc<String>>>> = Arc::default();
            let app = Router::new().route(
                "/_bulk",
                post(move |body: Bytes| {
                    let cache = cache.clone();
                    let stats = stats.clone();
                    async move {
                        let docs = body.iter().filter(|&&b| b == b'\n').count() / 2;
                        stats.first.lock().expect("first").get_or_insert_with(Instant::now);
                        let resp = cache
                            .lock()
                            .expect("cache")
                            .entry(docs)
                            .or_insert_with(|| {
                                let item = r#"{"index":{"_index":"logs","_id":"x","status":201,"result":"created"}}"#;
                                Arc::new(format!(
                                    r#"{{"took":1,"errors":false,"items":[{}]}}"#,
                                    vec![item; docs].join(",")
                                ))
                            })
                            .clone();
                        stats
                            .docs
                            .fetch_add(docs as u64, std::sync::atomic::Ordering::SeqCst);
                        *stats.last.lock().expect("last") = Some(Instant::now());
                        stats.cpu_us.store(
                            thread_cpu().as_micros() as u64,
                            std::sync::atomic::Ordering::SeqCst,
                        );
                        (
                            [("content-type", "application/json")],
                            resp.as_str().to_owned(),
                        )
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{}", addr_rx.recv().expect("endpoint address"))
}

fn payloads(n: usize, lifted: bool) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let message = if lifted {
                json!({
                    "@timestamp": "2026-11-25T14:00:00.123456Z", "log.level": "info",
                    "message": format!("request {i} served in 3 ms"), "ecs.version": "8.11.0",
                    "log": {"logger": "demo_app::http", "origin": {"file": {"name": "src/http.rs", "line": 42}, "function": "serve"}},
                    "process": {"thread": {"name": "main", "id": 1}}, "status": 200, "path": "/api/items"
                })
                .to_string()
            } else {
                format!(
                    "10.0.0.{} - - [25/Nov/2026:14:00:00 +0000] \"GET /api/items/{i} HTTP/1.1\" 200 512 \"-\" \"curl/8.0\"",
                    i % 250
                )
            };
            serde_json::to_vec(&json!({
                "@timestamp": "2026-11-25T14:00:00.200000Z",
                "message": message,
                "host": {"name": "web-1"},
                "log": {"file": {"path": "/var/log/demo/app.log"}, "offset": i * 200},
                "agent": {"type": "logagent", "version": "0.1.0"}
            }))
            .expect("payload")
        })
        .collect()
}

/// Record `offset` of the bench topic, as the Kafka source hands it over.
fn event<'a>(topic: &Arc<str>, offset: usize, payload: &'a [u8]) -> Event<'a> {
    Event {
        key: DocKey {
            topic: topic.clone(),
            partition: 0,
            offset: offset as i64,
        },
        payload,
        timestamp_ms: Some(0),
        event_id: None,
    }
}

struct Run {
    docs_per_s: f64,
    cpu_us_per_1k: f64,
}

fn run_once(rt: &tokio::runtime::Runtime, url: &str, msgs: &[Vec<u8>]) -> Run {
    rt.block_on(async {
        let es = ElasticsearchConfig {
            address: url.to_owned(),
            ..Default::default()
        };
        let metrics = Metrics::default();
        let ctx = Arc::new(SinkContext {
            service: Arc::new(ElasticsearchService::new(&es).expect("client")),
            dead_letter: Arc::new(LogDeadLetters),
            acker: Arc::new(NoAck),
            metrics: metrics.clone(),
            batch: BatchConfig::default(),
            op_type: es.op_type,
            cancel: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(2_000);
        let sink = tokio::spawn(sink::run(ctx, rx));
        let mut prepare = Prepare::new(IndexName::parse("logs-{topic}-%Y.%m.%d").expect("index"));
        let topic: Arc<str> = "bench".into();
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        for (i, p) in msgs.iter().enumerate() {
            let doc = prepare.apply(event(&topic, i, p));
            if tx.send(doc).await.is_err() {
                panic!("sink stopped early");
            }
        }
        drop(tx);
        sink.await.expect("sink");
        let wall = t0.elapsed();
        let cpu = thread_cpu() - cpu0;
        assert_eq!(
            metrics.indexed.get(),
            msgs.len() as u64,
            "every document acknowledged"
        );
        Run {
            docs_per_s: msgs.len() as f64 / wall.as_secs_f64(),
            cpu_us_per_1k: cpu.as_secs_f64() * 1e6 / (msgs.len() as f64 / 1000.0),
        }
    })
}

/// The whole binary path: records in tansu -> `logtransfer::run` (consumer group,
/// decode, encode, bulk, commits) -> the endpoint. Process CPU minus the endpoint thread.
fn run_with_kafka(url: &str, stats: &EndpointStats, msgs: &[Vec<u8>]) -> Run {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let kafka = test_servers::Kafka::start();
    kafka.create_topic("bench", 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let producer: FutureProducer =
            service_kit::kafka::producer_config(&kafka.bootstrap_servers())
                .create()
                .expect("producer");
        for chunk in msgs.chunks(10_000) {
            let sends = chunk.iter().map(|p| {
                producer.send(
                    FutureRecord::<(), _>::to("bench").payload(p),
                    Duration::from_secs(60),
                )
            });
            for r in futures::future::join_all(sends).await {
                r.map_err(|(e, _)| e).expect("produce");
            }
        }
    });
    let before_docs = stats.docs.load(std::sync::atomic::Ordering::SeqCst);
    *stats.first.lock().expect("first") = None;
    let mut config = logtransfer::config::Config::default();
    config.kafka.address = kafka.bootstrap_servers();
    config.kafka.topics = "bench".into();
    config.es.address = url.to_owned();
    config.es.install_template = false;
    config.transfer.metrics_address = String::new();
    let shutdown = service_kit::shutdown::Shutdown::new();
    let cpu0 = process_cpu();
    let endpoint_cpu0 = stats.cpu_us.load(std::sync::atomic::Ordering::SeqCst);
    let s = shutdown.clone();
    let handle = rt.spawn(async move { logtransfer::run(config, s).await });
    let target = before_docs + msgs.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while stats.docs.load(std::sync::atomic::Ordering::SeqCst) < target {
        assert!(
            Instant::now() < deadline,
            "the transfer did not deliver everything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = process_cpu()
        - cpu0
        - Duration::from_micros(
            stats.cpu_us.load(std::sync::atomic::Ordering::SeqCst) - endpoint_cpu0,
        );
    let first = stats.first.lock().expect("first").expect("a request");
    let last = stats.last.lock().expect("last").expect("a request");
    shutdown.trigger();
    rt.block_on(handle).expect("join").expect("run");
    // CPU includes the ~5 s group join (idle) and librdkafka's threads.
    Run {
        docs_per_s: msgs.len() as f64 / (last - first).as_secs_f64(),
        cpu_us_per_1k: cpu.as_secs_f64() * 1e6 / (msgs.len() as f64 / 1000.0),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("LT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runs: usize = std::env::var("LT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let stats = Arc::new(EndpointStats::default());
    let url = start_endpoint(stats.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("docs per run: {n}, runs: {runs}, batch: max_docs 1000, concurrency 4");
    for (name, lifted) in [
        ("agent JSON, plain line", false),
        ("agent JSON + lifted logger JSON", true),
    ] {
        let msgs = payloads(n, lifted);
        let avg = msgs.iter().map(Vec::len).sum::<usize>() / n;
        // The CPU-bound part alone: decode + bulk encode, no request building or HTTP.
        let mut prepare = Prepare::new(IndexName::parse("logs-{topic}-%Y.%m.%d").expect("index"));
        let topic: Arc<str> = "bench".into();
        let mut encode_only = Vec::new();
        for _ in 0..runs {
            let cpu0 = thread_cpu();
            let mut bytes = 0usize;
            for (i, p) in msgs.iter().enumerate() {
                bytes += prepare.apply(event(&topic, i, p)).bytes.len();
            }
            std::hint::black_box(bytes);
            let cpu = thread_cpu() - cpu0;
            encode_only.push(cpu.as_secs_f64() * 1e6 / (n as f64 / 1000.0));
        }
        let results: Vec<Run> = (0..runs).map(|_| run_once(&rt, &url, &msgs)).collect();
        let rate = median(results.iter().map(|r| r.docs_per_s).collect());
        let cpu = median(results.iter().map(|r| r.cpu_us_per_1k).collect());
        let enc = median(encode_only);
        println!(
            "{name:<34} decode+encode only: {enc:>7.0} µs CPU per 1k docs (= {:>9.0} docs per CPU-second)",
            1e9 / enc
        );
        println!(
            "{name:<34} ({avg} B/msg): median {:>9.0} docs/s wall, {:>7.0} µs CPU per 1k docs (= {:>9.0} docs per CPU-second); runs: {}",
            rate,
            cpu,
            1e9 / cpu,
            results
                .iter()
                .map(|r| format!("{:.0}", r.docs_per_s))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if std::env::var("LT_BENCH_KAFKA").as_deref() != Ok("0") {
        let msgs = payloads(n, false);
        let results: Vec<Run> = (0..runs.min(3))
            .map(|_| run_with_kafka(&url, &stats, &msgs))
            .collect();
        println!(
            "{:<34} (agent JSON): median {:>9.0} docs/s wall (first to last request), {:>7.0} µs process CPU per 1k docs; runs: {}",
            "tansu -> logtransfer::run -> bulk",
            median(results.iter().map(|r| r.docs_per_s).collect()),
            median(results.iter().map(|r| r.cpu_us_per_1k).collect()),
            results
                .iter()
                .map(|r| format!("{:.0}", r.docs_per_s))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
