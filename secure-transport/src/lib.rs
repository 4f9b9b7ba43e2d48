//! Talking to secured servers, shared by every client of the pipeline (the logger's Kafka
//! output included, which is why this crate sits below `logger` and `service-kit`):
//!
//! - [`secret`]: passwords, API keys and tokens that never print, read inline, from a
//!   `*_file` key or the environment.
//! - [`etcd`]: the etcd client's user, password and TLS files (every `[etcd]` section and
//!   etcd-put's etcdctl-style flags).

pub mod etcd;
pub mod secret;

pub use secret::{Secret, SecretError};
