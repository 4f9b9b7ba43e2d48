//! Credentials never show: with the password in `[es] address` (`http://user:pass@host`)
//! and Elasticsearch refusing connections, the binary's logs (template install, `_bulk`
//! retries) and `/metrics` name the node but never the password.

use std::time::Duration;

use crate::common::*;
use test_servers::{Kafka, free_port, http_request, wait_until};

const PASSWORD: &str = "s3cr3t-Pa55";

/// Runs the binary on `ini` with stderr in `log`, until `log` shows `n` lines naming
/// `node`; returns the log and the /metrics text.
fn run_until_logged(
    dir: &std::path::Path,
    name: &str,
    ini: &str,
    metrics: &str,
    node: &str,
    n: usize,
) -> (String, String) {
    let process = Process::start_ini(dir, name, ini, metrics, &[], &[]);
    let log_path = dir.join(format!("{name}.log"));
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let seen = wait_until(Duration::from_secs(60), || {
        read().lines().filter(|l| l.contains(node)).count() >= n
    });
    let exposition = http_request("GET", &process.metrics_url, None, b"")
        .map(|r| r.body)
        .unwrap_or_default();
    drop(process); // killed and waited for: its log is complete
    let text = read();
    assert!(seen, "{n} lines naming {node} expected; log:\n{text}");
    (text, exposition)
}

#[test]
fn the_password_in_the_address_never_appears_in_logs_or_metrics() {
    let kafka = Kafka::start();
    kafka.create_topic("creds", 1);
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: every request fails with a transport error.
    let node = format!("127.0.0.1:{}", free_port());
    let address = format!("http://elastic:{PASSWORD}@{node}");

    // 1. The template install retries.
    let metrics = format!("127.0.0.1:{}", free_port());
    let ini = format!(
        "[kafka]\naddress = {}\ntopics = creds\n[es]\naddress = {address}\npassword = {PASSWORD}x\n\
         [transfer]\nmetrics_address = {metrics}\n[log]\nlevel = debug\n",
        kafka.bootstrap_servers()
    );
    let (log, exposition) = run_until_logged(dir.path(), "template", &ini, &metrics, &node, 3);
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    assert!(!exposition.contains(PASSWORD), "password in /metrics");

    // 2. `_bulk` retries, with records waiting.
    produce(
        &kafka,
        "creds",
        &[(
            "h:/f".into(),
            agent_message("2026-11-25T08:00:00Z", "m", "h", "/f", 0),
            None,
        )],
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let ini = format!(
        "[kafka]\naddress = {}\ntopics = creds\ngroup_id = creds\n\
         [es]\naddress = {address}\ninstall_template = false\n\
         [batch]\nmax_wait_ms = 10\nretry_initial_ms = 50\nretry_max_ms = 200\n\
         [transfer]\nmetrics_address = {metrics}\n[log]\nlevel = debug\n",
        kafka.bootstrap_servers()
    );
    let (log, exposition) = run_until_logged(dir.path(), "bulk", &ini, &metrics, &node, 3);
    assert!(
        log.contains("_bulk"),
        "the bulk path was exercised; log:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    assert!(!exposition.contains(PASSWORD), "password in /metrics");
}
