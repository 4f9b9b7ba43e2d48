//! The whole path: an app logs JSON through `logger` into a file -> logagent tails it to
//! Kafka -> logtransfer -> Elasticsearch. The app's lines are then found by search, with
//! their level and origin (file, line, function) as fields, and the agent's host and path.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use test_servers::{Elasticsearch, Etcd, Kafka};

/// The app: logs through `logger` into `path` as JSON; returns the line numbers of the
/// warn and error calls.
fn run_app(path: &std::path::Path, n: u32) -> (u32, u32) {
    let guard = logger::Builder::new()
        .level("trace")
        .log_facade(false)
        .output("file", logger::OutputConfig::file(path).json())
        .init()
        .expect("logger for the app");
    let mut lines = (0, 0);
    for i in 0..n {
        logger::info!(request = i, user = "ann"; "request {} served", i);
    }
    lines.0 = line!() + 1;
    logger::warn!(user = "bob"; "cart almost full");
    lines.1 = line!() + 1;
    logger::error!("payment failed: card declined");
    guard.flush();
    drop(guard);
    lines
}

#[test]
fn app_lines_travel_through_logger_logagent_kafka_logtransfer_into_elasticsearch() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    kafka.create_topic("e2e", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app_log = logs.join("app.log");

    const N: u32 = 50;
    let (warn_line, error_line) = run_app(&app_log, N);
    let total = N as u64 + 2;

    let mut agent_cfg = logagent::config::LocalConfig::default();
    agent_cfg.kafka.address = kafka.bootstrap_servers();
    agent_cfg.kafka.linger_ms = 1;
    agent_cfg.etcd.address = etcd.endpoint();
    agent_cfg.etcd.timeout = 2;
    agent_cfg.agent.data_dir = dir.path().join("agent-data");
    agent_cfg.agent.allowed_paths = format!("{}/**", logs.display());
    agent_cfg.agent.metrics_address = String::new();
    agent_cfg.agent.hostname = "app-host".into();
    agent_cfg.agent.ip = "10.1.2.3".into();
    agent_cfg.agent.poll_interval_ms = 20;
    agent_cfg.agent.scan_interval_ms = 100;
    agent_cfg.agent.worker_threads = 2;
    test_servers::etcd_put(
        &etcd.endpoint(),
        "/logagent/10.1.2.3/collect_config",
        &json!([{"path": app_log.display().to_string(), "topic": "e2e"}]).to_string(),
    );
    let agent = logagent::agent::AgentThread::start(agent_cfg)
        .unwrap_or_else(|e| panic!("logagent did not start: {e}"));
    let transfer = InProcess::start(config(&kafka, &es.url(), "e2e", "e2e-group"));

    wait_count(&es, "logs-e2e-*", total, Duration::from_secs(120));
    transfer.stop();
    agent
        .stop()
        .unwrap_or_else(|e| panic!("logagent stopped with an error: {e}"));
    assert_eq!(
        es.count("logs-e2e-*"),
        total,
        "exactly one document per line"
    );

    let found = es.search(
        "logs-e2e-*",
        &json!({"query": {"match": {"message": "payment failed"}}}),
    );
    let hits = found["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    let doc = &hits[0]["_source"];
    assert_eq!(doc["message"], "payment failed: card declined");
    assert_eq!(doc["log"]["level"], "error");
    assert!(
        doc["log"]["origin"]["file"]["name"]
            .as_str()
            .unwrap()
            .ends_with("end_to_end.rs"),
        "{doc}"
    );
    assert_eq!(doc["log"]["origin"]["file"]["line"], error_line);
    assert!(
        doc["log"]["origin"]["function"]
            .as_str()
            .unwrap()
            .contains("run_app"),
        "{doc}"
    );
    assert_eq!(doc["host"]["name"], "app-host");
    assert_eq!(doc["log"]["file"]["path"], app_log.display().to_string());
    assert!(doc["log"]["offset"].is_u64());
    assert!(doc["event"]["original"].as_str().unwrap().starts_with('{'));

    // Search by the lifted fields themselves.
    let warns = es.search(
        "logs-e2e-*",
        &json!({"query": {"term": {"log.level": "warn"}}}),
    );
    let hits = warns["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{warns}");
    assert_eq!(hits[0]["_source"]["message"], "cart almost full");
    assert_eq!(
        hits[0]["_source"]["log"]["origin"]["file"]["line"],
        warn_line
    );
    assert_eq!(hits[0]["_source"]["user"], "bob");
    let infos = es.search(
        "logs-e2e-*",
        &json!({"size": 100, "query": {"term": {"log.level": "info"}}}),
    );
    assert_eq!(infos["hits"]["hits"].as_array().unwrap().len(), N as usize);
}
