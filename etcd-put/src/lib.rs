//! Validates and writes logagent's collect configuration into etcd.
