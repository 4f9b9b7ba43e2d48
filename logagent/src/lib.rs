//! Tails log files and ships new lines to Kafka; which files go to which topic comes from etcd.
//!
//! Layout (one concern per file):
//! [`config`] the local config file; [`collect_config`] the etcd JSON schema and path
//! policy (also used by `etcd-put`), read and watched with `service_kit::etcd::KeyWatcher`;
//! [`sources::file`] glob discovery, [`sources::file::tailer`] reading and rotation,
//! [`sources::file::shipper`] hand-over to the sink within the in-flight limit,
//! [`sources::file::retry`] what becomes of a line whose delivery failed,
//! [`sources::file::reads`] where reads run (inline, or bounded on reader threads),
//! [`sources::file::events`] inotify wake-ups, [`sources::file::multiline`] event joining;
//! [`sources::file::turns`] turns at the `max_open_files` budget, [`fd_limit`] the
//! descriptor limit and the reserve kept beside that budget;
//! [`identity`] which file is which (used by the tailer and the checkpoints); [`encode`] the
//! Kafka message; [`sinks::kafka`] the producer; [`ack`] the settle-once acknowledgement of
//! one line; [`in_flight`] the bound on lines read and not yet acknowledged; [`checkpoint`]
//! offsets that survive a crash;
//! [`atomic_file`] crash-safe file replacement (checkpoints, cached config);
//! [`supervisor`] config diffs; [`metrics`], with [`file_lag`] the bounded per-file lag;
//! [`catch_up`] progress of a long backlog in the log; [`housekeeping`] the periodic
//! checkpoint write and reports; [`agent`] the wiring; [`check`] `--check` /
//! `--check-connections`.

pub mod ack;
pub mod agent;
pub mod atomic_file;
pub mod catch_up;
pub mod check;
pub mod checkpoint;
pub mod collect_config;
pub mod config;
pub mod encode;
pub mod fd_limit;
pub mod file_lag;
pub mod housekeeping;
pub mod identity;
pub mod in_flight;
pub mod metrics;
pub mod sinks;
pub mod sources;
pub mod supervisor;
