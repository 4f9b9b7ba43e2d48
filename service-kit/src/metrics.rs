//! The Prometheus endpoint every binary exposes for its own counters.
//!
//! `GET /metrics` renders the registry in the OpenMetrics text format (which Prometheus
//! scrapes natively); `GET /health` answers `ok` for liveness probes; `GET /ready` answers
//! 200 while every condition of the daemon's [`Readiness`] holds and 503 naming those that do
//! not (see [`crate::readiness`]), for readiness probes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

use crate::readiness::Readiness;
use crate::shutdown::Shutdown;

/// The content type Prometheus negotiates for OpenMetrics text.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Typically the port is taken by another process.
    #[error(
        "cannot listen for /metrics on {address}: {source}; choose another metrics_address (or 127.0.0.1:0 for any free port)"
    )]
    Bind {
        /// The address from the config.
        address: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// Serves `registry` on `/metrics`, `readiness` on `/ready` and `/health` on `address` until
/// `shutdown` triggers; returns the bound address.
pub async fn serve(
    address: &str,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    let bind_error = |source| MetricsError::Bind {
        address: address.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .with_state(Served {
            registry,
            readiness,
        });
    let handle = tokio::spawn(async move {
        let stopped = async move { shutdown.wait().await };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            log::error!("metrics endpoint on {local} stopped: {error}");
        }
    });
    Ok((local, handle))
}

async fn ready(State(served): State<Served>) -> impl IntoResponse {
    let report = served.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        report.to_text(),
    )
}

async fn render(State(served): State<Served>) -> impl IntoResponse {
    let mut body = String::with_capacity(4096);
    match prometheus_client::encoding::text::encode(&mut body, &served.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
            body,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("encoding metrics failed: {error}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_path(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn counters_are_served_and_the_server_stops_on_shutdown() {
        let mut registry = Registry::default();
        let lines: Counter = Counter::default();
        registry.register("lines_read", "Lines read", lines.clone());
        lines.inc_by(41);
        lines.inc();
        let shutdown = Shutdown::new();
        let readiness = Readiness::new();
        let (addr, handle) = serve(
            "127.0.0.1:0",
            Arc::new(registry),
            readiness.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let response = get_path(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("lines_read_total 42"), "{response}");
        assert!(get_path(addr, "/health").await.ends_with("ok"));
        let ready = get_path(addr, "/ready").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let sink = readiness.condition("kafka", "not connected yet");
        let ready = get_path(addr, "/ready").await;
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(
            ready.ends_with("not ready\nkafka: not ready: not connected yet\n"),
            "{ready}"
        );
        assert!(
            get_path(addr, "/health").await.ends_with("ok"),
            "liveness does not follow readiness"
        );
        sink.set_ready();
        let ready = get_path(addr, "/ready").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.ends_with("ready\nkafka: ok\n"), "{ready}");
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), handle)
            .await
            .expect("server did not stop")
            .unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = serve(
            &address,
            Arc::new(Registry::default()),
            Readiness::new(),
            Shutdown::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(&address), "{err}");
        assert!(err.to_string().contains("metrics_address"), "{err}");
    }
}
