//! Rotation, retention, gzip and reopen, through the installed logger with concurrent
//! writers. Every test checks that the lines across all files are exactly the lines
//! written: none lost, duplicated, split or interleaved.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::{files, read_text, serial, wait_until};
use logger::rotation::{ManualClock, Suffix};
use logger::{Builder, OutputConfig};

const PAD: &str = "the quick brown fox jumps over the lazy dog";

/// A builder with one file output `file` at `live` writing bare messages, shaped by
/// `rotation` (the part each test varies).
fn file_logger(live: &Path, rotation: impl FnOnce(OutputConfig) -> OutputConfig) -> Builder {
    Builder::new().output(
        "file",
        rotation(OutputConfig::file(live).pattern("{message}")),
    )
}

/// Names of the files in `dir` starting with `app.log`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    files(dir, "app.log")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The `i=` sequence number of a line written by these tests.
fn seq_no(line: &str) -> usize {
    line.split(" i=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Logs `per_thread` lines from each of 4 threads at once.
fn write_concurrently(phase: usize, per_thread: usize) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..per_thread {
                    logger::info!("p={phase} t={t} i={i} {PAD}");
                }
            });
        }
    });
}

/// Every line in every file of `dir`, checked to be whole.
fn all_lines(dir: &Path) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, f) in files(dir, "app.log").iter().enumerate() {
        let text = read_text(f);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for line in text.lines() {
            assert!(
                line.starts_with("p=") && line.ends_with(PAD) && line.matches("p=").count() == 1,
                "split or interleaved line in {}: {line:?}",
                f.display()
            );
            out.push((n, line.to_string()));
        }
    }
    out
}

fn expect_all(lines: &[(usize, String)], phases: usize, per_thread: usize) {
    let set: BTreeSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines.len(), phases * 4 * per_thread, "line count");
    assert_eq!(set.len(), lines.len(), "duplicated lines");
    for p in 0..phases {
        for t in 0..4 {
            for i in 0..per_thread {
                let l = format!("p={p} t={t} i={i} {PAD}");
                assert!(set.contains(l.as_str()), "missing {l}");
            }
        }
    }
}

#[test]
fn size_rotation_under_four_writers_keeps_every_line_whole() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let max = 16 * 1024;
    let guard = file_logger(&live, |o| o.max_size(max))
        .queue_capacity(1024)
        .init()
        .unwrap();
    write_concurrently(0, 5000);
    drop(guard);
    let lines = all_lines(dir.path());
    expect_all(&lines, 1, 5000);
    let all = files(dir.path(), "app.log");
    // ~64 bytes a line, 20000 lines, 16 KiB a file: about 80 files.
    assert!(all.len() > 50, "only {} files", all.len());
    for f in &all {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= max, "{} has {len} bytes > {max}", f.display());
    }
    // Each thread's lines keep their order across files (rotated names sort by age,
    // the live file is the newest).
    // Rotated files sort by (timestamp, clash index); the live file is the newest.
    let age_key = |p: &std::path::PathBuf| -> (String, u64) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p == &live {
            return ("~".into(), 0);
        }
        let rest = name.trim_start_matches("app.log.");
        match rest.split_once('.') {
            Some((stamp, n)) => (stamp.to_string(), n.parse().unwrap()),
            None => (rest.to_string(), 0),
        }
    };
    let mut ordered: Vec<&(usize, String)> = lines.iter().collect();
    ordered.sort_by_key(|(n, _)| age_key(&all[*n]));
    for t in 0..4 {
        let seq: Vec<usize> = ordered
            .iter()
            .filter(|(_, l)| l.contains(&format!(" t={t} ")))
            .map(|(_, l)| seq_no(l))
            .collect();
        assert!(
            seq == (0..5000).collect::<Vec<_>>(),
            "thread {t} out of order"
        );
    }
}

#[test]
fn time_rotation_with_an_injected_clock_puts_each_period_in_its_own_file() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    // 2026-11-25T14:20:00Z
    let clock = ManualClock::new(1_795_616_400_000_000);
    let guard = file_logger(&live, |o| o.period(Duration::from_secs(3600)))
        .rotation_clock("file", clock.clone())
        .init()
        .unwrap();
    for phase in 0..3 {
        write_concurrently(phase, 500);
        guard.flush();
        clock.advance(Duration::from_secs(3600));
    }
    drop(guard);
    let names = file_names(dir.path());
    assert_eq!(
        names,
        [
            "app.log",
            "app.log.20261125-150000",
            "app.log.20261125-160000"
        ]
    );
    let lines = all_lines(dir.path());
    expect_all(&lines, 3, 500);
    // Phase 0 went before the 15:00 boundary, phase 1 before 16:00, phase 2 after.
    for (file_idx, phase) in [(1usize, 0usize), (2, 1), (0, 2)] {
        let n = lines
            .iter()
            .filter(|(f, l)| *f == file_idx && l.starts_with(&format!("p={phase} ")))
            .count();
        assert_eq!(n, 2000, "phase {phase} in {}", names[file_idx]);
    }
}

#[test]
fn size_or_time_whichever_comes_first() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let clock = ManualClock::new(1_795_616_400_000_000);
    let guard = file_logger(&live, |o| {
        o.period(Duration::from_secs(3600)).max_size(1_000_000)
    })
    .rotation_clock("file", clock.clone())
    .sync()
    .init()
    .unwrap();
    // 2000 lines of ~64 bytes stay under 1 MB: only the hour boundary rotates.
    write_concurrently(0, 500);
    clock.advance(Duration::from_secs(3600));
    // 20000 lines pass 1 MB: size rotates within the hour.
    write_concurrently(1, 5000);
    drop(guard);
    let names = file_names(dir.path());
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[1], "app.log.20261125-150000");
    assert!(names[2].starts_with("app.log.20261125-15"), "{names:?}");
    let lines = all_lines(dir.path());
    assert_eq!(lines.len(), 2000 + 20000);
    let set: BTreeSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(set.len(), lines.len(), "duplicated lines");
    // The hour file holds exactly phase 0.
    let hour_file: Vec<_> = lines.iter().filter(|(f, _)| *f == 1).collect();
    assert_eq!(hour_file.len(), 2000);
    assert!(hour_file.iter().all(|(_, l)| l.starts_with("p=0 ")));
}

#[test]
fn retention_by_count_keeps_the_newest_files() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let guard = file_logger(&live, |o| o.max_size(4096).keep(3))
        .init()
        .unwrap();
    for i in 0..2000 {
        logger::info!("p=0 t=0 i={i} {PAD}");
    }
    drop(guard);
    let all = files(dir.path(), "app.log");
    assert_eq!(all.len(), 4, "live + 3 rotated: {all:?}");
    // What is left is the tail of the sequence, without a gap.
    let mut idx: Vec<usize> = all_lines(dir.path())
        .iter()
        .map(|(_, l)| seq_no(l))
        .collect();
    idx.sort();
    assert_eq!(*idx.last().unwrap(), 1999);
    assert_eq!(idx, (idx[0]..2000).collect::<Vec<_>>());
}

#[test]
fn retention_by_age_deletes_only_old_rotated_files() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let old = dir.path().join("app.log.20200101-000000");
    let recent = dir.path().join("app.log.20200102-000000");
    std::fs::write(&old, "p=old\n").unwrap();
    std::fs::write(&recent, "p=recent\n").unwrap();
    let f = std::fs::File::options().write(true).open(&old).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(10 * 86_400))
        .unwrap();
    drop(f);
    let guard = file_logger(&live, |o| {
        o.max_size(1024).max_age(Duration::from_secs(86_400))
    })
    .init()
    .unwrap();
    for i in 0..40 {
        logger::info!("p=0 t=0 i={i} {PAD}");
    }
    drop(guard);
    assert!(!old.exists(), "10-day-old file kept");
    assert!(recent.exists(), "fresh file deleted");
    let rotated = files(dir.path(), "app.log.")
        .into_iter()
        .filter(|p| p != &recent)
        .count();
    assert!(rotated >= 1, "no rotation happened");
}

#[test]
fn gzip_rotated_files_are_readable_and_complete() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let guard = file_logger(&live, |o| o.max_size(8192).gzip(true))
        .init()
        .unwrap();
    write_concurrently(0, 1000);
    drop(guard);
    let all = files(dir.path(), "app.log");
    assert!(all.len() > 5);
    for f in &all {
        if f != &live {
            assert!(
                f.to_string_lossy().ends_with(".gz"),
                "not gzipped: {}",
                f.display()
            );
        }
    }
    expect_all(&all_lines(dir.path()), 1, 1000);
}

#[test]
fn index_suffix_shifts_and_keeps_count() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let guard = file_logger(&live, |o| o.max_size(2048).suffix(Suffix::Index).keep(2))
        .sync()
        .init()
        .unwrap();
    for i in 0..400 {
        logger::info!("p=0 t=0 i={i} {PAD}");
    }
    drop(guard);
    let names = file_names(dir.path());
    assert_eq!(names, ["app.log", "app.log.1", "app.log.2"]);
    let first =
        |p: &str| -> usize { seq_no(read_text(&dir.path().join(p)).lines().next().unwrap()) };
    assert!(first("app.log.2") < first("app.log.1"));
    assert!(first("app.log.1") < first("app.log"));
}

#[test]
fn a_deleted_live_file_is_recreated() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let guard = file_logger(&live, |o| o).init().unwrap();
    logger::info!("p=before");
    guard.flush();
    std::fs::remove_file(&live).unwrap();
    let mut n = 0;
    let back = wait_until(Duration::from_secs(10), || {
        logger::info!("p=probe {n}");
        n += 1;
        guard.flush();
        live.exists()
    });
    assert!(back, "file not recreated");
    for i in 0..10 {
        logger::info!("p=after {i}");
    }
    guard.flush();
    let text = read_text(&live);
    for i in 0..10 {
        assert!(
            text.contains(&format!("p=after {i}\n")),
            "missing after {i}: {text}"
        );
    }
    drop(guard);
}
