//! Documents that already exist: with `[es] op_type = create` a record whose `_id` is
//! indexed (a replay, a re-sent line) is refused with 409 by Elasticsearch, and that is a
//! success: settled, counted as a duplicate, never retried or dead-lettered.

use std::time::Duration;

use crate::common::*;
use logtransfer::sinks::elasticsearch::config::OpType;
use test_servers::{Elasticsearch, Kafka, wait_until};

fn records(n: u64) -> Vec<(String, Vec<u8>, Option<i64>)> {
    (0..n)
        .map(|i| {
            (
                "h:/f".to_string(),
                agent_message("2026-11-25T08:00:00Z", &format!("line {i}"), "h", "/f", i),
                None,
            )
        })
        .collect()
}

#[test]
fn with_op_type_create_a_409_for_an_existing_id_is_a_settled_duplicate() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("dup", 1);
    produce(&kafka, "dup", &records(10));

    let mut cfg = config(&kafka, &es.url(), "dup", "first");
    cfg.es.op_type = OpType::Create;
    let first = InProcess::start(cfg.clone());
    wait_count(&es, "logs-dup-*", 10, Duration::from_secs(60));
    assert!(wait_until(Duration::from_secs(10), || first
        .metric("logtransfer_indexed_total")
        == 10.0));
    assert_eq!(first.metric("logtransfer_duplicates_total"), 0.0);
    first.stop();

    // Another group reads the same records again: same `_id`s, all already there.
    cfg.kafka.group_id = "second".into();
    let second = InProcess::start(cfg);
    assert!(
        wait_until(Duration::from_secs(60), || second
            .metric("logtransfer_duplicates_total")
            == 10.0),
        "duplicates: {}",
        second.metric("logtransfer_duplicates_total")
    );
    // Settled, hence committed: lag back to 0.
    assert!(wait_until(Duration::from_secs(10), || {
        let lag = metric_series(&second.metrics_url, "logtransfer_consumer_lag");
        !lag.is_empty() && lag.iter().all(|(_, v)| *v == 0.0)
    }));
    assert_eq!(second.metric("logtransfer_indexed_total"), 0.0);
    assert_eq!(second.metric("logtransfer_dead_lettered_total"), 0.0);
    assert_eq!(second.metric("logtransfer_retried_total"), 0.0);
    assert_eq!(second.metric("logtransfer_request_retries_total"), 0.0);
    second.stop();
    es.refresh();
    assert_eq!(es.count("logs-dup-*"), 10);
    assert!(
        kafka
            .consume_all("dup-dead-letter", 1, Duration::from_secs(2))
            .is_empty()
    );
}
