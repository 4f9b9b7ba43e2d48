//! The `sysagent` binary: INI config, env overrides, a taken port, an unreachable InfluxDB,
//! and a clean stop on SIGTERM that flushes the buffer.

use std::process::{Child, Command, Stdio};

use crate::common::*;
use test_servers::{Influx, free_port, http_request};

struct Agent {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn spawn(ini: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sysagent.ini");
        std::fs::write(&config, ini).unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysagent"));
        cmd.arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().expect("spawn sysagent"),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (bounded wait); returns the log.
    fn terminate(&mut self) -> String {
        test_servers::terminate(&mut self.child, &self.log)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sysagent --once` in `dir`, its command completed by `setup`; asserts it succeeded and
/// returns its stderr.
fn once(dir: &std::path::Path, setup: impl FnOnce(&mut Command)) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysagent"));
    cmd.arg("--once").current_dir(dir);
    setup(&mut cmd);
    let out = cmd.output().expect("run sysagent --once");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn taken_port_is_reported_collection_goes_on_and_sigterm_flushes() {
    let influx = Influx::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let mut agent = Agent::spawn(
        &format!(
            "[collect]\ninterval = 200ms\n[influxdb]\naddress = {}\n[prometheus]\nlisten = {listen}\n",
            influx.url()
        ),
        &[],
    );

    wait_for(20, "the taken-port message", || {
        agent
            .log()
            .contains(&format!("cannot serve /metrics on {listen}"))
    });
    assert!(
        agent.log().contains("[prometheus] listen"),
        "{}",
        agent.log()
    );
    wait_for(20, "points in InfluxDB while the port is taken", || {
        count_cpu_total(&influx) >= 3
    });

    // Once the port is free, the endpoint comes up without a restart.
    drop(taken);
    wait_for(20, "/metrics after the port was freed", || {
        http_request("GET", &format!("http://{listen}/metrics"), None, b"")
            .is_ok_and(|r| r.status == 200 && r.body.contains("node_load1 "))
    });

    let log = agent.terminate();
    assert!(log.contains("all points delivered"), "{log}");
    let collections: u64 = log
        .split("stopped after ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no final report in {log}"));
    assert_eq!(count_cpu_total(&influx), collections, "{log}");
}

#[test]
fn unreachable_influx_is_reported_and_prometheus_keeps_serving() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    // The address comes from the environment, overriding the file.
    let mut agent = Agent::spawn(
        "[collect]\ninterval = 200ms\n[influxdb]\naddress = http://127.0.0.1:1\nflush_timeout = 1s\n",
        &[
            ("SYSAGENT_INFLUXDB_ADDRESS", dead.as_str()),
            ("SYSAGENT_PROMETHEUS_LISTEN", listen.as_str()),
        ],
    );
    wait_for(20, "the unreachable message", || {
        agent
            .log()
            .contains(&format!("InfluxDB at {dead} is unreachable"))
    });

    let scrape = || {
        http_request("GET", &format!("http://{listen}/metrics"), None, b"")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
            .unwrap_or_default()
    };
    let time_of = |body: &str| -> Option<f64> {
        body.lines()
            .find_map(|l| l.strip_prefix("node_time_seconds "))
            .and_then(|v| v.parse().ok())
    };
    let mut first = None;
    wait_for(20, "a first sample on /metrics", || {
        first = time_of(&scrape());
        first.is_some()
    });
    wait_for(20, "a newer sample: collection goes on", || {
        time_of(&scrape()) > first
    });
    let body = scrape();
    assert!(
        body.contains("sysagent_influxdb_write_errors_total "),
        "{body}"
    );

    let log = agent.terminate();
    assert!(log.contains("points not delivered to InfluxDB"), "{log}");
}

#[test]
fn once_prints_one_collection_as_line_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sysagent"))
        .arg("--once")
        .current_dir(dir.path())
        .env("SYSAGENT_COLLECT_HOSTNAME", "once-host")
        .output()
        .expect("run sysagent --once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let cpu = text
        .lines()
        .find(|l| l.starts_with("cpu,cpu=cpu-total,host=once-host "))
        .unwrap_or_else(|| panic!("no cpu-total line in\n{text}"));
    assert!(cpu.contains("usage_idle="), "{cpu}");
    let mem = text
        .lines()
        .find(|l| l.starts_with("mem,"))
        .expect("a mem line");
    assert!(
        mem.contains(&format!(" total={}i,", proc_meminfo("MemTotal"))),
        "{mem}"
    );
    for m in ["system,", "swap,", "processes,", "kernel,"] {
        assert!(
            text.lines().any(|l| l.starts_with(m)),
            "no {m} line in\n{text}"
        );
    }
}

/// Variables with the prefix that name no section and key (a Kubernetes service's
/// `SYSAGENT_SERVICE_HOST`) used to stop the start with "unknown field"; they are now one
/// warning. `SYSAGENT_LOG_LEVEL` sets `[log] level`, and `--log-level` wins over it.
#[test]
fn unknown_env_variables_are_one_warning_and_the_log_level_comes_from_flag_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        once(dir.path(), |cmd| {
            cmd.args(args)
                .env("SYSAGENT_SERVICE_HOST", "10.0.0.1")
                .env("SYSAGENT_SERVICE_PORT", "9102")
                .envs(env.iter().copied());
        })
    };
    let stderr = run(&[], &[]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("SYSAGENT_SERVICE_HOST"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("SYSAGENT_SERVICE_PORT"), "{stderr}");

    // The warning is a warn record: an error-only log hides it, whichever way it is set.
    let quiet = run(&[], &[("SYSAGENT_LOG_LEVEL", "error")]);
    assert!(!quiet.contains("SYSAGENT_SERVICE_HOST"), "{quiet}");
    std::fs::write(dir.path().join("sysagent.ini"), "[log]\nlevel = error\n").unwrap();
    let quiet = run(&[], &[]);
    assert!(!quiet.contains("SYSAGENT_SERVICE_HOST"), "{quiet}");
    let loud = run(&["--log-level", "info"], &[("SYSAGENT_LOG_LEVEL", "error")]);
    assert!(loud.contains("SYSAGENT_SERVICE_HOST"), "{loud}");
}

/// `SYSAGENT_CONFIG` names the file when `--config` is not given (over ./sysagent.ini), and
/// is not itself reported as a stray variable.
#[test]
fn the_config_variable_names_the_file_when_the_flag_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    // ./sysagent.ini would make the warning visible; the named file hides it.
    std::fs::write(dir.path().join("sysagent.ini"), "[log]\nlevel = info\n").unwrap();
    let named = dir.path().join("named.ini");
    std::fs::write(&named, "[log]\nlevel = error\n").unwrap();
    let run = |env: &[(&str, &std::ffi::OsStr)]| {
        once(dir.path(), |cmd| {
            cmd.env("SYSAGENT_SERVICE_HOST", "10.0.0.1")
                .envs(env.iter().copied());
        })
    };
    let default = run(&[]);
    assert!(default.contains("SYSAGENT_SERVICE_HOST"), "{default}");
    let named = run(&[("SYSAGENT_CONFIG", named.as_os_str())]);
    assert!(!named.contains("SYSAGENT_SERVICE_HOST"), "{named}");
    let info = run(&[
        ("SYSAGENT_CONFIG", std::ffi::OsStr::new("sysagent.ini")),
        ("SYSAGENT_LOG_LEVEL", std::ffi::OsStr::new("info")),
    ]);
    assert!(!info.contains("SYSAGENT_CONFIG"), "{info}");
}
