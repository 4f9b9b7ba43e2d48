//! Connecting to etcd with the settings that survive an etcd restart or freeze.
//!
//! Seen with etcd 3.4: a connect "succeeds" with nothing listening (errors come on the first
//! call), and a frozen server is only noticed with keep-alive. So every client gets a connect
//! timeout, a request timeout and keep-alive, and [`connect`] probes with one request.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// Why etcd could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered within the timeout.
    #[error(
        "cannot reach etcd at {endpoints}: {source}; check [etcd] address and that etcd is running"
    )]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// No endpoints were configured.
    #[error("no etcd endpoints configured; set [etcd] address (comma-separated host:port list)")]
    NoEndpoints,
}

/// The options every etcd client of the pipeline uses.
pub fn connect_options(timeout: Duration) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(5), timeout)
        .with_keep_alive_while_idle(true)
}

/// Connects to `endpoints` and checks with one request that etcd really answers.
pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Client, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::NoEndpoints);
    }
    let unreachable = |source| EtcdError::Unreachable {
        endpoints: endpoints.join(","),
        source,
    };
    let mut client = Client::connect(endpoints, Some(connect_options(timeout)))
        .await
        .map_err(unreachable)?;
    client.status().await.map_err(unreachable)?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_listening_is_an_error_naming_the_endpoint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("127.0.0.1:{port}");
        let Err(err) = connect(std::slice::from_ref(&endpoint), Duration::from_millis(500)).await
        else {
            panic!("connect succeeded with nothing listening");
        };
        assert!(err.to_string().contains(&endpoint), "{err}");
    }

    #[tokio::test]
    async fn no_endpoints_is_an_error() {
        let Err(err) = connect(&[], Duration::from_secs(1)).await else {
            panic!("connect succeeded without endpoints");
        };
        assert!(matches!(err, EtcdError::NoEndpoints));
    }
}
