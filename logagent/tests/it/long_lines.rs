//! Scenario: awkward lines end to end: a 3 MiB line written in pieces (cut at
//! max_line_bytes, marked, the file goes on), invalid UTF-8 (shipped lossily), a line
//! split across two writes with a pause between them (shipped once, whole), and
//! multi-line events (stack traces) joined into one message, across a restart.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka};

#[test]
fn long_split_and_invalid_utf8_lines_are_shipped_not_dropped() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("odd", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("odd.log");
    std::fs::File::create(&f).unwrap();
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "odd")));
    let mut cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    cfg.agent.max_line_bytes = 100_000;
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_files_watched", Duration::from_secs(10), |v| {
        v == 1.0
    });

    let mut w = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
    w.write_all(b"before\n").unwrap();
    for _ in 0..3 {
        w.write_all(&vec![b'x'; 1024 * 1024]).unwrap();
    }
    w.write_all(b"\nbad \xff\xfe utf8\nhalf of a ").unwrap();
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 3.0
    });
    w.write_all(b"line\nafter\n").unwrap();
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 5.0
    });
    agent.stop();

    let shipped = consume(
        &kafka.bootstrap_servers(),
        "odd",
        5,
        Duration::from_secs(30),
    );
    let got = messages_of(&shipped, &f);
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], "before");
    assert_eq!(
        got[1],
        format!(
            "{}{}",
            "x".repeat(100_000),
            logagent::encode::TRUNCATED_MARKER
        )
    );
    assert_eq!(got[2], "bad \u{FFFD}\u{FFFD} utf8");
    assert_eq!(got[3], "half of a line");
    assert_eq!(got[4], "after");
    // offsets still count the bytes that were cut
    assert_eq!(shipped[2].offset, 7 + 3 * 1024 * 1024 + 1);
}

#[test]
fn multiline_events_are_joined_and_one_cut_by_a_restart_ships_whole_once() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("ml", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("java.log");
    let trace = "2026-11-25 12:00:00 ERROR failed\n\tat a.B.c(B.java:1)\n\tat d.E.f(E.java:2)";
    append(
        &f,
        [
            "2026-11-25 12:00:00 INFO start".to_string(),
            trace.to_string(),
        ],
    );
    let value = format!(
        r#"[{{"path":"{}","topic":"ml","multiline":{{"start_pattern":"^\\d{{4}}-","timeout_ms":300}}}}]"#,
        f.display()
    );
    etcd_put(&etcd.endpoint(), KEY, &value);
    let cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    let agent = Agent::start(cfg.clone());
    // The trace is the file's last event: it ships once its timeout passed.
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(15), |v| {
        v == 2.0
    });
    // An event whose continuation lines are still to come when the agent stops...
    append(&f, ["2026-11-25 12:00:01 ERROR again".to_string()]);
    std::thread::sleep(Duration::from_millis(100));
    agent.stop();
    // ...is read again from its first line after the restart and shipped whole.
    append(
        &f,
        [
            "\tat g.H.i(H.java:3)".to_string(),
            "2026-11-25 12:00:02 INFO done".to_string(),
        ],
    );
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(15), |v| {
        v == 2.0
    });
    agent.stop();

    let shipped = consume(&kafka.bootstrap_servers(), "ml", 4, Duration::from_secs(30));
    assert_eq!(
        messages_of(&shipped, &f),
        vec![
            "2026-11-25 12:00:00 INFO start".to_string(),
            trace.to_string(),
            "2026-11-25 12:00:01 ERROR again\n\tat g.H.i(H.java:3)".to_string(),
            "2026-11-25 12:00:02 INFO done".to_string(),
        ]
    );
}
