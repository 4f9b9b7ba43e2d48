//! The Kafka-protocol broker really answers: create a topic, produce idempotently, consume in
//! a consumer group and commit.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
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
