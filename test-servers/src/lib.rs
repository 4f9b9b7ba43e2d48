//! Real servers for integration tests, started on free loopback ports with a temporary data
//! directory, ready when `start()` returns, and stopped when dropped.
//!
//! | type | server | what it stands for |
//! |---|---|---|
//! | [`Etcd`] | etcd 3.4 (Debian `etcd-server`) | the collect-config store |
//! | [`Kafka`] | tansu (Kafka protocol, memory storage) | the log bus |
//! | [`Kafka::start_tls`] | tansu behind stunnel4 (TLS, optionally mutual) | a broker that needs TLS |
//! | [`Elasticsearch`] | osmem-server (Elasticsearch/OpenSearch API, in memory) | the search index |
//! | [`Influx`] | InfluxDB 1.6 (Debian `influxdb`) | the metrics store |
//! | [`Prometheus`] | Prometheus 2.42 (Debian `prometheus`) | the metrics scraper |
//! | [`FaultProxy`] | an HTTP proxy of ours | whole-request 429/5xx, refusals, delays |
//! | [`TestPki`] | certificates made by `openssl` | a CA, server and client certificates, an untrusted CA |
//! | [`TlsAuthProxy`] | nginx (Debian `nginx-light`) | TLS and basic-auth/API-key checks in front of an HTTP server (a secured Elasticsearch) |
//!
//! `start()` panics with the server's own log and the fix (`scripts/setup.sh`) when the server
//! cannot start; `try_start()` returns the same as an error. A missing binary is a failure,
//! never a skip.
//!
//! Each server runs with `PR_SET_PDEATHSIG`, so it dies with the thread that started it even
//! if the test process is killed: own a server from the test that uses it, not from a static.
//!
//! [`terminate`] stops the program under test itself (a daemon's binary) the way an operator
//! does, with SIGTERM, and checks that it exits cleanly.

mod elasticsearch;
mod error;
mod etcd;
mod fault_proxy;
mod http;
mod influx;
mod kafka;
mod pki;
mod process;
mod program;
mod prometheus;
mod tls_proxy;

pub use elasticsearch::Elasticsearch;
pub use error::HarnessError;
pub use etcd::{ETCD_ROOT_PASSWORD, ETCD_USER, ETCD_USER_PASSWORD, Etcd, EtcdOptions, etcd_put};
pub use fault_proxy::{Fault, FaultProxy};
pub use http::{HttpResponse, http_request, scrape_metric, wait_for_status};
pub use influx::Influx;
pub use kafka::{Kafka, KafkaTls};
pub use pki::TestPki;
pub use process::free_port;
pub use program::{run_check, stderr_summary, table_row, terminate};
pub use prometheus::Prometheus;
pub use tls_proxy::{TlsAuthProxy, TlsAuthProxyBuilder};

use std::time::{Duration, Instant};

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
///
/// Tests wait for outcomes with this instead of fixed sleeps.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
