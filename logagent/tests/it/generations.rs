//! Scenario: several generations of a file rotated away while the agent was not looking,
//! once after `kill -9` (the agent binary down while the application writes and rotates
//! twice) and once between two polls of a running agent. Every generation beside the path
//! is shipped, oldest first, before the live file; nothing is lost.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use test_servers::{Etcd, Kafka};

const GEN: usize = 1_000;

/// Writes three generations of `GEN` lines each (`app` lines `from..from + 3 * GEN`):
/// the rest of the current file, then two logrotate-style renames (`app.log` → `.1` →
/// `.2`), ending with a new `app.log`.
fn write_and_rotate_twice(app: &Path, logs: &Path, from: usize) {
    append(app, lines("app", from..from + GEN));
    std::fs::rename(app, logs.join("app.log.1")).unwrap();
    append(app, lines("app", from + GEN..from + 2 * GEN));
    std::fs::rename(logs.join("app.log.1"), logs.join("app.log.2")).unwrap();
    std::fs::rename(app, logs.join("app.log.1")).unwrap();
    append(app, lines("app", from + 2 * GEN..from + 3 * GEN));
}

/// Every line of `app` (`0..total`) arrived in `topic`, in order once repeats are removed
/// (the failure says how many are missing).
fn assert_all_in_order(kafka: &Kafka, topic: &str, app: &Path, total: usize) {
    let shipped = consume(
        &kafka.bootstrap_servers(),
        topic,
        total,
        Duration::from_secs(30),
    );
    let got = messages_of(&shipped, app);
    let mut seen = std::collections::HashSet::new();
    let deduped: Vec<String> = got.into_iter().filter(|m| seen.insert(m.clone())).collect();
    let expected = lines("app", 0..total);
    let missing = expected.iter().filter(|l| !seen.contains(*l)).count();
    assert_eq!(missing, 0, "{missing} of {total} lines never shipped");
    assert!(deduped == expected, "lines out of order");
}

#[test]
fn two_generations_rotated_away_while_killed_are_shipped_before_the_new_file() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("gk", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let app = logs.join("app.log");
    let data_dir = dir.path().join("data");
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&app, "gk")));
    let (conf, metrics) = binary_conf(dir.path(), &logs, &kafka, &etcd, "");
    append(&app, lines("app", 0..GEN));
    let mut agent = spawn_binary(&conf);
    // Killed once the first lines are acknowledged and checkpointed, so the checkpoint
    // names the generation that is about to be rotated away.
    let size = std::fs::metadata(&app).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint_offset(&data_dir, &app) != size {
        assert!(Instant::now() < deadline, "first lines never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();

    write_and_rotate_twice(&app, &logs, GEN);
    let mut agent = spawn_binary(&conf);
    let total = 4 * GEN;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Bounded: on failure the assertion below says how many lines are missing.
    while !reached(&metrics, "logagent_lines_sent_total", (total - GEN) as f64)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert_all_in_order(&kafka, "gk", &app, total);
}

#[test]
fn two_renames_between_two_polls_lose_no_generation() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("gp", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let app = logs.join("app.log");
    append(&app, lines("app", 0..GEN));
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&app, "gp")));
    let mut cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    // Polling only, and slowly: both renames land while the tailer sleeps.
    cfg.agent.inotify = false;
    cfg.agent.poll_interval_ms = 2_000;
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= GEN as f64
    });
    write_and_rotate_twice(&app, &logs, GEN);
    let total = 4 * GEN;
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.metric("logagent_lines_sent_total") < total as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.stop();
    assert_all_in_order(&kafka, "gp", &app, total);
}
