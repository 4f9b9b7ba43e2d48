//! `etcd-put --endpoints … put --key K --file conf.json`: validated writes of logagent's
//! collect config.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use service_kit::daemon::{LogArgs, LogConfig, LogMode};
use service_kit::etcd::{EtcdSecurity, EtcdTarget, Spelling};
use service_kit::secret::Secret;

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
    /// Connect and request timeout: 5s, 500ms, or a number of seconds.
    #[arg(long, default_value = "5", value_parser = service_kit::duration::parse_seconds)]
    timeout: Duration,
    /// etcd user, `NAME` or `NAME:PASSWORD` (as etcdctl). Without a password in it, give
    /// --password-file (or ETCDCTL_PASSWORD).
    #[arg(long, env = "ETCDCTL_USER", value_name = "NAME[:PASSWORD]", value_parser = parse_user, hide_env_values = true)]
    user: Option<(String, Secret)>,
    /// The --user's password (as etcdctl; it shows in `ps`: prefer --password-file or the
    /// environment).
    #[arg(long, env = "ETCDCTL_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    password: Option<Secret>,
    /// File holding the --user's password (one line).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed etcd's certificate, for https:// endpoints (default:
    /// the system's trusted CAs).
    #[arg(long, env = "ETCDCTL_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM), for an etcd that requires one (--client-cert-auth).
    #[arg(long, env = "ETCDCTL_CERT", value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "ETCDCTL_KEY", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Value for {ip} in keys (default: this host's primary IPv4).
    #[arg(long)]
    ip: Option<String>,
    /// Value for {hostname} in keys (default: this host's name).
    #[arg(long)]
    hostname: Option<String>,
    #[command(flatten)]
    log: LogArgs,
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
        /// Validate the value and read the key, write nothing: print a table of what a put
        /// would do; exit 0 when it would succeed, 1 otherwise.
        #[arg(long)]
        dry_run: bool,
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
    /// Lists keys and values under a prefix (read in pages; a slow listing shows its
    /// progress on stderr).
    List {
        /// The prefix, e.g. /logagent/.
        #[arg(long)]
        prefix: String,
        /// Keys per request.
        #[arg(long, default_value_t = etcd_put::LIST_PAGE)]
        page_size: i64,
    },
}

/// `NAME` or `NAME:PASSWORD`, the password kept as a [`Secret`] (never printed).
fn parse_user(value: &str) -> Result<(String, Secret), String> {
    let (name, password) = value.split_once(':').unwrap_or((value, ""));
    if name.is_empty() {
        return Err("the user name is empty; write NAME or NAME:PASSWORD".into());
    }
    Ok((name.to_owned(), Secret::new(password)))
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

impl Cli {
    /// Where and how to connect, from --endpoints and the etcdctl-style security flags.
    fn etcd_target(&self) -> anyhow::Result<EtcdTarget> {
        let endpoints = service_kit::split_list(&self.endpoints);
        let (username, user_password) = self.user.clone().unwrap_or_default();
        let password = match (&self.password, user_password.is_empty()) {
            (Some(password), true) => password.clone(),
            (Some(_), false) => {
                anyhow::bail!("both --user NAME:PASSWORD and --password are set; keep one of them")
            }
            (None, _) => user_password,
        };
        let security = EtcdSecurity {
            username,
            password,
            password_file: self.password_file.clone().unwrap_or_default(),
            tls_ca_file: self.cacert.clone().unwrap_or_default(),
            tls_cert_file: self.cert.clone().unwrap_or_default(),
            tls_key_file: self.key.clone().unwrap_or_default(),
        };
        let credentials = security.resolve(&endpoints, Spelling::EtcdctlFlags)?;
        Ok(
            EtcdTarget::new(endpoints, self.timeout.max(Duration::from_millis(100)))
                .with_credentials(credentials)
                .with_spelling(Spelling::EtcdctlFlags),
        )
    }
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
    // Results go to stdout; its own log (warnings only, unless --log-level) to stderr, in
    // the same vocabulary as the daemons'.
    let _log_guard = LogConfig {
        level: "warn".into(),
        file: String::new(),
    }
    .with_args(&cli.log)
    .install(LogMode::Sync)?;
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
            dry_run,
            key: k,
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
            if *dry_run {
                return Ok(dry_run_put(&cli, &key(k), &bytes, &source_name, &allowed));
            }
            etcd_put::validate(&bytes, &source_name, &allowed)?;
            Some((bytes, source_name, allowed))
        }
        _ => None,
    };

    // Flags checked and files read before connecting, like the value.
    let target = cli.etcd_target()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = service_kit::etcd::connect(&target).await?;
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
            Command::List { prefix, page_size } => {
                list(&mut client, &key(&prefix), page_size).await?
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// `list`: key<TAB>value lines on stdout as the pages arrive, progress on stderr when slow.
async fn list(client: &mut etcd_client::Client, prefix: &str, page: i64) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let mut progress = etcd_put::ListProgress::new(tty, Instant::now());
    let mut out = std::io::stdout().lock();
    let done = etcd_put::list_pages(client, prefix, page, |kvs, listed| {
        for (k, v) in kvs {
            // A closed stdout (`| head`) ends the listing.
            if writeln!(out, "{k}\t{}", String::from_utf8_lossy(v)).is_err() {
                return false;
            }
        }
        if let Some(line) = progress.page(listed, Instant::now()) {
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        }
        true
    })
    .await?;
    let _ = out.flush();
    if let Some(line) = progress.finish(done, Instant::now()) {
        if tty {
            eprintln!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
    Ok(())
}

/// `put --dry-run`: the table of what a put would do, its exit code.
fn dry_run_put(
    cli: &Cli,
    key: &str,
    bytes: &[u8],
    source_name: &str,
    allowed: &collect_config::AllowedPaths,
) -> std::process::ExitCode {
    let target = match cli.etcd_target() {
        Ok(target) => target,
        Err(e) => {
            let mut report = service_kit::check::CheckReport::new();
            report.fail("etcd flags", format!("{e:#}"));
            print!("{}", report.render());
            return report.exit_code();
        }
    };
    let report = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            runtime.block_on(etcd_put::dry_run(&target, key, bytes, source_name, allowed))
        }
        Err(e) => {
            let mut report = service_kit::check::CheckReport::new();
            report.fail("runtime", format!("cannot start tokio: {e}"));
            report
        }
    };
    print!("{}", report.render());
    report.exit_code()
}
