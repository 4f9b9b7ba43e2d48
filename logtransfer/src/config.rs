//! What the user writes: `transfer.ini` / `transfer.toml`, one section per component.
//!
//! Every value can be overridden from the environment as `LOGTRANSFER_<SECTION>_<KEY>`
//! (for example `LOGTRANSFER_ES_ADDRESS`), see `service_kit::config::load`.

use std::time::Duration;

use serde::Deserialize;
use service_kit::daemon::DaemonConfig;
pub use service_kit::daemon::LogConfig;
use service_kit::etcd::{EtcdSecurity, EtcdSecurityError, EtcdTarget, Spelling};
pub use service_kit::kafka::KafkaSecurity;

pub use crate::sinks::elasticsearch::config::{BatchConfig, ElasticsearchConfig};

/// Prefix of the environment overrides (`LOGTRANSFER_KAFKA_GROUP_ID`, ...).
pub const ENV_PREFIX: &str = "LOGTRANSFER";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the logs are consumed from.
    pub kafka: KafkaConfig,
    /// Where the documents are indexed.
    pub es: ElasticsearchConfig,
    /// How documents are grouped into `_bulk` requests.
    pub batch: BatchConfig,
    /// Dead letters, metrics and shutdown.
    pub transfer: TransferConfig,
    /// When present, the topic list comes from an etcd key (watched live) instead of
    /// `[kafka] topics`.
    pub etcd: Option<EtcdConfig>,
    /// logtransfer's own logs (`[log] level` / `file`), set up by `service_kit::daemon`.
    pub log: LogConfig,
}

impl DaemonConfig for Config {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}

service_kit::kafka::kafka_section! {
    /// `[kafka]`: the consumer group, and how it talks to the brokers (TLS, SASL: the keys of
    /// `service_kit::kafka::KafkaSecurity`, in this same section; the dead-letter producer
    /// uses them too).
    #[derive(Debug, Clone)]
    pub struct KafkaConfig {
        /// Bootstrap brokers, comma-separated `host:port`.
        pub address: String,
        /// Consumer group; every logtransfer of one deployment shares it so that partitions
        /// are split between them.
        pub group_id: String,
        /// Topics to consume, comma-separated. Ignored when `[etcd]` is configured.
        pub topics: String,
        /// How long the broker waits for a silent member before giving its partitions to
        /// another one (after a crash, partitions stay unowned this long).
        #[serde(deserialize_with = "service_kit::duration::millis")]
        pub session_timeout_ms: u64,
        /// Upper bound of what librdkafka prefetches per partition while we are busy, in KiB:
        /// part of the memory bound while Elasticsearch is down.
        pub fetch_queue_kbytes: u64,
        /// How long the broker may hold a fetch that finds no new record (librdkafka's
        /// `fetch.wait.max.ms`, 500 there). Kafka answers as soon as a record arrives, but a
        /// broker that does not (tansu, in the tests and the demo) holds every fetch this long:
        /// up to this much latency per record. Lower costs idle fetch requests (10 a second
        /// per broker at 100).
        pub fetch_wait_max_ms: u64,
        /// How often the acknowledged offsets are committed.
        #[serde(deserialize_with = "service_kit::duration::millis")]
        pub commit_interval_ms: u64,
        /// Records of one partition read and not yet committable (acknowledged ones waiting
        /// behind an unsettled one included) beyond which fetching that partition pauses until
        /// half of them are settled: bounds the memory a record stuck in per-item retry makes
        /// the partition hold (the rest of the partition flows past it). Nothing is dropped.
        pub max_pending_per_partition: usize,
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9092".into(),
            group_id: "logtransfer".into(),
            topics: "logs".into(),
            session_timeout_ms: 10_000,
            fetch_queue_kbytes: 8 * 1024,
            fetch_wait_max_ms: 100,
            commit_interval_ms: 1_000,
            max_pending_per_partition: 50_000,
            security: KafkaSecurity::default(),
        }
    }
}

/// `[transfer]`: everything around the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Topic that receives documents Elasticsearch refused for good (mapping errors...),
    /// with the error attached. Produced on the `[kafka] address` brokers.
    pub dead_letter_topic: String,
    /// Where `/metrics` (Prometheus text format) and `/health` are served; empty disables.
    pub metrics_address: String,
    /// On SIGINT/SIGTERM, how long in-flight bulks may take to finish before we give up
    /// on them (they are then not committed and will be replayed, never lost).
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub shutdown_timeout_ms: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            dead_letter_topic: "logtransfer-dead-letter".into(),
            metrics_address: "127.0.0.1:9103".into(),
            shutdown_timeout_ms: 30_000,
        }
    }
}

/// `[etcd]`: the topic list from an etcd key, and how to reach etcd when it is secured.
#[derive(Debug, Clone, Deserialize)]
// `remote = "Self"`: the derived code reads this struct's own keys; the `Deserialize` below
// (`service_kit::etcd_section!`) adds the security keys every `[etcd]` section shares.
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// Endpoints, comma-separated (`http://127.0.0.1:2379`; `https://` for TLS, then also
    /// see `tls_ca_file`).
    pub address: String,
    /// Key holding the topics: a JSON array of strings (`["web","db"]`) or a
    /// comma-separated list. `{hostname}` and `{ip}` are substituted.
    pub key: String,
    /// Connect and request timeout.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub timeout_ms: u64,
    /// `username`, `password` / `password_file`, `tls_ca_file`, `tls_cert_file`,
    /// `tls_key_file`: see [`EtcdSecurity`].
    #[serde(skip)]
    pub security: EtcdSecurity,
}

service_kit::etcd_section!(EtcdConfig, ["address", "key", "timeout_ms"]);

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:2379".into(),
            key: "/logtransfer/topics".into(),
            timeout_ms: 5_000,
            security: EtcdSecurity::default(),
        }
    }
}

impl EtcdConfig {
    /// Where and how to connect: the password and TLS files read, the settings checked.
    pub fn target(&self) -> Result<EtcdTarget, EtcdSecurityError> {
        let endpoints = service_kit::split_list(&self.address);
        let credentials = self.security.resolve(&endpoints, Spelling::Config)?;
        Ok(
            EtcdTarget::new(endpoints, Duration::from_millis(self.timeout_ms))
                .with_credentials(credentials),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_kit::config::{ConfigFormat, load_str};

    #[test]
    fn example_configs_load() {
        let ini: Config = load_str(
            include_str!("../examples/transfer.ini"),
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        assert_eq!(ini.es.index, "logs-{topic}-%Y.%m.%d");
        assert_eq!(ini.batch.max_docs, 1000);
        assert_eq!(ini.batch.max_bytes, 5_242_880);
        assert!(!ini.es.tls);
        assert!(ini.etcd.is_none());
        let toml: Config = load_str(
            include_str!("../examples/transfer.toml"),
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(toml.kafka.topics, "logs");
        assert_eq!(toml.etcd.unwrap().key, "/logtransfer/topics");
        assert_eq!(toml.transfer.metrics_address, "127.0.0.1:9103");
    }

    #[test]
    fn the_etcd_security_keys_load_from_ini_and_toml_and_never_print() {
        let ini: Config = load_str(
            "[etcd]\naddress = https://etcd:2379\ntimeout_ms = 300\nusername = transfer\n\
             password = hunter2\ntls_ca_file = /ca.pem\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        let toml: Config = load_str(
            "[etcd]\naddress = \"https://etcd:2379\"\ntimeout_ms = 300\n\
             username = \"transfer\"\npassword = \"hunter2\"\ntls_ca_file = \"/ca.pem\"\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        for config in [ini, toml] {
            let etcd = config.etcd.clone().unwrap();
            assert_eq!(etcd.timeout_ms, 300);
            assert_eq!(etcd.key, "/logtransfer/topics");
            assert_eq!(etcd.security.username, "transfer");
            assert_eq!(etcd.security.password.expose(), "hunter2");
            assert_eq!(etcd.security.tls_ca_file.to_str(), Some("/ca.pem"));
            let debug = format!("{config:?}");
            assert!(
                debug.contains("***") && !debug.contains("hunter2"),
                "{debug}"
            );
        }
    }

    #[test]
    fn duration_keys_take_units_and_bare_numbers_stay_milliseconds() {
        let c: Config = load_str(
            "[kafka]\ncommit_interval_ms = 2s\n[es]\nrequest_timeout_ms = 1500\n\
             [batch]\nmax_wait_ms = 250ms\n[etcd]\ntimeout_ms = 1m\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        assert_eq!(c.kafka.commit_interval_ms, 2000);
        assert_eq!(c.es.request_timeout_ms, 1500);
        assert_eq!(c.batch.max_wait_ms, 250);
        assert_eq!(c.etcd.unwrap().timeout_ms, 60_000);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(load_str::<Config>("[es]\nadress = x\n", ConfigFormat::Ini, None).is_err());
    }
}
