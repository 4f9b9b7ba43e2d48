//! Scenario: more matching files than descriptors. The agent binary runs with
//! `RLIMIT_NOFILE` 256 (soft and hard, so it cannot raise it) and 400 files match its glob.
//! Before the `max_open_files` budget every tailer opened its file at once, the limit was
//! gone, and the producer could not get a socket: nothing was shipped. Every line of every
//! file must arrive, and /metrics must answer, within bounded waits.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka, wait_until};

const FILES: usize = 400;
const LINES: usize = 5;
const DESCRIPTORS: libc::rlim_t = 256;

/// The binary under a descriptor limit, killed when the test ends.
struct Limited(Child);

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_limited(conf: &std::path::Path, stderr: &std::path::Path) -> Limited {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logagent"));
    cmd.arg("--config")
        .arg(conf)
        .arg("--log-level")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: DESCRIPTORS,
                rlim_max: DESCRIPTORS,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Limited(cmd.spawn().expect("start the logagent binary"))
}

#[test]
fn with_more_files_than_descriptors_every_line_of_every_file_is_shipped() {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic("fds", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let mut expected: HashMap<String, usize> = HashMap::new();
    for f in 0..FILES {
        let name = format!("f{f:03}");
        append(&logs.join(format!("{name}.log")), lines(&name, 0..LINES));
        for l in lines(&name, 0..LINES) {
            *expected.entry(l).or_default() += 1;
        }
    }
    let glob = logs.join("*.log");
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&glob, "fds")));
    let (conf, metrics) = binary_conf(dir.path(), &logs, &kafka, &etcd, "");
    let stderr = dir.path().join("agent.log");
    let agent = spawn_limited(&conf, &stderr);
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();

    let total = (FILES * LINES) as f64;
    let shipped = wait_until(Duration::from_secs(90), || {
        reached(&metrics, "logagent_lines_sent_total", total)
    });
    assert!(
        shipped,
        "lines_sent stuck at {} of {total}; agent log:\n{}",
        metric(&metrics, "logagent_lines_sent_total"),
        log()
    );
    let got = consume(
        &kafka.bootstrap_servers(),
        "fds",
        FILES * LINES,
        Duration::from_secs(60),
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &got {
        *seen.entry(s.message.clone()).or_default() += 1;
    }
    let missing: Vec<&String> = expected.keys().filter(|l| !seen.contains_key(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines never arrived, e.g. {:?}; agent log:\n{}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)],
        log()
    );
    assert!(
        metric(&metrics, "logagent_lines_sent_total") >= total,
        "/metrics answers after the run"
    );
    drop(agent);
}
