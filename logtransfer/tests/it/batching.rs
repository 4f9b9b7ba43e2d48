//! When a partial `_bulk` request goes: at once when the input is idle and nothing is in
//! flight (`[batch] flush_when_idle`), so a lone document does not sit out `max_wait_ms`;
//! but documents that arrive while a request is in flight still go together.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Fault, FaultProxy, Kafka};

fn messages(prefix: &str, n: usize) -> Vec<(String, Vec<u8>, Option<i64>)> {
    (0..n)
        .map(|i| {
            let message = agent_message(
                "2026-11-25T08:00:00Z",
                &format!("{prefix} {i}"),
                "h",
                "/f",
                i as u64,
            );
            ("h:/f".to_string(), message, None)
        })
        .collect()
}

#[test]
fn a_lone_document_is_sent_without_waiting_for_max_wait() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("idle", 1);
    let mut cfg = config(&kafka, &es.url(), "idle", "idle-group");
    // Far beyond the test's patience: only the idle flush can send these.
    cfg.batch.max_wait_ms = 3_600_000;
    cfg.batch.max_docs = 1_000;
    let transfer = InProcess::start(cfg);
    produce(&kafka, "idle", &messages("lone", 3));
    wait_count(&es, "logs-idle-*", 3, Duration::from_secs(60));
    transfer.stop();
}

#[test]
fn documents_arriving_while_a_request_is_in_flight_go_together() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("gather", 1);
    let proxy = FaultProxy::start(&es.url());
    let mut cfg = config(&kafka, &proxy.url(), "gather", "gather-group");
    cfg.batch.max_wait_ms = 3_600_000;
    cfg.batch.max_docs = 1_000;
    cfg.batch.concurrency = 4;
    let transfer = InProcess::start(cfg);
    // Every request answered slowly: the first one (whatever it holds) is in flight
    // while the rest arrive.
    proxy.set_fault(Fault::DelayMs(1_000));
    let before = proxy.requests();
    const N: u64 = 500;
    produce(&kafka, "gather", &messages("burst", N as usize));
    wait_count(&es, "logs-gather-*", N, Duration::from_secs(120));
    let requests = proxy.requests() - before;
    transfer.stop();
    // One request per document would be 500; a first small one and then the rest in one
    // or two is what gathering gives.
    assert!(
        requests <= 5,
        "{requests} _bulk requests for {N} documents: they were not gathered while a request was in flight"
    );
}
