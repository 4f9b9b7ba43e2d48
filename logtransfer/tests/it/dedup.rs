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

/// Produces `(event.id header, payload)` records.
fn produce_with_headers(kafka: &Kafka, topic: &str, records: Vec<(Option<String>, Vec<u8>)>) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let topic = topic.to_owned();
    with_producer(kafka, move |producer| async move {
        // One at a time: the order (hence the offsets) is part of the test.
        for (header, payload) in &records {
            let mut record = FutureRecord::to(&topic).key("h:/f").payload(payload);
            if let Some(id) = header {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "event.id",
                    value: Some(id.as_bytes()),
                }));
            }
            producer
                .send(record, Duration::from_secs(60))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
}

/// The document `_id` is the record's stable event id (header `event.id`, else the value's
/// `event.id`), so a re-sent line (new offset, same id) lands on its document; an id
/// Elasticsearch cannot take falls back to `topic-partition-offset` and is counted.
#[test]
fn the_event_id_is_the_document_id_header_first_and_a_re_sent_line_is_a_duplicate() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("ids", 1);
    let line = |i: u64| agent_message("2026-11-25T08:00:00Z", &format!("line {i}"), "h", "/f", i);
    let with_field = |i: u64, id: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&line(i)).unwrap();
        v["event"] = serde_json::json!({"id": id});
        serde_json::to_vec(&v).unwrap()
    };
    let logger = |i: u64| {
        agent_message(
            "2026-11-25T08:00:00Z",
            &logger_line(
                "2026-11-25T07:00:00Z",
                "info",
                &format!("lifted {i}"),
                1,
                "f",
            ),
            "h",
            "/f",
            i,
        )
    };
    let long = "x".repeat(513);
    let records = vec![
        (Some("id-a".to_string()), line(0)),               // offset 0
        (Some("id-a".to_string()), line(0)),               // 1: re-sent
        (None, with_field(2, "id-b")),                     // 2
        (None, with_field(2, "id-b")),                     // 3: re-sent
        (Some("id-c".to_string()), with_field(4, "id-d")), // 4: header wins
        (Some(long), line(5)),                             // 5: too long -> ids-0-5
        (None, line(6)),                                   // 6: none -> ids-0-6
        (Some("id-e".to_string()), logger(7)),             // 7: lifted logger line
        (None, with_field(8, "id-f")),                     // 8: field on a plain line
    ];
    produce_with_headers(&kafka, "ids", records);

    let mut cfg = config(&kafka, &es.url(), "ids", "ids-group");
    cfg.es.op_type = OpType::Create;
    let transfer = InProcess::start(cfg);
    assert!(
        wait_until(Duration::from_secs(60), || {
            transfer.metric("logtransfer_indexed_total")
                + transfer.metric("logtransfer_duplicates_total")
                == 9.0
        }),
        "indexed {} duplicates {}",
        transfer.metric("logtransfer_indexed_total"),
        transfer.metric("logtransfer_duplicates_total")
    );
    assert_eq!(transfer.metric("logtransfer_duplicates_total"), 2.0);
    assert_eq!(transfer.metric("logtransfer_event_id_invalid_total"), 1.0);
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
    es.refresh();
    let mut ids: Vec<String> = all_docs(&es, "logs-ids-*")
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["id-a", "id-b", "id-c", "id-e", "id-f", "ids-0-5", "ids-0-6"]
    );
}
