use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::process::{
    Launch, ServerProcess, free_port, http_probe, launch, retry_port_clash, scratch_dir,
};

/// A real etcd 3.4 on free loopback ports with its own data dir.
pub struct Etcd {
    process: ServerProcess,
    client_port: u16,
    _dir: TempDir,
}

impl Etcd {
    /// Starts etcd and waits until `/health` says it is healthy; panics with its log otherwise.
    pub fn start() -> Etcd {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts etcd; an error carries its log.
    pub fn try_start() -> Result<Etcd, HarnessError> {
        retry_port_clash(Self::try_start_once)
    }

    fn try_start_once() -> Result<Etcd, HarnessError> {
        let dir = scratch_dir("etcd")?;
        let client_port = free_port();
        let peer_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.path().join("data").display().to_string();
        let args = [
            "--name",
            "default",
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("default={peer}"),
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ];
        let process = launch(Launch {
            server: "etcd",
            binary: "etcd",
            args: args.iter().map(|arg| arg.to_string()).collect(),
            log_path: dir.path().join("etcd.log"),
            ready_timeout: Duration::from_secs(20),
            ready: http_probe(format!("{client}/health"), |r| {
                r.status == 200 && r.body.contains("true")
            }),
        })?;
        Ok(Etcd {
            process,
            client_port,
            _dir: dir,
        })
    }

    /// Writes `value` under `key` (panics with the reason when etcd refuses).
    pub fn put(&self, key: &str, value: &str) {
        etcd_put(&self.endpoint(), key, value);
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Stops etcd (SIGTERM, then SIGKILL); the data dir stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }

    /// Kills etcd at once, as `kill -9` would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts etcd again on the same ports with the same data, and waits until it is ready.
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// Freezes etcd (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }
}

/// Writes `value` under `key` at the etcd `endpoint`; panics with the reason on failure.
///
/// A private runtime on a private thread lets plain tests and tokio tests alike call it.
pub fn etcd_put(endpoint: &str, key: &str, value: &str) {
    let (endpoint, key, value) = (endpoint.to_owned(), key.to_owned(), value.to_owned());
    let outcome = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
                .await
                .map_err(|e| format!("connect to {endpoint}: {e}"))?;
            client
                .put(key.as_str(), value, None)
                .await
                .map_err(|e| format!("put {key}: {e}"))?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "etcd put thread panicked".to_owned())
    .and_then(|result| result);
    if let Err(what) = outcome {
        panic!("etcd put failed: {what}");
    }
}
