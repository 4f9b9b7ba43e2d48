//! Scenario: two files written at full speed, 100,000 lines each; one is rotated by rename
//! every 1,000 lines, the other by copytruncate every 1,000 lines, while the agent tails
//! both. Each topic must hold exactly those lines, in order per file.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka};

const LINES: usize = 100_000;
const EVERY: usize = 1_000;

/// Writes one round of `EVERY` lines in several writes, some splitting a line in two.
fn write_round(f: &mut std::fs::File, prefix: &str, round: usize) {
    for part in lines(prefix, round * EVERY..(round + 1) * EVERY).chunks(100) {
        let text = part.join("\n") + "\n";
        let (x, y) = text.as_bytes().split_at(7);
        f.write_all(x).unwrap();
        f.write_all(y).unwrap();
    }
}

/// Rotation must not outrun the agent by a whole file (a file rotated away twice before
/// the agent looks again is not followed; logrotate runs minutes apart): before each
/// rotation the writer waits until the agent has read all but `BEHIND` lines, so up to
/// `BEHIND` lines of each file are still unread when it is renamed or truncated.
const BEHIND: f64 = 500.0;

fn write_and_rotate(agent: &Agent, r: &Path, c: &Path) {
    let mut fr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(r)
        .unwrap();
    let mut fc = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(c)
        .unwrap();
    for round in 0..LINES / EVERY {
        write_round(&mut fr, "r", round);
        write_round(&mut fc, "c", round);
        let written = (2 * (round + 1) * EVERY) as f64;
        agent.wait_metric("logagent_lines_read_total", Duration::from_secs(60), |v| {
            v >= written - BEHIND
        });
        // rename rotation
        std::fs::rename(r, r.with_extension(format!("log.{round}"))).unwrap();
        fr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(r)
            .unwrap();
        // copytruncate (the writer's O_APPEND handle carries on at the new end)
        std::fs::copy(c, c.with_extension(format!("log.{round}"))).unwrap();
        fc.set_len(0).unwrap();
    }
}

#[test]
fn rename_and_copytruncate_rotation_every_1000_lines_lose_nothing_and_keep_order() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("rot", 4);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let r = logs.join("renamed.log");
    let c = logs.join("copied.log");
    std::fs::File::create(&r).unwrap();
    std::fs::File::create(&c).unwrap();
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!("[{},{}]", entry(&r, "rot"), entry(&c, "rot")),
    );
    let agent = Agent::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    agent.wait_metric("logagent_files_watched", Duration::from_secs(10), |v| {
        v == 2.0
    });

    write_and_rotate(&agent, &r, &c);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(180), |v| {
        v >= (2 * LINES) as f64
    });
    agent.stop();

    let shipped = consume(
        &kafka.bootstrap_servers(),
        "rot",
        2 * LINES,
        Duration::from_secs(120),
    );
    let got_r = messages_of(&shipped, &r);
    let got_c = messages_of(&shipped, &c);
    assert_eq!(got_r.len(), LINES, "rename rotation: line count");
    assert_eq!(got_c.len(), LINES, "copytruncate: line count");
    assert!(
        got_r == lines("r", 0..LINES),
        "rename rotation: lines differ or are out of order"
    );
    assert!(
        got_c == lines("c", 0..LINES),
        "copytruncate: lines differ or are out of order"
    );
    assert_eq!(shipped.len(), 2 * LINES);
}

#[test]
fn copytruncate_while_the_agent_is_behind_reads_the_rest_from_the_copy() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("ct", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let c = logs.join("app.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c)
        .unwrap();
    write_round(&mut f, "c", 0);
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&c, "ct")));
    let mut cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    // the agent looks at an idle file only every 2 s: the truncation below happens unseen
    cfg.agent.poll_interval_ms = 2000;
    cfg.agent.inotify = false;
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_read_total", Duration::from_secs(10), |v| {
        v == EVERY as f64
    });
    write_round(&mut f, "c", 1);
    std::fs::copy(&c, logs.join("app.log.1")).unwrap();
    f.set_len(0).unwrap();
    // and the new content grows past the old read offset: only the fingerprint notices
    write_round(&mut f, "c", 2);
    write_round(&mut f, "c", 3);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= (4 * EVERY) as f64
    });
    agent.stop();
    let shipped = consume(
        &kafka.bootstrap_servers(),
        "ct",
        4 * EVERY,
        Duration::from_secs(30),
    );
    assert!(
        messages_of(&shipped, &c) == lines("c", 0..4 * EVERY),
        "lines missing, repeated or out of order"
    );
    assert_eq!(shipped.len(), 4 * EVERY);
}

/// Runs the agent on `app.log` until its first `EVERY` lines are acknowledged, stops it,
/// lets `rotate` act on the file while the agent is down, restarts it and returns what the
/// topic holds at the end, expecting `total` lines.
fn rotate_while_down(
    topic: &str,
    total: usize,
    rotate: impl FnOnce(&std::path::Path, &std::path::Path),
) -> (Vec<Shipped>, std::path::PathBuf) {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let app = logs.join("app.log");
    append(&app, lines("app", 0..EVERY));
    // The entry names the file itself: rotated siblings do not match it.
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&app, topic)));
    let cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    let agent = Agent::start(cfg.clone());
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(15), |v| {
        v == EVERY as f64
    });
    agent.stop();
    rotate(&app, &logs);
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= (total - EVERY) as f64
    });
    agent.stop();
    let shipped = consume(
        &kafka.bootstrap_servers(),
        topic,
        total,
        Duration::from_secs(30),
    );
    (shipped, app)
}

#[test]
fn a_file_renamed_while_the_agent_is_down_is_finished_before_its_successor() {
    // Lines appended after the agent stopped, then logrotate's rename: the rest of the old
    // file is only in app.log.1, which the collect entry does not name.
    let (shipped, app) = rotate_while_down("rd", 3 * EVERY, |app, logs| {
        append(app, lines("app", EVERY..2 * EVERY));
        std::fs::rename(app, logs.join("app.log.1")).unwrap();
        append(app, lines("app", 2 * EVERY..3 * EVERY));
    });
    assert!(
        messages_of(&shipped, &app) == lines("app", 0..3 * EVERY),
        "lines missing, repeated or out of order"
    );
    assert_eq!(shipped.len(), 3 * EVERY);
}

#[test]
fn a_file_copytruncated_while_the_agent_is_down_is_finished_from_the_copy() {
    let (shipped, app) = rotate_while_down("cd", 3 * EVERY, |app, logs| {
        append(app, lines("app", EVERY..2 * EVERY));
        std::fs::copy(app, logs.join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(app)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(app, lines("app", 2 * EVERY..3 * EVERY));
    });
    assert!(
        messages_of(&shipped, &app) == lines("app", 0..3 * EVERY),
        "lines missing, repeated or out of order"
    );
    assert_eq!(shipped.len(), 3 * EVERY);
}
