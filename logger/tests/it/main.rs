//! The logger's integration tests, one module per file, linked into one test binary.
//!
//! One binary rather than one per file: each links rdkafka, tonic and the rest
//! statically, and a binary per file made a cold CI build run out of disk.
//! nextest still runs every test in its own process.

mod clock_fallback;
mod common;
mod config_errors;
mod idle;
mod kafka;
mod panic_and_exit;
mod pipeline;
mod rotation;
mod stderr_report;
mod tracing_layer;
