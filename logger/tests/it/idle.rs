//! An idle logger sleeps: its writer thread must not poll a thousand times a second (as it
//! did before it learned to announce a long park), and a record logged after a long idle
//! spell is still written.

use std::time::Duration;

use logger::{Builder, OutputConfig};

use crate::common::serial;

/// Voluntary context switches of this process's thread named `name`.
fn context_switches(name: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            return status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap();
        }
    }
    panic!("no thread named {name}");
}

#[test]
fn an_idle_writer_parks_instead_of_polling_and_wakes_for_the_next_record() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let guard = Builder::new()
        .output("file", OutputConfig::file(&path).pattern("{message}"))
        .flush_interval(Duration::from_millis(100))
        .init()
        .unwrap();
    logger::info!("before the idle spell");
    guard.flush();

    let before = context_switches("logger-writer");
    // The thing measured is what an idle second costs, so this waits on purpose.
    std::thread::sleep(Duration::from_secs(2));
    let woke = context_switches("logger-writer") - before;
    // Polling at 1 ms woke ~2,000 times in 2 s; parking with the 200 ms housekeeping tick
    // wakes ~10 times.
    assert!(woke < 100, "the idle writer woke {woke} times in 2 s");

    logger::info!("after the idle spell");
    guard.flush();
    drop(guard);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["before the idle spell", "after the idle spell"]
    );
}
