//! Scenario: polling and glob scans are set to once a minute, so everything the agent ships
//! within the test's deadlines it found through inotify: a line appended, a new file in the
//! glob's directory, and the new file after a rename rotation. With `inotify = false` the
//! same agent ships nothing new within those deadlines.

use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka};

const SLOW: u64 = 60_000;

fn slow_config(dir: &std::path::Path, kafka: &Kafka, etcd: &Etcd) -> logagent::config::LocalConfig {
    let mut cfg = config(dir, &kafka.bootstrap_servers(), &etcd.endpoint());
    cfg.agent.poll_interval_ms = SLOW;
    cfg.agent.scan_interval_ms = SLOW;
    cfg
}

#[test]
fn appends_new_files_and_rotations_are_shipped_without_waiting_for_the_poll() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("wk", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    append(&a, lines("a", 0..1));
    let glob = logs.join("*.log");
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&glob, "wk")));
    let agent = Agent::start(slow_config(dir.path(), &kafka, &etcd));
    let deadline = Duration::from_secs(15);
    agent.wait_metric("logagent_lines_sent_total", deadline, |v| v == 1.0);

    // Each step must arrive long before the one-minute poll would have found it.
    append(&a, lines("a", 1..2));
    agent.wait_metric("logagent_lines_sent_total", deadline, |v| v == 2.0);

    append(&b, lines("b", 0..1));
    agent.wait_metric("logagent_lines_sent_total", deadline, |v| v == 3.0);

    std::fs::rename(&a, logs.join("a.log.1")).unwrap();
    append(&a, lines("a", 2..3));
    agent.wait_metric("logagent_lines_sent_total", deadline, |v| v == 4.0);
    agent.stop();

    let shipped = consume(&kafka.bootstrap_servers(), "wk", 4, Duration::from_secs(30));
    assert_eq!(messages_of(&shipped, &a), lines("a", 0..3));
    assert_eq!(messages_of(&shipped, &b), lines("b", 0..1));
    assert_eq!(shipped.len(), 4);
}

#[test]
fn without_inotify_an_append_waits_for_the_poll() {
    // The control for the test above: the same scenario start with polling only, so the
    // wake-ups above are what made the difference.
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("wk", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let a = logs.join("a.log");
    append(&a, lines("a", 0..1));
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&a, "wk")));
    let mut cfg = slow_config(dir.path(), &kafka, &etcd);
    cfg.agent.inotify = false;
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(15), |v| {
        v == 1.0
    });
    append(&a, lines("a", 1..2));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        agent.metric("logagent_lines_read_total"),
        1.0,
        "with polling once a minute the append is not read yet"
    );
    agent.stop();
}
