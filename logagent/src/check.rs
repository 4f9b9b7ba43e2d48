//! `logagent --check [--check-connections]`: the local config, the path policy, the state
//! directory, the producer settings, and the collect config in etcd, fetched and validated
//! as the agent would (against `allowed_paths`); with `--check-connections` also the Kafka
//! brokers (metadata, and that the collect config's topics exist) and the `/metrics`
//! address. Every client is built as [`agent::start`](crate::agent::start) builds it (the
//! producer by [`KafkaSink::from_config`], etcd by `service_kit::etcd::connect` with `[etcd]`'s target), so a check
//! covers the same TLS and credentials. The table and exit code are `service_kit::check`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use service_kit::check::{self, CheckReport, CheckScope, KafkaMetadata};

use crate::agent::{CACHED_CONFIG_FILE, read_cached};
use crate::collect_config::{self, AllowedPaths, CollectConfig};
use crate::config::LocalConfig;
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;
use crate::sinks::kafka::KafkaSink;
use crate::sources::file::retry::Retries;

/// Checks `config` as far as `scope` says.
pub async fn check(config: &LocalConfig, scope: CheckScope) -> CheckReport {
    let mut report = CheckReport::new();
    let allowed = report.record(
        "[agent] allowed_paths",
        AllowedPaths::new(&config.agent.allowed_path_globs()),
        |_| config.agent.allowed_paths.clone(),
    );
    report.record(
        "[agent] data_dir",
        writable_dir(&config.agent.data_dir),
        String::clone,
    );
    let metrics_address = config.agent.metrics_address.trim();
    if !metrics_address.is_empty() && !scope.connections {
        report.record(
            "[agent] metrics_address",
            check::listen_address_syntax(metrics_address),
            |()| metrics_address.to_string(),
        );
    }

    // The producer the agent would produce with; building it checks the settings
    // librdkafka accepts (compression, sizes, and whatever [kafka] adds).
    let metrics = Arc::new(Metrics::default());
    let limit = InFlightLimit::new(
        config.kafka.chan_size,
        (config.kafka.queue_max_kbytes as usize).saturating_mul(1024),
    );
    let retries = Retries::new(Arc::clone(&metrics));
    let sink = report.record(
        "[kafka]",
        KafkaSink::from_config(&config.kafka, &limit, metrics, retries.reports()),
        |_| {
            format!(
                "producer for {} ({} compression)",
                config.kafka.brokers(),
                config.kafka.compression
            )
        },
    );

    // The collect config (always: it is part of the agent's config) and, asked for, the
    // brokers, at the same time: the check takes as long as the slower one.
    let brokers = config.kafka.brokers();
    let kafka = async {
        match sink {
            Some(sink) if scope.connections => {
                let timeout = scope.timeout;
                let what = format!("Kafka {brokers}");
                Some(check::within_blocking(timeout, &what, move || sink.metadata(timeout)).await)
            }
            _ => None,
        }
    };
    if let Some(allowed) = &allowed {
        check_cached(&config.agent.data_dir, allowed, &mut report);
    }
    let (collect, kafka) = tokio::join!(fetch_collect_config(config, scope), kafka);
    let collected = match (collect, &allowed) {
        (Ok(fetched), Some(allowed)) => validate_collect_config(fetched, allowed, &mut report),
        (Ok(_), None) => {
            report.fail(
                "collect config",
                "not validated: [agent] allowed_paths is unusable",
            );
            None
        }
        (Err(e), _) => {
            report.fail(format!("etcd {}", config.etcd.endpoints().join(",")), e);
            None
        }
    };
    if let Some(kafka) = kafka {
        let metadata = report.record(format!("Kafka {brokers}"), kafka, |m: &KafkaMetadata| {
            format!("{} broker(s): {}", m.brokers.len(), m.brokers.join(","))
        });
        if let (Some(metadata), Some(collected)) = (metadata, collected) {
            let topics: Vec<String> = collected.entries.iter().map(|e| e.topic.clone()).collect();
            if !topics.is_empty() {
                metadata.check_topics("Kafka topics", &topics, &mut report);
            }
        }
    }
    if !metrics_address.is_empty() && scope.connections {
        report.record(
            "[agent] metrics_address",
            check::listen_address_free(metrics_address).await,
            String::clone,
        );
    }
    report
}

/// The collect config key's value and mod revision (`None`: no such key), read as the
/// agent reads it.
struct Fetched {
    key: String,
    value: Option<(Vec<u8>, i64)>,
}

async fn fetch_collect_config(config: &LocalConfig, scope: CheckScope) -> Result<Fetched, String> {
    // The target the agent connects with: endpoints, TLS and login.
    let mut target = config
        .etcd
        .target()
        .map_err(|e| format!("[etcd] security settings: {e}"))?;
    target.timeout = scope.timeout_for(target.timeout);
    let key = config.collect_key();
    let what = format!("etcd {}", target.endpoints.join(","));
    let timeout = target.timeout;
    let read = async {
        let mut client = service_kit::etcd::connect(&target).await?;
        let response = client.get(key.as_str(), None).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            response
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
        )
    };
    let value = check::within(timeout, &what, read).await?;
    Ok(Fetched { key, value })
}

fn validate_collect_config(
    fetched: Fetched,
    allowed: &AllowedPaths,
    report: &mut CheckReport,
) -> Option<CollectConfig> {
    let subject = format!("collect config {}", fetched.key);
    let Some((value, revision)) = fetched.value else {
        report.warn(
            subject,
            "the key does not exist: the agent would collect nothing until it is written \
             (etcd-put put --key ...)",
        );
        return None;
    };
    report.record(
        subject,
        collect_config::parse(&value, allowed),
        |c: &CollectConfig| {
            let mut topics: Vec<&str> = c.entries.iter().map(|e| e.topic.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            format!(
                "revision {revision}: {} entr{} valid, topics {}",
                c.entries.len(),
                if c.entries.len() == 1 { "y" } else { "ies" },
                topics.join(", ")
            )
        },
    )
}

/// The collect config cached in `data_dir`, what the agent runs when etcd does not answer
/// at start: an unusable one is a warning (the next value read from etcd replaces it).
fn check_cached(data_dir: &Path, allowed: &AllowedPaths, report: &mut CheckReport) {
    let path = data_dir.join(CACHED_CONFIG_FILE);
    let subject = "cached collect config";
    match read_cached(&path, allowed) {
        Ok(None) => {}
        Ok(Some(cached)) => report.ok(
            subject,
            format!(
                "{}: key {} revision {}, {} entries valid",
                path.display(),
                cached.key,
                cached.revision,
                cached.config.entries.len()
            ),
        ),
        Err(e) => report.warn(
            subject,
            format!(
                "{} is unusable ({e}); while etcd does not answer at start the agent would \
                 collect nothing",
                path.display()
            ),
        ),
    }
}

/// Whether the agent can keep its state in `dir`: writable if it exists, creatable if not.
/// Probes by writing a file and removing it; creates nothing else.
fn writable_dir(dir: &Path) -> Result<String, String> {
    let (existing, note) = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => (dir.to_path_buf(), "writable"),
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(_) => {
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| a.is_dir())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            (
                ancestor,
                "does not exist yet; its parent is writable, created at start",
            )
        }
    };
    let probe = existing.join(format!(".logagent-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "cannot write in {}: {e}; set [agent] data_dir to a directory the agent can write",
                existing.display()
            )
        })?;
    Ok(format!("{} {note}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_collect_config_is_shown_and_an_unusable_one_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = AllowedPaths::new(&["/var/log/**".to_string()]).unwrap();
        let mut report = CheckReport::new();
        check_cached(dir.path(), &allowed, &mut report);
        assert!(report.rows().is_empty(), "no cache, no row");
        let cache = dir.path().join(CACHED_CONFIG_FILE);
        std::fs::write(
            &cache,
            r#"{"key":"/k","revision":7,"config":[{"path":"/var/log/a.log","topic":"a"}]}"#,
        )
        .unwrap();
        check_cached(dir.path(), &allowed, &mut report);
        assert_eq!(report.rows()[0].status, service_kit::check::Status::Ok);
        assert!(report.rows()[0].detail.contains("revision 7, 1 entries"));
        std::fs::write(
            &cache,
            r#"{"key":"/k","revision":8,"config":[{"path":"/etc/shadow","topic":"a"}]}"#,
        )
        .unwrap();
        check_cached(dir.path(), &allowed, &mut report);
        assert_eq!(report.rows()[1].status, service_kit::check::Status::Warn);
        assert!(
            report.rows()[1].detail.contains("/etc/shadow"),
            "{:?}",
            report.rows()
        );
        assert!(!report.failed());
    }

    #[test]
    fn a_data_dir_is_writable_creatable_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(writable_dir(dir.path()).unwrap().ends_with("writable"));
        let below = dir.path().join("a/b");
        assert!(writable_dir(&below).unwrap().contains("created at start"));
        assert!(!below.exists(), "the check created the directory");
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(writable_dir(&file).unwrap_err().contains("not a directory"));
    }
}
