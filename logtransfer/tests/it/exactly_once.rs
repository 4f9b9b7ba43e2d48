//! Issue 12's "done when": files -> logagent (binary) -> Kafka -> logtransfer (binary) ->
//! Elasticsearch, with both binaries killed with SIGKILL mid-stream (twice each) and a rename
//! rotation, and every line is in the index exactly once, counted by its own text.
//!
//! Without logagent's event ids, every line the agent sends again after a SIGKILL (those
//! acknowledged after its last checkpoint write) got a new Kafka offset, hence a new `_id`:
//! a second document. With them, it lands on the document it already has (`op_type =
//! create`: a 409, counted as a duplicate, not indexed again).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use logtransfer::sinks::elasticsearch::config::OpType;
use serde_json::json;
use test_servers::{Elasticsearch, Etcd, Kafka, etcd_put, free_port, wait_until};

const LINES: usize = 6_000;
const TOPIC: &str = "x1";
const INDEX: &str = "logs-x1-*";

/// The agent binary. Cargo only names a crate's own binaries to its tests
/// (`CARGO_BIN_EXE_*`); the agent's is built next to logtransfer's, same target directory
/// and profile, whenever logagent's tests are built too (`cargo nextest run --workspace`,
/// or `-p logagent -p logtransfer`).
fn logagent_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_logtransfer")).with_file_name("logagent");
    assert!(
        path.is_file(),
        "the logagent binary is not at {}: build it with `cargo build -p logagent` (running \
         the workspace's tests, or logagent's, builds it)",
        path.display()
    );
    path
}

fn spawn_agent(bin: &Path, conf: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("the agent's log file");
    Command::new(bin)
        .arg("--config")
        .arg(conf)
        .arg("--log-level")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the logagent binary")
}

fn kill_9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Waits for `what`; panics naming it after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    assert!(
        wait_until(timeout, &mut ok),
        "{what}: not within {timeout:?}"
    );
}

/// Documents per `message` text (every document of the index).
fn texts(es: &Elasticsearch) -> (usize, HashMap<String, usize>) {
    let resp = es.search(INDEX, &json!({"size": 10000, "query": {"match_all": {}}}));
    let Some(hits) = resp["hits"]["hits"].as_array() else {
        return (0, HashMap::new());
    };
    let mut counts = HashMap::new();
    for h in hits {
        let text = h["_source"]["message"].as_str().unwrap_or_default();
        *counts.entry(text.to_string()).or_insert(0) += 1;
    }
    (hits.len(), counts)
}

#[test]
fn every_line_is_indexed_exactly_once_through_kill_9_of_both_binaries_and_a_rotation() {
    let agent_bin = logagent_binary();
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    kafka.create_topic(TOPIC, 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    std::fs::File::create(&app).unwrap();

    let agent_port = free_port();
    let agent_metrics = format!("http://127.0.0.1:{agent_port}/metrics");
    let conf = dir.path().join("agent.toml");
    std::fs::write(
        &conf,
        format!(
            "[kafka]\naddress = \"{}\"\nlinger_ms = 1\n[etcd]\naddress = \"{}\"\ntimeout = 2\n\
             collect_log_key = \"/logagent/{{ip}}/collect_config\"\n\
             [agent]\ndata_dir = \"{}\"\nallowed_paths = \"{}/**\"\n\
             metrics_address = \"127.0.0.1:{agent_port}\"\nhostname = \"x1host\"\nip = \"10.7.7.7\"\n\
             poll_interval_ms = 20\nscan_interval_ms = 100\ncheckpoint_interval_ms = 300\n",
            kafka.bootstrap_servers(),
            etcd.endpoint(),
            dir.path().join("agent-data").display(),
            logs.display()
        ),
    )
    .unwrap();
    etcd_put(
        &etcd.endpoint(),
        "/logagent/10.7.7.7/collect_config",
        &json!([{"path": app.display().to_string(), "topic": TOPIC}]).to_string(),
    );
    let mut transfer_cfg = config(&kafka, &es.url(), TOPIC, "x1-group");
    transfer_cfg.es.op_type = OpType::Create;

    let agent_log = |n: u32| dir.path().join(format!("agent-{n}.log"));
    let mut agent = spawn_agent(&agent_bin, &conf, &agent_log(1));
    let mut transfer = Process::start(dir.path(), &transfer_cfg, "transfer-1");
    wait_for("the agent tails app.log", Duration::from_secs(20), || {
        metric(&agent_metrics, "logagent_files_watched") >= 1.0
    });

    // ~5 s of steady writing; halfway, app.log is renamed to app.log.1 and a new app.log
    // is started, as logrotate without copytruncate does.
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (app, written) = (app.clone(), Arc::clone(&written));
        std::thread::spawn(move || {
            for chunk in 0..LINES / 50 {
                if chunk == LINES / 100 {
                    std::fs::rename(&app, app.with_extension("log.1")).unwrap();
                }
                let text: String = (chunk * 50..(chunk + 1) * 50)
                    .map(|i| format!("x1 line {i:06}\n"))
                    .collect();
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&app)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .unwrap();
                written.fetch_add(50, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let at_written = |n: usize| {
        wait_for(
            &format!("{n} lines written"),
            Duration::from_secs(30),
            || written.load(Ordering::Relaxed) >= n,
        )
    };
    // Each kill lands once the process has done some work since its start.
    let agent_sent = |what: &str| {
        wait_for(what, Duration::from_secs(30), || {
            metric(&agent_metrics, "logagent_lines_sent_total") >= 200.0
        })
    };
    let mut agent_runs = 1;
    let mut transfer_runs = 1;
    for (at, which) in [
        (1_500, "agent"),
        (2_500, "transfer"),
        (3_800, "agent"),
        (5_000, "transfer"),
    ] {
        at_written(at);
        if which == "agent" {
            agent_sent("the agent ships before its kill");
            kill_9(&mut agent);
            agent_runs += 1;
            agent = spawn_agent(&agent_bin, &conf, &agent_log(agent_runs));
        } else {
            wait_for(
                "logtransfer indexes before its kill",
                Duration::from_secs(30),
                || transfer.metric("logtransfer_indexed_total") >= 100.0,
            );
            kill_9(&mut transfer.child);
            transfer_runs += 1;
            transfer = Process::start(
                dir.path(),
                &transfer_cfg,
                &format!("transfer-{transfer_runs}"),
            );
        }
    }
    writer.join().unwrap();

    let started = Instant::now();
    let mut last = (0, 0);
    let complete = wait_until(Duration::from_secs(45), || {
        let (docs, counts) = texts(&es);
        last = (docs, counts.len());
        counts.len() >= LINES
    });
    // Anything still in flight (a re-sent line, a replayed batch) settles meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    let (docs, counts) = texts(&es);
    let duplicates = transfer.metric("logtransfer_duplicates_total");
    kill_9(&mut agent);
    let missing: Vec<String> = (0..LINES)
        .map(|i| format!("x1 line {i:06}"))
        .filter(|t| !counts.contains_key(t))
        .collect();
    let repeated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        complete && missing.is_empty(),
        "{} of {LINES} lines never indexed (first: {:?}); last seen {last:?} after {:?}",
        missing.len(),
        missing.first(),
        started.elapsed()
    );
    assert!(
        repeated.is_empty() && docs == LINES,
        "{docs} documents for {LINES} lines: {} lines indexed more than once (e.g. {:?})",
        repeated.len(),
        repeated.iter().take(3).collect::<Vec<_>>()
    );
    eprintln!("{LINES} lines, {docs} documents; last logtransfer counted {duplicates} duplicates");
}
