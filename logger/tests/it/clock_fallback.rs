//! Record timestamps with and without the TSC. Whether the TSC is used is decided once
//! per process, so each case runs in a child process (this test binary again, selected
//! by an environment variable): with `LOGGER_NO_TSC=1` the call site must read the
//! wall clock, and either way every record's time must be the wall-clock time of the call.

use std::process::Command;

use logger::{Builder, OutputConfig};

const CHILD_ENV: &str = "LOGGER_TEST_CLOCK_CHILD_DIR";

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs only inside the child processes started by the tests below: logs records
/// bracketed by wall-clock reads and checks each timestamp against its bracket.
#[test]
fn clock_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("clock.json");
    let guard = Builder::new()
        .output("f", OutputConfig::file(&path).json())
        .init()
        .unwrap();
    let mut brackets = Vec::new();
    for i in 0..3 {
        let before = now_us();
        logger::info!("record {i}");
        let after = now_us();
        brackets.push((before, after));
        // Far enough apart that the writer re-anchors the TSC between records.
        std::thread::sleep(std::time::Duration::from_millis(120));
    }
    let tsc = logger::__private::uses_tsc();
    drop(guard);
    let text = std::fs::read_to_string(&path).unwrap();
    let times: Vec<i64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            chrono::DateTime::parse_from_rfc3339(v["@timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_micros()
        })
        .collect();
    assert_eq!(times.len(), 3, "{text}");
    for (t, (before, after)) in times.iter().zip(&brackets) {
        // The wall clock is read at the call: no slack. The TSC is converted on the
        // writer against the wall clock: within a millisecond.
        let slack = if tsc { 1000 } else { 0 };
        assert!(
            before - slack <= *t && *t <= after + slack,
            "{before} <= {t} <= {after} (tsc: {tsc})"
        );
    }
    println!("uses_tsc={tsc}");
}

/// Runs the child with `LOGGER_NO_TSC` set or not; returns its `uses_tsc` answer.
fn run_child(no_tsc: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "clock_fallback::clock_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir.path())
    .env_remove("LOGGER_NO_TSC");
    if no_tsc {
        cmd.env("LOGGER_NO_TSC", "1");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    if stdout.contains("uses_tsc=true\n") {
        true
    } else {
        assert!(stdout.contains("uses_tsc=false\n"), "{stdout}");
        false
    }
}

#[test]
fn logger_no_tsc_reads_the_wall_clock_at_the_call_site() {
    assert!(!run_child(true), "LOGGER_NO_TSC=1 still used the TSC");
}

#[test]
fn default_timestamps_match_the_wall_clock() {
    // The TSC on CPUs whose flags and kernel vouch for it, the wall clock elsewhere
    // (the choice itself is unit-tested in src/clock.rs); the timestamps are right in
    // both cases.
    run_child(false);
}
