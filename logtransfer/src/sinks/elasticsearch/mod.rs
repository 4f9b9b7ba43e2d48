//! The Elasticsearch sink, split by role (after Vector's): `config` (what the user writes),
//! `encoder` (record -> bulk lines), `request_builder` (lines -> requests), `retry` (what
//! is retried and when), `service` (the HTTP call), `sink` (the driver loop), `template`
//! (the index template installed on start, and the check at start), `tls` (HTTPS settings
//! and TLS failures told apart).

pub mod config;
pub mod encoder;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod sink;
pub mod template;
pub mod tls;
