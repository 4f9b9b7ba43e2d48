//! The collect config stored in etcd: which files go to which Kafka topic. It lives in the
//! `collect-config` crate, shared with `etcd-put`; re-exported here so that the agent's
//! modules keep their paths.

pub use ::collect_config::*;
