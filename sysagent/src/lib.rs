//! sysagent: host metrics (CPU, memory, swap, disks, disk I/O, network, load, processes,
//! uptime) to InfluxDB in Telegraf's names and to a Prometheus `/metrics` endpoint in
//! node_exporter's names.
//!
//! - [`collect`]: one collector per file, filling a neutral [`sample::Sample`];
//! - [`sinks::influxdb`]: line protocol, batches, gzip, retry with backoff, bounded buffer;
//! - [`sinks::prometheus`]: the latest sample rendered on each scrape;
//! - [`agent`]: the loop that ties them together; [`config`]: what the user writes;
//! - [`check`]: `--check` / `--check-connections`.

pub mod agent;
pub mod check;
pub mod collect;
pub mod config;
pub mod host;
pub mod sample;
pub mod sinks;
pub mod stats;

pub use agent::{Agent, AgentError, RunReport};
pub use config::Config;
