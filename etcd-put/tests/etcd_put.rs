//! Scenarios for `etcd-put`: a config written with it is what the agent collects (exact
//! topic contents), and every invalid input is refused without writing anything.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use test_servers::{Etcd, Kafka, table_row as row};

fn etcd_put(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-put"))
        .args([
            "--endpoints",
            endpoint,
            "--ip",
            "10.1.1.1",
            "--hostname",
            "web1",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn put_dry_run_validates_and_reads_but_never_writes() {
    let etcd = Etcd::start();
    let ep = etcd.endpoint();
    let key = "/logagent/{ip}/collect_config";
    let expanded = "/logagent/10.1.1.1/collect_config";
    let good = r#"[{"path": "/var/log/a.log", "topic": "a"}]"#;
    let dry = |value: &str| {
        etcd_put(
            &ep,
            &["put", "--key", key, "--value", value, "--dry-run"],
            None,
        )
    };

    let out = dry(good);
    let table = stdout(&out);
    assert!(out.status.success(), "{table}{}", stderr(&out));
    assert!(
        row(&table, "value --value").contains("1 entry valid"),
        "{table}"
    );
    assert!(
        row(&table, &format!("key {expanded}")).contains("would create it"),
        "{table}"
    );
    let get = etcd_put(&ep, &["get", "--key", key], None);
    assert_eq!(
        get.status.code(),
        Some(3),
        "the dry run wrote: {}",
        stdout(&get)
    );

    // A real put, then the same value again: nothing would change.
    assert!(
        etcd_put(&ep, &["put", "--key", key, "--value", good], None)
            .status
            .success()
    );
    let table = stdout(&dry(good));
    assert!(
        row(&table, &format!("key {expanded}")).contains("changes nothing"),
        "{table}"
    );

    // An invalid value fails the dry run, naming what is wrong, and leaves the key alone.
    let out = dry(r#"[{"path": "/var/log/a.log", "topc": "a"}]"#);
    let table = stdout(&out);
    assert!(!out.status.success(), "{table}");
    let value = row(&table, "value --value");
    assert!(
        value.contains("FAIL") && value.contains("unknown field `topc`"),
        "{table}"
    );
    let get = etcd_put(&ep, &["get", "--key", key], None);
    assert_eq!(stdout(&get).trim(), good);

    // etcd unreachable: the dry run fails naming the endpoint.
    let gone = format!("127.0.0.1:{}", test_servers::free_port());
    let out = etcd_put(
        &gone,
        &[
            "--timeout",
            "1500ms",
            "put",
            "--key",
            key,
            "--value",
            good,
            "--dry-run",
        ],
        None,
    );
    let table = stdout(&out);
    assert!(!out.status.success(), "{table}");
    assert!(
        row(&table, &format!("etcd {gone}")).contains("FAIL"),
        "{table}"
    );
}

#[test]
fn every_invalid_input_is_refused_with_a_reason_and_nothing_is_written() {
    let etcd = Etcd::start();
    let ep = etcd.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.json");
    std::fs::write(
        &bad_file,
        "[\n  {\"path\": \"/var/log/a.log\",\n   \"topic\": \"a\", \"tpoic\": \"b\"}\n]\n",
    )
    .unwrap();
    let key = "/logagent/{ip}/collect_config";
    let cases: Vec<(Vec<String>, Option<&str>, &str)> = vec![
        (
            vec!["--value".into(), "[{not json".into()],
            None,
            "does not match the schema",
        ),
        (
            vec![
                "--value".into(),
                r#"{"path":"/var/log/a","topic":"a"}"#.into(),
            ],
            None,
            "expected a sequence",
        ),
        (
            vec!["--value".into(), r#"[{"path":"/var/log/a"}]"#.into()],
            None,
            "missing field `topic`",
        ),
        (
            vec!["--file".into(), bad_file.display().to_string()],
            None,
            "unknown field `tpoic`",
        ),
        (
            vec!["--file".into(), bad_file.display().to_string()],
            None,
            "line 3 column",
        ),
        (
            vec![
                "--value".into(),
                r#"[{"path":"relative.log","topic":"a"}]"#.into(),
            ],
            None,
            "relative",
        ),
        (
            vec![
                "--value".into(),
                r#"[{"path":"/var/log/a","topic":"bad topic"}]"#.into(),
            ],
            None,
            "topic contains",
        ),
        (
            vec![
                "--value".into(),
                r#"[{"path":"/etc/shadow","topic":"a"}]"#.into(),
                "--allowed-paths".into(),
                "/var/log/**".into(),
            ],
            None,
            "entry #0 (path \"/etc/shadow\"",
        ),
        (
            vec![],
            Some("[{\"path\":\"/var/log/a\",\"topic\":\"a\",\"fields\":3}]"),
            "stdin: ",
        ),
        (vec![], Some(""), "EOF while parsing"),
        (
            vec![
                "--value".into(),
                r#"[{"path":"/var/log/a","topic":"a","multiline":{"max_lines":9}}]"#.into(),
            ],
            None,
            "multiline needs `start_pattern`",
        ),
    ];
    for (extra, input, expect) in cases {
        let mut args = vec!["put", "--key", key];
        args.extend(extra.iter().map(String::as_str));
        let out = etcd_put(&ep, &args, input);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in: {err}"
        );
        assert!(err.contains("nothing was written"), "{args:?}: {err}");
    }
    let list = etcd_put(&ep, &["list", "--prefix", "/"], None);
    assert!(list.status.success());
    assert_eq!(stdout(&list), "", "no key was written");
    let missing = etcd_put(&ep, &["get", "--key", key], None);
    assert!(
        !missing.status.success()
            && stderr(&missing).contains("/logagent/10.1.1.1/collect_config does not exist")
    );

    // a valid one goes through; get, list and delete round-trip, with key templating
    let ok = etcd_put(
        &ep,
        &[
            "put",
            "--key",
            key,
            "--value",
            r#"[{"path":"/var/log/a.log","topic":"a"}]"#,
        ],
        None,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let got = etcd_put(
        &ep,
        &["get", "--key", "/logagent/10.1.1.1/collect_config"],
        None,
    );
    assert_eq!(
        stdout(&got),
        "[{\"path\":\"/var/log/a.log\",\"topic\":\"a\"}]\n"
    );
    let list = etcd_put(&ep, &["list", "--prefix", "/logagent/"], None);
    assert_eq!(
        stdout(&list),
        "/logagent/10.1.1.1/collect_config\t[{\"path\":\"/var/log/a.log\",\"topic\":\"a\"}]\n"
    );
    let del = etcd_put(
        &ep,
        &["delete", "--key", "/logagent/{ip}/collect_config"],
        None,
    );
    assert_eq!(stdout(&del), "deleted 1 key(s)\n");
}

#[test]
fn a_listing_read_in_pages_has_every_key_once_in_order_and_nothing_beside_the_prefix() {
    let etcd = Etcd::start();
    let ep = etcd.endpoint();
    let mut expected = String::new();
    for i in 0..250 {
        let key = format!("/many/{i:04}");
        test_servers::etcd_put(&ep, &key, &format!("v{i}"));
        expected.push_str(&format!("{key}\tv{i}\n"));
    }
    // Beside the prefix: the key right after its range, and one before it.
    test_servers::etcd_put(&ep, "/many0", "after");
    test_servers::etcd_put(&ep, "/man", "before");
    let listed = etcd_put(
        &ep,
        &["list", "--prefix", "/many/", "--page-size", "100"],
        None,
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        stdout(&listed),
        expected,
        "three pages, each key once, in order"
    );
    assert_eq!(stderr(&listed), "", "a quick listing shows no progress");
    let one_page = etcd_put(&ep, &["list", "--prefix", "/many/"], None);
    assert_eq!(stdout(&one_page), expected);
    let everything = etcd_put(&ep, &["list", "--prefix", "/", "--page-size", "7"], None);
    assert_eq!(stdout(&everything).lines().count(), 252);
}

#[test]
fn a_config_written_with_etcd_put_is_what_the_agent_ships() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("nginx", 2);
    kafka.create_topic("app", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("app")).unwrap();
    let access = logs.join("access.log");
    std::fs::write(&access, "GET / 200\nGET /x 404\n").unwrap();
    std::fs::write(logs.join("app/one.log"), "one-1\none-2\n").unwrap();
    std::fs::write(
        logs.join("app/two.log"),
        "{\"@timestamp\":\"2026-11-25T14:00:00.1Z\",\"log.level\":\"info\",\"message\":\"hi\"}\n",
    )
    .unwrap();
    let conf = dir.path().join("collect.json");
    std::fs::write(
        &conf,
        format!(
            r#"[{{"path":"{}","topic":"nginx"}},{{"path":"{}/app/*.log","topic":"app","fields":{{"env":"test"}}}}]"#,
            access.display(),
            logs.display()
        ),
    )
    .unwrap();
    let allowed = format!("{}/**", logs.display());
    let put = etcd_put(
        &etcd.endpoint(),
        &[
            "put",
            "--key",
            "/logagent/{hostname}/collect_config",
            "--file",
            conf.to_str().unwrap(),
            "--allowed-paths",
            &allowed,
        ],
        None,
    );
    assert!(put.status.success(), "{}", stderr(&put));

    let mut config = logagent::config::LocalConfig::default();
    config.kafka.address = kafka.bootstrap_servers();
    config.etcd.address = etcd.endpoint();
    config.etcd.collect_log_key = "/logagent/{hostname}/collect_config".into();
    config.agent.data_dir = dir.path().join("data");
    config.agent.allowed_paths = allowed;
    config.agent.metrics_address = String::new();
    config.agent.hostname = "web1".into();
    config.agent.poll_interval_ms = 20;
    config.agent.worker_threads = 2;
    let agent = logagent::agent::AgentThread::start(config).unwrap();

    let nginx = read(&kafka.bootstrap_servers(), "nginx", 2);
    let app = read(&kafka.bootstrap_servers(), "app", 3);
    agent.stop().unwrap();

    assert_eq!(
        nginx
            .iter()
            .map(|v| v["message"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["GET / 200", "GET /x 404"]
    );
    assert_eq!(nginx[1]["log"]["offset"], 10);
    assert_eq!(nginx[0]["host"]["name"], "web1");
    assert_eq!(
        nginx[0]["log"]["file"]["path"],
        access.display().to_string()
    );
    assert!(nginx[0].get("fields").is_none());
    let mut app_msgs: Vec<&str> = app.iter().map(|v| v["message"].as_str().unwrap()).collect();
    app_msgs.sort();
    assert_eq!(
        app_msgs,
        [
            "one-1",
            "one-2",
            "{\"@timestamp\":\"2026-11-25T14:00:00.1Z\",\"log.level\":\"info\",\"message\":\"hi\"}"
        ]
    );
    assert!(
        app.iter()
            .all(|v| v["fields"] == serde_json::json!({"env": "test"}))
    );
}

/// Reads a topic until `n` messages, then 1.5 s more to catch extras.
fn read(brokers: &str, topic: &str, n: usize) -> Vec<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "etcd-put-tests")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline
        && (out.len() < n || last.elapsed() < Duration::from_millis(1500))
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
            last = Instant::now();
        }
    }
    assert_eq!(out.len(), n, "topic {topic}");
    out
}

/// etcdctl's security flags for `pki`'s client certificate and the test user, the password
/// from a file in `dir`.
fn secured_flags(dir: &std::path::Path, pki: &test_servers::TestPki) -> Vec<String> {
    let password_file = dir.join("etcd-password");
    std::fs::write(
        &password_file,
        format!("{}\n", test_servers::ETCD_USER_PASSWORD),
    )
    .unwrap();
    [
        "--user",
        test_servers::ETCD_USER,
        "--password-file",
        &password_file.display().to_string(),
        "--cacert",
        &pki.ca_cert().display().to_string(),
        "--cert",
        &pki.client_cert().display().to_string(),
        "--key",
        &pki.client_key().display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn with_flags<'a>(flags: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    flags
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect()
}

#[test]
fn writes_and_reads_over_tls_with_a_client_certificate_and_a_login() {
    use test_servers::{EtcdOptions, TestPki};
    let pki = TestPki::generate();
    let etcd = Etcd::start_with(
        EtcdOptions::new()
            .tls(&pki)
            .client_cert_auth()
            .auth("/logagent/"),
    );
    let dir = tempfile::tempdir().unwrap();
    let flags = secured_flags(dir.path(), &pki);
    let value = r#"[{"path":"/var/log/app.log","topic":"app"}]"#;
    let key = "/logagent/{ip}/collect_config";
    let put = etcd_put(
        &etcd.endpoint(),
        &with_flags(&flags, &["put", "--key", key, "--value", value]),
        None,
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let get = etcd_put(
        &etcd.endpoint(),
        &with_flags(&flags, &["get", "--key", key]),
        None,
    );
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(stdout(&get).trim(), value);

    // The user's role covers /logagent/ only: a clear refusal elsewhere.
    let elsewhere = etcd_put(
        &etcd.endpoint(),
        &with_flags(&flags, &["put", "--key", "/other", "--value", value]),
        None,
    );
    assert!(!elsewhere.status.success());
    assert!(
        stderr(&elsewhere).contains("grant its role"),
        "{}",
        stderr(&elsewhere)
    );
}

#[test]
fn refused_credentials_and_certificates_are_clear_errors_without_the_password() {
    use test_servers::{ETCD_USER, EtcdOptions, TestPki};
    let pki = TestPki::generate();
    let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki).auth("/logagent/"));
    let ep = etcd.endpoint();
    let ca = pki.ca_cert().display().to_string();
    let get = ["get", "--key", "/logagent/x"];
    let run = |endpoint: &str, flags: &[&str]| {
        let args: Vec<&str> = flags.iter().chain(get.iter()).copied().collect();
        let out = etcd_put(endpoint, &args, None);
        assert!(!out.status.success(), "{flags:?} must fail");
        stderr(&out)
    };

    let user = format!("{ETCD_USER}:not-the-password");
    let err = run(&ep, &["--user", &user, "--cacert", &ca]);
    assert!(err.contains(&ep) && err.contains("--password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    let err = run(&ep, &["--cacert", &ca]);
    assert!(
        err.contains("authentication on") && err.contains("--user"),
        "{err}"
    );

    let plaintext = ep.replace("https://", "http://");
    let err = run(&plaintext, &[]);
    assert!(
        err.contains(&plaintext) && err.contains("https://"),
        "{err}"
    );

    let untrusted = Etcd::start_with(EtcdOptions::new().untrusted_tls(&pki));
    let err = run(&untrusted.endpoint(), &["--cacert", &ca]);
    assert!(
        err.contains(&untrusted.endpoint()) && err.contains("--cacert"),
        "{err}"
    );

    let err = run(&ep, &["--cacert", &ca, "--cert", &ca]);
    assert!(err.contains("--key"), "{err}");
}
