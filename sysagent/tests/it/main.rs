//! sysagent's scenarios, one module per file, linked into one test binary.
//!
//! One binary rather than one per file: each links rdkafka, tonic and the rest
//! statically, and a binary per file made a cold CI build run out of disk.
//! nextest still runs every test in its own process.

mod binary;
mod check;
mod common;
mod influxdb;
mod prometheus;
mod readiness;
