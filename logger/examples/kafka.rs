//! Records to a Kafka topic as ECS JSON, with a console copy of warnings. When the
//! broker is down nothing blocks: up to `buffer_messages` records wait in memory, the
//! rest go to a spill file (counted either way).
//!
//! `cargo run -p logger --features kafka --example kafka -- 127.0.0.1:9092 logs`

use std::time::Duration;

use logger::OutputConfig;

fn main() -> Result<(), logger::InitError> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "logs".into());
    let guard = logger::Builder::new()
        .output(
            "bus",
            OutputConfig::kafka(&brokers, &topic)
                .buffer_messages(10_000)
                .spill_to(Some("/tmp/logger-kafka-spill.log".into())),
        )
        .output("console", OutputConfig::console().level("warn"))
        .on_kafka_error(|output, err| eprintln!("delivery to {output} failed: {err}"))
        .init()?;
    for i in 0..1000 {
        logger::info!(seq = i; "event {i} for {topic}");
    }
    logger::warn!("sent 1000 records to {brokers}/{topic}");
    std::thread::sleep(Duration::from_millis(500));
    let stats = guard.stats();
    drop(guard);
    println!(
        "delivered {} dropped {} spilled {} delivery errors {}",
        stats.kafka_delivered,
        stats.kafka_dropped,
        stats.kafka_spilled,
        stats.kafka_delivery_errors
    );
    Ok(())
}
