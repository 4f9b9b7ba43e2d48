//! Smoke tests of the servers the harness starts, one module per file, linked into one test binary.
//!
//! One binary rather than one per file: each links rdkafka, tonic and the rest
//! statically, and a binary per file made a cold CI build run out of disk.
//! nextest still runs every test in its own process.

mod smoke_elasticsearch;
mod smoke_etcd;
mod smoke_influx;
mod smoke_kafka;
mod smoke_prometheus;
mod smoke_tls_proxy;
