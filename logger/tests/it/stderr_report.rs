//! A failing output is reported on stderr once per failure spell, not once per record.
//! Stderr belongs to the whole process, so the logging runs in a child process (this
//! test binary again, selected by an environment variable) whose stderr is captured.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use logger::{Builder, OutputConfig};

const CHILD_ENV: &str = "LOGGER_TEST_STDERR_CHILD";

/// Fails every write while `broken` is set.
struct Flaky(Arc<AtomicBool>);

impl logger::Output for Flaky {
    fn write(&mut self, _line: &[u8], _record: &logger::Record) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::other("disk unplugged"))
        } else {
            Ok(())
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "flaky test output".into()
    }
}

/// Runs only inside the child process started by the test below: 100 failing writes to
/// `/dev/full`, and 50 + 20 failing writes to `flaky` around one
/// success (sync, one write per record). Prints the failure count on stdout.
#[test]
fn stderr_report_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let guard = Builder::new()
        .output("full", OutputConfig::file("/dev/full").pattern("{message}"))
        .sync()
        .init()
        .unwrap();
    for i in 0..100 {
        logger::info!("full {i}");
    }
    let full_errors = guard.stats().write_errors;
    drop(guard);

    let broken = Arc::new(AtomicBool::new(true));
    let guard = Builder::new()
        .custom(
            "flaky",
            logger::LevelFilter::TRACE,
            logger::format::PatternFormat::default(),
            Flaky(broken.clone()),
        )
        .sync()
        .init()
        .unwrap();
    for i in 0..50 {
        logger::info!("first spell {i}");
    }
    broken.store(false, Ordering::SeqCst);
    logger::info!("recovered");
    broken.store(true, Ordering::SeqCst);
    for i in 0..20 {
        logger::info!("second spell {i}");
    }
    let flaky_errors = guard.stats().write_errors;
    drop(guard);
    println!("full_errors={full_errors} flaky_errors={flaky_errors}");
}

#[test]
fn each_failure_spell_is_reported_on_stderr_exactly_once() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stderr_report::stderr_report_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("logger:"))
        .collect();
    let full: Vec<&&str> = reports
        .iter()
        .filter(|l| l.starts_with("logger: output `full`"))
        .collect();
    let flaky: Vec<&&str> = reports
        .iter()
        .filter(|l| l.starts_with("logger: output `flaky`"))
        .collect();
    assert_eq!(reports.len(), 3, "{stderr}");
    assert_eq!(full.len(), 1, "{stderr}");
    assert!(full[0].contains("/dev/full"), "{stderr}");
    // Two spells of failure separated by one good write: two reports, not 70.
    assert_eq!(flaky.len(), 2, "{stderr}");
    assert!(
        flaky
            .iter()
            .all(|l| l.contains("(flaky test output) failed: disk unplugged")),
        "{stderr}"
    );
    // The counter still sees every failed write.
    assert!(
        stdout.contains("full_errors=100 flaky_errors=70\n"),
        "{stdout}"
    );
}
