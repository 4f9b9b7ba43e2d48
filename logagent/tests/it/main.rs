//! logagent's scenarios, one module per file, linked into one test binary.
//!
//! One binary rather than one per file: each links rdkafka, tonic and the rest
//! statically, and a binary per file made a cold CI build run out of disk.
//! nextest still runs every test in its own process.

mod binary;
mod catch_up;
mod check;
mod common;
mod generations;
mod hostile_files;
mod kill9;
mod live_config;
mod long_lines;
mod open_files;
mod outage;
mod readiness;
mod rotation;
mod secure_kafka;
mod secured_etcd;
mod send_errors;
mod wakeups;
