use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::{encode_query, http_request};
use crate::process::{
    Launch, ServerProcess, free_port, http_probe, launch, retry_port_clash, scratch_dir,
};

/// A real Prometheus 2.x on a free loopback port, scraping the given targets every second.
pub struct Prometheus {
    process: ServerProcess,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) under job `test`;
    /// panics with its log when it cannot start.
    pub fn start(targets: &[&str]) -> Prometheus {
        Self::try_start(targets).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts Prometheus; an error carries its log.
    pub fn try_start(targets: &[&str]) -> Result<Prometheus, HarnessError> {
        retry_port_clash(|| Self::try_start_once(targets))
    }

    fn try_start_once(targets: &[&str]) -> Result<Prometheus, HarnessError> {
        let dir = scratch_dir("prometheus")?;
        let port = free_port();
        let target_list = targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{target_list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(HarnessError::io("write prometheus.yml"))?;
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".into(),
        ];
        let process = launch(Launch {
            server: "Prometheus",
            binary: "prometheus",
            args,
            log_path: dir.path().join("prometheus.log"),
            ready_timeout: Duration::from_secs(30),
            ready: http_probe(format!("http://127.0.0.1:{port}/-/ready"), |r| {
                r.status == 200
            }),
        })?;
        Ok(Prometheus {
            process,
            port,
            _dir: dir,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs an instant PromQL query; returns `data.result` (an array, empty when nothing matched).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let url = format!("{}/api/v1/query?query={}", self.url(), encode_query(promql));
        match http_request("GET", &url, None, b"") {
            Ok(response) if response.status == 200 => response.json()["data"]["result"].clone(),
            Ok(response) => panic!(
                "query {promql:?} failed: {} {}",
                response.status, response.body
            ),
            Err(error) => panic!("query {promql:?} failed: {error}"),
        }
    }

    /// The scrape targets as Prometheus reports them (`/api/v1/targets`).
    pub fn targets(&self) -> serde_json::Value {
        let url = format!("{}/api/v1/targets", self.url());
        match http_request("GET", &url, None, b"") {
            Ok(response) => response.json()["data"]["activeTargets"].clone(),
            Err(error) => panic!("targets failed: {error}"),
        }
    }

    /// Stops Prometheus; its data stays for [`Prometheus::restart`].
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    /// Starts Prometheus again on the same port with the same data.
    pub fn restart(&mut self) {
        self.process.restart();
    }
}
