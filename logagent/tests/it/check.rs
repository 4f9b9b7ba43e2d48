//! `logagent --check` / `--check-connections` on the built binary, against a real etcd and
//! Kafka broker: a good config passes (the collect config fetched from etcd and validated
//! against allowed_paths, its topics found on the broker), a bad config fails naming the
//! key and why, an unreachable broker fails naming it.

use test_servers::{Etcd, Kafka, free_port, table_row as row};

const KEY: &str = "/logagent/check/collect_config";

/// Runs the binary on an INI config with `args`; returns (success, stdout, stderr).
fn run_check(ini: &str, args: &[&str]) -> (bool, String, String) {
    test_servers::run_check(env!("CARGO_BIN_EXE_logagent"), "conf.ini", ini, args)
}

/// A local config: brokers, etcd, the key above, state in `data_dir`, files under `logs`.
fn ini(brokers: &str, etcd: &str, data_dir: &std::path::Path, logs: &std::path::Path) -> String {
    format!(
        "[kafka]\naddress = {brokers}\n[etcd]\naddress = {etcd}\ncollect_log_key = {KEY}\n\
         [agent]\ndata_dir = {}\nallowed_paths = {}/**\nmetrics_address = 127.0.0.1:{}\n",
        data_dir.display(),
        logs.display(),
        free_port()
    )
}

#[test]
fn a_good_config_passes_and_a_missing_topic_fails() {
    let etcd = Etcd::start();
    let kafka = Kafka::start();
    kafka.create_topic("checked", 1);
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    etcd.put(
        KEY,
        &format!(
            r#"[{{"path": "{}/app.log", "topic": "checked"}}]"#,
            logs.path().display()
        ),
    );
    let conf = ini(
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
        state.path(),
        logs.path(),
    );
    let (ok, table, stderr) = run_check(&conf, &["--check-connections"]);
    assert!(ok, "{table}\n{stderr}");
    assert!(!table.contains("FAIL"), "{table}");
    assert!(
        row(&table, &format!("collect config {KEY}")).contains("1 entry valid"),
        "{table}"
    );
    assert!(
        row(&table, &format!("Kafka {}", kafka.bootstrap_servers())).contains("broker(s)"),
        "{table}"
    );
    assert!(
        row(&table, "Kafka topics").contains("exist: checked"),
        "{table}"
    );
    assert!(
        row(&table, "[agent] metrics_address").contains("free"),
        "{table}"
    );

    // The same collect config naming a topic the broker does not have.
    etcd.put(
        KEY,
        &format!(
            r#"[{{"path": "{}/app.log", "topic": "checked"}}, {{"path": "{}/b.log", "topic": "absent"}}]"#,
            logs.path().display(),
            logs.path().display()
        ),
    );
    let (ok, table, stderr) = run_check(&conf, &["--check-connections"]);
    assert!(!ok, "{table}\n{stderr}");
    let topics = row(&table, "Kafka topics");
    assert!(
        topics.contains("FAIL") && topics.contains("missing on the brokers: absent"),
        "{table}"
    );
}

#[test]
fn a_bad_config_fails_naming_the_key_and_why() {
    let etcd = Etcd::start();
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    // The collect config names a file outside allowed_paths: the agent would refuse it.
    etcd.put(KEY, r#"[{"path": "/etc/shadow", "topic": "t"}]"#);
    let conf = ini(
        "127.0.0.1:9092",
        &etcd.endpoint(),
        state.path(),
        logs.path(),
    );
    let (ok, table, stderr) = run_check(&conf, &["--check"]);
    assert!(!ok, "{table}\n{stderr}");
    let refused = row(&table, &format!("collect config {KEY}"));
    assert!(
        refused.contains("FAIL") && refused.contains("entry #0") && refused.contains("/etc/shadow"),
        "{table}"
    );

    // A producer setting librdkafka refuses, and a glob that does not compile.
    let conf = format!("{conf}[log]\nlevel = warn\n")
        .replace("[kafka]\n", "[kafka]\ncompression = brotli\n")
        .replace(
            &format!("allowed_paths = {}/**", logs.path().display()),
            "allowed_paths = /var/log/[",
        );
    let (ok, table, _) = run_check(&conf, &["--check"]);
    assert!(!ok);
    assert!(
        row(&table, "[kafka]").contains("FAIL") && row(&table, "[kafka]").contains("compression"),
        "{table}"
    );
    assert!(
        row(&table, "[agent] allowed_paths").contains("FAIL"),
        "{table}"
    );

    // A key that is not there: the load fails, naming it.
    let (ok, table, _) = run_check("[kafka]\nadress = x\n", &["--check"]);
    assert!(!ok);
    assert!(row(&table, "config").contains("adress"), "{table}");
}

#[test]
fn unreachable_endpoints_fail_naming_them() {
    let etcd = Etcd::start();
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    etcd.put(
        KEY,
        &format!(
            r#"[{{"path": "{}/a.log", "topic": "t"}}]"#,
            logs.path().display()
        ),
    );
    let brokers = format!("127.0.0.1:{}", free_port());
    let conf = ini(&brokers, &etcd.endpoint(), state.path(), logs.path());
    // Without --check-connections the broker is not contacted.
    let (ok, table, stderr) = run_check(&conf, &["--check"]);
    assert!(ok, "{table}\n{stderr}");
    let (ok, table, stderr) = run_check(&conf, &["--check-connections", "--check-timeout", "2s"]);
    assert!(!ok, "{table}\n{stderr}");
    assert!(
        row(&table, &format!("Kafka {brokers}")).contains("FAIL"),
        "{table}"
    );

    // etcd itself unreachable: even --check fails, naming the endpoint.
    let gone = format!("127.0.0.1:{}", free_port());
    let conf = ini("127.0.0.1:9092", &gone, state.path(), logs.path());
    let (ok, table, _) = run_check(&conf, &["--check", "--check-timeout", "2s"]);
    assert!(!ok);
    assert!(
        row(&table, &format!("etcd {gone}")).contains("FAIL"),
        "{table}"
    );
}

#[test]
fn the_check_reads_etcd_over_tls_with_the_login_and_a_wrong_password_fails() {
    let pki = test_servers::TestPki::generate();
    let etcd = Etcd::start_with(
        test_servers::EtcdOptions::new()
            .tls(&pki)
            .auth("/logagent/"),
    );
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    etcd.put(
        KEY,
        &format!(
            r#"[{{"path": "{}/a.log", "topic": "t"}}]"#,
            logs.path().display()
        ),
    );
    let password_file = state.path().join("etcd-password");
    let secured = |password: &str| {
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        ini(
            "127.0.0.1:9092",
            &etcd.endpoint(),
            state.path(),
            logs.path(),
        )
        .replace(
            "collect_log_key",
            &format!(
                "username = {}\npassword_file = {}\ntls_ca_file = {}\ncollect_log_key",
                test_servers::ETCD_USER,
                password_file.display(),
                pki.ca_cert().display()
            ),
        )
    };
    let (ok, table, stderr) = run_check(&secured(test_servers::ETCD_USER_PASSWORD), &["--check"]);
    assert!(ok, "{table}\n{stderr}");
    assert!(
        row(&table, &format!("collect config {KEY}")).contains("1 entry valid"),
        "{table}"
    );

    let (ok, table, stderr) = run_check(&secured("not-the-password-x9"), &["--check"]);
    assert!(!ok, "{table}\n{stderr}");
    assert!(row(&table, "etcd ").contains("FAIL"), "{table}");
    for output in [&table, &stderr] {
        assert!(!output.contains("not-the-password-x9"), "{output}");
        assert!(
            !output.contains(test_servers::ETCD_USER_PASSWORD),
            "{output}"
        );
    }
}
