//! `logtransfer --check` / `--check-connections` on the built binary, against a real Kafka
//! broker, Elasticsearch API and etcd: a good config passes (topics and dead-letter topic
//! found, every node answering), a bad config fails naming the key and why, an unreachable
//! Elasticsearch fails naming the node. No secret is ever in the table.

use test_servers::{Elasticsearch, Etcd, Kafka, free_port, table_row as row};

/// Runs the binary on an INI config with `args`; returns (success, stdout, stderr).
fn run_check(ini: &str, args: &[&str]) -> (bool, String, String) {
    test_servers::run_check(env!("CARGO_BIN_EXE_logtransfer"), "transfer.ini", ini, args)
}

/// Brokers, topics, the ES node (with a password) and a free metrics port.
fn ini(brokers: &str, topics: &str, es: &str) -> String {
    format!(
        "[kafka]\naddress = {brokers}\ntopics = {topics}\n\
         [es]\naddress = {es}\nusername = elastic\npassword = hunter2-secret\n\
         [transfer]\ndead_letter_topic = chk-dead\nmetrics_address = 127.0.0.1:{}\n",
        free_port()
    )
}

#[test]
fn a_good_config_passes_with_topics_from_the_file_or_from_etcd() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    let etcd = Etcd::start();
    kafka.create_topic("chk", 1);
    kafka.create_topic("chk-dead", 1);
    let conf = ini(&kafka.bootstrap_servers(), "chk", &es.url());
    let (ok, table, stderr) = run_check(&conf, &["--check-connections"]);
    assert!(ok, "{table}\n{stderr}");
    assert!(!table.contains("FAIL"), "{table}");
    assert!(
        row(&table, "Kafka topics").contains("exist: chk"),
        "{table}"
    );
    assert!(
        row(&table, "Kafka dead-letter topic").contains("exist: chk-dead"),
        "{table}"
    );
    assert!(
        row(&table, &format!("Elasticsearch {}", es.url())).contains("answers"),
        "{table}"
    );
    assert!(
        row(&table, "[es] template_name logtransfer").contains("installed at start"),
        "{table}"
    );
    for output in [&table, &stderr] {
        assert!(!output.contains("hunter2"), "{output}");
    }

    // The topic list from etcd, read as logtransfer reads it; one topic is missing.
    etcd.put("/logtransfer/check", r#"["chk", "nope"]"#);
    let conf = format!(
        "{conf}[etcd]\naddress = {}\nkey = /logtransfer/check\n",
        etcd.endpoint()
    );
    let (ok, table, stderr) = run_check(&conf, &["--check-connections"]);
    assert!(!ok, "{table}\n{stderr}");
    assert!(
        row(&table, "[etcd] key /logtransfer/check").contains("chk, nope"),
        "{table}"
    );
    let topics = row(&table, "Kafka topics");
    assert!(
        topics.contains("FAIL") && topics.contains("missing on the brokers: nope"),
        "{table}"
    );
}

#[test]
fn a_bad_config_fails_naming_the_key_and_why() {
    let conf = ini("127.0.0.1:9092", " ", "http://127.0.0.1:9200") + "[log]\nlevel = warn\n";
    let conf = conf.replace("[es]\n", "[es]\nindex = logs-%Q\n");
    let (ok, table, stderr) = run_check(&conf, &["--check"]);
    assert!(!ok, "{table}\n{stderr}");
    let index = row(&table, "[es] index");
    assert!(index.contains("FAIL") && index.contains("%Q"), "{table}");
    assert!(
        row(&table, "[kafka] topics").contains("FAIL")
            && row(&table, "[kafka] topics").contains("no topics"),
        "{table}"
    );

    // A value serde refuses: the load fails, naming the key.
    let (ok, table, _) = run_check("[es]\nop_type = upsert\n", &["--check"]);
    assert!(!ok);
    assert!(
        row(&table, "config").contains("FAIL") && row(&table, "config").contains("upsert"),
        "{table}"
    );
}

#[test]
fn an_unreachable_elasticsearch_fails_naming_the_node_without_its_password() {
    let kafka = Kafka::start();
    kafka.create_topic("chk", 1);
    kafka.create_topic("chk-dead", 1);
    let port = free_port();
    let conf = ini(
        &kafka.bootstrap_servers(),
        "chk",
        &format!("http://elastic:in-url-secret@127.0.0.1:{port}"),
    );
    // Without --check-connections nothing is contacted: the config is fine.
    let (ok, table, stderr) = run_check(&conf, &["--check"]);
    assert!(ok, "{table}\n{stderr}");
    let (ok, table, stderr) = run_check(&conf, &["--check-connections", "--check-timeout", "3s"]);
    assert!(!ok, "{table}\n{stderr}");
    let node = row(&table, &format!("Elasticsearch http://127.0.0.1:{port}"));
    assert!(node.contains("FAIL"), "{table}");
    assert!(row(&table, "Kafka topics").contains("ok"), "{table}");
    for output in [&table, &stderr] {
        assert!(!output.contains("in-url-secret"), "{output}");
        assert!(!output.contains("hunter2"), "{output}");
    }
}
