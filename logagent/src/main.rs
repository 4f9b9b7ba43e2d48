//! `logagent --config conf.ini`: tails the files etcd names and ships their lines to Kafka.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use logagent::config::LocalConfig;
use service_kit::shutdown::Shutdown;

/// Tails log files and ships new lines to Kafka; which files go to which topic comes from etcd.
///
/// Every config key can also be set as LOGAGENT_<SECTION>_<KEY> (e.g. LOGAGENT_KAFKA_ADDRESS);
/// the flags below win over both.
#[derive(Debug, Parser)]
#[command(name = "logagent", version)]
struct Cli {
    /// Local config file (.ini, .conf or .toml).
    #[arg(long, short, default_value = "conf.ini")]
    config: PathBuf,
    /// Kafka brokers, comma-separated ([kafka] address).
    #[arg(long)]
    kafka_address: Option<String>,
    /// etcd endpoints, comma-separated ([etcd] address).
    #[arg(long)]
    etcd_address: Option<String>,
    /// etcd key of the collect config; {ip} and {hostname} are substituted ([etcd] collect_log_key).
    #[arg(long)]
    collect_key: Option<String>,
    /// Checkpoints and cached collect config ([agent] data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Comma-separated globs etcd may name ([agent] allowed_paths).
    #[arg(long)]
    allowed_paths: Option<String>,
    /// Prometheus endpoint, empty to disable ([agent] metrics_address).
    #[arg(long)]
    metrics_address: Option<String>,
    /// Log level of the agent's own log: trace, debug, info, warn, error.
    #[arg(long, default_value = "info", env = "LOGAGENT_LOG_LEVEL")]
    log_level: String,
}

// The agent's own allocations (per-line acknowledgement tokens, topic names, batches) are
// made on the runtime thread and freed on the acknowledgement thread. glibc's arenas turn
// that hand-over into lock contention on every line; mimalloc frees across threads without
// a lock. Measured in docs/BENCHMARKS.md: about a fifth less CPU per line. Transparent huge
// pages are off (`no_thp`), or the first allocations fault in 2 MiB pages and double the
// idle RSS. librdkafka's own allocations still use glibc, tuned below.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logagent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let log_guard = init_logging(&cli.log_level)?;
    let mut config: LocalConfig = service_kit::config::load(&cli.config, "LOGAGENT")
        .with_context(|| format!("loading the local config {}", cli.config.display()))?;
    if let Some(v) = cli.kafka_address {
        config.kafka.address = v;
    }
    if let Some(v) = cli.etcd_address {
        config.etcd.address = v;
    }
    if let Some(v) = cli.collect_key {
        config.etcd.collect_log_key = v;
    }
    if let Some(v) = cli.data_dir {
        config.agent.data_dir = v;
    }
    if let Some(v) = cli.allowed_paths {
        config.agent.allowed_paths = v;
    }
    if let Some(v) = cli.metrics_address {
        config.agent.metrics_address = v;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.agent.worker_threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown
            .install_signal_handlers()
            .context("installing the SIGINT/SIGTERM handlers")?;
        let agent = logagent::agent::start(config, shutdown).await?;
        agent.task.await.context("the agent task panicked")??;
        anyhow::Ok(())
    });
    // Dropping the guard flushes the asynchronous log queue.
    drop(log_guard);
    result
}

/// glibc (which librdkafka allocates from) gives each thread that allocates its own arena,
/// and freed memory stays in them: with many arenas RSS is several times the live data. Two
/// arenas keep the agent's RSS close to what it actually holds.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

// LOGGER INIT SITE: the only place the process's logger is set up.
fn init_logging(level: &str) -> anyhow::Result<logger::LoggerGuard> {
    logger::Builder::new()
        // The agent logs a few lines per event, not per line shipped: the default queue
        // (16384 records, ~3 MiB kept resident) would be a tenth of its memory.
        .queue_capacity(1024)
        .level(level)
        .output("console", logger::OutputConfig::console())
        .init()
        .with_context(|| format!("initialising the logger with level {level:?}"))
}
