//! The whole pipeline through the installed logger: levels (global, per module, per
//! output, changed at run time), the `log` facade, JSON records, fields, function
//! names, fatal flush, queue overflow and write failures.

use std::time::Duration;

use crate::common::{log_and_close_within, read_text, serial};
use logger::{Builder, OutputConfig, Overflow};

fn json_lines(p: &std::path::Path) -> Vec<serde_json::Value> {
    read_text(p)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

mod app {
    pub mod db {
        pub fn connect() {
            logger::debug!(pool = 4; "db debug");
            logger::trace!("db trace");
        }
    }
    pub fn handle_request() {
        logger::debug!("app debug");
        logger::info!("app info");
    }
}

#[test]
fn json_records_carry_origin_thread_fields_and_the_ecs_layout() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.json");
    let guard = Builder::new()
        .output("json", OutputConfig::file(&path).json())
        .init()
        .unwrap();
    let before = chrono::Utc::now().timestamp_micros();
    let line = line!() + 1;
    logger::info!(user = "ann", id = 42u64, ok = true, ratio = 0.5; "user {} logged in", "ann");
    let after = chrono::Utc::now().timestamp_micros();
    std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| {
            let f = || logger::warn!("from a closure");
            f();
        })
        .unwrap()
        .join()
        .unwrap();
    drop(guard);
    let v = json_lines(&path);
    assert_eq!(v.len(), 2);
    let r = &v[0];
    assert_eq!(r["log.level"], "info");
    assert_eq!(r["message"], "user ann logged in");
    assert_eq!(r["ecs.version"], "8.11.0");
    assert_eq!(r["log"]["logger"], module_path!());
    assert_eq!(
        r["log"]["origin"]["file"]["name"],
        "logger/tests/it/pipeline.rs"
    );
    assert_eq!(r["log"]["origin"]["file"]["line"], line);
    assert_eq!(
        r["log"]["origin"]["function"],
        "json_records_carry_origin_thread_fields_and_the_ecs_layout"
    );
    assert!(r["process"]["thread"]["id"].as_u64().unwrap() > 0);
    assert_eq!(r["user"], "ann");
    assert_eq!(r["id"], 42);
    assert_eq!(r["ok"], true);
    assert_eq!(r["ratio"], 0.5);
    let ts = r["@timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    // The call site stores a TSC reading; the writer's conversion lands within a
    // millisecond of the wall clock read around the call.
    let t = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_micros();
    assert!(
        t >= before - 1000 && t <= after + 1000,
        "{before} <= {t} <= {after}"
    );
    assert_eq!(v[1]["process"]["thread"]["name"], "worker-7");
    assert_eq!(
        v[1]["log"]["origin"]["function"],
        "json_records_carry_origin_thread_fields_and_the_ecs_layout"
    );
}

#[test]
fn module_output_and_runtime_levels() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.log");
    let errors = dir.path().join("errors.log");
    let guard = Builder::new()
        .level(format!("info,{}::app::db=debug", module_path!()))
        .output("all", OutputConfig::file(&all).pattern("{level} {message}"))
        .output(
            "errors",
            OutputConfig::file(&errors)
                .pattern("{level} {message}")
                .level("warn"),
        )
        .init()
        .unwrap();
    app::handle_request();
    app::db::connect();
    logger::error!("boom");
    guard.flush();
    assert_eq!(
        read_text(&all),
        "INFO  app info\nDEBUG db debug\nERROR boom\n"
    );
    assert_eq!(read_text(&errors), "ERROR boom\n");

    let h = guard.handle();
    h.set_level(&format!("warn,{}::app=trace", module_path!()))
        .unwrap();
    h.set_output_level("errors", "info").unwrap();
    app::handle_request();
    app::db::connect();
    logger::info!("main info hidden");
    guard.flush();
    assert_eq!(
        read_text(&all),
        "INFO  app info\nDEBUG db debug\nERROR boom\nDEBUG app debug\nINFO  app info\nDEBUG db debug\nTRACE db trace\n"
    );
    assert_eq!(read_text(&errors), "ERROR boom\nINFO  app info\n");
    assert!(h.set_level("info,x=loud").is_err());
    let e = h.set_output_level("nope", "info").unwrap_err().to_string();
    assert!(
        e.contains("no output named `nope`") && e.contains("all, errors"),
        "{e}"
    );

    h.set_level("off").unwrap();
    logger::fatal!("nothing passes off");
    guard.flush();
    assert_eq!(read_text(&errors), "ERROR boom\nINFO  app info\n");
    drop(guard);
}

#[test]
fn the_log_facade_goes_through_the_same_outputs() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facade.json");
    let guard = Builder::new()
        .level("debug,pipeline::quiet=error")
        .output("json", OutputConfig::file(&path).json())
        .init()
        .unwrap();
    log::info!(request_id = 7; "via log {}", 1);
    log::trace!("below debug: dropped");
    log::warn!(target: "pipeline::quiet", "filtered by module");
    log::error!(target: "pipeline::quiet", "passes");
    drop(guard);
    let v = json_lines(&path);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["message"], "via log 1");
    assert_eq!(v[0]["log.level"], "info");
    assert_eq!(v[0]["request_id"], 7);
    assert_eq!(v[0]["log"]["logger"], module_path!());
    assert_eq!(
        v[0]["log"]["origin"]["file"]["name"],
        "logger/tests/it/pipeline.rs"
    );
    assert_eq!(v[1]["message"], "passes");
    assert_eq!(v[1]["log"]["logger"], "pipeline::quiet");
}

#[test]
fn fatal_flushes_every_output_before_returning() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    // A flush interval far longer than the test: only fatal's own flush can write.
    let guard = Builder::new()
        .output("a", OutputConfig::file(&a).pattern("{message}"))
        .output("b", OutputConfig::file(&b).pattern("{message}"))
        .flush_interval(Duration::from_secs(3600))
        .init()
        .unwrap();
    for i in 0..1000 {
        logger::info!("line {i}");
    }
    logger::fatal!("the end");
    for p in [&a, &b] {
        let text = read_text(p);
        assert_eq!(text.lines().count(), 1001, "{}", p.display());
        assert!(text.ends_with("line 999\nthe end\n"));
    }
    drop(guard);
}

#[test]
fn block_mode_loses_nothing_and_drop_mode_counts_what_it_drops() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("block.log");
    let guard = Builder::new()
        .output("f", OutputConfig::file(&path).pattern("{message}"))
        .queue_capacity(16)
        .overflow(Overflow::Block)
        .init()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..5000 {
                    logger::info!("t{t} {i}");
                }
            });
        }
    });
    let stats = guard.stats();
    drop(guard);
    assert_eq!(read_text(&path).lines().count(), 20_000);
    assert_eq!(stats.dropped, 0);

    // Drop mode: a writer stalled on a slow output fills a 4-slot queue.
    struct Slow(std::sync::Arc<std::sync::atomic::AtomicU64>);
    impl logger::Output for Slow {
        fn write(&mut self, _l: &[u8], _r: &logger::Record) -> std::io::Result<()> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "slow".into()
        }
    }
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let guard = Builder::new()
        .custom(
            "slow",
            logger::LevelFilter::TRACE,
            logger::format::PatternFormat::default(),
            Slow(seen.clone()),
        )
        .queue_capacity(4)
        .overflow(Overflow::Drop)
        .init()
        .unwrap();
    for i in 0..200 {
        logger::info!("r{i}");
    }
    let handle = guard.handle();
    drop(guard);
    let stats = handle.stats();
    let written = seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(stats.dropped > 0, "nothing dropped");
    assert_eq!(stats.dropped + written, 200, "{stats:?} written={written}");
}

#[test]
fn a_failing_output_is_counted_and_the_others_keep_working() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    let guard = Builder::new()
        .output("full", OutputConfig::file("/dev/full").pattern("{message}"))
        .output("good", OutputConfig::file(&good).pattern("{message}"))
        .sync()
        .init()
        .unwrap();
    for i in 0..10 {
        logger::info!("m{i}");
    }
    let stats = guard.stats();
    drop(guard);
    assert_eq!(stats.write_errors, 10, "{stats:?}");
    assert_eq!(read_text(&good).lines().count(), 10);
}

/// A full disk (`/dev/full` refuses every write with ENOSPC) in async mode: every
/// record counts once in `write_errors`, however the writer batched them. Before, each
/// failed write of a 64 KiB buffer counted once, whatever it held.
#[test]
fn a_full_disk_counts_records_not_calls() {
    let _s = serial();
    let guard = Builder::new()
        .output("full", OutputConfig::file("/dev/full").pattern("{message}"))
        .flush_interval(Duration::from_millis(1))
        .init()
        .unwrap();
    for i in 0..1000 {
        logger::info!("r{i}");
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let handle = guard.handle();
    drop(guard);
    let stats = handle.stats();
    assert_eq!(stats.write_errors, 1000, "{stats:?}");
    // All were kept for a retry, and given up on when the logger closed.
    assert_eq!(stats.records_lost, 1000, "{stats:?}");
}

#[test]
fn a_second_init_while_installed_is_refused_and_works_after_drop() {
    let _s = serial();
    let g = Builder::new()
        .output("c", OutputConfig::console())
        .init()
        .unwrap();
    let e = Builder::new().init().unwrap_err();
    assert!(matches!(e, logger::InitError::AlreadyInstalled), "{e}");
    drop(g);
    assert!(logger::handle().is_none());
    let g = Builder::new()
        .output("c", OutputConfig::console())
        .init()
        .unwrap();
    assert!(logger::handle().is_some());
    drop(g);
}

#[test]
fn a_panicking_argument_does_not_wedge_the_queue() {
    let _s = serial();
    struct Bomb;
    impl std::fmt::Display for Bomb {
        fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("Display exploded")
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.log");
    let guard = Builder::new()
        .output("f", OutputConfig::file(&path).pattern("{level} {message}"))
        .capture_panics(false)
        .init()
        .unwrap();
    logger::info!("before");
    let r = std::panic::catch_unwind(|| logger::info!("value: {}", Bomb));
    assert!(r.is_err(), "the caller's panic propagates");
    logger::info!("after");
    drop(guard);
    assert_eq!(
        read_text(&path),
        "INFO  before\nERROR <formatting this record's arguments panicked>\nINFO  after\n"
    );
}

#[test]
fn a_panicking_output_is_counted_and_the_writer_keeps_going() {
    let _s = serial();
    struct Flaky(u32);
    impl logger::Output for Flaky {
        fn write(&mut self, _l: &[u8], r: &logger::Record) -> std::io::Result<()> {
            self.0 += 1;
            if r.message.contains("boom") {
                panic!("output bug");
            }
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.log");
    let guard = Builder::new()
        .custom(
            "flaky",
            logger::LevelFilter::TRACE,
            logger::format::PatternFormat::default(),
            Flaky(0),
        )
        .output("file", OutputConfig::file(&path).pattern("{message}"))
        .queue_capacity(8)
        .capture_panics(false)
        .init()
        .unwrap();
    for i in 0..100 {
        if i % 10 == 0 {
            logger::info!("boom {i}");
        } else {
            logger::info!("fine {i}");
        }
    }
    let handle = guard.handle();
    drop(guard);
    // The other output got every record; the panics were counted as failed writes.
    assert_eq!(read_text(&path).lines().count(), 100);
    assert_eq!(handle.stats().write_errors, 10);
    assert_eq!(handle.stats().written, 100);
}

/// An output whose `flush` panics: the panic is caught and counted like a failed write,
/// and the writer thread goes on. Before, the panic ended the writer thread, and a
/// block-mode caller then waited for room in the full queue forever.
#[test]
fn a_panicking_flush_is_counted_and_block_mode_callers_never_hang() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let _s = serial();
    struct BadFlush(Arc<AtomicU64>);
    impl logger::Output for BadFlush {
        fn write(&mut self, _l: &[u8], _r: &logger::Record) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            panic!("flush bug")
        }
        fn describe(&self) -> String {
            "bad flush".into()
        }
    }
    let seen = Arc::new(AtomicU64::new(0));
    let guard = Builder::new()
        .custom(
            "bad",
            logger::LevelFilter::TRACE,
            logger::format::PatternFormat::default(),
            BadFlush(seen.clone()),
        )
        .queue_capacity(8)
        .overflow(Overflow::Block)
        .flush_interval(Duration::from_millis(1))
        .capture_panics(false)
        .init()
        .unwrap();
    let handle = log_and_close_within(Duration::from_secs(30), "block-mode logging", guard, || {
        for i in 0..2000 {
            logger::info!("r{i}");
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let stats = handle.stats();
    assert_eq!(seen.load(Ordering::SeqCst), 2000, "{stats:?}");
    assert_eq!(stats.written, 2000, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(
        stats.write_errors >= 2,
        "each panicking flush counts: {stats:?}"
    );
}

/// Logging from inside an output (as an error callback may) runs on the thread that
/// drives the outputs: it must not wait for that thread. Async with a full queue, or
/// sync (the caller holds the outputs), such records are dropped and counted. Before,
/// both deadlocked.
#[test]
fn logging_from_inside_an_output_does_not_deadlock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let _s = serial();
    struct Chatty(Arc<AtomicU64>);
    impl logger::Output for Chatty {
        fn write(&mut self, _l: &[u8], r: &logger::Record) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if r.message.starts_with("outer") {
                for i in 0..20 {
                    logger::warn!("from inside the output {i}");
                }
            }
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "chatty".into()
        }
    }
    for sync in [false, true] {
        let seen = Arc::new(AtomicU64::new(0));
        let mut b = Builder::new()
            .custom(
                "chatty",
                logger::LevelFilter::TRACE,
                logger::format::PatternFormat::default(),
                Chatty(seen.clone()),
            )
            .queue_capacity(4)
            .overflow(Overflow::Block)
            // A deadlocked logger would also hang this test's own failure in the panic hook.
            .capture_panics(false);
        if sync {
            b = b.sync();
        }
        let guard = b.init().unwrap();
        let handle = log_and_close_within(
            Duration::from_secs(30),
            "logging from an output",
            guard,
            || {
                for i in 0..3 {
                    logger::info!("outer {i}");
                }
            },
        );
        let stats = handle.stats();
        let seen = seen.load(Ordering::SeqCst);
        // Every record is either written or counted as dropped.
        assert_eq!(seen + stats.dropped, 3 + 3 * 20, "sync={sync} {stats:?}");
        assert!(stats.dropped > 0, "sync={sync} {stats:?}");
    }
}

/// Messages whose arguments are copied and formatted on the writer (integers and
/// strings behind plain identifiers, `{}` only) and those formatted at the call site
/// (everything else) read exactly as `format!` would write them, in order.
#[test]
fn messages_read_as_format_would_write_them_on_either_path() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.log");
    let json = dir.path().join("msg.json");
    // The pattern writes captured arguments straight into its line; JSON reads the
    // message as text, formatted into the record first: both must agree.
    let guard = Builder::new()
        .output("f", OutputConfig::file(&path).pattern("{message}|{fields}"))
        .output("j", OutputConfig::file(&json).json())
        .init()
        .unwrap();
    let (u8v, u64max, i64min, isz) = (7u8, u64::MAX, i64::MIN, -3isize);
    let (s, owned, empty) = ("10.0.0.1", String::from("ünïcode ✓"), "");
    let long = "x".repeat(300);
    let many = "y".repeat(60);
    let (f, c, b) = (0.25f64, 'c', true);
    let inferred = 42;
    let mut expected = Vec::new();
    // Deferred: integers of every width, &str, String, empty, braces, trailing comma.
    logger::info!("user {} logged in from {} after {} ms", u64max, s, i64min);
    expected.push(format!(
        "user {u64max} logged in from {s} after {i64min} ms|"
    ));
    logger::info!("{}{}{{}}{}}}{}", u8v, isz, owned, empty,);
    expected.push(format!("{u8v}{isz}{{}}{owned}}}{empty}|"));
    logger::info!("{}", inferred);
    expected.push(format!("{inferred}|"));
    logger::info!(k = 1; "with {} field", s);
    expected.push(format!("with {s} field| k=1"));
    // At the call site: too long, too much in total, other types, specs, positions,
    // inline names, expressions.
    logger::info!("long {}", long);
    expected.push(format!("long {long}|"));
    logger::info!("{} {}", many, many);
    expected.push(format!("{many} {many}|"));
    logger::info!("{} {} {}", f, c, b);
    expected.push(format!("{f} {c} {b}|"));
    logger::info!("{:>5}|{:?}|{:x}", u8v, s, u64max);
    expected.push(format!("{u8v:>5}|{s:?}|{u64max:x}|"));
    logger::info!("{1} {0}", u8v, s);
    expected.push(format!("{1} {0}|", u8v, s));
    logger::info!("{s} {}", u8v);
    expected.push(format!("{s} {u8v}|"));
    logger::info!("{} {}", u8v + 1, s.len());
    expected.push(format!("{} {}|", u8v + 1, s.len()));
    drop(guard);
    let text = read_text(&path);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got, expected);
    let messages: Vec<String> = json_lines(&json)
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    let expected_messages: Vec<&str> = expected
        .iter()
        .map(|l| l.rsplit_once('|').unwrap().0)
        .collect();
    assert_eq!(messages, expected_messages);
}
