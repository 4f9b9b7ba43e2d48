//! A small service that logs a realistic mix of levels as JSON into a rotating file,
//! for logagent to tail: `<dir>/app.log`, rotated to `app.log.<timestamp>` at
//! `--max-size` or every `--period`.
//!
//! `cargo run -p logger --example demo_app -- --dir /tmp/demo-logs --rate 200 --count 0`
//! (`--count 0` runs until Ctrl-C; every flag also reads an env var, e.g. DEMO_DIR.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use logger::OutputConfig;

/// Logs like a web service until Ctrl-C or `--count` records.
#[derive(Parser, Debug)]
struct Args {
    /// Directory for app.log and its rotated files.
    #[arg(long, env = "DEMO_DIR", default_value = "/tmp/demo-logs")]
    dir: String,
    /// Records per second.
    #[arg(long, env = "DEMO_RATE", default_value_t = 100)]
    rate: u64,
    /// Stop after this many records; 0 = until Ctrl-C.
    #[arg(long, env = "DEMO_COUNT", default_value_t = 0)]
    count: u64,
    /// Rotate when the file reaches this size.
    #[arg(long, env = "DEMO_MAX_SIZE", default_value = "10MB")]
    max_size: String,
    /// Rotate at every multiple of this period.
    #[arg(long, env = "DEMO_PERIOD", default_value = "1h")]
    period: String,
    /// Rotated files to keep.
    #[arg(long, env = "DEMO_KEEP", default_value_t = 10)]
    keep: usize,
    /// Service name written in every record.
    #[arg(long, env = "DEMO_SERVICE", default_value = "checkout")]
    service: String,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const PATHS: [&str; 6] = [
    "/",
    "/cart",
    "/checkout",
    "/api/items",
    "/api/pay",
    "/login",
];
const USERS: [&str; 5] = ["ann", "bob", "chen", "dana", "eve"];

mod http {
    pub fn request(n: u64, path: &str, user: &str, service: &str) {
        let roll = fastrand::u32(0..1000);
        let ms = fastrand::u64(1..60) + if roll > 950 { 900 } else { 0 };
        match roll {
            0..=9 => logger::error!(
                request = n, path = path, user = user, service = service, status = 500u32, latency_ms = ms;
                "request {} to {} failed: upstream reset", n, path),
            10..=59 => logger::warn!(
                request = n, path = path, user = user, service = service, status = 429u32, latency_ms = ms;
                "request {} to {} throttled", n, path),
            60..=199 => super::db::query(n, path, ms),
            200..=249 => logger::trace!(request = n; "headers parsed for {}", path),
            _ => logger::info!(
                request = n, path = path, user = user, service = service, status = 200u32, latency_ms = ms;
                "{} {} served in {} ms", user, path, ms),
        }
    }
}

mod db {
    pub fn query(n: u64, path: &str, ms: u64) {
        logger::debug!(request = n, rows = fastrand::u32(0..50), query_ms = ms / 3; "query for {} done", path);
    }
}

fn main() {
    let args = Args::parse();
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut out = OutputConfig::file(format!("{}/app.log", args.dir))
        .json()
        .keep(args.keep);
    out.rotation.max_size = Some(args.max_size.clone());
    out.rotation.period = Some(args.period.clone());
    let guard = match logger::Builder::new()
        .level("debug,demo_app::http=trace")
        .output("app", out)
        .output("console", OutputConfig::console().level("error"))
        .init()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("demo_app: {e}");
            std::process::exit(2);
        }
    };
    logger::info!(service = args.service.as_str(), rate = args.rate; "demo_app started, logging into {}", args.dir);
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let start = Instant::now();
    let mut n = 0u64;
    while !STOP.load(Ordering::SeqCst) && (args.count == 0 || n < args.count) {
        let path = PATHS[fastrand::usize(..PATHS.len())];
        let user = USERS[fastrand::usize(..USERS.len())];
        http::request(n, path, user, &args.service);
        n += 1;
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    logger::info!(records = n; "demo_app stopping after {} records", n);
    drop(guard);
    eprintln!("demo_app: wrote {n} records to {}/app.log", args.dir);
}
