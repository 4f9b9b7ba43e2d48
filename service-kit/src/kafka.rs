//! Kafka client settings shared by the producers and consumers of the pipeline.
//!
//! The defaults favour "lose nothing" over latency: idempotent producer with `acks=all`
//! (no duplicates from producer retries, no loss on leader change), and consumers that
//! commit only what the caller marks as done.

use rdkafka::ClientConfig;

/// A producer that retries without duplicating and waits for all in-sync replicas.
///
/// `brokers` is the comma-separated bootstrap list from the config.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        // A broker outage must not fail messages while the agent waits for it to come back:
        // delivery is retried until the message is acknowledged or the process stops.
        .set("message.timeout.ms", "0")
        .set("queue.buffering.max.messages", "1000000")
        .set("reconnect.backoff.max.ms", "5000");
    config
}

/// A consumer in `group_id` that starts at the earliest offset and never auto-commits.
pub fn consumer_config(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "5000");
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_idempotent_and_waits_for_all_replicas() {
        let config = producer_config("a:1,b:2");
        assert_eq!(config.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn consumer_never_commits_on_its_own() {
        let config = consumer_config("a:1", "g");
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("group.id"), Some("g"));
    }
}
