//! What the user writes: `sysagent.ini` or `sysagent.toml`, overridden by
//! `SYSAGENT_<SECTION>_<KEY>` environment variables (loaded by `service_kit::config::load`).
//!
//! ```ini
//! [collect]
//! interval = 10s
//! [influxdb]
//! address = http://127.0.0.1:8086
//! database = sysagent
//! [prometheus]
//! listen = 127.0.0.1:9101
//! [log]
//! level = info
//! ```

use std::time::Duration;

use serde::Deserialize;

pub use crate::sinks::influxdb::InfluxConfig;
pub use crate::sinks::prometheus::PrometheusConfig;
pub use service_kit::daemon::LogConfig;

/// Prefix of the environment overrides: `SYSAGENT_INFLUXDB_ADDRESS` sets `[influxdb] address`.
pub const ENV_PREFIX: &str = "SYSAGENT";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What to collect and how often.
    pub collect: CollectConfig,
    /// Where to write points (off unless `address` is set).
    pub influxdb: InfluxConfig,
    /// Where to serve `/metrics` (off unless `listen` is set).
    pub prometheus: PrometheusConfig,
    /// sysagent's own log (the same `[log]` section as every daemon's).
    pub log: LogConfig,
}

impl service_kit::daemon::DaemonConfig for Config {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}

/// `[collect]`: what is read from the host and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Time between two collections, e.g. `10s` or `500ms`. Every output sees the same
    /// samples: InfluxDB gets one point set per interval, `/metrics` shows the latest.
    #[serde(with = "service_kit::duration")]
    pub interval: Duration,
    /// The `host` tag. Empty: the host's name (with `rootfs` set to a mounted host root,
    /// the name in its `etc/hostname`, else the kernel's).
    pub hostname: String,
    /// Extra tags on every InfluxDB point, `key=value` pairs separated by commas
    /// (`dc=eu1, rack=12`).
    pub tags: String,
    /// Report every core as well as the total (`cpu=cpu0`…; node_cpu_seconds_total per core).
    pub percpu: bool,
    /// Where procfs is mounted; `/host/proc` when the host's is mounted into a container.
    pub procfs: String,
    /// Prefix for mount points before `statvfs`; `/rootfs` when the host's `/` is mounted
    /// into a container. Then the host's name and OS are read from there too
    /// (`etc/hostname`, `etc/os-release`), not the container's.
    pub rootfs: String,
    /// Filesystem types never reported, comma-separated. Filesystems without a device
    /// (proc, sysfs, cgroup, nfs…) are never reported either.
    pub ignore_fs: String,
    /// Block-device name prefixes not reported in `diskio`, comma-separated.
    pub diskio_exclude: String,
    /// Interface-name prefixes not reported in `net`, comma-separated. Telegraf skips the
    /// loopback interface too.
    pub net_exclude: String,
    /// Count processes (`processes.total`, `node_processes_pids`) by listing procfs. Off
    /// saves about a third of a collection's CPU; the count is then 0.
    pub processes: bool,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: Duration::from_secs(10),
            hostname: String::new(),
            tags: String::new(),
            percpu: true,
            procfs: "/proc".into(),
            rootfs: "/".into(),
            ignore_fs: "tmpfs, devtmpfs, devfs, iso9660, overlay, aufs, squashfs".into(),
            diskio_exclude: "loop, ram, zram, fd".into(),
            net_exclude: "lo".into(),
            processes: true,
        }
    }
}

/// A setting that cannot work, with the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "nothing to do: neither [influxdb] address nor [prometheus] listen is set; set at least one"
    )]
    NoOutput,
    #[error("[collect] interval = {0:?} is too short; use 100ms or more")]
    IntervalTooShort(Duration),
    #[error("[collect] tags: {0:?} is not key=value; write tags as `key=value, key2=value2`")]
    BadTag(String),
    #[error("[influxdb] {0}")]
    Influx(String),
}

impl Config {
    /// Check what serde cannot: at least one output, a sane interval, well-formed tags and
    /// a usable InfluxDB target.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every setting [`validate`](Self::validate) refuses, not only the first
    /// (`sysagent --check` shows them all).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.influxdb.address.trim().is_empty() && self.prometheus.listen.trim().is_empty() {
            problems.push(ConfigError::NoOutput);
        }
        if self.collect.interval < Duration::from_millis(100) {
            problems.push(ConfigError::IntervalTooShort(self.collect.interval));
        }
        if let Err(e) = self.collect.parsed_tags() {
            problems.push(e);
        }
        if !self.influxdb.address.trim().is_empty()
            && let Err(e) = self.influxdb.api()
        {
            problems.push(ConfigError::Influx(e));
        }
        problems
    }
}

impl CollectConfig {
    /// `tags` as pairs.
    pub fn parsed_tags(&self) -> Result<Vec<(String, String)>, ConfigError> {
        service_kit::split_list(&self.tags)
            .into_iter()
            .map(|t| match t.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                    Ok((k.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(ConfigError::BadTag(t)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_kit::config::{ConfigFormat, load_str};

    #[test]
    fn ini_with_every_section_loads() {
        let c: Config = load_str(
            "[collect]\ninterval = 2s\ntags = dc=eu1, rack=12\npercpu = false\n\
             [influxdb]\naddress = http://127.0.0.1:8086\ndatabase = metrics\nbatch = 50\n\
             [prometheus]\nlisten = 127.0.0.1:9101\n",
            ConfigFormat::Ini,
            None,
        )
        .unwrap();
        assert_eq!(c.collect.interval, Duration::from_secs(2));
        assert!(!c.collect.percpu);
        assert_eq!(
            c.collect.parsed_tags().unwrap(),
            vec![
                ("dc".to_string(), "eu1".to_string()),
                ("rack".to_string(), "12".to_string())
            ]
        );
        assert_eq!(c.influxdb.database, "metrics");
        assert_eq!(c.influxdb.batch, 50);
        assert_eq!(c.prometheus.listen, "127.0.0.1:9101");
        c.validate().unwrap();
    }

    #[test]
    fn toml_accepts_numbers_and_strings_for_durations() {
        let c: Config = load_str(
            "[collect]\ninterval = 5\n[influxdb]\naddress = \"http://h:8086\"\ntimeout = \"750ms\"\n",
            ConfigFormat::Toml,
            None,
        )
        .unwrap();
        assert_eq!(c.collect.interval, Duration::from_secs(5));
        assert_eq!(c.influxdb.timeout, Duration::from_millis(750));
    }

    #[test]
    fn no_output_is_refused_with_the_fix() {
        let c = Config::default();
        let e = c.validate().unwrap_err();
        assert_eq!(e, ConfigError::NoOutput);
        assert!(e.to_string().contains("[prometheus] listen"));
    }

    #[test]
    fn bad_tags_and_short_intervals_are_refused() {
        let mut c = Config::default();
        c.prometheus.listen = "127.0.0.1:0".into();
        c.collect.tags = "dc=eu1, oops".into();
        assert_eq!(c.validate(), Err(ConfigError::BadTag("oops".into())));
        c.collect.tags.clear();
        c.collect.interval = Duration::from_millis(10);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::IntervalTooShort(_))
        ));
    }

    #[test]
    fn example_configs_load_and_agree() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let ini: Config = service_kit::config::load(&dir.join("sysagent.ini"), ENV_PREFIX).unwrap();
        let toml: Config =
            service_kit::config::load(&dir.join("sysagent.toml"), ENV_PREFIX).unwrap();
        ini.validate().unwrap();
        toml.validate().unwrap();
        assert_eq!(format!("{ini:?}"), format!("{toml:?}"));
        assert_eq!(ini.collect.interval, Duration::from_secs(10));
        assert_eq!(ini.collect.hostname, "");
        assert_eq!(ini.prometheus.listen, "127.0.0.1:9102");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<Config, _> = load_str("[collect]\nintervall = 5s\n", ConfigFormat::Ini, None);
        assert!(r.is_err());
    }
}
