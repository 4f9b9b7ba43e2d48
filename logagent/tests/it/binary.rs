//! The `logagent` binary's start: environment variables with the prefix that name no config
//! key (Kubernetes' `LOGAGENT_SERVICE_HOST`) are one warning, not a failed start, and the
//! level comes from `--log-level`, else `LOGAGENT_LOG_LEVEL`, else `[log] level`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka, stderr_summary, wait_until};

/// The binary as a child process, killed if the test fails before it stopped.
struct Binary {
    child: Child,
    stderr: PathBuf,
}

impl Binary {
    fn spawn(conf: &Path, args: &[&str], stderr: PathBuf) -> Binary {
        let child = Command::new(env!("CARGO_BIN_EXE_logagent"))
            .arg("--config")
            .arg(conf)
            .args(args)
            // The release before the `[log]` section stopped at start on the first one
            // ("unknown field `log`"); the second is what Kubernetes injects.
            .env("LOGAGENT_LOG_LEVEL", "debug")
            .env("LOGAGENT_SERVICE_HOST", "10.0.0.1:80")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start the logagent binary");
        Binary { child, stderr }
    }

    /// Waits (bounded) until `metric` on `metrics` reaches `at`.
    fn wait_metric(&self, metrics: &str, name: &str, at: f64) {
        assert!(
            wait_until(Duration::from_secs(60), || metric(metrics, name) >= at),
            "{name} never reached {at}; stderr:\n{}",
            self.stderr()
        );
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (bounded wait); returns the stderr.
    fn terminate(mut self) -> String {
        test_servers::terminate(&mut self.child, &self.stderr)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stray_env_variables_are_one_warning_and_the_log_level_comes_from_flag_or_env() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("bin", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    std::fs::File::create(&f).unwrap();
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "bin")));
    let port = test_servers::free_port();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let conf = write_conf(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
        &logs,
        port,
        "",
    );

    // LOGAGENT_LOG_LEVEL=debug: the agent starts, ships, and logs at debug.
    let agent = Binary::spawn(&conf, &[], dir.path().join("env.log"));
    agent.wait_metric(&metrics, "logagent_files_watched", 1.0);
    append(&f, lines("bin", 0..100));
    agent.wait_metric(&metrics, "logagent_lines_sent_total", 100.0);
    let stderr = agent.terminate();
    assert_eq!(
        stderr_summary(&stderr, "LOGAGENT_SERVICE_HOST"),
        (1, true),
        "{stderr}"
    );
    assert_eq!(
        stderr_summary(&stderr, "LOGAGENT_LOG_LEVEL").0,
        0,
        "{stderr}"
    );

    // --log-level wins over LOGAGENT_LOG_LEVEL.
    let agent = Binary::spawn(&conf, &["--log-level", "info"], dir.path().join("flag.log"));
    agent.wait_metric(&metrics, "logagent_files_watched", 1.0);
    let stderr = agent.terminate();
    assert_eq!(
        stderr_summary(&stderr, "LOGAGENT_SERVICE_HOST"),
        (1, false),
        "{stderr}"
    );
}
