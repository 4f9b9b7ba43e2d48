//! Host metrics to InfluxDB and a Prometheus /metrics endpoint.
