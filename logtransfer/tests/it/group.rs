//! Scenario: two logtransfers in one consumer group. A second member joins mid-stream and
//! the first one leaves mid-stream (partitions move twice while requests are in flight):
//! still exactly one document per record.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Fault, FaultProxy, Kafka, wait_until};

#[test]
fn members_joining_and_leaving_mid_stream_leave_exactly_n_documents() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("shared", 4);
    let n = 6_000;
    let messages: Vec<_> = (0..n)
        .map(|i| {
            (
                format!("host-{}:/f", i % 8),
                agent_message("2026-11-25T10:00:00Z", &format!("m {i}"), "h", "/f", i),
                None,
            )
        })
        .collect();
    produce(&kafka, "shared", &messages);

    // Slow answers (400 docs/s at most) keep the stream going while the group changes.
    let proxy = FaultProxy::start(&es.url());
    proxy.set_fault(Fault::DelayMs(500));
    let first = InProcess::start(config(&kafka, &proxy.url(), "shared", "pair"));
    assert!(wait_until(Duration::from_secs(60), || es
        .count("logs-shared-*")
        >= 500));
    let second = InProcess::start(config(&kafka, &proxy.url(), "shared", "pair"));
    // The second member got partitions and indexed some of them.
    assert!(
        wait_until(Duration::from_secs(60), || second
            .metric("logtransfer_indexed_total")
            > 0.0),
        "the second member never indexed anything"
    );
    assert!(
        es.count("logs-shared-*") < n,
        "the stream ended before the rebalance"
    );
    first.stop();
    proxy.set_fault(Fault::None);
    wait_count(&es, "logs-shared-*", n, Duration::from_secs(120));
    second.stop();
    assert_eq!(es.count("logs-shared-*"), n);
}
