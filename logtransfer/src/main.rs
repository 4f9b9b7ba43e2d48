//! `logtransfer --config transfer.ini`: Kafka to Elasticsearch.

use std::path::PathBuf;

use clap::Parser;
use logtransfer::config::{Config, ENV_PREFIX};
use service_kit::check::CheckArgs;
use service_kit::daemon::{Daemon, LogArgs, Started, Threads};

/// Consumes Kafka topics and indexes the records into Elasticsearch with batched _bulk
/// requests; every record lands exactly once (or in the dead-letter topic).
///
/// Every config key can also be set as LOGTRANSFER_<SECTION>_<KEY> (e.g. LOGTRANSFER_ES_ADDRESS);
/// the flags below win over both.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (.ini/.conf or .toml). Without it, the file LOGTRANSFER_CONFIG
    /// names, else defaults plus LOGTRANSFER_* environment variables only.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    check: CheckArgs,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    // The logger's default asynchronous queue: logtransfer must not wait on its own log
    // while it holds a batch. No default file: without --config or LOGTRANSFER_CONFIG it
    // has always run on defaults plus the environment (containers configure it that way).
    let daemon = Daemon::new(ENV_PREFIX);
    let path = daemon.config_path(args.config);
    if args.check.requested() {
        let scope = args.check.scope();
        return Ok(
            daemon.check(path.as_deref(), &args.log, |config| async move {
                logtransfer::check::check(&config, scope).await
            }),
        );
    }
    // LOGGER INIT SITE: `start` loads the config and installs our `logger` from its [log]
    // section and --log-level: text on stderr, plus ECS JSON lines in `[log] file` when set
    // (which a logagent can ship like any other app's).
    let Started {
        config,
        log_guard: _log_guard,
    } = daemon.start::<Config>(path.as_deref(), &args.log)?;
    // Parsing and encoding scale with the cores: tokio's default of one worker per core.
    daemon.run(Threads::PerCore, |shutdown| async move {
        logtransfer::run(config, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}
