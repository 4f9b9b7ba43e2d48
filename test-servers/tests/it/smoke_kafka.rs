//! The Kafka-protocol broker really answers: create a topic, produce idempotently, consume in
//! a consumer group and commit.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use test_servers::Kafka;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_create_produce_and_consume_in_a_group() {
    let kafka = Kafka::start();
    kafka.create_topic("smoke", 2);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..100 {
        let payload = format!("message-{i}");
        let key = format!("key-{}", i % 4);
        producer
            .send(
                FutureRecord::to("smoke").payload(&payload).key(&key),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", "smoke-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["smoke"]).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 100 && Instant::now() < deadline {
        if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
        {
            seen.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
            consumer.commit_message(&message, CommitMode::Sync).unwrap();
        }
    }
    seen.sort_by_key(|m| m.trim_start_matches("message-").parse::<u32>().unwrap());
    let expected: Vec<String> = (0..100).map(|i| format!("message-{i}")).collect();
    assert_eq!(seen, expected);

    // The same messages, read without a group by the harness helper.
    assert_eq!(
        kafka
            .consume_all("smoke", 100, Duration::from_secs(30))
            .len(),
        100
    );
}

/// Behind the TLS proxy the broker takes produce and consume over TLS, with every codec the
/// clients offer (`zstd` and `snappy` included: both must be compiled into librdkafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_behind_tls_takes_every_codec_and_refuses_plaintext() {
    let pki = test_servers::TestPki::generate();
    let kafka = Kafka::start_tls(&pki, test_servers::KafkaTls::ServerOnly);
    kafka.create_topic("tls", 1);
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let producer: FutureProducer = kafka
            .client_config()
            .set("compression.type", codec)
            .set("enable.idempotence", "true")
            .create()
            .unwrap_or_else(|e| panic!("compression.type = {codec}: {e}"));
        for i in 0..10 {
            let payload = format!("{codec}-{i}-{}", "x".repeat(200));
            producer
                .send(
                    FutureRecord::<(), _>::to("tls").payload(&payload),
                    Duration::from_secs(20),
                )
                .await
                .map_err(|(error, _)| error)
                .unwrap_or_else(|e| panic!("compression.type = {codec}: {e}"));
        }
    }
    let read = kafka.consume_all("tls", 50, Duration::from_secs(30));
    assert_eq!(read.len(), 50);
    for codec in codecs {
        let count = read
            .iter()
            .filter(|(_, payload)| payload.starts_with(format!("{codec}-").as_bytes()))
            .count();
        assert_eq!(count, 10, "{codec}");
    }

    let plaintext: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    assert!(
        plaintext
            .client()
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err(),
        "a plaintext client got an answer through the TLS port"
    );
}

/// With `KafkaTls::Mutual` the proxy requires a client certificate signed by the test CA.
#[test]
fn kafka_behind_mutual_tls_requires_a_client_certificate() {
    let pki = test_servers::TestPki::generate();
    let kafka = Kafka::start_tls(&pki, test_servers::KafkaTls::Mutual);
    let with_cert: rdkafka::producer::BaseProducer = kafka.client_config().create().unwrap();
    with_cert
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the harness' client certificate is accepted");
    let without_cert: rdkafka::producer::BaseProducer = kafka
        .client_config()
        .remove("ssl.certificate.location")
        .remove("ssl.key.location")
        .create()
        .unwrap();
    assert!(
        without_cert
            .client()
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err(),
        "a client without a certificate got an answer"
    );
}
