//! Scenario: the agent binary is killed with SIGKILL mid-stream and restarted. Every line
//! arrives; the only duplicates are the lines acknowledged after the last checkpoint write
//! (one contiguous run per restart, each line at most twice). Then SIGTERM: exit 0 with
//! the checkpoint at the end of the file.

use std::time::{Duration, Instant};

use crate::common::*;
use test_servers::{Etcd, Kafka};

const TOTAL: usize = 30_000;

#[test]
fn kill_9_mid_stream_then_restart_loses_no_line() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("k9", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "k9")));
    let (conf, metrics) = binary_conf(
        dir.path(),
        &logs,
        &kafka,
        &etcd,
        "checkpoint_interval_ms = 300\n",
    );

    std::fs::File::create(&f).unwrap();
    let mut agent = spawn_binary(&conf);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached(&metrics, "logagent_files_watched", 1.0) {
        assert!(Instant::now() < deadline, "agent never started tailing");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ~3 s of steady writing: the kill lands mid-stream and lines keep coming while the
    // agent is down
    let writer = {
        let f = f.clone();
        std::thread::spawn(move || {
            for chunk in 0..TOTAL / 100 {
                append(&f, lines("k", chunk * 100..(chunk + 1) * 100));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    while !reached(&metrics, "logagent_lines_sent_total", 12000.0) {
        assert!(Instant::now() < deadline, "agent never shipped 12000 lines");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    // where the restart must resume: the checkpoint on disk at the moment of the kill
    let data_dir = dir.path().join("data");
    let resume_offset = checkpoint_offset(&data_dir, &f);

    let mut agent = spawn_binary(&conf);
    writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let size = std::fs::metadata(&f).unwrap().len();
    let at_end = || checkpoint_offset(&data_dir, &f) == size;
    while !at_end() {
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached the end of the file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: flush, checkpoints, exit 0
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert!(at_end());

    let shipped = consume(
        &kafka.bootstrap_servers(),
        "k9",
        TOTAL,
        Duration::from_secs(60),
    );
    let got = messages_of(&shipped, &f);
    let expected = lines("k", 0..TOTAL);
    // every line present, in order once the duplicates are removed
    let mut seen = std::collections::HashSet::new();
    let deduped: Vec<String> = got
        .iter()
        .filter(|m| seen.insert(m.to_string()))
        .cloned()
        .collect();
    assert_eq!(deduped, expected, "a line is missing or out of order");
    // duplicates: exactly the lines from the checkpoint on disk at the kill up to what the
    // killed agent had delivered, re-sent once by the restarted agent
    let line_len = "k line 000000\n".len() as u64;
    let resume_line = (resume_offset / line_len) as usize;
    let dups = got.len() - TOTAL;
    let mut once = std::collections::HashSet::new();
    let first_repeat = got.iter().position(|m| !once.insert(m.as_str()));
    if let Some(start) = first_repeat {
        assert_eq!(
            got[start], expected[resume_line],
            "the restart did not resume at the checkpoint"
        );
        assert_eq!(
            &got[start..start + dups],
            &expected[resume_line..resume_line + dups],
            "duplicates are not one contiguous window starting at the checkpoint"
        );
    }
    // A re-sent line carries the event id it had (value and header alike), and no two
    // lines share one: the id is where the line is, not when it was sent.
    let mut ids: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for s in &shipped {
        let id = s.value["event"]["id"]
            .as_str()
            .expect("every message has an event.id");
        assert_eq!(
            s.event_id_header.as_deref(),
            Some(id),
            "header and value differ"
        );
        assert!(id.starts_with(&format!("{HOST}:")) && id.ends_with(&format!(":{}", s.offset)));
        let first = *ids.entry(s.message.as_str()).or_insert(id);
        assert_eq!(first, id, "{}: re-sent under another id", s.message);
    }
    let distinct: std::collections::HashSet<&str> = ids.values().copied().collect();
    assert_eq!(distinct.len(), TOTAL, "two lines share an event id");
    eprintln!("kill -9: {TOTAL} lines, {dups} duplicates (resumed at line {resume_line})");
}
