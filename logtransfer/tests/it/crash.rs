//! Scenario: kill -9 the logtransfer process in the middle of a stream, start it again:
//! every record ends up exactly once in Elasticsearch (uncommitted records are replayed
//! onto their own `_id`s), and SIGTERM then stops it with exit status 0.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, wait_until};

const N: usize = 8_000;

#[test]
fn kill_9_mid_stream_and_restart_leaves_exactly_n_documents() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("crash", 2);
    let dir = tempfile::tempdir().unwrap();
    let messages: Vec<_> = (0..N)
        .map(|i| {
            (
                format!("host-{}:/var/log/app.log", i % 4),
                agent_message(
                    "2026-11-25T12:00:00Z",
                    &format!("line {i}"),
                    &format!("host-{}", i % 4),
                    "/var/log/app.log",
                    i as u64 * 10,
                ),
                None,
            )
        })
        .collect();
    produce(&kafka, "crash", &messages);

    let mut cfg = config(&kafka, &es.url(), "crash", "crash-group");
    // Commit rarely, so that the kill certainly leaves indexed-but-uncommitted records that
    // the restart replays.
    cfg.kafka.commit_interval_ms = 2_000;
    let mut first = Process::start(dir.path(), &cfg, "first");
    let mut seen = 0;
    assert!(
        wait_until(Duration::from_secs(60), || {
            seen = es.count("logs-crash-*");
            seen >= 1_500
        }),
        "the first run indexed only {seen} documents"
    );
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let at_kill = es.count("logs-crash-*");
    assert!(
        at_kill < N as u64,
        "the kill came too late to be mid-stream ({at_kill})"
    );

    cfg.transfer.metrics_address = format!("127.0.0.1:{}", test_servers::free_port());
    let mut second = Process::start(dir.path(), &cfg, "second");
    wait_count(&es, "logs-crash-*", N as u64, Duration::from_secs(120));
    // SIGTERM: it finishes what is in flight, commits and exits 0.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(second.child.id() as i32, libc::SIGTERM) };
    let status = second.child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");

    assert_eq!(es.count("logs-crash-*"), N as u64, "exactly N documents");
    // Every record is there under its own id.
    let docs = all_docs(&es, "logs-crash-*");
    let mut lines: Vec<u64> = docs
        .iter()
        .map(|d| {
            d["_source"]["message"].as_str().unwrap()["line ".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), N);
}
