//! Scenarios: send errors that used to skip lines. A topic that does not exist yet and a
//! topic the agent is not authorised for make the file's lines wait (a stall shows in
//! /metrics) and then arrive, all of them, in file order; a line whose JSON is larger than
//! the producer's `message.max.bytes` arrives cut to fit and marked; a delivery that failed
//! once is produced again before any later line of its file.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use test_servers::{Etcd, Kafka};

/// Asserts that the file's lines arrived exactly as `expected`: none missing, none out of
/// order. (Duplicates would show as a longer list.)
fn assert_in_file_order(shipped: &[Shipped], f: &Path, expected: &[String]) {
    let got = messages_of(shipped, f);
    let first_wrong = got.iter().zip(expected).position(|(g, e)| g != e);
    assert!(
        got.len() == expected.len() && first_wrong.is_none(),
        "{} of {} lines arrived; first out of place at {first_wrong:?}: {:?}",
        got.len(),
        expected.len(),
        first_wrong.map(|i| (&got[i], &expected[i]))
    );
}

#[test]
fn lines_for_a_topic_that_does_not_exist_yet_wait_and_then_arrive_in_order() {
    let cluster = MockCluster::new(1).unwrap();
    // The metadata says the topic does not exist until the error is cleared.
    cluster
        .topic_error(
            "late",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        )
        .unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    append(&f, lines("l", 0..100));
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "late")));
    let agent = Agent::start(config(
        dir.path(),
        &cluster.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    // librdkafka gives up on an unknown topic after topic.metadata.propagation.max.ms (30 s).
    agent.wait_metric(
        "logagent_lines_failed_total",
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    // Written while the first lines wait for the topic: they wait behind them.
    append(&f, lines("l", 100..200));
    agent.wait_metric("logagent_files_stalled", Duration::from_secs(10), |v| {
        v >= 1.0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.metric("logagent_lines_sent_total"), 0.0);
    assert_eq!(agent.metric("logagent_files_stalled"), 1.0);

    cluster
        .topic_error("late", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(60), |v| {
        v >= 200.0
    });
    agent.wait_metric("logagent_files_stalled", Duration::from_secs(10), |v| {
        v == 0.0
    });
    agent.stop();
    let shipped = consume(
        &cluster.bootstrap_servers(),
        "late",
        200,
        Duration::from_secs(30),
    );
    assert_in_file_order(&shipped, &f, &lines("l", 0..200));
}

#[test]
fn lines_refused_as_unauthorised_wait_and_then_arrive_in_order() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("auth", 1, 1).unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    std::fs::File::create(&f).unwrap();
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "auth")));
    let agent = Agent::start(config(
        dir.path(),
        &cluster.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    agent.wait_metric("logagent_files_watched", Duration::from_secs(10), |v| {
        v == 1.0
    });
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 5],
    );
    // Written in small pieces, so they go out in many produce requests: the refused ones
    // and the ones after the refusals ended.
    for i in 0..40 {
        append(&f, lines("a", i * 10..i * 10 + 10));
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(60), |v| {
        v >= 400.0
    });
    assert!(agent.metric("logagent_lines_failed_total") >= 1.0);
    agent.stop();
    let shipped = consume(
        &cluster.bootstrap_servers(),
        "auth",
        400,
        Duration::from_secs(30),
    );
    assert_in_file_order(&shipped, &f, &lines("a", 0..400));
}

#[test]
fn a_line_whose_json_exceeds_message_max_bytes_is_cut_to_fit_and_marked() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("big", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    // 20,000 bytes that escaping doubles: 40,000 bytes of JSON for a 10,000 byte limit.
    let awkward = "\"\\".repeat(10_000);
    append(
        &f,
        ["before".to_string(), awkward.clone(), "after".to_string()],
    );
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "big")));
    let mut cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    cfg.kafka.message_max_bytes = 10_000;
    let agent = Agent::start(cfg);
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 3.0
    });
    assert_eq!(agent.metric("logagent_lines_truncated_total"), 1.0);
    agent.stop();

    let shipped = consume(
        &kafka.bootstrap_servers(),
        "big",
        3,
        Duration::from_secs(30),
    );
    let got = messages_of(&shipped, &f);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], "before");
    assert_eq!(got[2], "after");
    let cut = got[1]
        .strip_suffix(logagent::encode::TRUNCATED_MARKER)
        .expect("the cut line ends with the marker");
    assert!(
        awkward.starts_with(cut),
        "the cut line is a prefix of the line"
    );
    assert!(cut.len() > 1000, "cut to fit, not emptied: {}", cut.len());
    assert_eq!(
        shipped[1].value["log"]["flags"],
        serde_json::json!(["truncated"])
    );
    assert_eq!(shipped[1].offset, 7, "the offset is the line's own");
    let size = serde_json::to_vec(&shipped[1].value).unwrap().len();
    assert!(size <= 10_000, "the message is {size} bytes");
    assert!(shipped[0].value["log"].get("flags").is_none());
}

#[test]
fn a_line_whose_delivery_failed_reaches_kafka_before_the_later_lines_of_its_file() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("order", 1, 1).unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    append(&f, lines("o", 0..10));
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "order")));
    let agent = Agent::start(config(
        dir.path(),
        &cluster.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 10.0
    });
    // The next produce request (line 10's) fails once.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    append(&f, lines("o", 10..11));
    agent.wait_metric(
        "logagent_lines_failed_total",
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    // Written while line 10 waits for its retry.
    append(&f, lines("o", 11..100));
    agent.wait_metric("logagent_lines_sent_total", Duration::from_secs(30), |v| {
        v >= 100.0
    });
    agent.stop();
    let shipped = consume(
        &cluster.bootstrap_servers(),
        "order",
        100,
        Duration::from_secs(30),
    );
    assert_in_file_order(&shipped, &f, &lines("o", 0..100));
}
