//! One logger per process: `bench-peers <logger> <dir> <records>`.
//!
//! Logs `info!("user {} logged in from {} after {} ms", id, ip, ms)` N times from one
//! thread into `<dir>`, timing every call, then drains the logger (flush + join) and
//! prints one TSV line: name, records, lines found in the files, drained seconds,
//! records/s, caller p50/p99/p99.9/max in ns, peak RSS in KiB.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const IPS: [&str; 4] = ["10.0.0.1", "192.168.1.20", "172.16.4.7", "10.1.2.3"];

/// Log-linear histogram of nanoseconds: exact below 1024, 32 sub-buckets per power of 2 above.
struct Histo {
    counts: Vec<u64>,
    max: u64,
    /// Mean time per loop iteration (call + timer), ns.
    mean_ns: f64,
}

impl Histo {
    fn new() -> Self {
        Histo { counts: vec![0; 1024 + 64 * 32], max: 0, mean_ns: 0.0 }
    }
    fn idx(v: u64) -> usize {
        if v < 1024 {
            return v as usize;
        }
        let p = 63 - v.leading_zeros() as usize; // >= 10
        let sub = ((v >> (p - 5)) & 31) as usize;
        1024 + (p - 10) * 32 + sub
    }
    fn low(i: usize) -> u64 {
        if i < 1024 {
            return i as u64;
        }
        let p = (i - 1024) / 32 + 10;
        let sub = ((i - 1024) % 32) as u64;
        (1u64 << p) + (sub << (p - 5))
    }
    #[inline]
    fn add(&mut self, v: u64) {
        let i = Self::idx(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.max = self.max.max(v);
    }
    fn pct(&self, q: f64) -> u64 {
        let total: u64 = self.counts.iter().sum();
        let want = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::low(i);
            }
        }
        self.max
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn ticks() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Nanoseconds per tick, measured against the monotonic clock.
fn calibrate() -> f64 {
    let t0 = Instant::now();
    let c0 = ticks();
    std::thread::sleep(Duration::from_millis(200));
    let c1 = ticks();
    t0.elapsed().as_nanos() as f64 / (c1 - c0) as f64
}

/// Runs the logging loop with a per-call timer around `call`.
fn run(n: u64, ns_per_tick: f64, mut call: impl FnMut(u64, &str, u64)) -> Histo {
    let mut h = Histo::new();
    // The cost of the timer itself, subtracted from each sample.
    let mut overhead = u64::MAX;
    for _ in 0..1000 {
        let a = ticks();
        let b = ticks();
        overhead = overhead.min(b - a);
    }
    let t0 = Instant::now();
    for i in 0..n {
        let ip = IPS[(i & 3) as usize];
        let ms = i % 1000;
        let a = ticks();
        call(i, ip, ms);
        let b = ticks();
        h.add(((b - a).saturating_sub(overhead) as f64 * ns_per_tick) as u64);
    }
    h.mean_ns = t0.elapsed().as_nanos() as f64 / n as f64;
    h
}

fn peak_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_maxrss
    }
}

fn count_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        let mut f = std::fs::File::open(&p).expect("open log");
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = std::io::Read::read(&mut f, &mut buf).expect("read log");
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bench-peers <logger|disabled> <dir> <records>");
        std::process::exit(2);
    }
    let name = args[1].as_str();
    let dir = PathBuf::from(&args[2]);
    let n: u64 = args[3].parse().expect("records");
    std::fs::create_dir_all(&dir).expect("create dir");
    let file = dir.join("bench.log");
    let ns_per_tick = calibrate();

    let start = Instant::now();
    let histo = match name {
        "logger" | "logger-sync" | "logger-devnull" => {
            let target = if name == "logger-devnull" { PathBuf::from("/dev/null") } else { file.clone() };
            let mut b = logger::Builder::new().output(
                "file",
                logger::OutputConfig::file(&target)
                    .pattern("{time} {level} {module} {file}:{line} {message}"),
            );
            if name == "logger-sync" {
                b = b.sync();
            }
            // Diagnostic knob: queue size (default: the library's default).
            if let Some(q) = std::env::var("BENCH_QUEUE").ok().and_then(|v| v.parse().ok()) {
                b = b.queue_capacity(q);
            }
            let guard = b.init().expect("logger init");
            let h = run(n, ns_per_tick, |id, ip, ms| {
                logger::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            drop(guard);
            h
        }
        "logger-disabled" => {
            let guard = logger::Builder::new()
                .level("warn")
                .output("file", logger::OutputConfig::file(&file))
                .init()
                .expect("logger init");
            let h = run(n, ns_per_tick, |id, ip, ms| {
                logger::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            drop(guard);
            h
        }
        "spdlog" | "spdlog-async" => {
            use spdlog::sink::{AsyncPoolSink, FileSink, Sink};
            use std::sync::Arc;
            let file_sink: Arc<dyn Sink> = FileSink::builder()
                .path(&file)
                .truncate(true)
                .build_arc()
                .expect("spdlog file sink");
            let sink: Arc<dyn Sink> = if name == "spdlog-async" {
                AsyncPoolSink::builder()
                    .sink(file_sink)
                    .overflow_policy(spdlog::sink::OverflowPolicy::Block)
                    .build_arc()
                    .expect("spdlog async sink")
            } else {
                file_sink
            };
            let lg = spdlog::Logger::builder()
                .sink(sink)
                .build_arc()
                .expect("spdlog logger");
            spdlog::set_default_logger(lg.clone());
            let h = run(n, ns_per_tick, |id, ip, ms| {
                spdlog::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            lg.flush();
            // Dropping the last reference joins the async pool after it drains.
            spdlog::set_default_logger(Arc::new(
                spdlog::Logger::builder().build().expect("empty logger"),
            ));
            drop(lg);
            h
        }
        "ftlog" => {
            let guard = ftlog::builder()
                .bounded(100_000, true)
                .root(ftlog::appender::FileAppender::new(&file))
                .try_init()
                .expect("ftlog init");
            let h = run(n, ns_per_tick, |id, ip, ms| {
                log::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            drop(guard);
            h
        }
        "fast_log" => {
            fast_log::init(
                fast_log::Config::new()
                    .file(file.to_str().expect("utf-8 path"))
                    .chan_len(Some(100_000))
                    .format(
                        fast_log::FastLogFormat::new()
                            .set_display_line_level(log::LevelFilter::Trace),
                    ),
            )
            .expect("fast_log init");
            let h = run(n, ns_per_tick, |id, ip, ms| {
                log::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            fast_log::flush().expect("fast_log flush").wait();
            h
        }
        "tracing-nb" => {
            let f = std::fs::File::create(&file).expect("create");
            let (nb, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(f);
            tracing_subscriber::fmt()
                .with_writer(nb)
                .with_ansi(false)
                .with_file(true)
                .with_line_number(true)
                .with_target(true)
                .init();
            let h = run(n, ns_per_tick, |id, ip, ms| {
                tracing::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            drop(guard);
            h
        }
        "log4rs" => {
            use log4rs::append::file::FileAppender;
            use log4rs::config::{Appender, Config, Root};
            use log4rs::encode::pattern::PatternEncoder;
            let fa = FileAppender::builder()
                .encoder(Box::new(PatternEncoder::new(
                    "{d(%Y-%m-%dT%H:%M:%S%.6f)} {l} {M} {f}:{L} {m}{n}",
                )))
                .append(false)
                .build(&file)
                .expect("log4rs appender");
            let cfg = Config::builder()
                .appender(Appender::builder().build("file", Box::new(fa)))
                .build(Root::builder().appender("file").build(log::LevelFilter::Info))
                .expect("log4rs config");
            log4rs::init_config(cfg).expect("log4rs init");
            let h = run(n, ns_per_tick, |id, ip, ms| {
                log::info!("user {} logged in from {} after {} ms", id, ip, ms)
            });
            log::logger().flush();
            h
        }
        other => {
            eprintln!("unknown logger {other}");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let rss = peak_rss_kib();
    let lines = count_lines(&dir);
    println!(
        "{name}\t{n}\t{lines}\t{secs:.3}\t{:.0}\t{:.0}\t{}\t{}\t{}\t{}\t{}",
        n as f64 / secs,
        histo.mean_ns,
        histo.pct(0.50),
        histo.pct(0.99),
        histo.pct(0.999),
        histo.max,
        rss
    );
}
