//! Scenario: etcd drives what is collected, live. Entries are added and removed without
//! touching the unchanged ones; bad configs (invalid JSON, unknown field, path outside
//! allowed_paths) are rejected, counted, and the previous config keeps running.

use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka};

#[test]
fn live_config_changes_add_and_remove_files_and_bad_configs_keep_the_old_one() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("ta", 2);
    kafka.create_topic("tb", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    append(&a, lines("a", 0..100));
    append(&b, lines("b", 0..50));

    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&a, "ta")));
    let agent = Agent::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 100.0
    });
    let rev1 = agent.metric("logagent_collect_config_revision");
    assert!(rev1 > 0.0);

    // add b; a keeps running (no restart: no duplicates, no gap)
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!("[{},{}]", entry(&a, "ta"), entry(&b, "tb")),
    );
    append(&a, lines("a", 100..200));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 250.0
    });
    assert_eq!(agent.metric("logagent_files_watched"), 2.0);
    let rev2 = agent.metric("logagent_collect_config_revision");
    assert!(rev2 > rev1);

    // three bad configs: each rejected and counted, the running config stays
    etcd_put(&etcd.endpoint(), KEY, "[{not json");
    agent.wait_metric(
        "logagent_configs_rejected_total",
        Duration::from_secs(10),
        |v| v == 1.0,
    );
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!(
            r#"[{{"path":"{}","topic":"ta","colour":"red"}}]"#,
            a.display()
        ),
    );
    agent.wait_metric(
        "logagent_configs_rejected_total",
        Duration::from_secs(10),
        |v| v == 2.0,
    );
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!(
            "[{},{}]",
            entry(&a, "ta"),
            r#"{"path":"/etc/passwd","topic":"ta"}"#
        ),
    );
    agent.wait_metric(
        "logagent_configs_rejected_total",
        Duration::from_secs(10),
        |v| v == 3.0,
    );
    assert_eq!(
        agent.metric("logagent_collect_config_revision"),
        rev2,
        "the old config is still the one in effect"
    );
    append(&b, lines("b", 50..60));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 260.0
    });
    assert_eq!(agent.metric("logagent_files_watched"), 2.0);

    // a symlink under allowed_paths pointing outside is refused at open time too
    let outside = dir.path().join("secret.log");
    append(&outside, lines("secret", 0..5));
    std::os::unix::fs::symlink(&outside, logs.join("link.log")).unwrap();

    // remove a (and try to sneak the symlink in under a glob): a stops, b keeps going
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!(
            "[{},{}]",
            entry(&b, "tb"),
            entry(&logs.join("link*.log"), "ta")
        ),
    );
    agent.wait_metric("logagent_files_watched", Duration::from_secs(10), |v| {
        v == 1.0
    });
    append(&a, lines("a", 200..210));
    append(&b, lines("b", 60..70));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 270.0
    });
    // a deleted file is released
    std::fs::remove_file(&b).unwrap();
    agent.wait_metric("logagent_files_watched", Duration::from_secs(10), |v| {
        v == 0.0
    });
    agent.stop();

    let ta = consume(
        &kafka.bootstrap_servers(),
        "ta",
        200,
        Duration::from_secs(30),
    );
    assert_eq!(
        messages_of(&ta, &a),
        lines("a", 0..200),
        "exactly a's lines while it was configured, in order"
    );
    assert_eq!(ta.len(), 200, "nothing else (no secret.log) in ta");
    let tb = consume(
        &kafka.bootstrap_servers(),
        "tb",
        70,
        Duration::from_secs(30),
    );
    assert_eq!(messages_of(&tb, &b), lines("b", 0..70));
    assert_eq!(tb.len(), 70);

    // the message contract
    let first = &ta[0];
    assert_eq!(first.key, format!("{HOST}:{}", a.display()));
    assert_eq!(first.value["host"]["name"], HOST);
    assert_eq!(first.value["agent"]["type"], "logagent");
    let second = ta.iter().find(|s| s.message == "a line 000001").unwrap();
    assert_eq!(
        (first.offset, second.offset),
        (0, "a line 000000\n".len() as u64)
    );
}
