//! Scenario: one record stays refused per item (429 from a read-only index) while the
//! records after it on its partition are indexed. The acknowledgement window holds every
//! record behind the stuck one until it settles: past `max_pending_per_partition` the
//! partition is paused, so that window stays bounded, and once the block is cleared
//! everything arrives, nothing lost, nothing doubled.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use test_servers::{Elasticsearch, Kafka, wait_until};

const FREE: usize = 3_000;
const MAX_PENDING: usize = 200;

fn message(day: &str, text: &str, i: usize) -> (String, Vec<u8>, Option<i64>) {
    let timestamp = format!("{day}T08:00:00Z");
    let value = agent_message(&timestamp, text, "h", "/f", i as u64);
    ("h:/f".to_string(), value, None)
}

#[test]
fn a_record_stuck_in_per_item_retry_pauses_its_partition_at_the_pending_limit() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("stuck", 1);
    es_put(&es, "/logs-stuck-2026.11.25", &json!({}));
    es_put(
        &es,
        "/logs-stuck-2026.11.25/_settings",
        &json!({"index.blocks.read_only_allow_delete": true}),
    );
    let mut cfg = config(&kafka, &es.url(), "stuck", "stuck-group");
    cfg.batch.item_max_retries = 10_000;
    cfg.kafka.max_pending_per_partition = MAX_PENDING;
    let transfer = InProcess::start(cfg);
    // The first record of the partition is refused; the 3,000 after it are not.
    let mut messages = vec![message("2026-11-25", "stuck", 0)];
    messages.extend((1..=FREE).map(|i| message("2026-11-24", &format!("free {i}"), i)));
    produce(&kafka, "stuck", &messages);

    assert!(
        wait_until(Duration::from_secs(60), || transfer
            .metric("logtransfer_paused_partitions")
            == 1.0),
        "the partition was never paused: the window behind the stuck record grows unbounded"
    );
    // Paused: what was read behind the stuck record gets indexed, then nothing more is read.
    let read = || transfer.metric("logtransfer_consumed_total") as u64;
    assert!(wait_until(Duration::from_secs(60), || {
        let read = read();
        read > 0 && es.count("logs-stuck-2026.11.24") == read - 1
    }));
    let held = read();
    assert!(
        held <= 2 * MAX_PENDING as u64,
        "{held} records read while one is stuck (limit {MAX_PENDING})"
    );
    assert!(transfer.metric("logtransfer_consumer_lag") <= 2.0 * MAX_PENDING as f64);
    assert_eq!(es.count("logs-stuck-2026.11.25"), 0);

    es_put(
        &es,
        "/logs-stuck-2026.11.25/_settings",
        &json!({"index.blocks.read_only_allow_delete": null}),
    );
    wait_count(
        &es,
        "logs-stuck-*",
        FREE as u64 + 1,
        Duration::from_secs(90),
    );
    assert!(wait_until(Duration::from_secs(30), || transfer
        .metric("logtransfer_paused_partitions")
        == 0.0));
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    assert_eq!(read(), FREE as u64 + 1, "every record read once");
    transfer.stop();
    assert_eq!(es.count("logs-stuck-2026.11.25"), 1);
    assert_eq!(es.count("logs-stuck-*"), FREE as u64 + 1);
}
