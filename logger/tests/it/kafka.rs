//! The Kafka output against a real broker (tansu, via test-servers): records arrive
//! and parse; while the broker is stalled the application is not blocked, records
//! within the bound are delivered once it is back, and the rest are dropped or
//! spilled and counted; delivery failures reach the counter and the callback.
#![cfg(feature = "kafka")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{read_text, serial, wait_until};
use logger::{Builder, OutputConfig};
use test_servers::Kafka;

fn messages(kafka: &Kafka, topic: &str, expected: usize) -> Vec<serde_json::Value> {
    kafka
        .consume_all(topic, expected, Duration::from_secs(60))
        .into_iter()
        .map(|(_, payload)| serde_json::from_slice(&payload).expect("payload is a JSON record"))
        .collect()
}

/// A fresh broker with an empty one-partition topic `logs`.
fn broker() -> Kafka {
    let kafka = Kafka::start();
    kafka.create_topic("logs", 1);
    kafka
}

/// Logs one record and waits until the broker has it: the producer is connected and
/// idle before the test stalls the broker.
fn warm_up(guard: &logger::LoggerGuard) {
    logger::info!("warm-up");
    assert!(
        wait_until(Duration::from_secs(30), || guard.stats().kafka_delivered
            == 1),
        "warm-up record not delivered: {:?}",
        guard.stats()
    );
}

/// Logs in a thread and waits (with a generous deadline) for it to finish: a logger
/// that blocks on the broker would never get there while the broker is stalled.
fn log_without_blocking(n: usize, tag: &'static str) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..n {
            logger::info!(i = i; "{tag} {i}");
        }
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("logging blocked while the broker was down");
}

#[test]
fn records_arrive_and_parse() {
    let _s = serial();
    let kafka = broker();
    let guard = Builder::new()
        .output(
            "bus",
            OutputConfig::kafka(kafka.bootstrap_servers(), "logs"),
        )
        .init()
        .unwrap();
    for i in 0..500 {
        logger::info!(seq = i; "hello {i}");
    }
    let got = messages(&kafka, "logs", 500);
    drop(guard);
    assert_eq!(got.len(), 500);
    let seqs: BTreeSet<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..500).collect());
    assert_eq!(got[0]["log.level"], "info");
    assert_eq!(got[0]["log"]["logger"], module_path!());
    assert!(
        got.iter()
            .all(|v| v["message"] == format!("hello {}", v["seq"]))
    );
}

#[test]
fn a_stalled_broker_does_not_block_and_buffered_records_arrive_after() {
    let _s = serial();
    let kafka = broker();
    let guard = Builder::new()
        .output(
            "bus",
            OutputConfig::kafka(kafka.bootstrap_servers(), "logs").buffer_messages(100),
        )
        .init()
        .unwrap();
    warm_up(&guard);
    kafka.pause();
    log_without_blocking(300, "during");
    guard.flush();
    let during = guard.stats();
    // 100 fit in the bounded buffer, 200 were dropped and counted.
    assert_eq!(during.kafka_dropped, 200, "{during:?}");
    kafka.resume();
    let got = messages(&kafka, "logs", 101);
    drop(guard);
    assert_eq!(got.len(), 101);
    let kept: BTreeSet<u64> = got.iter().filter_map(|v| v["i"].as_u64()).collect();
    assert_eq!(
        kept,
        (0..100).collect(),
        "the first 100 records are the buffered ones"
    );
}

#[test]
fn overflow_spills_to_the_fallback_file() {
    let _s = serial();
    let kafka = broker();
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill.log");
    let guard = Builder::new()
        .output(
            "bus",
            OutputConfig::kafka(kafka.bootstrap_servers(), "logs")
                .buffer_messages(50)
                .spill_to(Some(spill.clone())),
        )
        .init()
        .unwrap();
    warm_up(&guard);
    kafka.pause();
    log_without_blocking(120, "during");
    guard.flush();
    assert_eq!(guard.stats().kafka_spilled, 70);
    kafka.resume();
    let got = messages(&kafka, "logs", 51);
    drop(guard);
    assert_eq!(got.len(), 51);
    let spilled: Vec<serde_json::Value> = read_text(&spill)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let idx: Vec<u64> = spilled.iter().map(|v| v["i"].as_u64().unwrap()).collect();
    assert_eq!(idx, (50..120).collect::<Vec<_>>());
}

#[test]
fn delivery_failures_reach_the_counter_and_the_callback() {
    let _s = serial();
    let kafka = broker();
    let calls = Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    let mut out = OutputConfig::kafka(kafka.bootstrap_servers(), "logs");
    out.message_timeout = "4s".into();
    let guard = Builder::new()
        .output("bus", out)
        .on_kafka_error(move |name, _err| {
            assert_eq!(name, "bus");
            c2.fetch_add(1, Ordering::SeqCst);
        })
        .init()
        .unwrap();
    warm_up(&guard);
    let before = guard.stats().kafka_delivery_errors;
    let calls_before = calls.load(Ordering::SeqCst);
    kafka.pause();
    log_without_blocking(10, "doomed");
    assert!(
        wait_until(Duration::from_secs(60), || guard
            .stats()
            .kafka_delivery_errors
            - before
            == 10),
        "{:?}",
        guard.stats()
    );
    assert_eq!(calls.load(Ordering::SeqCst) - calls_before, 10);
    kafka.resume();
    drop(guard);
}

type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A mock cluster with a one-partition topic `logs`, and a logger builder with a Kafka
/// output `bus` to it.
fn mock_cluster() -> (Mock, Builder) {
    let cluster = Mock::new(1).unwrap();
    cluster.create_topic("logs", 1, 1).unwrap();
    let builder = Builder::new()
        // librdkafka's own complaints (through the `log` facade) would be records too.
        .level("info,librdkafka=off,rdkafka=off")
        .output(
            "bus",
            OutputConfig::kafka(cluster.bootstrap_servers(), "logs"),
        );
    (cluster, builder)
}

/// Makes the cluster answer the next produce request with OUT_OF_ORDER_SEQUENCE_NUMBER
/// (the idempotent producer then fails fatally), logs one record into it and waits
/// until that record is a delivery error.
fn fail_the_producer(cluster: &Mock, guard: &logger::LoggerGuard) {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    logger::info!("refused by the broker");
    assert!(
        wait_until(Duration::from_secs(30), || guard
            .stats()
            .kafka_delivery_errors
            >= 1),
        "the refused record is a delivery error: {:?}",
        guard.stats()
    );
}

/// librdkafka's mock cluster answers one produce request with OUT_OF_ORDER_SEQUENCE_NUMBER:
/// the idempotent producer fails fatally and would refuse every later message. The output
/// replaces it, says so through the callback, and the records logged after that arrive.
#[test]
fn a_fatally_failed_producer_is_replaced_and_later_records_arrive() {
    let _s = serial();
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let told2 = told.clone();
    let (cluster, builder) = mock_cluster();
    let guard = builder
        .on_kafka_error(move |_, err| told2.lock().unwrap().push(err.to_string()))
        .init()
        .unwrap();
    warm_up(&guard);

    fail_the_producer(&cluster, &guard);
    assert_eq!(
        guard.stats().kafka_delivery_errors,
        1,
        "{:?}",
        guard.stats()
    );
    for i in 0..10 {
        logger::info!(i = i; "after {i}");
    }
    assert!(
        wait_until(Duration::from_secs(30), || guard.stats().kafka_delivered
            == 11),
        "records after the fatal error are delivered: {:?}",
        guard.stats()
    );
    let stats = guard.stats();
    assert_eq!(stats.kafka_producer_replaced, 1, "{stats:?}");
    assert_eq!(stats.write_errors, 0, "{stats:?}");
    assert!(
        told.lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("failed for good") && m.contains("replaced")),
        "{:?}",
        told.lock().unwrap()
    );
    drop(guard);
}

/// The error callback logs (as an application's would) while the queue is full. The
/// producer replacement tells the callback on the writer thread: before, the callback's
/// logging waited there for room that only the writer itself could make, for ever.
#[test]
fn an_error_callback_that_logs_does_not_deadlock_the_writer() {
    use crate::common::log_and_close_within;

    let _s = serial();
    let told = Arc::new(AtomicU64::new(0));
    let told2 = told.clone();
    let (cluster, builder) = mock_cluster();
    let guard = builder
        .queue_capacity(4)
        .overflow(logger::Overflow::Block)
        // A deadlocked logger would also hang this test's own failure in the panic hook.
        .capture_panics(false)
        .on_kafka_error(move |_, err| {
            told2.fetch_add(1, Ordering::SeqCst);
            for i in 0..50 {
                logger::warn!("kafka trouble {i}: {err}");
            }
        })
        .init()
        .unwrap();
    warm_up(&guard);
    fail_the_producer(&cluster, &guard);
    let handle = log_and_close_within(
        Duration::from_secs(60),
        "logging after the fatal error",
        guard,
        || {
            for i in 0..10 {
                logger::info!(i = i; "after {i}");
            }
        },
    );
    let stats = handle.stats();
    assert_eq!(stats.kafka_producer_replaced, 1, "{stats:?}");
    assert!(told.load(Ordering::SeqCst) >= 2, "{stats:?}");
}

/// By default a message waits out any outage: the output's default `message_timeout` is
/// no limit (librdkafka's `message.timeout.ms = 0`), so a broker that is away longer than
/// any timeout still gets everything the buffer held. Before, the default was five
/// minutes, after which the buffer was discarded. The mock cluster's broker is down for
/// several seconds (its refusals, unlike tansu's stall, are retried and would expire a
/// short timeout), then back.
#[test]
fn by_default_buffered_records_wait_out_an_outage_of_any_length() {
    let _s = serial();
    let out = OutputConfig::kafka("unused:9092", "logs");
    assert_eq!(out.message_timeout, "none", "the default has no time limit");
    let (cluster, builder) = mock_cluster();
    let guard = builder.init().unwrap();
    warm_up(&guard);
    cluster.broker_down(1).unwrap();
    log_without_blocking(20, "during");
    std::thread::sleep(Duration::from_secs(4));
    let during = guard.stats();
    assert_eq!(during.kafka_delivered, 1, "{during:?}");
    cluster.broker_up(1).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || guard.stats().kafka_delivered
            == 21),
        "every buffered record is delivered once the broker is back: {:?}",
        guard.stats()
    );
    let stats = guard.stats();
    assert_eq!(stats.kafka_delivery_errors, 0, "{stats:?}");
    assert_eq!(stats.kafka_dropped, 0, "{stats:?}");
    drop(guard);
}

/// TLS toward a real broker behind a real TLS-terminating proxy (stunnel4), with the keys
/// read from a TOML file (the same keys as every Kafka client of the platform): records
/// arrive, and with a client certificate when the proxy requires one.
#[test]
fn records_arrive_over_tls_and_mutual_tls_with_the_keys_from_a_file() {
    let _s = serial();
    let pki = test_servers::TestPki::generate();
    for mode in [
        test_servers::KafkaTls::ServerOnly,
        test_servers::KafkaTls::Mutual,
    ] {
        let kafka = Kafka::start_tls(&pki, mode);
        kafka.create_topic("logs", 1);
        let client_cert = if mode == test_servers::KafkaTls::Mutual {
            format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                pki.client_cert().display(),
                pki.client_key().display()
            )
        } else {
            String::new()
        };
        let toml = format!(
            "[outputs.bus]\nkind = \"kafka\"\nformat = \"json\"\nbrokers = \"{}\"\ntopic = \"logs\"\n\
             security_protocol = \"ssl\"\ntls_ca_file = \"{}\"\n{client_cert}\
             [outputs.bus.librdkafka_options]\n\"compression.type\" = \"zstd\"\n",
            kafka.bootstrap_servers(),
            pki.ca_cert().display()
        );
        let config = logger::LoggerConfig::from_str(&toml, logger::ConfigFormat::Toml).unwrap();
        let guard = Builder::from_config(config).init().unwrap();
        for i in 0..50 {
            logger::info!(seq = i; "over tls {i}");
        }
        drop(guard);
        assert_eq!(messages(&kafka, "logs", 50).len(), 50, "{mode:?}");
    }
}

/// Installing the logger fails with an error naming the output, the brokers, the protocol
/// and what to check, for each way a secured connection is refused.
#[test]
fn a_refused_tls_or_sasl_connection_is_an_init_error() {
    let _s = serial();
    let pki = test_servers::TestPki::generate();
    let init_error = |brokers: &str, keys: &str| {
        let toml = format!(
            "[outputs.bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"logs\"\n{keys}"
        );
        let config = logger::LoggerConfig::from_str(&toml, logger::ConfigFormat::Toml).unwrap();
        match Builder::from_config(config).init() {
            Ok(_) => panic!("the logger was installed with {keys}"),
            Err(e) => e.to_string(),
        }
    };
    let assert_names = |error: &str, parts: &[&str]| {
        for part in parts {
            assert!(error.contains(part), "{part:?} not in: {error}");
        }
    };

    let untrusted = Kafka::start_tls(&pki, test_servers::KafkaTls::Untrusted);
    let error = init_error(
        &untrusted.bootstrap_servers(),
        &format!(
            "security_protocol = \"ssl\"\ntls_ca_file = \"{}\"\n",
            pki.ca_cert().display()
        ),
    );
    assert_names(
        &error,
        &[
            "output `bus`",
            &untrusted.bootstrap_servers(),
            "outputs.bus security_protocol = ssl",
            "certificate verify failed",
            "outputs.bus tls_ca_file",
        ],
    );

    let tls = Kafka::start_tls(&pki, test_servers::KafkaTls::ServerOnly);
    let error = init_error(&tls.bootstrap_servers(), "");
    assert_names(
        &error,
        &[
            &tls.bootstrap_servers(),
            "security_protocol = plaintext",
            "security_protocol matches",
        ],
    );

    // The most real SASL test here: the test broker has no SASL.
    let plain = Kafka::start();
    let error = init_error(
        &plain.bootstrap_servers(),
        "security_protocol = \"sasl_plaintext\"\nsasl_username = \"app\"\nsasl_password = \"pw-never-shown-44\"\n",
    );
    assert_names(
        &error,
        &[
            &plain.bootstrap_servers(),
            "security_protocol = sasl_plaintext",
            "sasl_password",
        ],
    );
    assert!(!error.contains("pw-never-shown-44"), "{error}");
}

/// Kafka keys on an output that is not Kafka are refused by name.
#[test]
fn kafka_security_keys_on_a_console_output_are_refused() {
    let config = logger::LoggerConfig::from_str(
        "[outputs.c]\nkind = \"console\"\nsecurity_protocol = \"ssl\"\n",
        logger::ConfigFormat::Toml,
    )
    .unwrap();
    let error = Builder::from_config(config).init().unwrap_err().to_string();
    assert!(
        error.contains("outputs.c.security_protocol") && error.contains("only applies to kafka"),
        "{error}"
    );
}
