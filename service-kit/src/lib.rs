//! What every pipeline binary shares, so that each `main.rs` stays a thin wiring layer:
//!
//! - [`config`]: one loader for INI (the `conf.ini` layout of the original Go tools), TOML and
//!   environment overrides, with errors that name the file, the key and the reason.
//! - [`daemon`]: the daemons' one entry-point shape, their `[log]` section and `--log-level`.
//! - [`duration`]: `"5s"` / `"250ms"` in every duration key, bare numbers in the key's old unit.
//! - [`check`]: `--check` / `--check-connections`: the table of what is fine, the exit code.
//! - [`shutdown`]: SIGINT/SIGTERM turned into one cancellation signal every task can wait on.
//! - [`background`]: a service on its own runtime in a thread, stopped through that signal.
//! - [`metrics`]: the Prometheus `/metrics` endpoint for a binary's own counters, with
//!   `/health` (liveness) and `/ready` (readiness) beside it.
//! - [`readiness`]: the named conditions `/ready` reports (sinks reachable, watch alive).
//! - `kafka` and `etcd` (cargo features of the same names, so that a binary that talks to
//!   neither builds neither librdkafka nor tonic): client settings that hold up against a
//!   broker or etcd outage, and the etcd key watcher.
//! - [`host`]: host name, primary IP and `{ip}`/`{hostname}` key templates.
//! - [`backoff`]: the one exponential backoff (with jitter) every retry loop uses.
//! - [`ack_window`]: out-of-order acknowledgements, in-order commits (read offsets).
//! - [`section`]: one config section read into a component's own keys and shared ones
//!   (every `[etcd]` section's security keys).
//! - [`secret`]: passwords and keys that never print, read inline, from a `*_file` or the env.

pub mod ack_window;
pub mod background;
pub mod backoff;
pub mod check;
pub mod config;
pub mod daemon;
pub mod duration;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod host;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod readiness;
pub use secure_transport::secret;
pub mod section;
pub mod shutdown;

/// Splits a comma-separated list as the INI files write them (`"a, b,c"`), dropping empty items.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_list;

    #[test]
    fn split_list_trims_and_drops_empty_items() {
        assert_eq!(split_list(" a, b,,c ,"), vec!["a", "b", "c"]);
        assert!(split_list("  ").is_empty());
    }
}
