use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::{encode_query, http_request};
use crate::process::{
    Launch, ServerProcess, free_port, http_probe, launch, retry_port_clash, scratch_dir,
};

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
        retry_port_clash(Self::try_start_once)
    }

    fn try_start_once() -> Result<Influx, HarnessError> {
        let dir = scratch_dir("influx")?;
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
        let process = launch(Launch {
            server: "InfluxDB",
            binary: "influxd",
            args: vec!["-config".into(), config_path.display().to_string()],
            log_path: root.join("influxd.log"),
            ready_timeout: Duration::from_secs(30),
            ready: http_probe(format!("http://127.0.0.1:{http_port}/ping"), |r| {
                r.status == 204
            }),
        })?;
        Ok(Influx {
            process,
            http_port,
            _dir: dir,
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
        self.process.restart();
    }
}
