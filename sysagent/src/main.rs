//! `sysagent --config sysagent.ini`: host metrics to InfluxDB and a Prometheus endpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use service_kit::check::CheckArgs;
use service_kit::daemon::{Daemon, LogArgs, LogMode, Started, Threads};
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
    /// Config file (.ini, .conf or .toml). Without it, the file SYSAGENT_CONFIG names, else
    /// ./sysagent.ini if present, else defaults plus SYSAGENT_* environment variables only.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Collect once (twice, 1 s apart, for CPU %), print the InfluxDB line protocol to stdout
    /// and exit; nothing is sent or served.
    #[arg(long)]
    once: bool,
    /// Time between collections, e.g. 10s, 500ms or 10 (seconds) ([collect] interval).
    #[arg(long, value_parser = service_kit::duration::parse_seconds)]
    interval: Option<std::time::Duration>,
    /// InfluxDB base URL, empty to disable ([influxdb] address).
    #[arg(long)]
    influxdb_address: Option<String>,
    /// Address for /metrics, empty to disable ([prometheus] listen).
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    check: CheckArgs,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    // Synchronous logging: sysagent logs a few lines an hour, and the async writer thread
    // would wake up far more often than that (measured: docs/bench/sysagent.md).
    let daemon = Daemon::new(ENV_PREFIX)
        .log_mode(LogMode::Sync)
        .default_config("sysagent.ini");
    let path = daemon.config_path(cli.config.clone());
    if cli.check.requested() {
        let scope = cli.check.scope();
        let cli = &cli;
        return Ok(
            daemon.check(path.as_deref(), &cli.log, |mut config: Config| async move {
                apply_flags(&mut config, cli);
                sysagent::check::check(&config, scope).await
            }),
        );
    }
    // LOGGER INIT SITE: `start` loads the config and installs the process's logger from its
    // [log] section and --log-level (stderr, plus an optional JSON file).
    let Started {
        mut config,
        log_guard: _log_guard,
    } = daemon.start::<Config>(path.as_deref(), &cli.log)?;
    apply_flags(&mut config, &cli);
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
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let agent = sysagent::Agent::new(config).context("starting sysagent")?;

    // One runtime thread (plus the agent's collection thread): a scrape takes tens of
    // microseconds and a write to InfluxDB a few requests a minute; more worker threads would
    // only add memory and wake-ups (see docs/bench/sysagent.md).
    let report = daemon.run(Threads::Current, |shutdown| async move {
        agent.run(shutdown).await.context("running sysagent")
    })?;
    if report.undelivered > 0 {
        log::warn!(
            "exiting with {} points not delivered to InfluxDB",
            report.undelivered
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The flags that override config keys.
fn apply_flags(config: &mut Config, cli: &Cli) {
    if let Some(v) = cli.interval {
        config.collect.interval = v;
    }
    if let Some(v) = &cli.influxdb_address {
        config.influxdb.address = v.clone();
    }
    if let Some(v) = &cli.listen {
        config.prometheus.listen = v.clone();
    }
}
