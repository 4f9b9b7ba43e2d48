//! TLS and SASL toward Kafka, against a real broker (tansu) behind a real TLS-terminating
//! proxy (stunnel4) with certificates from `TestPki`: records consumed over mutual TLS are
//! indexed, and each way a secured connection can be refused stops the binary at start with
//! an error naming the brokers, the protocol and what to check.
//!
//! SASL: the test broker cannot authenticate (creating a user on an authenticating tansu
//! with memory storage fails), so the most real SASL test here is a SASL client against a
//! broker without SASL, which must fail the same clear way.

use std::time::Duration;

use crate::common::*;
use logtransfer::config::KafkaSecurity;
use service_kit::kafka::SecurityProtocol;
use test_servers::{Elasticsearch, Kafka, KafkaTls, TestPki, wait_until};

fn messages(n: u64) -> Vec<(String, Vec<u8>, Option<i64>)> {
    (0..n)
        .map(|i| {
            (
                "host-1:/var/log/app.log".to_string(),
                agent_message(
                    "2026-11-25T12:00:00Z",
                    &format!("line {i}"),
                    "host-1",
                    "/var/log/app.log",
                    i * 10,
                ),
                None,
            )
        })
        .collect()
}

#[test]
fn records_consumed_over_mutual_tls_are_indexed() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::Mutual);
    let es = Elasticsearch::start();
    kafka.create_topic("tls", 1);
    produce(&kafka, "tls", &messages(30));
    let mut config = config(&kafka, &es.url(), "tls", "tls-group");
    config.kafka.security = KafkaSecurity {
        security_protocol: SecurityProtocol::Ssl,
        tls_ca_file: pki.ca_cert(),
        tls_cert_file: pki.client_cert(),
        tls_key_file: pki.client_key(),
        ..KafkaSecurity::default()
    };
    let transfer = InProcess::start(config);
    wait_count(&es, "logs-tls-*", 30, Duration::from_secs(90));
    transfer.stop();
}

/// Starts the binary with `[kafka] address = brokers` plus `kafka_keys` (INI), expects it
/// to exit with an error at start, and returns its stderr.
fn start_fails(brokers: &str, kafka_keys: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let closed = test_servers::free_port();
    let ini = format!(
        "[kafka]\naddress = {brokers}\ntopics = t\n{kafka_keys}\n\
         [es]\naddress = http://127.0.0.1:{closed}\ninstall_template = false\n\
         [transfer]\nmetrics_address =\n"
    );
    let mut process = Process::start_ini(dir.path(), "fails", &ini, "", &[], &[]);
    let mut status = None;
    let exited = wait_until(Duration::from_secs(60), || {
        status = process.child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(dir.path().join("fails.log")).unwrap_or_default();
    assert!(
        exited,
        "logtransfer kept running instead of failing at start; stderr:\n{stderr}"
    );
    assert!(!status.unwrap().success(), "exit status; stderr:\n{stderr}");
    stderr
}

fn assert_names(stderr: &str, parts: &[&str]) {
    for part in parts {
        assert!(stderr.contains(part), "{part:?} not in stderr:\n{stderr}");
    }
}

#[test]
fn an_untrusted_broker_certificate_stops_the_start() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::Untrusted);
    let stderr = start_fails(
        &kafka.bootstrap_servers(),
        &format!(
            "security_protocol = ssl\ntls_ca_file = {}",
            pki.ca_cert().display()
        ),
    );
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = ssl",
            "certificate verify failed",
            "[kafka] tls_ca_file",
        ],
    );
}

#[test]
fn a_plaintext_consumer_against_a_tls_port_stops_the_start() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::ServerOnly);
    let stderr = start_fails(&kafka.bootstrap_servers(), "");
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = plaintext",
            "check that [kafka] security_protocol matches",
        ],
    );
}

/// The most real SASL test available: the broker has no SASL. The password (from the
/// environment, as a deployment would give it) is never printed.
#[test]
fn a_sasl_login_the_broker_does_not_offer_stops_the_start_without_the_password() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let closed = test_servers::free_port();
    let ini = format!(
        "[kafka]\naddress = {}\ntopics = t\nsecurity_protocol = sasl_plaintext\n\
         sasl_mechanism = PLAIN\nsasl_username = transfer\n\
         [es]\naddress = http://127.0.0.1:{closed}\ninstall_template = false\n\
         [transfer]\nmetrics_address =\n",
        kafka.bootstrap_servers()
    );
    let mut process = Process::start_ini(
        dir.path(),
        "sasl",
        &ini,
        "",
        &[],
        &[("LOGTRANSFER_KAFKA_SASL_PASSWORD", "pw-never-shown-43")],
    );
    let mut status = None;
    let exited = wait_until(Duration::from_secs(60), || {
        status = process.child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(dir.path().join("sasl.log")).unwrap_or_default();
    assert!(exited && !status.unwrap().success(), "{stderr}");
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = sasl_plaintext",
            "sasl_username and sasl_password",
        ],
    );
    assert!(!stderr.contains("pw-never-shown-43"), "{stderr}");
}
