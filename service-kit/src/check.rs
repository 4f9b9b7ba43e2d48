//! `--check` and `--check-connections`, shared by every daemon (the equivalent of `vector
//! validate`, `filebeat test config` / `test output`, `telegraf --test`):
//!
//! ```text
//! main: parse the CLI (`#[command(flatten)] check: CheckArgs`)
//!   -> if check.requested(): Daemon::check(path, log, |config| the binary's own checks)
//!        load the config exactly as a start does (a load error is a failed row),
//!        run the checks (each endpoint bounded by --check-timeout), print the table on
//!        stdout, exit 0 when no row failed, 1 otherwise. Nothing is started or written.
//! ```
//!
//! What each binary checks is its own business (its library's `check` module); the rows,
//! the table, the exit code and the bounded waits are here. Every client a check uses is
//! built by the same constructor the daemon uses, so a check covers the same TLS and
//! credentials settings. Details never carry a secret: they are built from our own error
//! messages, which redact credentials, and from what the config names (addresses, keys).

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonConfig, DaemonError, LogArgs, Started};

/// The default of `--check-timeout`: the longest wait for one endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `--check`, `--check-connections` and `--check-timeout`, shared by every daemon:
/// `#[command(flatten)] check: CheckArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Validate the config (and what it names) without starting: print a table of what is
    /// fine and what is not, exit 0 when nothing failed, 1 otherwise.
    #[arg(long)]
    pub check: bool,
    /// Like --check, and also connect to every endpoint the daemon would use.
    #[arg(long)]
    pub check_connections: bool,
    /// With --check: the longest wait for one endpoint, e.g. 5s or 500ms.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::duration::parse_seconds)]
    pub check_timeout: Duration,
}

impl Default for CheckArgs {
    fn default() -> Self {
        CheckArgs {
            check: false,
            check_connections: false,
            check_timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl CheckArgs {
    /// Whether a check was asked for instead of a start.
    pub fn requested(&self) -> bool {
        self.check || self.check_connections
    }

    /// What the binary's checks are asked to do.
    pub fn scope(&self) -> CheckScope {
        CheckScope {
            connections: self.check_connections,
            timeout: self.check_timeout,
        }
    }
}

/// What a binary's checks do: how far they go and how long one endpoint may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckScope {
    /// Connect to every endpoint (`--check-connections`), not only to what the config
    /// itself needs (logagent's collect config in etcd).
    pub connections: bool,
    /// The longest wait for one endpoint (`--check-timeout`).
    pub timeout: Duration,
}

impl CheckScope {
    /// The wait for an endpoint whose configured timeout is `configured`: the shorter one.
    pub fn timeout_for(&self, configured: Duration) -> Duration {
        configured.min(self.timeout).max(Duration::from_millis(1))
    }
}

/// The outcome of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but probably not as meant (a missing collect config key): does not fail the check.
    Warn,
    /// Would not work: the check exits non-zero.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One row: what was checked, how it went, and the detail (what was found, or what is wrong
/// and what to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was checked: a config key (`[kafka] address`) or an endpoint.
    pub subject: String,
    /// How it went.
    pub status: Status,
    /// What was found, or the reason and the fix.
    pub detail: String,
}

/// The rows of one check, in the order they were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    rows: Vec<Row>,
}

impl CheckReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row.
    pub fn push(&mut self, subject: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.rows.push(Row {
            subject: subject.into(),
            status,
            detail: one_line(&detail.into()),
        });
    }

    /// Adds a fine row.
    pub fn ok(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, Status::Ok, detail);
    }

    /// Adds a warning row.
    pub fn warn(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, Status::Warn, detail);
    }

    /// Adds a failed row.
    pub fn fail(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, Status::Fail, detail);
    }

    /// Adds a row for `result`: fine with `found(&value)` as detail, or failed with the
    /// error. Returns the value when there was one.
    pub fn record<T, E: Display>(
        &mut self,
        subject: impl Into<String>,
        result: Result<T, E>,
        found: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.ok(subject, found(&value));
                Some(value)
            }
            Err(e) => {
                self.fail(subject, e.to_string());
                None
            }
        }
    }

    /// Appends the rows of `other`.
    pub fn extend(&mut self, other: CheckReport) {
        self.rows.extend(other.rows);
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Whether any row failed.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.status == Status::Fail)
    }

    /// 0 when no row failed, 1 otherwise (warnings do not fail a check).
    pub fn exit_code(&self) -> ExitCode {
        if self.failed() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// The table: one row per line under a header, then a summary line.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.subject.chars().count())
            .chain(["CHECK".len()])
            .max()
            .unwrap_or(0);
        let mut out = format!("{:<width$}  STATUS  DETAIL\n", "CHECK");
        for row in &self.rows {
            out.push_str(&format!(
                "{:<width$}  {:<6}  {}\n",
                row.subject,
                row.status.label(),
                row.detail
            ));
        }
        let count = |s: Status| self.rows.iter().filter(|r| r.status == s).count();
        out.push_str(&format!(
            "{} ok, {} warning(s), {} failed\n",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        ));
        out
    }
}

/// Multi-line error chains become one table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error with its causes (`error sending request: ...: Connection refused`): the top
/// level alone often says only that something failed.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// Runs `work` for at most `timeout`: its error (with causes) as text, or that `what` did
/// not answer in time.
pub async fn within<T, E>(
    timeout: Duration,
    what: &str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, String>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(describe(&*e.into())),
        Err(_) => Err(format!(
            "{what} did not answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// Runs the blocking `work` (a librdkafka call) on a blocking thread for at most `timeout`.
pub async fn within_blocking<T, E>(
    timeout: Duration,
    what: &str,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String>
where
    T: Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(work);
    match within(timeout, what, task).await? {
        Ok(value) => Ok(value),
        Err(e) => Err(describe(&*e.into())),
    }
}

/// Checks that `address` (`host:port`) has the shape of a listen address.
pub fn listen_address_syntax(address: &str) -> Result<(), String> {
    let (host, port) = address.trim().rsplit_once(':').ok_or_else(|| {
        format!("{address:?} is not host:port; write e.g. 127.0.0.1:9101 (empty disables)")
    })?;
    port.parse::<u16>()
        .map_err(|_| format!("{address:?}: port {port:?} is not a number from 0 to 65535"))?;
    if host.is_empty() {
        return Err(format!(
            "{address:?} has no host; write e.g. 0.0.0.0:{port} or 127.0.0.1:{port}"
        ));
    }
    Ok(())
}

/// Checks that `address` can be listened on now: binds it and lets it go at once.
pub async fn listen_address_free(address: &str) -> Result<String, String> {
    listen_address_syntax(address)?;
    let listener = tokio::net::TcpListener::bind(address.trim())
        .await
        .map_err(|e| format!("cannot listen on {address}: {e} (another process has it?)"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(format!("{local} is free"))
}

/// What a Kafka cluster's metadata says, for `--check-connections`.
#[cfg(feature = "kafka")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMetadata {
    /// The brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Every topic name.
    pub topics: Vec<String>,
}

#[cfg(feature = "kafka")]
impl KafkaMetadata {
    /// The metadata of the cluster `client` (a producer's or consumer's own client, built
    /// as the daemon builds it) is connected to; blocks for at most `timeout`.
    pub fn fetch<C: rdkafka::ClientContext>(
        client: &rdkafka::client::Client<C>,
        timeout: Duration,
    ) -> Result<KafkaMetadata, rdkafka::error::KafkaError> {
        let metadata = client.fetch_metadata(None, timeout)?;
        Ok(KafkaMetadata {
            brokers: metadata
                .brokers()
                .iter()
                .map(|b| format!("{}:{}", b.host(), b.port()))
                .collect(),
            topics: metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| t.name().to_owned())
                .collect(),
        })
    }

    /// Adds the rows for these `wanted` topics (`subject`): fine when all exist, failed
    /// naming the missing ones.
    pub fn check_topics(&self, subject: &str, wanted: &[String], report: &mut CheckReport) {
        let mut wanted: Vec<&String> = wanted.iter().collect();
        wanted.sort();
        wanted.dedup();
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|t| !self.topics.contains(t))
            .map(|t| t.as_str())
            .collect();
        let names = |list: &[&str]| list.join(", ");
        if missing.is_empty() {
            let all: Vec<&str> = wanted.iter().map(|t| t.as_str()).collect();
            report.ok(subject, format!("exist: {}", names(&all)));
        } else {
            report.fail(
                subject,
                format!(
                    "missing on the brokers: {}; create them (or the brokers must allow                      auto.create.topics.enable)",
                    names(&missing)
                ),
            );
        }
    }
}

impl Daemon {
    /// `--check`: loads the config from `path` as [`start`](Daemon::start) does (a load
    /// error is a failed row), runs `checks` on the loaded config on a runtime of its own,
    /// prints the table on stdout and returns the exit code.
    pub fn check<C, F, Fut>(&self, path: Option<&Path>, log_args: &LogArgs, checks: F) -> ExitCode
    where
        C: DaemonConfig,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = CheckReport>,
    {
        let mut report = CheckReport::new();
        let source = match path {
            Some(p) => p.display().to_string(),
            None => format!(
                "no file: defaults and {}_* variables",
                self.config_variable().trim_end_matches("_CONFIG")
            ),
        };
        // Kept until the table is printed: dropping it flushes the log.
        let mut _log_guard = None;
        match self.start::<C>(path, log_args) {
            Err(DaemonError::Config { source: e, .. }) => report.fail("config", e.to_string()),
            Err(e) => report.fail("[log]", e.to_string()),
            Ok(Started { config, log_guard }) => {
                _log_guard = Some(log_guard);
                report.ok("config", format!("{source} loaded"));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => report.extend(runtime.block_on(checks(config))),
                    Err(e) => report.fail("runtime", format!("cannot start tokio: {e}")),
                }
            }
        }
        print!("{}", report.render());
        report.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    #[test]
    fn a_failed_row_fails_the_check_and_a_warning_does_not() {
        let mut report = CheckReport::new();
        report.ok("config", "conf.ini loaded");
        report.warn("[etcd] collect_log_key", "key /a does not exist");
        assert!(!report.failed());
        assert_eq!(report.exit_code(), ExitCode::SUCCESS);
        let value = report.record(
            "[kafka] address",
            Err::<(), _>("no brokers\n  set it"),
            |_| String::new(),
        );
        assert!(value.is_none());
        assert!(report.failed());
        assert_eq!(report.exit_code(), ExitCode::FAILURE);
        let table = report.render();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("CHECK "), "{table}");
        assert!(lines[3].starts_with("[kafka] address"), "{table}");
        assert!(lines[3].contains("FAIL") && lines[3].ends_with("no brokers set it"));
        assert_eq!(lines[4], "1 ok, 1 warning(s), 1 failed");
        // The status column starts at the same place on every line.
        let column = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[1][column..column + 2], "ok");
        assert_eq!(&lines[2][column..column + 4], "WARN");
    }

    #[test]
    fn the_flags_parse_and_connections_imply_the_check() {
        let none = Cli::try_parse_from(["x"]).unwrap();
        assert!(!none.check.requested());
        assert_eq!(none.check.check_timeout, DEFAULT_TIMEOUT);
        let c =
            Cli::try_parse_from(["x", "--check-connections", "--check-timeout", "250ms"]).unwrap();
        assert!(c.check.requested());
        assert_eq!(
            c.check.scope(),
            CheckScope {
                connections: true,
                timeout: Duration::from_millis(250)
            }
        );
        assert_eq!(
            c.check.scope().timeout_for(Duration::from_secs(30)),
            Duration::from_millis(250)
        );
        assert!(Cli::try_parse_from(["x", "--check-timeout", "soon"]).is_err());
    }

    #[tokio::test]
    async fn a_wait_is_bounded_and_says_what_did_not_answer() {
        let err = within(
            Duration::from_millis(20),
            "etcd 127.0.0.1:1",
            std::future::pending::<Result<(), String>>(),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "etcd 127.0.0.1:1 did not answer within 20ms");
        let err = within_blocking(Duration::from_secs(5), "x", || Err::<(), _>("refused"))
            .await
            .unwrap_err();
        assert_eq!(err, "refused");
    }

    #[tokio::test]
    async fn a_taken_listen_address_is_a_failure() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = listen_address_free(&address).await.unwrap_err();
        assert!(err.contains(&address), "{err}");
        drop(taken);
        assert!(listen_address_free(&address).await.is_ok());
        assert!(listen_address_syntax("9101").is_err());
        assert!(listen_address_syntax(":9101").is_err());
        assert!(listen_address_syntax("h:99999").is_err());
        assert!(listen_address_syntax("[::1]:9101").is_ok());
    }
}
