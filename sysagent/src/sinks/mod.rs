//! Where samples go: InfluxDB (pushed, buffered) and Prometheus (pulled from the latest sample).

pub mod influxdb;
pub mod prometheus;
