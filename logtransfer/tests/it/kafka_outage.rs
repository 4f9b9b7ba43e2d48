//! Scenario: the broker freezes (SIGSTOP) mid-stream for 5 s, so fetches and offset
//! commits fail; once it thaws, every record is indexed exactly once (read once or again)
//! and the offsets catch up.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, wait_until};

#[test]
fn a_frozen_broker_mid_stream_loses_and_duplicates_no_document() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("bus", 2);
    let batch = |from: usize, n: usize| -> Vec<_> {
        (from..from + n)
            .map(|i| {
                (
                    format!("h{}:/f", i % 4),
                    agent_message(
                        "2026-11-25T11:00:00Z",
                        &format!("m {i}"),
                        "h",
                        "/f",
                        i as u64,
                    ),
                    None,
                )
            })
            .collect()
    };
    produce(&kafka, "bus", &batch(0, 4_000));
    let transfer = InProcess::start(config(&kafka, &es.url(), "bus", "bus-group"));
    assert!(wait_until(Duration::from_secs(60), || es
        .count("logs-bus-*")
        >= 500));

    kafka.pause();
    let frozen = std::time::Instant::now();
    while frozen.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    kafka.resume();
    wait_count(&es, "logs-bus-*", 4_000, Duration::from_secs(90));
    // The commits caught up: nothing read is left uncommitted.
    assert!(wait_until(Duration::from_secs(30), || {
        let lag = metric_series(&transfer.metrics_url, "logtransfer_consumer_lag");
        !lag.is_empty() && lag.iter().all(|(_, v)| *v == 0.0)
    }));
    // Reading a record again is allowed (the group may rebalance while the broker is
    // frozen, and a busy host makes that likelier: 4,601 reads were seen under load); a
    // second document is not. Every offset is read at least once and indexed once.
    assert!(transfer.metric("logtransfer_consumed_total") >= 4_000.0);
    transfer.stop();
    assert_eq!(es.count("logs-bus-*"), 4_000);
}
