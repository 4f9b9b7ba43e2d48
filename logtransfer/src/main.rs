//! `logtransfer --config transfer.ini`: Kafka to Elasticsearch.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Consumes Kafka topics and indexes the records into Elasticsearch with batched _bulk
/// requests; every record lands exactly once (or in the dead-letter topic).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (.ini/.conf or .toml); `LOGTRANSFER_<SECTION>_<KEY>` variables
    /// override it. Without it, defaults plus the environment.
    #[arg(short, long, env = "LOGTRANSFER_CONFIG")]
    config: Option<PathBuf>,
}

/// Our `logger`: text on stderr, plus ECS JSON lines in `[log] file` when set (which a
/// logagent can ship like any other app's). The library logs through the `log` facade.
fn init_logging(config: &logtransfer::config::LogConfig) -> anyhow::Result<logger::LoggerGuard> {
    let mut builder = logger::Builder::new()
        .level(config.level.clone())
        .output("console", logger::OutputConfig::console());
    if !config.file.is_empty() {
        builder = builder.output("file", logger::OutputConfig::file(&config.file).json());
    }
    builder.init().with_context(|| {
        format!(
            "cannot set up logging ([log] level {:?}, file {:?})",
            config.level, config.file
        )
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: logtransfer::config::Config = match &args.config {
        Some(path) => service_kit::config::load(path, logtransfer::config::ENV_PREFIX),
        None => service_kit::config::load_env_only(logtransfer::config::ENV_PREFIX),
    }
    .context("cannot load the configuration")?;
    let _log_guard = init_logging(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = service_kit::shutdown::Shutdown::new();
        shutdown
            .install_signal_handlers()
            .context("cannot install the SIGINT/SIGTERM handlers")?;
        logtransfer::run(config, shutdown).await?;
        Ok(())
    })
}
