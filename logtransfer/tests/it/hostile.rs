//! Records that are valid but unusual: every one must index (or be settled visibly), none
//! may break a `_bulk` body or wedge its partition.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use test_servers::{Elasticsearch, Kafka, wait_until};

/// A pretty-printed logger event (raw newlines and CRs between tokens, valid JSON) carried
/// by logagent: the lifted bytes must not leak a newline into the NDJSON body.
#[test]
fn a_logger_line_with_raw_newlines_between_tokens_is_indexed() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("pretty", 1);
    let mut messages = Vec::new();
    for i in 0..10u64 {
        let line = if i == 4 {
            "{\"@timestamp\":\"2026-11-25T08:00:00Z\",\"log.level\":\"info\",\"message\":\"pretty 4\",\
             \"process\":{\n  \"thread\":{\r\n\"name\":\"main\",\"id\":1}\n},\"tags\":[\n\"a\"\n]}"
                .to_string()
        } else {
            logger_line(
                "2026-11-25T08:00:00Z",
                "info",
                &format!("plain {i}"),
                1,
                "f",
            )
        };
        messages.push((
            "h:/f".to_string(),
            agent_message("2026-11-25T08:00:01Z", &line, "h", "/f", i),
            None,
        ));
    }
    produce(&kafka, "pretty", &messages);
    let transfer = InProcess::start(config(&kafka, &es.url(), "pretty", "pretty-group"));
    wait_count(&es, "logs-pretty-*", 10, Duration::from_secs(60));
    es.refresh();
    let hits = es.search(
        "logs-pretty-*",
        &json!({"query": {"term": {"_id": "pretty-0-4"}}}),
    );
    let doc = &hits["hits"]["hits"][0]["_source"];
    assert_eq!(doc["message"], "pretty 4", "{hits}");
    assert_eq!(doc["process"]["thread"]["name"], "main");
    assert_eq!(doc["tags"][0], "a");
    assert!(wait_until(Duration::from_secs(10), || transfer
        .metric("logtransfer_indexed_total")
        == 10.0));
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
}
