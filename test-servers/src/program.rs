//! The program under test, run as a child process by its binary tests.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::wait_until;

/// Sends SIGTERM to `child` and waits (at most a minute) for it to exit; asserts that it
/// exited, with status 0. `stderr` is the file its stderr goes to: returned, and shown when
/// an assertion fails.
pub fn terminate(child: &mut Child, stderr: &Path) -> String {
    let read = || std::fs::read_to_string(stderr).unwrap_or_default();
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut status = None;
    let exited = wait_until(Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(exited, "no exit after SIGTERM; stderr:\n{}", read());
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}; stderr:\n{}",
        read()
    );
    read()
}

/// How a daemon's stderr speaks of the environment variable `variable`: the lines naming it,
/// and whether any record is at debug level.
pub fn stderr_summary(stderr: &str, variable: &str) -> (usize, bool) {
    let naming = stderr.lines().filter(|l| l.contains(variable)).count();
    (naming, stderr.contains(" DEBUG "))
}

/// Runs a daemon's `binary` with `config` written to a file named `file_name` (the extension
/// picks INI or TOML) as `--config`, and `args` (`--check`, ...); returns whether it exited 0,
/// its stdout (the `--check` table) and its stderr (its log).
pub fn run_check(
    binary: &str,
    file_name: &str,
    config: &str,
    args: &[&str],
) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory for the config");
    let path = dir.path().join(file_name);
    std::fs::write(&path, config).expect("write the config");
    let out = std::process::Command::new(binary)
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The row of a `--check` table about `subject` (the line starting with it); panics showing
/// the table when there is none.
pub fn table_row<'a>(table: &'a str, subject: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(subject))
        .unwrap_or_else(|| panic!("no row {subject:?} in\n{table}"))
}
