//! Criterion suite for the caller side and the formats.
//!
//! `cargo bench -p logger --bench hot_path`
//!
//! The whole-process comparison with other loggers lives in `logger/bench-peers/`.

use std::borrow::Cow;
use std::hint::black_box;
use std::io;

use criterion::{Criterion, criterion_group, criterion_main};
use logger::format::{FormatCtx, JsonFormat, PatternFormat};
use logger::{Format, LevelFilter, Origin, Output, Record, TimeZoneKind, Value};

/// Discards everything: isolates the caller side and the queue.
struct Null;

impl Output for Null {
    fn write(&mut self, _line: &[u8], _record: &Record) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "null".into()
    }
}

fn record() -> Record {
    Record {
        level: logger::Level::Info,
        time_us: 1_795_615_200_123_456,
        origin: Origin::other(
            "my_app::db",
            "src/db.rs",
            42,
            Some(Cow::Borrowed("connect")),
        ),
        thread_id: 4242,
        thread_name: Some("main"),
        message: String::from("user 42 logged in from 10.0.0.1 after 17 ms").into(),
        fields: vec![(Cow::Borrowed("user"), Value::U64(42))],
    }
}

fn caller(c: &mut Criterion) {
    let guard = logger::Builder::new()
        .level("info")
        .custom("null", LevelFilter::TRACE, PatternFormat::default(), Null)
        .queue_capacity(1 << 16)
        .init()
        .expect("logger init");
    let mut g = c.benchmark_group("caller");
    g.bench_function("disabled_debug", |b| {
        b.iter(|| {
            logger::debug!(
                "user {} logged in from {}",
                black_box(42),
                black_box("10.0.0.1")
            )
        })
    });
    let ip = "10.0.0.1";
    let mut id = 0u64;
    // Plain identifiers of integer and string types: captured, formatted on the writer.
    g.bench_function("enabled_info_3_args", |b| {
        b.iter(|| {
            id += 1;
            let ms = id % 1000;
            logger::info!("user {} logged in from {} after {} ms", id, ip, ms)
        })
    });
    // An expression argument: formatted on the caller with `core::fmt`.
    g.bench_function("enabled_info_3_args_caller_formats", |b| {
        b.iter(|| {
            id += 1;
            logger::info!("user {} logged in from {} after {} ms", id, ip, id % 1000)
        })
    });
    g.bench_function("enabled_info_with_fields", |b| {
        b.iter(|| {
            id += 1;
            logger::info!(user = id, ip = ip; "login")
        })
    });
    g.bench_function("log_facade_info", |b| {
        b.iter(|| {
            id += 1;
            log::info!("user {} logged in from {}", id, ip)
        })
    });
    g.finish();
    drop(guard);
}

fn formats(c: &mut Criterion) {
    let r = record();
    let mut g = c.benchmark_group("format");
    let mut buf = Vec::with_capacity(1024);
    let mut ctx = FormatCtx::new(TimeZoneKind::Utc, false);
    let pattern = PatternFormat::default();
    g.bench_function("pattern_default", |b| {
        b.iter(|| {
            buf.clear();
            pattern.format(black_box(&r), &mut ctx, &mut buf);
        })
    });
    g.bench_function("json_ecs", |b| {
        b.iter(|| {
            buf.clear();
            JsonFormat.format(black_box(&r), &mut ctx, &mut buf);
        })
    });
    g.finish();
}

criterion_group!(benches, caller, formats);
criterion_main!(benches);
