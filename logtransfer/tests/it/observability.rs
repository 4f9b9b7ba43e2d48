//! The pipeline watching itself (issue 12): every document says when it was ingested, the
//! write-to-searchable latency is measured from the line's read time, and the provisioned
//! Grafana dashboard "pipeline" reads only metrics that the running binaries export.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use test_servers::{
    Elasticsearch, Etcd, FaultProxy, Kafka, Prometheus, free_port, http_request, wait_until,
};

const DASHBOARD: &str = "pipeline.json";

/// Every PromQL expression of a provisioned dashboard: `(panel title, expression)`, rows'
/// nested panels included.
fn dashboard_exprs(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose/grafana/dashboards")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the dashboard {}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.to_string(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names (inside `{...}` or after `by`/`without`/`on`/`ignoring`/
/// `group_left`/`group_right`), strings, durations, numbers or Grafana `$variables`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let skip_to = |mut i: usize, close: u8| {
        while i < b.len() && b[i] != close {
            if b[i] == b'"' || b[i] == b'\'' {
                let quote = b[i];
                i += 1;
                while i < b.len() && b[i] != quote {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        i + 1
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_to(i + 1, c),
            b'{' => i = skip_to(i + 1, b'}'),
            b'[' => i = skip_to(i + 1, b']'),
            b'$' => {
                i += 1;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident(c) => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                let mut after = next;
                while after < b.len() && ident(b[after]) {
                    after += 1;
                }
                // A function, or an aggregation written `sum by (...) (...)`.
                let call = (next < b.len() && b[next] == b'(')
                    || matches!(&expr[next..after], "by" | "without");
                if LABEL_LISTS.contains(&word) {
                    if call {
                        i = skip_to(next + 1, b')');
                    }
                } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    names.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The sample names a `/metrics` body exports: every sample's name, and for every family
/// its `# TYPE` line declares (also one with no series yet) the names of its type.
fn exported_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// `(panel, name)` for every name the expressions read that is not in `exported`.
fn unknown_names(exprs: &[(String, String)], exported: &BTreeSet<String>) -> Vec<(String, String)> {
    exprs
        .iter()
        .flat_map(|(title, expr)| {
            metric_names(expr)
                .into_iter()
                .filter(|name| !exported.contains(name))
                .map(move |name| (title.clone(), name))
        })
        .collect()
}

fn body(url: &str) -> String {
    http_request("GET", url, None, b"")
        .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
        .body
}

/// Every metric name Prometheus holds series for (what it scraped, and what it makes up
/// itself: `up`, `scrape_duration_seconds`, ...).
fn prometheus_names(prometheus: &Prometheus) -> BTreeSet<String> {
    let url = format!("{}/api/v1/label/__name__/values", prometheus.url());
    let answer = http_request("GET", &url, None, b"")
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .json();
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: {answer}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `event.ingested` of a document, checked to be RFC 3339 UTC with milliseconds.
fn ingested(doc: &Value) -> DateTime<Utc> {
    let text = doc["event"]["ingested"]
        .as_str()
        .unwrap_or_else(|| panic!("no event.ingested in {doc}"));
    assert!(
        text.len() == "2026-12-02T01:02:03.456Z".len() && text.ends_with('Z'),
        "{text}"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("event.ingested {text:?}: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn the_extractor_finds_metric_names_and_only_them() {
    let expr = r#"histogram_quantile(0.99, sum by (le, job) (rate(a_seconds_bucket{path=~"x{1}"}[$__rate_interval]))) / ignoring(job) group_left(path) b_total offset 5m or on(instance) up > bool 0 and $var"#;
    assert_eq!(
        metric_names(expr),
        ["a_seconds_bucket", "b_total", "up"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // A name the binaries do not export is reported.
    let exported = exported_names("# TYPE b counter\nb_total 1\nup 1\n");
    assert_eq!(
        unknown_names(&[("p".into(), expr.into())], &exported),
        vec![("p".to_string(), "a_seconds_bucket".to_string())]
    );
}

/// logagent and logtransfer run in-process (the same registries their binaries serve),
/// Prometheus scrapes both while lines travel from a file to Elasticsearch. Then: every
/// metric name in the dashboard's queries is one they export or Prometheus makes up, every
/// query runs, and the queries over series that exist return data. Every document has
/// `event.ingested`, and every indexed one is in the latency histogram.
#[test]
fn the_pipeline_dashboard_reads_only_metrics_the_binaries_export() {
    let exprs = dashboard_exprs(DASHBOARD);
    assert!(exprs.len() >= 15, "{DASHBOARD} has {} queries", exprs.len());

    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    kafka.create_topic("obs", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let append = |name: &str, from: u64, to: u64| {
        let mut text = String::new();
        for i in from..to {
            text.push_str(&logger_line(
                "2026-12-02T01:00:00.000001Z",
                "info",
                &format!("{name} line {i}"),
                1,
                "f",
            ));
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(name))
            .unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    };
    append("a.log", 0, 20);
    append("b.log", 0, 20);
    const LINES: u64 = 50;

    let agent_metrics = format!("127.0.0.1:{}", free_port());
    let mut agent_cfg = logagent::config::LocalConfig::default();
    agent_cfg.kafka.address = kafka.bootstrap_servers();
    agent_cfg.kafka.linger_ms = 1;
    agent_cfg.etcd.address = etcd.endpoint();
    agent_cfg.etcd.timeout = 2;
    agent_cfg.agent.data_dir = dir.path().join("agent-data");
    agent_cfg.agent.allowed_paths = format!("{}/**", logs.display());
    agent_cfg.agent.metrics_address = agent_metrics.clone();
    agent_cfg.agent.hostname = "obs-host".into();
    agent_cfg.agent.ip = "10.9.8.7".into();
    agent_cfg.agent.poll_interval_ms = 20;
    agent_cfg.agent.scan_interval_ms = 100;
    agent_cfg.agent.worker_threads = 2;
    test_servers::etcd_put(
        &etcd.endpoint(),
        "/logagent/10.9.8.7/collect_config",
        &json!([{"path": format!("{}/*.log", logs.display()), "topic": "obs"}]).to_string(),
    );
    let started = Utc::now();
    let agent = logagent::agent::AgentThread::start(agent_cfg)
        .unwrap_or_else(|e| panic!("logagent did not start: {e}"));
    // Elasticsearch behind a proxy that can refuse a request: the error families have a
    // series only once an error happened.
    let proxy = FaultProxy::start(&es.url());
    let config = config(&kafka, &proxy.url(), "obs", "obs-group");
    let transfer_metrics = config.transfer.metrics_address.clone();
    let transfer = InProcess::start(config);
    let prometheus = Prometheus::start(&[&agent_metrics, &transfer_metrics]);

    wait_count(&es, "logs-obs-*", 40, Duration::from_secs(120));
    // The next _bulk answers 503 (retried, counted in es_request_errors{status="5xx"}).
    proxy.fail_next(1, 503);
    append("a.log", 20, 30);
    wait_count(&es, "logs-obs-*", LINES, Duration::from_secs(120));
    assert_eq!(proxy.faulted(), 1);
    es.refresh();
    let docs = all_docs(&es, "logs-obs-*");
    assert_eq!(docs.len() as u64, LINES);
    for doc in &docs {
        let at = ingested(&doc["_source"]);
        assert!(at >= started && at <= Utc::now(), "{doc}");
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            transfer.metric("logtransfer_end_to_end_latency_seconds_count") == LINES as f64
        }),
        "every indexed document is in the latency histogram: {}",
        body(&transfer.metrics_url)
    );
    assert_eq!(transfer.metric("logtransfer_indexed_total"), LINES as f64);

    let agent_url = format!("http://{agent_metrics}/metrics");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let up = prometheus.query("count(up == 1)");
            up[0]["value"][1] == "2"
        }),
        "Prometheus scrapes both: {}",
        prometheus.query("up")
    );
    let mut exported = exported_names(&body(&agent_url));
    exported.extend(exported_names(&body(&transfer.metrics_url)));
    assert!(exported.contains("logagent_file_lag_bytes"), "{exported:?}");
    let held = prometheus_names(&prometheus);
    exported.extend(held.iter().cloned());
    let unknown = unknown_names(&exprs, &exported);
    assert!(
        unknown.is_empty(),
        "{DASHBOARD} reads metrics no binary exports (panel, name): {unknown:?}; exported: {exported:?}"
    );

    for (title, expr) in &exprs {
        let q = expr
            .replace("$__rate_interval", "10s")
            .replace("$__range", "5m");
        // Runs (a bad query fails the request) ...
        let _ = prometheus.query(&q);
        // ... and finds data once every series it reads exists.
        if metric_names(expr).iter().all(|n| held.contains(n)) {
            assert!(
                wait_until(Duration::from_secs(20), || {
                    prometheus
                        .query(&q)
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                }),
                "{title}: no data for {q}"
            );
        }
    }

    transfer.stop();
    agent
        .stop()
        .unwrap_or_else(|e| panic!("logagent stopped with an error: {e}"));
}

/// The latency runs from the record's Kafka timestamp (logagent's read time), not from
/// when logtransfer saw it: records stamped 100 s ago all land beyond the 60 s bucket.
#[test]
fn end_to_end_latency_counts_from_the_records_read_time() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("lat", 1);
    const N: u64 = 30;
    let read_at = Utc::now() - chrono::Duration::seconds(100);
    let messages: Vec<(String, Vec<u8>, Option<i64>)> = (0..N)
        .map(|i| {
            (
                "h:/var/log/a.log".to_string(),
                agent_message(
                    &read_at.to_rfc3339(),
                    &format!("line {i}"),
                    "h",
                    "/var/log/a.log",
                    i * 10,
                ),
                Some(read_at.timestamp_millis()),
            )
        })
        .collect();
    produce(&kafka, "lat", &messages);
    let transfer = InProcess::start(config(&kafka, &es.url(), "lat", "lat-group"));
    wait_count(&es, "logs-lat-*", N, Duration::from_secs(120));
    let metric = |name: &str| transfer.metric(name);
    assert!(
        wait_until(Duration::from_secs(30), || {
            metric("logtransfer_end_to_end_latency_seconds_count") == N as f64
        }),
        "{}",
        body(&transfer.metrics_url)
    );
    let text = body(&transfer.metrics_url);
    let bucket = |le: &str| {
        let prefix = format!("logtransfer_end_to_end_latency_seconds_bucket{{le=\"{le}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no bucket le={le}: {text}"))
            .trim()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(bucket("0.005"), 0.0, "{text}");
    assert_eq!(bucket("60.0"), 0.0, "{text}");
    assert_eq!(bucket("+Inf"), N as f64, "{text}");
    assert!(
        metric("logtransfer_end_to_end_latency_seconds_sum") >= 100.0 * N as f64,
        "{text}"
    );
    transfer.stop();
}

/// In compose, Prometheus scrapes every binary where its config makes it listen (so the
/// dashboard has data there), its config is valid (promtool), and the dashboard's panels
/// use the provisioned Prometheus datasource.
#[test]
fn compose_prometheus_scrapes_every_binary_and_the_dashboard_uses_its_datasource() {
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose");
    let read = |rel: &str| {
        std::fs::read_to_string(compose.join(rel))
            .unwrap_or_else(|e| panic!("read compose/{rel}: {e}"))
    };
    let prometheus_yml = compose.join("prometheus/prometheus.yml");
    let check = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&prometheus_yml)
        .output()
        .unwrap_or_else(|e| panic!("promtool (Debian prometheus; scripts/setup.sh): {e}"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let scrape = read("prometheus/prometheus.yml");
    for (binary, key) in [
        ("logagent", "metrics_address"),
        ("logtransfer", "metrics_address"),
        ("sysagent", "listen"),
    ] {
        let ini = read(&format!("config/{binary}.ini"));
        let port = ini
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().rsplit(':').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no {key} in compose/config/{binary}.ini"));
        assert!(
            scrape.contains(&format!("job_name: {binary}"))
                && scrape.contains(&format!("\"{binary}:{port}\"")),
            "compose/prometheus/prometheus.yml does not scrape {binary}:{port}: {scrape}"
        );
    }

    let datasources = read("grafana/provisioning/datasources/sysagent.yml");
    let dashboard: Value = serde_json::from_str(&read(&format!("grafana/dashboards/{DASHBOARD}")))
        .expect("dashboard JSON");
    assert_eq!(dashboard["title"], "pipeline");
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let uid = panel["datasource"]["uid"].as_str().unwrap_or_default();
        assert!(
            datasources.contains(&format!("uid: {uid}\n    type: prometheus")),
            "panel {}: datasource {uid:?} is not a provisioned Prometheus",
            panel["title"]
        );
    }
}
