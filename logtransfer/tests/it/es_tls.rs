//! Elasticsearch behind TLS and authentication, for real: nginx (Debian) terminates TLS
//! with the test PKI's certificates and checks basic auth or an API key in front of the
//! osmem-server ES API (`test_servers::TlsAuthProxy`). logtransfer indexes through it with
//! each way of authenticating; a wrong password, an untrusted certificate, a plaintext
//! client on the TLS port and a missing client certificate each stop the start with one
//! message naming the node and what to check, and never a secret.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, TestPki, TlsAuthProxy, free_port, wait_until};

const USER: &str = "elastic";
const PASSWORD: &str = "Pa55-w0rd-s3cr3t";
/// base64("keyid:apikeysecret"), the shape Elasticsearch hands out.
const API_KEY: &str = "a2V5aWQ6YXBpa2V5c2VjcmV0";

/// An INI for the binary: Kafka and the topic, then `es` (lines of the `[es]` section).
fn ini(kafka: &str, topic: &str, metrics: &str, es: &str) -> String {
    format!(
        "[kafka]\naddress = {kafka}\ntopics = {topic}\ngroup_id = {topic}\ncommit_interval_ms = 200\n\
         [es]\nrequest_timeout_ms = 5000\n{es}\n\
         [batch]\nmax_docs = 50\nmax_wait_ms = 50\nretry_initial_ms = 50\nretry_max_ms = 500\n\
         [transfer]\ndead_letter_topic = {topic}-dead-letter\nmetrics_address = {metrics}\n\
         [log]\nlevel = debug\n"
    )
}

/// Runs the binary on `es` settings against a fresh Kafka topic, produces 40 records and
/// waits until they are indexed in `es`; returns its whole log.
fn indexes_through(
    es: &Elasticsearch,
    dir: &Path,
    name: &str,
    settings: &str,
    env: &[(&str, &str)],
) -> String {
    let kafka = Kafka::start();
    kafka.create_topic(name, 1);
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = ini(&kafka.bootstrap_servers(), name, &metrics, settings);
    let process = Process::start_ini(dir, name, &config, &metrics, &[], env);
    produce(&kafka, name, &agent_batch("2026-11-25", name, 40));
    wait_count(es, &format!("logs-{name}-*"), 40, Duration::from_secs(60));
    assert!(
        !es_get(es, "/_index_template/logtransfer")["index_templates"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the template was installed through the proxy"
    );
    drop(process);
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

fn assert_no_secret(log: &str) {
    for secret in [PASSWORD, API_KEY, "apikeysecret"] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}

#[test]
fn indexes_over_https_with_basic_auth_trusting_the_ca_file() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, PASSWORD)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "address = {}\nusername = {USER}\npassword = {PASSWORD}\ntls_ca_file = {}",
        proxy.url(),
        pki.ca_cert().display()
    );
    let log = indexes_through(&es, dir.path(), "basic", &settings, &[]);
    assert_no_secret(&log);
}

#[test]
fn indexes_with_an_api_key_inline_from_the_environment_or_from_a_file() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .api_key(API_KEY)
        .start();
    let dir = tempfile::tempdir().unwrap();
    // `tls = true` and no scheme: https is assumed.
    let base = format!(
        "address = 127.0.0.1:{}\ntls = true\ntls_ca_file = {}",
        proxy.port(),
        pki.ca_cert().display()
    );
    let log = indexes_through(
        &es,
        dir.path(),
        "apikeyenv",
        &base,
        &[("LOGTRANSFER_ES_API_KEY", API_KEY)],
    );
    assert_no_secret(&log);

    let key_file = dir.path().join("api_key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let settings = format!("{base}\napi_key_file = {}", key_file.display());
    let log = indexes_through(&es, dir.path(), "apikeyfile", &settings, &[]);
    assert_no_secret(&log);
}

#[test]
fn indexes_with_a_password_file_and_a_client_certificate() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, PASSWORD)
        .require_client_cert(&pki)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let settings = format!(
        "address = {}\nusername = {USER}\npassword_file = {}\ntls_ca_file = {}\n\
         tls_cert_file = {}\ntls_key_file = {}",
        proxy.url(),
        password_file.display(),
        pki.ca_cert().display(),
        pki.client_cert().display(),
        pki.client_key().display(),
    );
    let log = indexes_through(&es, dir.path(), "mtls", &settings, &[]);
    assert_no_secret(&log);
}

/// Runs the binary on `es` settings and expects it to give up at start; returns its log.
fn fails_at_start(dir: &Path, name: &str, settings: &str) -> String {
    let metrics = format!("127.0.0.1:{}", free_port());
    // Nothing is consumed before Elasticsearch accepted the first request: no broker needed.
    let config = ini(
        &format!("127.0.0.1:{}", free_port()),
        name,
        &metrics,
        settings,
    );
    let mut process = Process::start_ini(dir, name, &config, &metrics, &[], &[]);
    let mut status = None;
    let exited = wait_until(Duration::from_secs(60), || {
        status = process.child.try_wait().ok().flatten();
        status.is_some()
    });
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    assert!(
        exited,
        "{name}: still running, retrying instead of stopping:\n{log}"
    );
    assert!(
        !status.is_some_and(|s| s.success()),
        "{name}: a failed start must exit non-zero:\n{log}"
    );
    assert_no_secret(&log);
    log
}

/// The lines of `log` at ERROR level or printed as the exit error.
fn error_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("ERROR") || l.starts_with("Error"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_wrong_password_or_api_key_stops_the_start_naming_the_node_and_the_keys() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, "the-right-one")
        .api_key("dGhlOnJpZ2h0b25l")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert();
    for (name, credentials) in [
        (
            "wrongpw",
            format!("username = {USER}\npassword = {PASSWORD}"),
        ),
        ("wrongkey", format!("api_key = {API_KEY}")),
        // Without a template to install, the check at start is a `GET /`.
        (
            "wrongpwping",
            format!("username = {USER}\npassword = {PASSWORD}\ninstall_template = false"),
        ),
    ] {
        let settings = format!(
            "address = {}\n{credentials}\ntls_ca_file = {}",
            proxy.url(),
            ca.display()
        );
        let log = fails_at_start(dir.path(), name, &settings);
        let errors = error_lines(&log);
        assert!(errors.contains("401"), "{name}: says 401:\n{log}");
        assert!(
            errors.contains(&proxy.url()),
            "{name}: names the node:\n{log}"
        );
        assert!(
            errors.contains("username/password or api_key"),
            "{name}: says what to check:\n{log}"
        );
    }
}

#[test]
fn an_untrusted_certificate_stops_the_start_naming_the_ca_file() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, PASSWORD)
        .untrusted_cert(&pki)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "address = {}\nusername = {USER}\npassword = {PASSWORD}\ntls_ca_file = {}",
        proxy.url(),
        pki.ca_cert().display()
    );
    let log = fails_at_start(dir.path(), "untrusted", &settings);
    let errors = error_lines(&log);
    assert!(errors.contains(&proxy.url()), "names the node:\n{log}");
    assert!(errors.contains("certificate"), "says what failed:\n{log}");
    assert!(errors.contains("tls_ca_file"), "says what to check:\n{log}");
}

#[test]
fn a_plaintext_client_against_the_tls_port_stops_the_start_saying_https() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, PASSWORD)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "address = {}\nusername = {USER}\npassword = {PASSWORD}",
        proxy.plaintext_url()
    );
    let log = fails_at_start(dir.path(), "plaintext", &settings);
    let errors = error_lines(&log);
    assert!(
        errors.contains(&proxy.plaintext_url()),
        "names the node:\n{log}"
    );
    assert!(errors.contains("https://"), "says what to use:\n{log}");
}

#[test]
fn a_missing_client_certificate_stops_the_start_naming_the_cert_keys() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user(USER, PASSWORD)
        .require_client_cert(&pki)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "address = {}\nusername = {USER}\npassword = {PASSWORD}\ntls_ca_file = {}",
        proxy.url(),
        pki.ca_cert().display()
    );
    let log = fails_at_start(dir.path(), "nocert", &settings);
    let errors = error_lines(&log);
    assert!(errors.contains(&proxy.url()), "names the node:\n{log}");
    assert!(
        errors.contains("tls_cert_file"),
        "says what to check:\n{log}"
    );
}
