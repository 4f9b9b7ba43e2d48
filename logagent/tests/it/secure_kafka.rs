//! TLS and SASL toward Kafka, against a real broker (tansu) behind a real TLS-terminating
//! proxy (stunnel4) with certificates from `TestPki`: lines arrive over TLS and mutual TLS,
//! `compression = zstd` ships, and each way a secured connection can be refused stops the
//! binary at start with an error naming the brokers, the protocol and what to check.
//!
//! SASL: the test broker cannot authenticate (creating a user on an authenticating tansu
//! with memory storage fails), so the most real SASL test here is a SASL client against a
//! broker without SASL, which must fail the same clear way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use logagent::config::KafkaSecurity;
use service_kit::kafka::SecurityProtocol;
use test_servers::{Etcd, Kafka, KafkaTls, TestPki, wait_until};

/// Ships 100 lines through an in-process agent with `security` and `compression` to
/// `kafka`, and checks they all arrived.
fn ships_lines(kafka: &Kafka, security: KafkaSecurity, compression: &str) {
    let etcd = Etcd::start();
    kafka.create_topic("secure", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let file = logs.join("app.log");
    std::fs::File::create(&file).unwrap();
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!("[{}]", entry(&file, "secure")),
    );
    let mut config = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    config.kafka.security = security;
    config.kafka.compression = compression.to_owned();
    let agent = Agent::start(config);
    append(&file, lines("secure", 0..100));
    let read = kafka.consume_all("secure", 100, Duration::from_secs(60));
    assert_eq!(read.len(), 100, "lines shipped");
    agent.stop();
}

fn tls(pki: &TestPki) -> KafkaSecurity {
    KafkaSecurity {
        security_protocol: SecurityProtocol::Ssl,
        tls_ca_file: pki.ca_cert(),
        ..KafkaSecurity::default()
    }
}

#[test]
fn lines_reach_a_broker_behind_tls() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::ServerOnly);
    ships_lines(&kafka, tls(&pki), "lz4");
}

#[test]
fn lines_reach_a_broker_that_requires_a_client_certificate() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::Mutual);
    let security = KafkaSecurity {
        tls_cert_file: pki.client_cert(),
        tls_key_file: pki.client_key(),
        ..tls(&pki)
    };
    ships_lines(&kafka, security, "lz4");
}

/// `compression = zstd` was offered but not compiled in: the agent failed at start.
#[test]
fn zstd_and_snappy_compressed_lines_arrive() {
    let kafka = Kafka::start();
    ships_lines(&kafka, KafkaSecurity::default(), "zstd");
    let kafka = Kafka::start();
    ships_lines(&kafka, KafkaSecurity::default(), "snappy");
}

/// Starts the binary with `[kafka] address = brokers` plus `kafka_keys`, expects it to
/// exit with an error at start, and returns its stderr.
fn start_fails(dir: &Path, brokers: &str, kafka_keys: &str) -> String {
    let conf = dir.join("conf.toml");
    let closed_port = test_servers::free_port();
    std::fs::write(
        &conf,
        format!(
            "[kafka]\naddress = \"{brokers}\"\n{kafka_keys}\n[etcd]\naddress = \"127.0.0.1:{closed_port}\"\ntimeout = 1\n\
             [agent]\ndata_dir = \"{}\"\nmetrics_address = \"\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let stderr_path: PathBuf = dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_logagent"))
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    let exited = wait_until(Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the agent kept running instead of failing at start; stderr:\n{stderr}");
    }
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
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(
        dir.path(),
        &kafka.bootstrap_servers(),
        &format!(
            "security_protocol = \"ssl\"\ntls_ca_file = \"{}\"",
            pki.ca_cert().display()
        ),
    );
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = ssl",
            "certificate verify failed",
            "tls_ca_file",
        ],
    );
}

#[test]
fn a_plaintext_agent_against_a_tls_port_stops_the_start() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::ServerOnly);
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(dir.path(), &kafka.bootstrap_servers(), "");
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = plaintext",
            "check that [kafka] security_protocol matches",
        ],
    );
}

#[test]
fn a_missing_client_certificate_stops_the_start() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::Mutual);
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(
        dir.path(),
        &kafka.bootstrap_servers(),
        &format!(
            "security_protocol = \"ssl\"\ntls_ca_file = \"{}\"",
            pki.ca_cert().display()
        ),
    );
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = ssl",
            "tls_cert_file",
        ],
    );
}

/// The most real SASL test available: the broker has no SASL. The password (from a file)
/// is never printed.
#[test]
fn a_sasl_login_the_broker_does_not_offer_stops_the_start_without_the_password() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, "pw-never-shown-42\n").unwrap();
    let stderr = start_fails(
        dir.path(),
        &kafka.bootstrap_servers(),
        &format!(
            "security_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"SCRAM-SHA-256\"\n\
             sasl_username = \"agent\"\nsasl_password_file = \"{}\"",
            password_file.display()
        ),
    );
    assert_names(
        &stderr,
        &[
            &kafka.bootstrap_servers(),
            "security_protocol = sasl_plaintext",
            "sasl_username and sasl_password",
        ],
    );
    assert!(!stderr.contains("pw-never-shown-42"), "{stderr}");
}

/// A mistake in the keys is refused before any connection, naming the key.
#[test]
fn sasl_without_a_password_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(
        dir.path(),
        "127.0.0.1:1",
        "security_protocol = \"sasl_ssl\"\nsasl_username = \"agent\"",
    );
    assert_names(
        &stderr,
        &["[kafka] sasl_password is required with security_protocol = sasl_ssl"],
    );
}
