//! The local configuration file (`--config conf.ini` or `.toml`): where Kafka and etcd are,
//! which etcd key holds the collect config, and where the agent keeps its state.
//!
//! Every key can be overridden from the environment as `LOGAGENT_<SECTION>_<KEY>`
//! (for example `LOGAGENT_KAFKA_CHAN_SIZE=5000`); see `service_kit::config::load`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use service_kit::etcd::{EtcdSecurity, EtcdSecurityError, EtcdTarget, Spelling};

use crate::sources::file::reads::BlockingReads;
use service_kit::daemon::DaemonConfig;
pub use service_kit::daemon::LogConfig;
pub use service_kit::kafka::KafkaSecurity;

/// Prefix of the environment overrides (`LOGAGENT_KAFKA_ADDRESS`, `LOGAGENT_LOG_LEVEL`, ...).
pub const ENV_PREFIX: &str = "LOGAGENT";

/// The whole local configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Where lines are shipped.
    pub kafka: KafkaConfig,
    /// Where the collect config comes from.
    pub etcd: EtcdConfig,
    /// The agent's own behaviour: state directory, path policy, metrics, tailing.
    pub agent: AgentConfig,
    /// The agent's own log (level, optional JSON file), set up by `service_kit::daemon`.
    pub log: LogConfig,
}

impl DaemonConfig for LocalConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}

service_kit::kafka::kafka_section! {
    /// `[kafka]`: the brokers lines are produced to, and how (TLS, SASL: the keys of
    /// `service_kit::kafka::KafkaSecurity`, in this same section).
    #[derive(Debug, Clone, PartialEq)]
    pub struct KafkaConfig {
        /// Comma-separated bootstrap brokers, `host:port`.
        pub address: String,
        /// Lines read but not yet acknowledged by Kafka, across all files. When this many are in
        /// flight reading pauses (nothing is dropped), so it bounds the agent's memory.
        pub chan_size: usize,
        /// Producer compression codec: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
        pub compression: String,
        /// Extra time librdkafka waits to fill a batch, in milliseconds.
        #[serde(deserialize_with = "service_kit::duration::millis")]
        pub linger_ms: u64,
        /// Message bytes read but not yet acknowledged, in KiB, across all files. Like
        /// `chan_size` reaching it pauses reading (nothing is dropped); it is what bounds the
        /// agent's memory while the broker is slower than the files grow.
        pub queue_max_kbytes: u64,
        /// Largest message the producer sends, in bytes (librdkafka's `message.max.bytes`).
        /// A line whose JSON message would be larger (escaping can double a line) has its
        /// `message` cut to fit and is marked truncated; keep it at or below the broker's
        /// `message.max.bytes` (topic `max.message.bytes`).
        pub message_max_bytes: usize,
        /// Also send each line's event id as the Kafka header `event.id` (it is always in the
        /// message as `event.id`, which is where logtransfer finds it). Off by default: a
        /// librdkafka header costs about 1.5 µs of CPU per message, which took the agent from
        /// 1.0x to 0.63x of a raw producer in docs/BENCHMARKS.md. Turn it on for consumers that
        /// dedupe on headers without parsing the value.
        pub event_id_header: bool,
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            address: "127.0.0.1:9092".to_string(),
            chan_size: 100_000,
            compression: "lz4".to_string(),
            linger_ms: 5,
            queue_max_kbytes: 4 * 1024,
            message_max_bytes: 8 * 1024 * 1024,
            event_id_header: false,
            security: KafkaSecurity::default(),
        }
    }
}

impl KafkaConfig {
    /// `address` as a list of brokers, joined the way librdkafka wants them.
    pub fn brokers(&self) -> String {
        service_kit::split_list(&self.address).join(",")
    }
}

/// `[etcd]`: the cluster holding the collect config, and how to reach it when it is secured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
// `remote = "Self"`: the derived code reads this struct's own keys; the `Deserialize` below
// (`service_kit::etcd_section!`) adds the security keys every `[etcd]` section shares.
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// Comma-separated endpoints, `host:port`, `http://host:port`, or `https://host:port`
    /// for TLS (then also see `tls_ca_file`).
    pub address: String,
    /// Connect and request timeout, in seconds. Also how long startup waits for etcd before
    /// falling back to the cached collect config.
    #[serde(deserialize_with = "service_kit::duration::seconds")]
    pub timeout: u64,
    /// The key holding this agent's collect config; `{ip}` and `{hostname}` are substituted.
    pub collect_log_key: String,
    /// `username`, `password` / `password_file`, `tls_ca_file`, `tls_cert_file`,
    /// `tls_key_file`: see [`EtcdSecurity`].
    #[serde(skip)]
    pub security: EtcdSecurity,
}

service_kit::etcd_section!(EtcdConfig, ["address", "timeout", "collect_log_key"]);

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            address: "127.0.0.1:2379".to_string(),
            timeout: 5,
            collect_log_key: "/logagent/{ip}/collect_config".to_string(),
            security: EtcdSecurity::default(),
        }
    }
}

impl EtcdConfig {
    /// `address` as a list of endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        service_kit::split_list(&self.address)
    }

    /// `timeout` as a duration (at least one second, so `0` cannot make every call fail).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// Where and how to connect: the password and TLS files read, the settings checked.
    pub fn target(&self) -> Result<EtcdTarget, EtcdSecurityError> {
        let endpoints = self.endpoints();
        let credentials = self.security.resolve(&endpoints, Spelling::Config)?;
        Ok(EtcdTarget::new(endpoints, self.timeout()).with_credentials(credentials))
    }
}

/// `[agent]`: state, policy and tailing knobs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Directory for `checkpoints.json` (read offsets) and `collect_config.json` (the last
    /// collect config that was accepted, used when etcd is down at startup).
    pub data_dir: PathBuf,
    /// Comma-separated globs; etcd may only name files under these (`/var/log/**`).
    pub allowed_paths: String,
    /// Where Prometheus scrapes `/metrics`; empty disables the endpoint.
    pub metrics_address: String,
    /// The `host.name` put on every line and used in the message key; empty means the
    /// machine's hostname.
    pub hostname: String,
    /// The IP substituted for `{ip}` in the etcd key; empty means the primary IPv4.
    pub ip: String,
    /// Longest line shipped whole, in bytes; longer lines are cut here and marked.
    pub max_line_bytes: usize,
    /// How often an idle file is checked for growth, rotation and truncation, in milliseconds.
    /// With `inotify` this is only the fallback: a change wakes the file's reader at once.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub poll_interval_ms: u64,
    /// How often globs are re-expanded to pick up new files, in milliseconds. With
    /// `inotify`, a file created in the directory of a glob like `/var/log/app/*.log` is
    /// picked up at once.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub scan_interval_ms: u64,
    /// Wake on file changes reported by the kernel (Linux inotify) instead of waiting for the
    /// next poll. Polling still runs underneath, so files inotify cannot see (network file
    /// systems, the watch limit) are still read. `false`: polling only.
    pub inotify: bool,
    /// How often acknowledged offsets are written to `checkpoints.json`, in milliseconds.
    /// This bounds the duplicates re-sent after a crash.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub checkpoint_interval_ms: u64,
    /// How long a renamed or deleted file is still read after it was drained, in
    /// milliseconds, for writers that keep appending to the old file for a moment.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub close_renamed_after_ms: u64,
    /// How long shutdown waits for Kafka to acknowledge what was sent, in seconds.
    #[serde(deserialize_with = "service_kit::duration::seconds")]
    pub flush_timeout: u64,
    /// Runtime threads that read, split and encode lines (librdkafka has its own). One
    /// thread ships ~0.5M lines/s on the benchmark machine and wakes fewer threads per
    /// line than two; raise it on hosts where many files are busy at once.
    pub worker_threads: usize,
    /// Which files are read on reader threads, each read waited for at most
    /// `read_timeout_ms`: `auto` (files on network and user-space file systems: NFS, SMB,
    /// FUSE, 9p, Ceph, ...), `always` or `never`. A read on a runtime thread that never
    /// returns (a hung mount) would stop every file, `/metrics` and shutdown.
    pub blocking_reads: BlockingReads,
    /// How long a read on a reader thread is waited for before its file is marked stalled
    /// (not read until that read returns), in milliseconds.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub read_timeout_ms: u64,
    /// Collected files open at once; more matching files wait their turn (an idle one is
    /// closed and reopened when it grows). 0: the descriptor limit (raised to the hard
    /// limit at start) less a reserve of 64 for Kafka, etcd, checkpoints and /metrics.
    pub max_open_files: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            data_dir: PathBuf::from("/var/lib/logagent"),
            allowed_paths: "/var/log/**".to_string(),
            metrics_address: "127.0.0.1:9101".to_string(),
            hostname: String::new(),
            ip: String::new(),
            max_line_bytes: 1024 * 1024,
            poll_interval_ms: 100,
            scan_interval_ms: 1000,
            inotify: true,
            checkpoint_interval_ms: 1000,
            close_renamed_after_ms: 5000,
            flush_timeout: 30,
            worker_threads: 1,
            blocking_reads: BlockingReads::Auto,
            read_timeout_ms: 10_000,
            max_open_files: 0,
        }
    }
}

impl AgentConfig {
    /// `allowed_paths` as a list of globs.
    pub fn allowed_path_globs(&self) -> Vec<String> {
        service_kit::split_list(&self.allowed_paths)
    }

    /// The host name to report: the configured one, else the machine's.
    pub fn host_name(&self) -> String {
        if self.hostname.is_empty() {
            service_kit::host::hostname()
        } else {
            self.hostname.clone()
        }
    }

    /// The IP for the key template: the configured one, else the primary IPv4.
    pub fn host_ip(&self) -> String {
        if self.ip.is_empty() {
            service_kit::host::primary_ipv4()
        } else {
            self.ip.clone()
        }
    }
}

impl LocalConfig {
    /// The etcd key after `{ip}` and `{hostname}` substitution.
    pub fn collect_key(&self) -> String {
        service_kit::host::expand_key_template(
            &self.etcd.collect_log_key,
            &self.agent.host_ip(),
            &self.agent.host_name(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_kit::config::{ConfigFormat, load_str};

    #[test]
    fn the_example_configs_load_and_equal_the_defaults() {
        let ini: LocalConfig = load_str(
            include_str!("../examples/conf.ini"),
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        let toml: LocalConfig = load_str(
            include_str!("../examples/conf.toml"),
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(ini, LocalConfig::default());
        assert_eq!(toml, LocalConfig::default());
        assert_eq!(ini.etcd.endpoints(), vec!["127.0.0.1:2379".to_string()]);
    }

    #[test]
    fn unknown_keys_are_errors_and_missing_ones_default() {
        let err =
            load_str::<LocalConfig>("[kafka]\nadress = x\n", ConfigFormat::Ini, None).unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
        let c: LocalConfig = load_str("[kafka]\nchan_size = 5\n", ConfigFormat::Ini, None).unwrap();
        assert_eq!(
            (c.kafka.chan_size, c.kafka.address.as_str()),
            (5, "127.0.0.1:9092")
        );
    }

    /// The TLS/SASL keys and the `librdkafka_options` table load from INI and TOML through
    /// the daemons' loader (text values, dotted property names), and Debug hides secrets.
    #[test]
    fn kafka_security_keys_and_librdkafka_options_load_from_ini_and_toml() {
        let ini = "[kafka]\nsecurity_protocol = sasl_ssl\nsasl_mechanism = SCRAM-SHA-256\n\
                   sasl_username = agent\nsasl_password = pw-in-ini-77\n\
                   [kafka.librdkafka_options]\nclient.id = web-1\nsocket.keepalive.enable = true\n";
        let toml = "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-256\"\n\
                    sasl_username = \"agent\"\nsasl_password = \"pw-in-ini-77\"\n\
                    [kafka.librdkafka_options]\n\"client.id\" = \"web-1\"\nsocket.keepalive.enable = true\n";
        let from_ini: LocalConfig = load_str(ini, ConfigFormat::Ini, None).unwrap();
        let from_toml: LocalConfig = load_str(toml, ConfigFormat::Toml, None).unwrap();
        assert_eq!(from_ini, from_toml);
        let security = &from_ini.kafka.security;
        assert_eq!(security.sasl_password.expose(), "pw-in-ini-77");
        let options: Vec<(&str, &str)> = security
            .librdkafka_options
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            vec![("client.id", "web-1"), ("socket.keepalive.enable", "true")]
        );
        let shown = format!("{from_ini:?}");
        assert!(
            !shown.contains("pw-in-ini-77") && shown.contains("web-1"),
            "{shown}"
        );
    }

    #[test]
    fn the_etcd_security_keys_load_from_ini_toml_and_the_environment_and_never_print() {
        let ini: LocalConfig = load_str(
            "[etcd]\naddress = https://etcd:2379\ntimeout = 3\nusername = agent\n\
             password = hunter2\ntls_ca_file = /ca.pem\ntls_cert_file = /c.pem\n\
             tls_key_file = /c.key\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        let toml: LocalConfig = load_str(
            "[etcd]\naddress = \"https://etcd:2379\"\ntimeout = 3\nusername = \"agent\"\n\
             password = \"hunter2\"\ntls_ca_file = \"/ca.pem\"\ntls_cert_file = \"/c.pem\"\n\
             tls_key_file = \"/c.key\"\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(ini, toml);
        assert_eq!(ini.etcd.timeout, 3);
        assert_eq!(ini.etcd.security.username, "agent");
        assert_eq!(ini.etcd.security.password.expose(), "hunter2");
        assert_eq!(ini.etcd.security.tls_key_file, PathBuf::from("/c.key"));
        let debug = format!("{ini:?}");
        assert!(
            debug.contains("***") && !debug.contains("hunter2"),
            "{debug}"
        );

        // A prefix no other test uses: the process environment is shared between tests.
        // SAFETY: no other thread reads or writes these variables.
        unsafe {
            std::env::set_var("LOGAGENTETCDTEST_ETCD_PASSWORD_FILE", "/run/secrets/etcd");
            std::env::set_var("LOGAGENTETCDTEST_ETCD_USERNAME", "from-env");
        }
        let env = load_str::<LocalConfig>("", ConfigFormat::Ini, Some("LOGAGENTETCDTEST"));
        unsafe {
            std::env::remove_var("LOGAGENTETCDTEST_ETCD_PASSWORD_FILE");
            std::env::remove_var("LOGAGENTETCDTEST_ETCD_USERNAME");
        }
        let env = env.unwrap();
        assert_eq!(env.etcd.security.username, "from-env");
        assert_eq!(
            env.etcd.security.password_file,
            PathBuf::from("/run/secrets/etcd")
        );
        let err = load_str::<LocalConfig>("[etcd]\npasword = x\n", ConfigFormat::Ini, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pasword") && err.contains("password_file"),
            "{err}"
        );
    }

    #[test]
    fn duration_keys_take_units_and_bare_numbers_keep_their_old_unit() {
        let old: LocalConfig = load_str(
            "[etcd]\ntimeout = 7\n[agent]\npoll_interval_ms = 250\nflush_timeout = 60\n\
             [kafka]\nlinger_ms = 20\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        let new: LocalConfig = load_str(
            "[etcd]\ntimeout = \"7s\"\n[agent]\npoll_interval_ms = \"250ms\"\nflush_timeout = \"1m\"\n\
             [kafka]\nlinger_ms = \"20ms\"\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(old, new);
        assert_eq!(new.etcd.timeout(), Duration::from_secs(7));
        assert_eq!(
            (new.agent.poll_interval_ms, new.agent.flush_timeout),
            (250, 60)
        );
        // Inside `kafka_section!`: the field's serde attribute still applies.
        assert_eq!(new.kafka.linger_ms, 20);
    }

    #[test]
    fn the_key_template_uses_the_configured_host() {
        let mut c = LocalConfig::default();
        c.agent.ip = "10.0.0.7".into();
        c.agent.hostname = "web7".into();
        c.etcd.collect_log_key = "/logagent/{ip}/{hostname}".into();
        assert_eq!(c.collect_key(), "/logagent/10.0.0.7/web7");
    }
}
