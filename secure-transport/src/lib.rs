//! Talking to secured servers, shared by every client of the pipeline (the logger's Kafka
//! output included, which is why this crate sits below `logger` and `service-kit`):
//!
//! - [`secret`]: passwords, API keys and tokens that never print, read inline, from a
//!   `*_file` key or the environment.
//! - [`etcd`]: the etcd client's user, password and TLS files (every `[etcd]` section and
//!   etcd-put's etcdctl-style flags).
//! - [`kafka`]: TLS and SASL for the Kafka clients, one set of keys for every `[kafka]`
//!   section; applying them to librdkafka and checking the brokers at start (feature `kafka`).

pub mod etcd;
pub mod kafka;
pub mod secret;

pub use secret::{Secret, SecretError};
