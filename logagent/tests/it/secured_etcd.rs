//! Scenario: the collect config lives in an etcd with TLS, client certificates and users.
//! The agent reads and follows it (across the expiry of its login token); settings etcd
//! refuses stop the agent at start with the endpoint and what to check, never the password.

use std::time::Duration;

use crate::common::*;
use logagent::agent::AgentThread;
use logagent::config::LocalConfig;
use service_kit::secret::Secret;
use test_servers::{ETCD_USER, ETCD_USER_PASSWORD, Etcd, EtcdOptions, Kafka, TestPki};

/// `config` with the `[etcd]` security keys a user writes: CA, client certificate, user,
/// and the password from a file.
fn secured_config(dir: &std::path::Path, kafka: &str, etcd: &Etcd, pki: &TestPki) -> LocalConfig {
    let password_file = dir.join("etcd-password");
    std::fs::write(&password_file, format!("{ETCD_USER_PASSWORD}\n")).unwrap();
    let mut c = config(dir, kafka, &etcd.endpoint());
    c.etcd.security.username = ETCD_USER.into();
    c.etcd.security.password_file = password_file;
    c.etcd.security.tls_ca_file = pki.ca_cert();
    c.etcd.security.tls_cert_file = pki.client_cert();
    c.etcd.security.tls_key_file = pki.client_key();
    c
}

#[test]
fn the_collect_config_comes_over_tls_with_a_login_and_follows_changes_after_the_token_expires() {
    let pki = TestPki::generate();
    let kafka = Kafka::start();
    let etcd = Etcd::start_with(
        EtcdOptions::new()
            .tls(&pki)
            .client_cert_auth()
            .auth("/logagent/")
            .auth_token_ttl(Duration::from_secs(1)),
    );
    kafka.create_topic("ta", 1);
    kafka.create_topic("tb", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    append(&a, lines("a", 0..100));
    append(&b, lines("b", 0..50));
    etcd.put(KEY, &format!("[{}]", entry(&a, "ta")));

    let agent = Agent::start(secured_config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd,
        &pki,
    ));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 100.0
    });

    // Longer than the token lives unused: the change still arrives.
    std::thread::sleep(Duration::from_secs(3));
    etcd.put(KEY, &format!("[{},{}]", entry(&a, "ta"), entry(&b, "tb")));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 150.0
    });
    assert_eq!(agent.metric("logagent_files_watched"), 2.0);
    agent.stop();
}

/// Starts the agent on settings etcd refuses; returns the start error.
fn start_error(config: LocalConfig) -> String {
    match AgentThread::start(config) {
        Ok(agent) => {
            let _ = agent.stop();
            panic!("the agent started on etcd settings etcd refuses")
        }
        Err(error) => error.to_string(),
    }
}

#[test]
fn settings_etcd_refuses_stop_the_agent_at_start_naming_the_endpoint_and_the_fix() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    // Nothing is produced before etcd answers: no broker is needed.
    let kafka = "127.0.0.1:9";
    let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki).auth("/logagent/"));

    let mut wrong_password = secured_config(dir.path(), kafka, &etcd, &pki);
    wrong_password.etcd.security.password_file = Default::default();
    wrong_password.etcd.security.password = Secret::new("not-the-password");
    let error = start_error(wrong_password);
    assert!(error.contains(&etcd.endpoint()), "{error}");
    assert!(error.contains("[etcd] password"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");

    let mut plaintext = secured_config(dir.path(), kafka, &etcd, &pki);
    plaintext.etcd.address = etcd.endpoint().replace("https://", "http://");
    plaintext.etcd.security.tls_ca_file = Default::default();
    plaintext.etcd.security.tls_cert_file = Default::default();
    plaintext.etcd.security.tls_key_file = Default::default();
    let error = start_error(plaintext);
    assert!(error.contains("https://host:port"), "{error}");

    let mut anonymous = secured_config(dir.path(), kafka, &etcd, &pki);
    anonymous.etcd.security.username.clear();
    anonymous.etcd.security.password_file = Default::default();
    let error = start_error(anonymous);
    assert!(error.contains("authentication on"), "{error}");

    let untrusted = Etcd::start_with(EtcdOptions::new().untrusted_tls(&pki));
    let error = start_error(secured_config(dir.path(), kafka, &untrusted, &pki));
    assert!(error.contains(&untrusted.endpoint()), "{error}");
    assert!(error.contains("[etcd] tls_ca_file"), "{error}");
}

/// The binary, its etcd password from the environment: a wrong one stops it at start with
/// a message naming etcd, and neither that message nor the debug log shows the password.
#[test]
fn the_binary_with_a_wrong_password_from_the_environment_stops_without_printing_it() {
    let pki = TestPki::generate();
    let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki).auth("/logagent/"));
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let conf = write_conf(
        dir.path(),
        "127.0.0.1:9",
        &etcd.endpoint(),
        &logs,
        test_servers::free_port(),
        "",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_logagent"))
        .arg("--config")
        .arg(&conf)
        .args(["--log-level", "debug"])
        .env("LOGAGENT_ETCD_USERNAME", ETCD_USER)
        .env("LOGAGENT_ETCD_PASSWORD", "wrong-Pa55word")
        .env("LOGAGENT_ETCD_TLS_CA_FILE", pki.ca_cert())
        .output()
        .expect("run the logagent binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&etcd.endpoint()), "{stderr}");
    assert!(stderr.contains("[etcd] password"), "{stderr}");
    assert!(!stderr.contains("wrong-Pa55word"), "{stderr}");
}
