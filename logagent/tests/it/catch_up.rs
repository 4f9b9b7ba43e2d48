//! Scenario: a first start over a big file (66 MiB, above the 64 MiB a catch-up is
//! reported from) shows its catch-up on /metrics: the whole file to ship while the broker is
//! frozen and nothing is acknowledged, then shipped, then the gauges back at 0 once it is
//! caught up. (The log lines and the rate/ETA arithmetic are `catch_up`'s unit tests.)

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka};

#[test]
fn a_first_start_over_a_big_file_shows_its_catch_up_on_metrics() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("big", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("big.log");
    const LINES: usize = 66 * 1024;
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
        for i in 0..LINES {
            // 1 KiB per line with its newline.
            writeln!(out, "{i:08} {}", "x".repeat(1014)).unwrap();
        }
    }
    let size = std::fs::metadata(&f).unwrap().len();
    assert_eq!(size, 66 << 20);
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "big")));

    kafka.pause();
    let agent = Agent::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    let total = agent.wait_metric(
        "logagent_catch_up_total_bytes",
        Duration::from_secs(60),
        |v| v > 0.0,
    );
    assert_eq!(total, size as f64, "the whole file is the backlog");
    assert_eq!(agent.metric("logagent_catch_up_done_bytes"), 0.0);
    assert_eq!(
        agent.metric("logagent_catch_up_eta_seconds"),
        0.0,
        "no ETA before anything shipped"
    );
    assert_eq!(agent.metric("logagent_send_lag_bytes"), size as f64);

    kafka.resume();
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(300), |v| {
        v >= LINES as f64
    });
    // Caught up: every gauge back at 0.
    agent.wait_metric(
        "logagent_catch_up_total_bytes",
        Duration::from_secs(30),
        |v| v == 0.0,
    );
    assert_eq!(agent.metric("logagent_catch_up_done_bytes"), 0.0);
    assert_eq!(agent.metric("logagent_catch_up_bytes_per_second"), 0.0);
    agent.stop();
}
