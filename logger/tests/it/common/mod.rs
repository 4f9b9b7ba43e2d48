//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The logger is process-global: tests in one binary take turns.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Files in `dir` whose name starts with `base`, sorted by name.
pub fn files(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(base))
        .collect();
    v.sort();
    v
}

/// Text of a file, gunzipped if it ends in `.gz`.
pub fn read_text(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Polls `f` until it returns true or the deadline passes.
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `log` and then flushes and drops `guard`, all on another thread, failing the
/// test if that hangs (see [`within`]); gives back the handle for the counters.
pub fn log_and_close_within(
    deadline: Duration,
    what: &str,
    guard: logger::LoggerGuard,
    log: impl FnOnce() + Send + 'static,
) -> logger::Handle {
    let handle = guard.handle();
    within(deadline, what, move || {
        log();
        guard.flush();
        drop(guard);
    });
    handle
}

/// Runs `f` on its own thread and fails the test if it does not finish within
/// `deadline`: a hang becomes a failure, never a stuck run. (On a timeout the thread is
/// left behind; the test process ends with the failure.)
pub fn within<T: Send + 'static>(
    deadline: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(deadline) {
        Ok(v) => v,
        Err(_) => panic!("{what}: still running after {deadline:?} (hung)"),
    }
}
