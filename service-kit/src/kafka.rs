//! Kafka client settings shared by the producers and consumers of the pipeline.
//!
//! The defaults favour "lose nothing" over latency: idempotent producer with `acks=all`
//! (no duplicates from producer retries, no loss on leader change), and consumers that
//! commit only what the caller marks as done. TLS and SASL (`security_protocol`, `sasl_*`,
//! `tls_*`, `librdkafka_options`) are `secure_transport::kafka`'s, re-exported here.

use std::collections::HashMap;
use std::sync::OnceLock;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

use crate::readiness::Condition;

pub use secure_transport::kafka::{
    BrokerCheck, KafkaSecurity, KafkaSecurityError, ResolvedSecurity, STARTUP_CHECK_TIMEOUT,
    SecurityProtocol, check_brokers,
};
pub use secure_transport::kafka_section;

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

/// How often librdkafka reports its statistics, from which [`BrokerReadiness`] reads the
/// broker connections' states: a JSON document built and read every 5 s, nothing sent.
pub const STATS_INTERVAL_MS: u32 = 5000;

/// A Kafka client's readiness, from what librdkafka reports anyway: no request of its own.
///
/// - the statistics callback (every [`STATS_INTERVAL_MS`], turned on by
///   [`BrokerReadiness::configure`]) lists every broker connection with its state: ready
///   while at least one is `UP`, not ready (naming each broker's state) while none is;
/// - the error callback says at once when all brokers are down or the client failed for
///   good: not ready until the next statistics find a connection up.
///
/// librdkafka notices a broker that stops or closes the connection at once, and one that
/// stops answering (frozen, a network partition) when its requests time out
/// (`socket.timeout.ms`, 60 s): a consumer fetches all the time, a producer only while it
/// has messages to send, so an idle producer's frozen broker is noticed at the next
/// metadata refresh (at most `topic.metadata.refresh.interval.ms`, 5 min).
///
/// A client context holds one (`Default`: attached to nothing yet, so that it can be built
/// before the client), forwards its `stats_raw` and `error` callbacks to it, and the
/// condition is [attached](BrokerReadiness::attach) once the client exists.
#[derive(Debug, Default)]
pub struct BrokerReadiness {
    condition: OnceLock<Condition>,
}

/// The part of librdkafka's statistics JSON readiness reads.
#[derive(Debug, Deserialize)]
struct Statistics {
    #[serde(default)]
    brokers: HashMap<String, BrokerStatistics>,
}

#[derive(Debug, Deserialize)]
struct BrokerStatistics {
    /// `configured` (bootstrap), `learned` (from metadata), `internal`, `logical`.
    #[serde(default)]
    source: String,
    /// `INIT`, `DOWN`, `CONNECT`, `AUTH`, `APIVERSION_QUERY`, `AUTH_HANDSHAKE`, `UP`, `UPDATE`.
    #[serde(default)]
    state: String,
}

impl BrokerReadiness {
    /// Sets `condition` from the client's callbacks.
    pub fn new(condition: Condition) -> Self {
        let readiness = BrokerReadiness::default();
        readiness.attach(condition);
        readiness
    }

    /// Sets `condition` from now on; a second call is ignored (one condition per client).
    pub fn attach(&self, condition: Condition) {
        let _ = self.condition.set(condition);
    }

    /// Turns on the statistics callback this reads.
    pub fn configure(config: &mut ClientConfig) {
        config.set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
    }

    /// Call from `ClientContext::stats_raw` with librdkafka's statistics JSON.
    pub fn on_stats(&self, json: &[u8]) {
        let Some(condition) = self.condition.get() else {
            return;
        };
        let statistics: Statistics = match serde_json::from_slice(json) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("unreadable librdkafka statistics ({e}); readiness unchanged");
                return;
            }
        };
        // Internal and logical brokers (the internal queue, the group coordinator alias)
        // are no connection of their own.
        let mut states: Vec<(&str, &str)> = statistics
            .brokers
            .iter()
            .filter(|(_, b)| b.source != "internal" && b.source != "logical")
            .map(|(name, b)| (name.as_str(), b.state.as_str()))
            .collect();
        if states
            .iter()
            .any(|(_, state)| *state == "UP" || *state == "UPDATE")
        {
            condition.set_ready();
            return;
        }
        states.sort_unstable();
        let listed: Vec<String> = states
            .iter()
            .map(|(name, state)| format!("{name} {state}"))
            .collect();
        condition.set_not_ready(format!(
            "no connection to any Kafka broker is up ({}); check that the brokers run and              that [kafka] address reaches them",
            if listed.is_empty() {
                "no broker known".to_string()
            } else {
                listed.join(", ")
            }
        ));
    }

    /// Call from `ClientContext::error`.
    pub fn on_error(&self, error: &KafkaError, reason: &str) {
        let Some(condition) = self.condition.get() else {
            return;
        };
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => condition.set_not_ready(format!(
                "all Kafka brokers are down ({reason}); check that they run and that \
                 [kafka] address reaches them"
            )),
            Some(RDKafkaErrorCode::Fatal) => {
                condition.set_not_ready(format!("the Kafka client failed for good: {reason}"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Readiness;

    #[test]
    fn ready_while_one_broker_connection_is_up() {
        let readiness = Readiness::new();
        let brokers = BrokerReadiness::new(readiness.condition("kafka", "not connected yet"));
        let stats = |a: &str, b: &str| {
            format!(
                r#"{{"name":"rdkafka#producer-1","brokers":{{
                    "127.0.0.1:9092/bootstrap":{{"nodeid":-1,"source":"configured","state":"{a}"}},
                    "127.0.0.1:9092/0":{{"nodeid":0,"source":"learned","state":"{b}"}},
                    "GroupCoordinator":{{"nodeid":-1,"source":"logical","state":"UP"}}
                }}}}"#
            )
        };
        brokers.on_stats(stats("INIT", "UP").as_bytes());
        assert!(readiness.is_ready());
        brokers.on_stats(stats("DOWN", "CONNECT").as_bytes());
        let report = readiness.report().to_text();
        assert!(!readiness.is_ready(), "a logical broker is no connection");
        assert!(
            report.contains("127.0.0.1:9092/0 CONNECT, 127.0.0.1:9092/bootstrap DOWN"),
            "{report}"
        );
        brokers.on_stats(stats("UP", "DOWN").as_bytes());
        assert!(readiness.is_ready());
        brokers.on_error(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "2/2 brokers are down",
        );
        assert!(!readiness.is_ready());
        assert!(
            readiness
                .report()
                .to_text()
                .contains("2/2 brokers are down"),
            "{}",
            readiness.report().to_text()
        );
        brokers.on_error(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "one connection",
        );
        brokers.on_stats(b"not json");
        assert!(!readiness.is_ready(), "neither changes the state");
    }

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
