//! `check_brokers` against a real broker (tansu), plain and behind a real TLS-terminating
//! proxy (stunnel4) with certificates from `TestPki`: each way a secured connection is
//! refused is told apart and explained, a good one answers, and brokers that are down are
//! not mistaken for a refusal.
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use secure_transport::Secret;
use secure_transport::kafka::{
    BrokerCheck, KafkaSecurity, KafkaSecurityError, SaslMechanism, SecurityProtocol, check_brokers,
};
use test_servers::{Kafka, KafkaTls, TestPki};

fn check(brokers: &str, security: &KafkaSecurity) -> Result<BrokerCheck, KafkaSecurityError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    let resolved = security.apply("[kafka]", &mut config).unwrap();
    check_brokers(&config, "[kafka]", &resolved, Duration::from_secs(10))
}

fn refused(result: Result<BrokerCheck, KafkaSecurityError>) -> String {
    match result {
        Err(e @ KafkaSecurityError::Refused { .. }) => {
            // What an operator reads (shown with --no-capture).
            eprintln!("refused: {e}");
            e.to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn tls(pki: &TestPki) -> KafkaSecurity {
    KafkaSecurity {
        security_protocol: SecurityProtocol::Ssl,
        tls_ca_file: pki.ca_cert(),
        ..KafkaSecurity::default()
    }
}

#[test]
fn a_trusted_tls_broker_answers_and_an_untrusted_one_is_refused() {
    let pki = TestPki::generate();
    let good = Kafka::start_tls(&pki, KafkaTls::ServerOnly);
    assert_eq!(
        check(&good.bootstrap_servers(), &tls(&pki)).unwrap(),
        BrokerCheck::Reachable
    );
    let bad = Kafka::start_tls(&pki, KafkaTls::Untrusted);
    let error = refused(check(&bad.bootstrap_servers(), &tls(&pki)));
    for part in [
        bad.bootstrap_servers().as_str(),
        "[kafka] security_protocol = ssl",
        "certificate verify failed",
        "check [kafka] tls_ca_file",
    ] {
        assert!(error.contains(part), "{part:?} not in {error}");
    }
}

#[test]
fn plaintext_against_tls_and_tls_against_plaintext_are_refused() {
    let pki = TestPki::generate();
    let tls_broker = Kafka::start_tls(&pki, KafkaTls::ServerOnly);
    let error = refused(check(
        &tls_broker.bootstrap_servers(),
        &KafkaSecurity::default(),
    ));
    assert!(
        error.contains("security_protocol = plaintext")
            && error.contains("check that [kafka] security_protocol matches"),
        "{error}"
    );
    let plain_broker = Kafka::start();
    let error = refused(check(&plain_broker.bootstrap_servers(), &tls(&pki)));
    assert!(error.contains("security_protocol = ssl"), "{error}");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::generate();
    let kafka = Kafka::start_tls(&pki, KafkaTls::Mutual);
    let error = refused(check(&kafka.bootstrap_servers(), &tls(&pki)));
    assert!(error.contains("tls_cert_file"), "{error}");
    let with_cert = KafkaSecurity {
        tls_cert_file: pki.client_cert(),
        tls_key_file: pki.client_key(),
        ..tls(&pki)
    };
    assert_eq!(
        check(&kafka.bootstrap_servers(), &with_cert).unwrap(),
        BrokerCheck::Reachable
    );
}

/// The most real SASL test here: the test broker has no SASL.
#[test]
fn a_sasl_login_against_a_broker_without_sasl_is_refused_without_the_password() {
    let kafka = Kafka::start();
    for mechanism in [SaslMechanism::Plain, SaslMechanism::ScramSha256] {
        let security = KafkaSecurity {
            security_protocol: SecurityProtocol::SaslPlaintext,
            sasl_mechanism: mechanism,
            sasl_username: "agent".into(),
            sasl_password: Secret::new("pw-never-shown-45"),
            ..KafkaSecurity::default()
        };
        let error = refused(check(&kafka.bootstrap_servers(), &security));
        assert!(
            error.contains("security_protocol = sasl_plaintext")
                && error.contains("sasl_username and sasl_password"),
            "{mechanism:?}: {error}"
        );
        assert!(!error.contains("pw-never-shown-45"), "{error}");
    }
}

/// Nothing listening: not a refusal, and known at once (librdkafka reports all brokers
/// down), so a binary started before its brokers does not wait out the timeout.
#[test]
fn brokers_that_are_down_are_unreachable_not_refused() {
    let port = test_servers::free_port();
    let started = Instant::now();
    let result = check(&format!("127.0.0.1:{port}"), &KafkaSecurity::default()).unwrap();
    assert!(matches!(result, BrokerCheck::Unreachable(_)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited out the timeout"
    );
}
