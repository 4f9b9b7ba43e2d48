//! `sysagent --check [--check-connections]`: what [`Agent::new`](crate::Agent::new) would
//! refuse, whether the host's procfs and root are readable where the config says, and with
//! `--check-connections` whether InfluxDB answers (with the write client and credentials)
//! and the `/metrics` address is free. The table and exit code are `service_kit::check`'s.

use std::path::Path;
use std::time::Duration;

use service_kit::check::{self, CheckReport, CheckScope};

use crate::config::{Config, ConfigError};
use crate::sinks::influxdb::config::Api;
use crate::sinks::influxdb::service::Service;

/// Checks `config` as far as `scope` says.
pub async fn check(config: &Config, scope: CheckScope) -> CheckReport {
    let mut report = CheckReport::new();
    let problems = config.problems();
    if problems.is_empty() {
        let mut outputs = Vec::new();
        if !config.influxdb.address.trim().is_empty() {
            outputs.push("InfluxDB");
        }
        if !config.prometheus.listen.trim().is_empty() {
            outputs.push("/metrics");
        }
        report.ok(
            "settings",
            format!(
                "every {}, to {}",
                humantime::format_duration(config.collect.interval),
                outputs.join(" and ")
            ),
        );
    }
    for problem in &problems {
        report.fail(subject_of(problem), problem.to_string());
    }
    check_host_paths(config, &mut report);

    let influx = if config.influxdb.address.trim().is_empty()
        || problems.iter().any(|p| matches!(p, ConfigError::Influx(_)))
    {
        None
    } else {
        // The very client the sink writes with (URLs, credentials, timeouts).
        let service = Service::new(&config.influxdb).map_err(|e| format!("[influxdb] {e}"));
        report.record("[influxdb] address", service, |s| {
            format!("{} ({})", s.address(), describe_api(&config.influxdb.api()))
        })
    };
    let listen = config.prometheus.listen.trim();
    if !listen.is_empty() && !scope.connections {
        report.record(
            "[prometheus] listen",
            check::listen_address_syntax(listen),
            |()| listen.to_string(),
        );
    }
    if !scope.connections {
        return report;
    }

    if let Some(service) = influx {
        let timeout = scope.timeout_for(config.influxdb.timeout);
        check_influx(&service, config, timeout, &mut report).await;
    }
    if !listen.is_empty() {
        report.record(
            "[prometheus] listen",
            check::listen_address_free(listen).await,
            String::clone,
        );
    }
    report
}

/// The key a refused setting is about.
fn subject_of(problem: &ConfigError) -> &'static str {
    match problem {
        ConfigError::NoOutput => "outputs",
        ConfigError::IntervalTooShort(_) => "[collect] interval",
        ConfigError::BadTag(_) => "[collect] tags",
        ConfigError::Influx(_) => "[influxdb]",
    }
}

fn describe_api(api: &Result<Api, String>) -> String {
    match api {
        Ok(Api::V1 {
            database, username, ..
        }) => {
            let user = if username.is_empty() {
                "no user".to_string()
            } else {
                format!("user {username}")
            };
            format!("1.x, database {database:?}, {user}")
        }
        Ok(Api::V2 { org, bucket, .. }) => format!("2.x, org {org:?}, bucket {bucket:?}"),
        Err(_) => "unusable".into(),
    }
}

/// `[collect] procfs` and `rootfs`: where every collector reads.
fn check_host_paths(config: &Config, report: &mut CheckReport) {
    let stat = Path::new(&config.collect.procfs).join("stat");
    report.record(
        "[collect] procfs",
        std::fs::metadata(&stat).map_err(|e| {
            format!(
                "cannot read {}: {e}; set [collect] procfs to where the host's procfs is mounted",
                stat.display()
            )
        }),
        |_| format!("{} readable", stat.display()),
    );
    let root = Path::new(&config.collect.rootfs);
    report.record(
        "[collect] rootfs",
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("{} is not a directory", root.display())),
            Err(e) => Err(format!(
                "{}: {e}; set [collect] rootfs to where the host's / is mounted",
                root.display()
            )),
        },
        |()| format!("{} is a directory", root.display()),
    );
}

async fn check_influx(
    service: &Service,
    config: &Config,
    timeout: Duration,
    report: &mut CheckReport,
) {
    let subject = format!("InfluxDB {}", service.address());
    let what = format!("InfluxDB at {}", service.address());
    let answered = report.record(
        &subject,
        check::within(timeout, &what, service.ping()).await,
        |version| format!("answers /ping (version {version})"),
    );
    if answered.is_none() {
        return;
    }
    match check::within(timeout, &what, service.database_exists()).await {
        Ok(None) => report.ok(
            "[influxdb] bucket",
            "2.x: org, bucket and token are checked by the first write",
        ),
        Ok(Some(true)) => report.ok(
            "[influxdb] database",
            format!("{:?} exists", config.influxdb.database),
        ),
        Ok(Some(false)) if config.influxdb.create_database => report.ok(
            "[influxdb] database",
            format!(
                "{:?} does not exist yet; created at start (create_database = true)",
                config.influxdb.database
            ),
        ),
        Ok(Some(false)) => report.fail(
            "[influxdb] database",
            format!(
                "{:?} does not exist and create_database = false: create it \
                 (CREATE DATABASE \"{}\") or set create_database = true",
                config.influxdb.database, config.influxdb.database
            ),
        ),
        Err(e) => report.fail("[influxdb] database", e),
    }
}
