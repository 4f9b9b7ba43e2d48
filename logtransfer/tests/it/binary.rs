//! The `logtransfer` binary's start: environment variables with the prefix that name no
//! config key (Kubernetes' `LOGTRANSFER_SERVICE_HOST`) are one warning, not a failed start,
//! and the level comes from `--log-level`, else `LOGTRANSFER_LOG_LEVEL`, else `[log] level`.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, stderr_summary, terminate, wait_until};

const ENV: [(&str, &str); 2] = [
    ("LOGTRANSFER_LOG_LEVEL", "debug"),
    // What Kubernetes injects for a service named logtransfer.
    ("LOGTRANSFER_SERVICE_HOST", "10.0.0.1:80"),
];

#[test]
fn stray_env_variables_are_one_warning_and_the_log_level_comes_from_flag_or_env() {
    let kafka = Kafka::start();
    let es = Elasticsearch::start();
    kafka.create_topic("bin", 1);
    let messages: Vec<_> = (0..20)
        .map(|i| {
            (
                "host-1:/var/log/app.log".to_string(),
                agent_message(
                    "2026-11-25T12:00:00Z",
                    &format!("line {i}"),
                    "host-1",
                    "/var/log/app.log",
                    i * 10,
                ),
                None,
            )
        })
        .collect();
    produce(&kafka, "bin", &messages);
    let dir = tempfile::tempdir().unwrap();
    // The file says `[log] level = info`; LOGTRANSFER_LOG_LEVEL=debug overrides it.
    let cfg = config(&kafka, &es.url(), "bin", "bin-group");
    let mut env = Process::start_with(dir.path(), &cfg, "env", &[], &ENV);
    wait_count(&es, "logs-bin-*", 20, Duration::from_secs(60));
    let stderr = terminate(&mut env.child, &dir.path().join("env.log"));
    assert_eq!(
        stderr_summary(&stderr, "LOGTRANSFER_SERVICE_HOST"),
        (1, true),
        "{stderr}"
    );
    assert_eq!(
        stderr_summary(&stderr, "LOGTRANSFER_LOG_LEVEL").0,
        0,
        "{stderr}"
    );

    // --log-level wins over LOGTRANSFER_LOG_LEVEL.
    let mut flag = Process::start_with(dir.path(), &cfg, "flag", &["--log-level", "info"], &ENV);
    assert!(
        wait_until(Duration::from_secs(60), || {
            test_servers::http_request("GET", &flag.metrics_url, None, b"")
                .is_ok_and(|r| r.status == 200)
        }),
        "/metrics never answered"
    );
    let stderr = terminate(&mut flag.child, &dir.path().join("flag.log"));
    assert_eq!(
        stderr_summary(&stderr, "LOGTRANSFER_SERVICE_HOST"),
        (1, false),
        "{stderr}"
    );
}
