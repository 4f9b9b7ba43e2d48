//! Scenarios where Elasticsearch says no: per-item 429 from a read-only index, a mapping
//! conflict, the cluster gone for 10 s, whole-request 429 and 503. Each ends with exactly
//! the documents expected: nothing lost, nothing doubled, refusals in the dead-letter topic.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use test_servers::{Elasticsearch, Fault, FaultProxy, Kafka, wait_until};

#[test]
fn per_item_429_from_a_read_only_index_is_retried_until_the_block_is_cleared() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("ro", 1);
    // The index exists and refuses writes (flood-stage block: per-item 429).
    es_put(&es, "/logs-ro-2026.11.25", &json!({}));
    es_put(
        &es,
        "/logs-ro-2026.11.25/_settings",
        &json!({"index.blocks.read_only_allow_delete": true}),
    );
    let mut cfg = config(&kafka, &es.url(), "ro", "ro-group");
    cfg.batch.item_max_retries = 10_000;
    let transfer = InProcess::start(cfg);
    // All the blocked documents first: the free ones behind them must not wait for the
    // block to be lifted (retrying documents give up their request slot, within a budget).
    let mut messages = agent_batch("2026-11-25", "blocked", 150);
    messages.extend(agent_batch("2026-11-24", "free", 150));
    produce(&kafka, "ro", &messages);

    wait_count(&es, "logs-ro-2026.11.24", 150, Duration::from_secs(60));
    assert!(wait_until(Duration::from_secs(30), || transfer
        .metric("logtransfer_retried_total")
        >= 300.0));
    assert_eq!(es.count("logs-ro-2026.11.25"), 0);

    es_put(
        &es,
        "/logs-ro-2026.11.25/_settings",
        &json!({"index.blocks.read_only_allow_delete": null}),
    );
    wait_count(&es, "logs-ro-2026.11.25", 150, Duration::from_secs(60));
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
    assert_eq!(es.count("logs-ro-*"), 300);
}

#[test]
fn a_mapping_conflict_goes_to_the_dead_letter_topic_with_its_reason() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("conflict", 1);
    let transfer = InProcess::start(config(&kafka, &es.url(), "conflict", "c-group"));
    let mut messages = agent_batch("2026-11-25", "good", 20);
    // log.offset is a long in the template: a string there is refused with a 400.
    let bad = serde_json::to_vec(&json!({
        "@timestamp": "2026-11-25T08:00:00Z", "message": "bad one",
        "host": {"name": "h"}, "log": {"file": {"path": "/f"}, "offset": "not-a-number"}
    }))
    .unwrap();
    messages.insert(7, ("h:/f".into(), bad, None));
    produce(&kafka, "conflict", &messages);

    wait_count(&es, "logs-conflict-*", 20, Duration::from_secs(60));
    let letters = kafka.consume_all("conflict-dead-letter", 1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1, "one dead letter");
    let (key, value) = &letters[0];
    assert_eq!(key.as_deref(), Some(&b"conflict-0-7"[..]));
    let letter: Value = serde_json::from_slice(value).unwrap();
    assert_eq!(letter["error"]["status"], 400);
    assert_eq!(letter["error"]["type"], "mapper_parsing_exception");
    assert!(
        letter["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("log.offset"),
        "{letter}"
    );
    assert_eq!(letter["id"], "conflict-0-7");
    assert_eq!(letter["index"], "logs-conflict-2026.11.25");
    assert_eq!(letter["source"]["offset"], 7);
    assert_eq!(letter["document"]["message"], "bad one");
    assert!(wait_until(Duration::from_secs(10), || transfer
        .metric("logtransfer_dead_lettered_total")
        == 1.0));
    transfer.stop();
    assert_eq!(es.count("logs-conflict-*"), 20);

    // It was committed with the rest: a new member of the group re-reads nothing.
    let again = InProcess::start(config(&kafka, &es.url(), "conflict", "c-group"));
    produce(&kafka, "conflict", &agent_batch("2026-11-25", "late", 1));
    assert!(wait_until(Duration::from_secs(60), || again
        .metric("logtransfer_indexed_total")
        == 1.0));
    assert_eq!(again.metric("logtransfer_consumed_total"), 1.0);
    again.stop();
    assert_eq!(
        kafka
            .consume_all("conflict-dead-letter", 2, Duration::from_secs(3))
            .len(),
        1
    );
}

#[test]
fn elasticsearch_down_for_10_s_loses_nothing_and_pauses_consumption() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let proxy = FaultProxy::start(&es.url());
    kafka.create_topic("outage", 2);
    let transfer = InProcess::start(config(&kafka, &proxy.url(), "outage", "o-group"));
    // Started (template installed) before the outage.
    assert!(wait_until(Duration::from_secs(30), || {
        es_get(&es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }));
    proxy.set_fault(Fault::Refuse);
    let n = 3_000;
    produce(
        &kafka,
        "outage",
        &agent_batch("2026-11-25", "during outage", n),
    );

    // During the outage: consumption stops at the sink's bound (2 requests x 100 docs in
    // flight, 100 being built, a 200-record channel, one backlog record), far below n.
    let bound = 2.0 * 100.0 + 100.0 + 200.0 + 2.0;
    assert!(wait_until(Duration::from_secs(30), || transfer
        .metric("logtransfer_paused")
        == 1.0));
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        let consumed = transfer.metric("logtransfer_consumed_total");
        assert!(
            consumed <= bound,
            "{consumed} records held while Elasticsearch is down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(transfer.metric("logtransfer_indexed_total"), 0.0);
    assert!(transfer.metric("logtransfer_request_retries_total") >= 2.0);

    proxy.set_fault(Fault::None);
    wait_count(&es, "logs-outage-*", n as u64, Duration::from_secs(120));
    assert!(wait_until(Duration::from_secs(10), || transfer
        .metric("logtransfer_paused")
        == 0.0));
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
    assert_eq!(es.count("logs-outage-*"), n as u64);
}

#[test]
fn whole_request_429_and_503_are_retried_until_accepted() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let proxy = FaultProxy::start(&es.url());
    kafka.create_topic("busy", 1);
    let transfer = InProcess::start(config(&kafka, &proxy.url(), "busy", "b-group"));
    assert!(wait_until(Duration::from_secs(30), || {
        es_get(&es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }));
    proxy.set_fault(Fault::Status(429));
    produce(&kafka, "busy", &agent_batch("2026-11-25", "busy", 500));
    assert!(wait_until(Duration::from_secs(30), || proxy.faulted() >= 3));
    proxy.set_fault(Fault::Status(503));
    let before = proxy.faulted();
    assert!(wait_until(Duration::from_secs(30), || proxy.faulted() >= before + 3));
    assert_eq!(es.count("logs-busy-*"), 0);
    proxy.set_fault(Fault::None);

    wait_count(&es, "logs-busy-*", 500, Duration::from_secs(60));
    assert!(transfer.metric("logtransfer_request_retries_total") >= 6.0);
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
    assert_eq!(es.count("logs-busy-*"), 500);
}

#[test]
fn a_frozen_elasticsearch_times_out_and_the_retries_do_not_duplicate() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("frozen", 1);
    let mut cfg = config(&kafka, &es.url(), "frozen", "f-group");
    cfg.es.request_timeout_ms = 1_000;
    let transfer = InProcess::start(cfg);
    assert!(wait_until(Duration::from_secs(30), || {
        es_get(&es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }));
    // SIGSTOP: connections are accepted by the kernel but nothing answers; requests
    // time out, and the frozen server may still process them once it thaws.
    es.pause();
    produce(
        &kafka,
        "frozen",
        &agent_batch("2026-11-25", "frozen", 1_000),
    );
    assert!(wait_until(Duration::from_secs(30), || transfer
        .metric("logtransfer_request_retries_total")
        >= 3.0));
    es.resume();
    wait_count(&es, "logs-frozen-*", 1_000, Duration::from_secs(60));
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
    transfer.stop();
    assert_eq!(
        es.count("logs-frozen-*"),
        1_000,
        "timed-out requests replayed onto the same ids"
    );
}

#[test]
fn a_413_splits_the_request_and_a_400_for_a_single_document_dead_letters_it() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let proxy = FaultProxy::start(&es.url());
    kafka.create_topic("split", 1);
    let mut cfg = config(&kafka, &proxy.url(), "split", "s-group");
    // The 50 documents must travel as one request to be split: an idle flush could send
    // the first one alone, and a 413 for a lone document dead-letters it.
    cfg.batch.flush_when_idle = false;
    let transfer = InProcess::start(cfg);
    assert!(wait_until(Duration::from_secs(30), || {
        es_get(&es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }));
    let before = proxy.requests();
    proxy.fail_next(1, 413);
    produce(&kafka, "split", &agent_batch("2026-11-25", "split", 50));
    wait_count(&es, "logs-split-*", 50, Duration::from_secs(60));
    assert!(
        proxy.requests() - before >= 3,
        "refused once, then two halves"
    );
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);

    // Every request refused as malformed: split down to single documents, which are then
    // dead-lettered with the answer.
    proxy.set_fault(Fault::Status(400));
    produce(&kafka, "split", &agent_batch("2026-11-25", "refused", 2));
    let letters = kafka.consume_all("split-dead-letter", 2, Duration::from_secs(60));
    proxy.set_fault(Fault::None);
    assert_eq!(letters.len(), 2);
    for (_, value) in &letters {
        let letter: Value = serde_json::from_slice(value).unwrap();
        assert_eq!(letter["error"]["status"], 400);
        assert_eq!(letter["error"]["type"], "request_rejected");
        assert!(
            letter["document"]["message"]
                .as_str()
                .unwrap()
                .starts_with("refused")
        );
    }
    transfer.stop();
    assert_eq!(es.count("logs-split-*"), 50);
}

/// Whole-request 401 (bad credentials): retried with backoff, nothing lost, but the
/// operator is told at once: one ERROR line per spell (not per retry) naming the status,
/// the node and what to check, and `logtransfer_es_request_errors_total{status="401"}`.
#[test]
fn a_whole_request_401_is_an_error_per_spell_and_a_metric_and_loses_nothing() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let proxy = FaultProxy::start(&es.url());
    kafka.create_topic("auth", 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&kafka, &proxy.url(), "auth", "auth-group");
    let transfer = Process::start(dir.path(), &cfg, "auth");
    let log_path = dir.path().join("auth.log");
    let errors_401 = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR") && l.contains("401"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let counted_401 = || {
        metric_series(&transfer.metrics_url, "logtransfer_es_request_errors_total")
            .iter()
            .find(|(labels, _)| labels.contains("status=\"401\""))
            .map_or(0.0, |(_, v)| *v)
    };
    assert!(wait_until(Duration::from_secs(30), || {
        es_get(&es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }));

    for spell in 1..=2 {
        proxy.set_fault(Fault::Status(401));
        let before = proxy.faulted();
        produce(&kafka, "auth", &agent_batch("2026-11-25", "auth", 100));
        assert!(wait_until(Duration::from_secs(30), || proxy.faulted() >= before + 5));
        assert!(
            wait_until(Duration::from_secs(10), || counted_401()
                >= 5.0 * spell as f64),
            "401s counted: {}",
            counted_401()
        );
        let errors = errors_401();
        assert_eq!(errors.len(), spell, "one ERROR per spell: {errors:#?}");
        let last = errors.last().unwrap();
        assert!(last.contains(&proxy.url()), "names the node: {last}");
        assert!(last.contains("username"), "says what to check: {last}");
        proxy.set_fault(Fault::None);
        wait_count(
            &es,
            "logs-auth-*",
            100 * spell as u64,
            Duration::from_secs(60),
        );
    }
    assert_eq!(transfer.metric("logtransfer_dead_lettered_total"), 0.0);
}
