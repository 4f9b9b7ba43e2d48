use std::io::{BufRead, BufReader};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::http_request;
use crate::process::{
    Launch, ServerProcess, free_port, http_probe, launch, retry_port_clash, scratch_dir,
};

/// A real Elasticsearch-API server (osmem-server, in memory) on a free loopback port.
///
/// Unlike real Elasticsearch, documents are searchable before a refresh; tests still call
/// [`Elasticsearch::refresh`] before asserting so they hold against the real thing.
pub struct Elasticsearch {
    process: ServerProcess,
    port: u16,
    _dir: TempDir,
}

impl Elasticsearch {
    /// Starts the server and waits until `GET /` answers; panics with its log otherwise.
    pub fn start() -> Elasticsearch {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts the server; an error carries its log.
    pub fn try_start() -> Result<Elasticsearch, HarnessError> {
        retry_port_clash(Self::try_start_once)
    }

    fn try_start_once() -> Result<Elasticsearch, HarnessError> {
        let dir = scratch_dir("elasticsearch")?;
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let process = launch(Launch {
            server: "Elasticsearch API (osmem-server)",
            binary: "osmem-server",
            args: ["-addr", &address, "-no-stdin-watch", "-no-ja"]
                .iter()
                .map(|arg| arg.to_string())
                .collect(),
            log_path: dir.path().join("osmem.log"),
            ready_timeout: Duration::from_secs(20),
            ready: http_probe(format!("http://{address}/"), |r| r.status == 200),
        })?;
        Ok(Elasticsearch {
            process,
            port,
            _dir: dir,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes everything indexed so far searchable (`POST /_refresh`).
    pub fn refresh(&self) {
        let url = format!("{}/_refresh", self.url());
        match http_request("POST", &url, None, b"") {
            Ok(response) if response.status < 300 => {}
            Ok(response) => panic!("refresh failed: {} {}", response.status, response.body),
            Err(error) => panic!("refresh failed: {error}"),
        }
    }

    /// Refreshes, then counts the documents in `index` (a name or pattern); 0 when it does not exist.
    pub fn count(&self, index: &str) -> u64 {
        self.refresh();
        let url = format!("{}/{index}/_count", self.url());
        match http_request("GET", &url, None, b"") {
            Ok(response) if response.status == 404 => 0,
            Ok(response) => response.json()["count"].as_u64().unwrap_or_else(|| {
                panic!(
                    "count of {index}: unexpected answer {} {}",
                    response.status, response.body
                )
            }),
            Err(error) => panic!("count of {index} failed: {error}"),
        }
    }

    /// Refreshes, then runs a `_search` with `body` (JSON) against `index`; returns the answer.
    pub fn search(&self, index: &str, body: &serde_json::Value) -> serde_json::Value {
        self.refresh();
        let url = format!("{}/{index}/_search", self.url());
        match http_request(
            "POST",
            &url,
            Some("application/json"),
            body.to_string().as_bytes(),
        ) {
            Ok(response) => response.json(),
            Err(error) => panic!("search of {index} failed: {error}"),
        }
    }

    /// Freezes the server (SIGSTOP): requests hang until [`Elasticsearch::resume`].
    pub fn pause(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// Thaws a paused server.
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }

    /// Starts the server again on the same port. It comes back EMPTY (memory storage).
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        let Ok(file) = std::fs::File::open(self.process.log_path()) else {
            return String::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
