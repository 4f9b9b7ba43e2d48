//! Flush on panic (through the installed hook) and `exit_on_fatal` (in a child process).

use std::process::Command;
use std::time::Duration;

use crate::common::{read_text, serial};
use logger::{Builder, OutputConfig};

#[test]
fn a_panic_is_logged_and_flushed_before_it_unwinds() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.json");
    let guard = Builder::new()
        .output("f", OutputConfig::file(&path).json())
        .flush_interval(Duration::from_secs(3600))
        .init()
        .unwrap();
    logger::info!("before the panic");
    let r = std::thread::Builder::new()
        .name("doomed".into())
        .spawn(|| panic!("disk on fire: {}", 42))
        .unwrap()
        .join();
    assert!(r.is_err());
    // No guard drop and a one-hour flush interval: only the hook's flush wrote this.
    let text = read_text(&path);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["message"], "before the panic");
    assert_eq!(lines[1]["log.level"], "fatal");
    assert_eq!(lines[1]["message"], "panicked: disk on fire: 42");
    assert_eq!(lines[1]["process"]["thread"]["name"], "doomed");
    assert_eq!(
        lines[1]["log"]["origin"]["file"]["name"],
        "logger/tests/it/panic_and_exit.rs"
    );
    drop(guard);
}

const CHILD_ENV: &str = "LOGGER_TEST_FATAL_CHILD_DIR";

/// Runs only inside the child process started by the test below.
#[test]
fn fatal_exit_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("fatal.log");
    let _guard = Builder::new()
        .output("f", OutputConfig::file(&path).pattern("{level} {message}"))
        .flush_interval(Duration::from_secs(3600))
        .exit_on_fatal(true)
        .init()
        .unwrap();
    for i in 0..100 {
        logger::info!("line {i}");
    }
    logger::fatal!("cannot continue");
    // Not reached when exit_on_fatal works.
    std::fs::write(std::path::Path::new(&dir).join("survived"), "yes").unwrap();
}

#[test]
fn exit_on_fatal_flushes_then_exits_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "panic_and_exit::fatal_exit_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!dir.path().join("survived").exists());
    let text = read_text(&dir.path().join("fatal.log"));
    assert_eq!(text.lines().count(), 101);
    assert!(
        text.ends_with("INFO  line 99\nFATAL cannot continue\n"),
        "{text}"
    );
}
