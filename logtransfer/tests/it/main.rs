//! logtransfer's scenarios, one module per file, linked into one test binary.
//!
//! One binary rather than one per file: each links rdkafka, tonic and the rest
//! statically, and a binary per file made a cold CI build run out of disk.
//! nextest still runs every test in its own process.

mod batching;
mod binary;
mod check;
mod common;
mod crash;
mod credentials;
mod data_stream;
mod dedup;
mod end_to_end;
mod es_faults;
mod es_tls;
mod etcd_topics;
mod exactly_once;
mod group;
mod hostile;
mod kafka_outage;
mod kibana_objects;
mod observability;
mod pipeline;
mod readiness;
mod secure_kafka;
mod stuck_record;
