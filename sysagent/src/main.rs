//! `sysagent --config sysagent.ini`: host metrics to InfluxDB and a Prometheus endpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use service_kit::shutdown::Shutdown;
use sysagent::Config;
use sysagent::config::ENV_PREFIX;

/// Host metrics (CPU, memory, swap, disks, disk I/O, network, load, processes, uptime) to
/// InfluxDB in Telegraf's names and to a Prometheus /metrics endpoint in node_exporter's names.
///
/// Every config key can also be set as SYSAGENT_<SECTION>_<KEY> (e.g. SYSAGENT_INFLUXDB_ADDRESS);
/// the flags below win over both.
#[derive(Debug, Parser)]
#[command(name = "sysagent", version)]
struct Cli {
    /// Config file (.ini, .conf or .toml). Without it, ./sysagent.ini if present, else
    /// defaults plus SYSAGENT_* environment variables only.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Collect once (twice, 1 s apart, for CPU %), print the InfluxDB line protocol to stdout
    /// and exit; nothing is sent or served.
    #[arg(long)]
    once: bool,
    /// Time between collections, e.g. 10s ([collect] interval).
    #[arg(long)]
    interval: Option<String>,
    /// InfluxDB base URL, empty to disable ([influxdb] address).
    #[arg(long)]
    influxdb_address: Option<String>,
    /// Address for /metrics, empty to disable ([prometheus] listen).
    #[arg(long)]
    listen: Option<String>,
    /// Log level of sysagent's own log: trace, debug, info, warn, error.
    #[arg(long, default_value = "info", env = "SYSAGENT_LOG_LEVEL")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_guard = init_logging(&cli.log_level)?;
    let path = cli.config.clone().or_else(|| {
        let default = PathBuf::from("sysagent.ini");
        default.exists().then_some(default)
    });
    let mut config: Config = match &path {
        Some(path) => service_kit::config::load(path, ENV_PREFIX)
            .with_context(|| format!("loading the config {}", path.display()))?,
        None => service_kit::config::load_env_only(ENV_PREFIX)
            .context("loading the config from SYSAGENT_* environment variables")?,
    };
    if let Some(v) = cli.interval {
        config.collect.interval = humantime::parse_duration(&v)
            .with_context(|| format!("--interval {v:?}: write e.g. 10s or 500ms"))?;
    }
    if let Some(v) = cli.influxdb_address {
        config.influxdb.address = v;
    }
    if let Some(v) = cli.listen {
        config.prometheus.listen = v;
    }
    if cli.once {
        // Only the collectors matter here; an output is not needed to print.
        if config.influxdb.address.trim().is_empty() && config.prometheus.listen.trim().is_empty() {
            config.prometheus.listen = "127.0.0.1:0".into();
        }
        let mut agent = sysagent::Agent::new(config).context("starting sysagent")?;
        let mut out = std::io::stdout().lock();
        for line in agent.collect_lines(std::time::Duration::from_secs(1)) {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
        return Ok(());
    }
    let agent = sysagent::Agent::new(config).context("starting sysagent")?;

    // One runtime thread (plus the agent's collection thread): a scrape takes tens of
    // microseconds and a write to InfluxDB a few requests a minute; more worker threads would
    // only add memory and wake-ups (see docs/bench/sysagent.md).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown
            .install_signal_handlers()
            .context("installing the SIGINT/SIGTERM handlers")?;
        agent.run(shutdown).await.context("running sysagent")
    })?;
    if report.undelivered > 0 {
        log::warn!(
            "exiting with {} points not delivered to InfluxDB",
            report.undelivered
        );
    }
    Ok(())
}

// LOGGER INIT SITE: the only place the process's logger is set up (console, stderr).
// Synchronous: sysagent logs a few lines an hour, and the async writer thread would wake up
// far more often than that (measured: docs/bench/sysagent.md).
fn init_logging(level: &str) -> anyhow::Result<logger::LoggerGuard> {
    logger::Builder::new()
        .sync()
        .level(level)
        .output("console", logger::OutputConfig::console())
        .init()
        .with_context(|| format!("setting up the log (--log-level {level:?})"))
}
