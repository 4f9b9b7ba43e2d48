//! `logagent --config conf.ini`: tails the files etcd names and ships their lines to Kafka.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use logagent::config::{ENV_PREFIX, LocalConfig};
use service_kit::check::CheckArgs;
use service_kit::daemon::{Daemon, LogArgs, LogMode, Started, Threads};

/// Tails log files and ships new lines to Kafka; which files go to which topic comes from etcd.
///
/// Every config key can also be set as LOGAGENT_<SECTION>_<KEY> (e.g. LOGAGENT_KAFKA_ADDRESS);
/// the flags below win over both.
#[derive(Debug, Parser)]
#[command(name = "logagent", version)]
struct Cli {
    /// Local config file (.ini, .conf or .toml). Without it, the file LOGAGENT_CONFIG names,
    /// else ./conf.ini if present, else defaults plus LOGAGENT_* environment variables only.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
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
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    check: CheckArgs,
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
        Ok(code) => code,
        Err(e) => {
            eprintln!("logagent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    // The agent logs a few lines per event, not per line shipped: the logger's default queue
    // (16384 records, ~3 MiB kept resident) would be a tenth of its memory.
    let daemon = Daemon::new(ENV_PREFIX)
        .log_mode(LogMode::Async {
            queue_capacity: Some(1024),
        })
        .default_config("conf.ini");
    let path = daemon.config_path(cli.config.clone());
    if cli.check.requested() {
        let (scope, cli) = (cli.check.scope(), &cli);
        let code = daemon.check(path.as_deref(), &cli.log, |mut config| async move {
            apply_flags(&mut config, cli);
            logagent::check::check(&config, scope).await
        });
        return Ok(code);
    }
    // LOGGER INIT SITE: `start` loads the config and installs the process's logger from its
    // [log] section and --log-level. The guard lives until `run` returns: dropping it
    // flushes the asynchronous log queue.
    let Started {
        mut config,
        log_guard: _log_guard,
    } = daemon.start::<LocalConfig>(path.as_deref(), &cli.log)?;
    apply_flags(&mut config, &cli);
    let threads = Threads::Workers(config.agent.worker_threads);
    daemon.run(threads, |shutdown| async move {
        let agent = logagent::agent::start(config, shutdown).await?;
        agent.task.await.context("the agent task panicked")??;
        anyhow::Ok(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The flags that override config keys.
fn apply_flags(config: &mut LocalConfig, cli: &Cli) {
    if let Some(v) = &cli.kafka_address {
        config.kafka.address = v.clone();
    }
    if let Some(v) = &cli.etcd_address {
        config.etcd.address = v.clone();
    }
    if let Some(v) = &cli.collect_key {
        config.etcd.collect_log_key = v.clone();
    }
    if let Some(v) = &cli.data_dir {
        config.agent.data_dir = v.clone();
    }
    if let Some(v) = &cli.allowed_paths {
        config.agent.allowed_paths = v.clone();
    }
    if let Some(v) = &cli.metrics_address {
        config.agent.metrics_address = v.clone();
    }
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
