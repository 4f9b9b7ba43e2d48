//! `etcd-put --endpoints … put --key K --file conf.json`: validated writes of logagent's
//! collect config.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Validates and writes logagent's collect configuration into etcd.
///
/// Keys may use {ip} and {hostname}, substituted like the agent does (this host's values
/// unless --ip / --hostname are given).
#[derive(Debug, Parser)]
#[command(name = "etcd-put", version)]
struct Cli {
    /// etcd endpoints, comma-separated.
    #[arg(long, env = "ETCD_ENDPOINTS", default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// Connect and request timeout, in seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Value for {ip} in keys (default: this host's primary IPv4).
    #[arg(long)]
    ip: Option<String>,
    /// Value for {hostname} in keys (default: this host's name).
    #[arg(long)]
    hostname: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates a collect config and writes it (from --file, --value, or stdin).
    Put {
        /// The key, e.g. /logagent/{ip}/collect_config.
        #[arg(long)]
        key: String,
        /// Read the value from this file.
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        /// The value itself.
        #[arg(long)]
        value: Option<String>,
        /// Also refuse paths outside these comma-separated globs (the agent's allowed_paths).
        #[arg(long)]
        allowed_paths: Option<String>,
    },
    /// Prints the value of a key.
    Get {
        /// The key.
        #[arg(long)]
        key: String,
    },
    /// Deletes a key (the agent then collects nothing).
    Delete {
        /// The key.
        #[arg(long)]
        key: String,
    },
    /// Lists keys and values under a prefix.
    List {
        /// The prefix, e.g. /logagent/.
        #[arg(long)]
        prefix: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("etcd-put: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let ip = cli
        .ip
        .clone()
        .unwrap_or_else(service_kit::host::primary_ipv4);
    let hostname = cli
        .hostname
        .clone()
        .unwrap_or_else(service_kit::host::hostname);
    let key = |k: &str| etcd_put::expand_key(k, &ip, &hostname);

    // Validate before connecting: invalid input never needs etcd and never writes.
    let put_input = match &cli.command {
        Command::Put {
            file,
            value,
            allowed_paths,
            ..
        } => {
            let (bytes, source_name) = match (file, value) {
                (Some(f), _) => (
                    std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
                    f.display().to_string(),
                ),
                (None, Some(v)) => (v.clone().into_bytes(), "--value".to_string()),
                (None, None) => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the value from stdin")?;
                    (buf, "stdin".to_string())
                }
            };
            let allowed = etcd_put::allowed_paths(allowed_paths.as_deref())?;
            etcd_put::validate(&bytes, &source_name, &allowed)?;
            Some((bytes, source_name, allowed))
        }
        _ => None,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let endpoints = service_kit::split_list(&cli.endpoints);
        let mut client =
            service_kit::etcd::connect(&endpoints, Duration::from_secs(cli.timeout.max(1))).await?;
        match cli.command {
            Command::Put { key: k, .. } => {
                let k = key(&k);
                if let Some((bytes, source_name, allowed)) = put_input {
                    let rev =
                        etcd_put::put(&mut client, &k, &bytes, &source_name, &allowed).await?;
                    println!("put {k} (revision {rev})");
                }
            }
            Command::Get { key: k } => {
                let k = key(&k);
                match etcd_put::get(&mut client, &k).await? {
                    Some((value, _)) => println!("{}", String::from_utf8_lossy(&value)),
                    None => {
                        eprintln!("etcd-put: key {k} does not exist");
                        return Ok(std::process::ExitCode::from(3));
                    }
                }
            }
            Command::Delete { key: k } => {
                let k = key(&k);
                let n = etcd_put::delete(&mut client, &k).await?;
                println!("deleted {n} key(s)");
            }
            Command::List { prefix } => {
                for (k, v) in etcd_put::list(&mut client, &key(&prefix)).await? {
                    println!("{k}\t{}", String::from_utf8_lossy(&v));
                }
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}
