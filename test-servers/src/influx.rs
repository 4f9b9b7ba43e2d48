use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::{encode_query, http_request};
use crate::process::{ServerProcess, find_binary, free_port};

/// A real InfluxDB 1.6 on free loopback ports with its own data dirs.
pub struct Influx {
    process: ServerProcess,
    http_port: u16,
    _dir: TempDir,
}

impl Influx {
    /// Starts InfluxDB and waits until `/ping` answers; panics with its log otherwise.
    pub fn start() -> Influx {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts InfluxDB; an error carries its log.
    pub fn try_start() -> Result<Influx, HarnessError> {
        let binary = find_binary("InfluxDB", "influxd")?;
        let dir = tempfile::Builder::new()
            .prefix("test-influx-")
            .tempdir()
            .map_err(HarnessError::io("create influx temp dir"))?;
        let http_port = free_port();
        let rpc_port = free_port();
        let root = dir.path();
        let config = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"#,
            root = root.display()
        );
        let config_path = root.join("influxdb.conf");
        std::fs::write(&config_path, config).map_err(HarnessError::io("write influxdb.conf"))?;
        let args = vec!["-config".into(), config_path.display().to_string()];
        let process = ServerProcess::spawn("InfluxDB", binary, args, root.join("influxd.log"))?;
        let mut influx = Influx {
            process,
            http_port,
            _dir: dir,
        };
        influx.wait_ready()?;
        Ok(influx)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let url = format!("{}/ping", self.url());
        self.process.wait_ready(Duration::from_secs(30), || {
            http_request("GET", &url, None, b"")
                .map(|response| response.status == 204)
                .unwrap_or(false)
        })
    }

    /// The HTTP API URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs an InfluxQL statement against `database` (`POST /query`) and returns the JSON answer.
    pub fn query(&self, database: &str, statement: &str) -> serde_json::Value {
        let url = format!(
            "{}/query?db={}&q={}",
            self.url(),
            encode_query(database),
            encode_query(statement)
        );
        match http_request("POST", &url, None, b"") {
            Ok(response) if response.status == 200 => response.json(),
            Ok(response) => panic!(
                "query {statement:?} failed: {} {}",
                response.status, response.body
            ),
            Err(error) => panic!("query {statement:?} failed: {error}"),
        }
    }

    /// Stops InfluxDB; data stays for [`Influx::restart`].
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    /// Starts InfluxDB again on the same ports with the same data.
    pub fn restart(&mut self) {
        let result = self.process.relaunch().and_then(|()| self.wait_ready());
        if let Err(error) = result {
            panic!("{error}");
        }
    }
}
