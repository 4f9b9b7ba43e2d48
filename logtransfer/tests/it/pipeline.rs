//! Scenario: N messages of the three shapes (agent JSON, agent JSON carrying a logger line,
//! plain text) on a 3-partition topic become exactly N documents, with the right fields,
//! `_id`s and daily index names taken from each record's own time; the index template is
//! installed; /metrics counts them; a restart of the same group indexes nothing twice.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, wait_until};

const PER_SHAPE: usize = 200;

#[test]
fn n_messages_become_exactly_n_documents_with_their_fields_and_index_names() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("app", 3);

    let mut messages = Vec::new();
    for i in 0..PER_SHAPE {
        // Read on the 24th: the agent's time names the index.
        messages.push((
            "web-1:/var/log/a.log".to_string(),
            agent_message(
                "2026-11-24T10:00:00.000001Z",
                &format!("plain line {i}"),
                "web-1",
                "/var/log/a.log",
                i as u64 * 20,
            ),
            None,
        ));
        // A logger line read on the 25th but written at 23:59:59 on the 24th... of a
        // different day: the record's own time wins.
        let line = logger_line(
            "2026-11-23T23:59:59.5Z",
            if i % 2 == 0 { "warn" } else { "error" },
            &format!("lifted {i}"),
            40 + i as u32,
            "handle_request",
        );
        messages.push((
            "web-2:/var/log/b.log".to_string(),
            agent_message(
                "2026-11-25T00:00:01Z",
                &line,
                "web-2",
                "/var/log/b.log",
                i as u64 * 300,
            ),
            None,
        ));
        // Plain text from another producer: dated by the Kafka timestamp (2026-11-22).
        messages.push((
            "other".to_string(),
            format!("raw text {i}").into_bytes(),
            Some(1_795_348_800_000 + i as i64),
        ));
    }
    produce(&kafka, "app", &messages);

    let transfer = InProcess::start(config(&kafka, &es.url(), "app", "g1"));
    let total = (PER_SHAPE * 3) as u64;
    wait_count(&es, "logs-app-*", total, Duration::from_secs(90));
    assert!(wait_until(Duration::from_secs(10), || transfer
        .metric("logtransfer_indexed_total")
        == total as f64));
    assert_eq!(transfer.metric("logtransfer_consumed_total"), total as f64);
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    // Everything read is committed: lag 0 on every partition that had records.
    let mut lag = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            lag = metric_series(&transfer.metrics_url, "logtransfer_consumer_lag");
            !lag.is_empty() && lag.iter().all(|(_, v)| *v == 0.0)
        }),
        "lag {lag:?}"
    );
    assert_eq!(
        metric_series(&transfer.metrics_url, "logtransfer_bulk_requests_total")
            .iter()
            .filter(|(l, _)| l.contains("failed"))
            .count(),
        0
    );
    transfer.stop();

    assert_eq!(es.count("logs-app-2026.11.24"), PER_SHAPE as u64);
    assert_eq!(es.count("logs-app-2026.11.23"), PER_SHAPE as u64);
    assert_eq!(es.count("logs-app-2026.11.22"), PER_SHAPE as u64);

    let docs = all_docs(&es, "logs-app-*");
    assert_eq!(docs.len(), total as usize);
    let mut ids = HashSet::new();
    for hit in &docs {
        let id = hit["_id"].as_str().unwrap();
        let src = &hit["_source"];
        // _id = {topic}-{partition}-{offset}
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "app");
        assert!(parts[1].parse::<i32>().unwrap() < 3);
        parts[2].parse::<i64>().unwrap();
        assert!(ids.insert(id.to_owned()), "duplicate {id}");
        let msg = src["message"].as_str().unwrap();
        if msg.starts_with("lifted") {
            assert_eq!(hit["_index"], "logs-app-2026.11.23");
            assert_eq!(src["@timestamp"], "2026-11-23T23:59:59.5Z");
            assert!(["warn", "error"].contains(&src["log"]["level"].as_str().unwrap()));
            assert_eq!(src["log"]["origin"]["function"], "handle_request");
            assert_eq!(src["log"]["origin"]["file"]["name"], "src/main.rs");
            assert!(src["log"]["origin"]["file"]["line"].as_u64().unwrap() >= 40);
            assert_eq!(src["log"]["logger"], "demo_app");
            assert_eq!(src["host"]["name"], "web-2");
            assert_eq!(src["log"]["file"]["path"], "/var/log/b.log");
            assert!(src["log"]["offset"].is_u64());
            assert!(
                src["event"]["original"]
                    .as_str()
                    .unwrap()
                    .contains("\"log.level\"")
            );
        } else if msg.starts_with("plain line") {
            assert_eq!(hit["_index"], "logs-app-2026.11.24");
            assert_eq!(src["host"]["name"], "web-1");
            assert_eq!(src["log"]["file"]["path"], "/var/log/a.log");
            assert_eq!(src["agent"]["type"], "logagent");
            // Only what logtransfer adds: when it took the document in.
            let event = src["event"].as_object().unwrap();
            assert_eq!(event.keys().collect::<Vec<_>>(), ["ingested"], "{src}");
        } else {
            assert!(msg.starts_with("raw text"), "{msg}");
            assert_eq!(hit["_index"], "logs-app-2026.11.22");
            assert!(
                src["@timestamp"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-22T")
            );
        }
    }

    // The template is installed with ECS mappings, and the indices use them.
    let mapping = es_get(&es, "/logs-app-2026.11.23/_mapping");
    let props = &mapping["logs-app-2026.11.23"]["mappings"]["properties"];
    assert_eq!(props["@timestamp"]["type"], "date");
    assert_eq!(props["log"]["properties"]["level"]["type"], "keyword");
    assert_eq!(props["log"]["properties"]["offset"]["type"], "long");

    // Same group again: everything was committed, nothing is re-read.
    let again = InProcess::start(config(&kafka, &es.url(), "app", "g1"));
    produce(
        &kafka,
        "app",
        &[(
            "k".into(),
            agent_message(
                "2026-11-24T11:00:00Z",
                "one more",
                "web-1",
                "/var/log/a.log",
                1,
            ),
            None,
        )],
    );
    assert!(wait_until(Duration::from_secs(60), || again
        .metric("logtransfer_indexed_total")
        >= 1.0));
    assert_eq!(again.metric("logtransfer_consumed_total"), 1.0);
    again.stop();
    assert_eq!(es.count("logs-app-*"), total + 1);
}
