//! Scenario: the topic list lives in etcd. logtransfer consumes what the key lists, and
//! when the key changes it follows without a restart.

use std::time::Duration;

use crate::common::*;
use logtransfer::config::{Config, EtcdConfig};
use service_kit::secret::Secret;
use service_kit::shutdown::Shutdown;
use test_servers::{
    ETCD_USER, ETCD_USER_PASSWORD, Elasticsearch, Etcd, EtcdOptions, Kafka, TestPki,
};

/// One agent record saying `text`, for `produce`.
fn one_line(text: &str) -> Vec<(String, Vec<u8>, Option<i64>)> {
    vec![(
        "k".to_string(),
        agent_message("2026-11-25T09:00:00Z", text, "h", "/f", 0),
        None,
    )]
}

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
        ..EtcdConfig::default()
    });
    let transfer = InProcess::start(cfg);
    produce(&kafka, "first", &one_line("to first"));
    produce(&kafka, "second", &one_line("to second, not listed yet"));
    wait_count(&es, "logs-first-*", 1, Duration::from_secs(60));

    etcd.put("/logtransfer/topics", "first, second");
    wait_count(&es, "logs-second-*", 1, Duration::from_secs(60));
    transfer.stop();
    assert_eq!(es.count("logs-*"), 2);
    assert_eq!(es.count("logs-ignored-when-etcd-is-set-*"), 0);
}

/// The `[etcd]` section a user writes for a TLS etcd with client certificates and a login.
fn secured_etcd_config(etcd: &Etcd, pki: &TestPki, password: &str) -> EtcdConfig {
    let mut config = EtcdConfig {
        address: etcd.endpoint(),
        key: "/logtransfer/topics".into(),
        timeout_ms: 5_000,
        ..EtcdConfig::default()
    };
    config.security.username = ETCD_USER.into();
    config.security.password = Secret::new(password);
    config.security.tls_ca_file = pki.ca_cert();
    config.security.tls_cert_file = pki.client_cert();
    config.security.tls_key_file = pki.client_key();
    config
}

#[test]
fn topics_come_from_an_etcd_with_tls_client_certificates_and_a_login() {
    let pki = TestPki::generate();
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start_with(
        EtcdOptions::new()
            .tls(&pki)
            .client_cert_auth()
            .auth("/logtransfer/"),
    );
    kafka.create_topic("secured", 1);
    kafka.create_topic("later", 1);
    etcd.put("/logtransfer/topics", r#"["secured"]"#);

    let mut cfg = config(
        &kafka,
        &es.url(),
        "ignored-when-etcd-is-set",
        "etcd-tls-group",
    );
    cfg.etcd = Some(secured_etcd_config(&etcd, &pki, ETCD_USER_PASSWORD));
    let transfer = InProcess::start(cfg);
    produce(&kafka, "secured", &one_line("over tls"));
    wait_count(&es, "logs-secured-*", 1, Duration::from_secs(60));
    etcd.put("/logtransfer/topics", "secured, later");
    produce(&kafka, "later", &one_line("followed over tls"));
    wait_count(&es, "logs-later-*", 1, Duration::from_secs(60));
    transfer.stop();
}

/// Runs logtransfer on `etcd` settings that etcd refuses; returns its start error.
fn start_error(etcd: EtcdConfig) -> String {
    let mut cfg = Config::default();
    cfg.es.install_template = false;
    cfg.transfer.metrics_address = String::new();
    cfg.etcd = Some(etcd);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            logtransfer::run(cfg, Shutdown::new()),
        )
        .await
    });
    match outcome {
        Ok(Err(error)) => error.to_string(),
        Ok(Ok(())) => panic!("logtransfer ran on refused etcd settings"),
        Err(_) => panic!("logtransfer kept retrying instead of failing at start"),
    }
}

#[test]
fn a_wrong_password_or_an_untrusted_etcd_stops_logtransfer_at_start() {
    let pki = TestPki::generate();
    let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki).auth("/logtransfer/"));
    let error = start_error(secured_etcd_config(&etcd, &pki, "wrong-password"));
    assert!(error.contains(&etcd.endpoint()), "{error}");
    assert!(error.contains("[etcd] password"), "{error}");
    assert!(!error.contains("wrong-password"), "{error}");

    let untrusted = Etcd::start_with(EtcdOptions::new().untrusted_tls(&pki));
    let error = start_error(secured_etcd_config(&untrusted, &pki, ETCD_USER_PASSWORD));
    assert!(error.contains(&untrusted.endpoint()), "{error}");
    assert!(error.contains("[etcd] tls_ca_file"), "{error}");
}
