//! Scenario: the topic list lives in etcd. logtransfer consumes what the key lists, and
//! when the key changes it follows without a restart.

use std::time::Duration;

use crate::common::*;
use logtransfer::config::EtcdConfig;
use test_servers::{Elasticsearch, Etcd, Kafka};

#[test]
fn topics_come_from_etcd_and_follow_its_changes() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    kafka.create_topic("first", 1);
    kafka.create_topic("second", 1);
    etcd.put("/logtransfer/topics", r#"["first"]"#);

    let mut cfg = config(&kafka, &es.url(), "ignored-when-etcd-is-set", "etcd-group");
    cfg.etcd = Some(EtcdConfig {
        address: etcd.endpoint(),
        key: "/logtransfer/topics".into(),
        timeout_ms: 5_000,
    });
    let transfer = InProcess::start(cfg);
    let msg = |t: &str| {
        vec![(
            "k".to_string(),
            agent_message("2026-11-25T09:00:00Z", t, "h", "/f", 0),
            None,
        )]
    };
    produce(&kafka, "first", &msg("to first"));
    produce(&kafka, "second", &msg("to second, not listed yet"));
    wait_count(&es, "logs-first-*", 1, Duration::from_secs(60));

    etcd.put("/logtransfer/topics", "first, second");
    wait_count(&es, "logs-second-*", 1, Duration::from_secs(60));
    transfer.stop();
    assert_eq!(es.count("logs-*"), 2);
    assert_eq!(es.count("logs-ignored-when-etcd-is-set-*"), 0);
}
