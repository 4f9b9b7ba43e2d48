use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::http_request;
use crate::process::{ServerProcess, find_binary, free_port};

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
        let binary = find_binary("etcd", "etcd")?;
        let dir = tempfile::Builder::new()
            .prefix("test-etcd-")
            .tempdir()
            .map_err(HarnessError::io("create etcd temp dir"))?;
        let client_port = free_port();
        let peer_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let args = vec![
            "--name".into(),
            "default".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("default={peer}"),
            "--log-level".into(),
            "warn".into(),
            "--logger".into(),
            "zap".into(),
        ];
        let process = ServerProcess::spawn("etcd", binary, args, dir.path().join("etcd.log"))?;
        let mut etcd = Etcd {
            process,
            client_port,
            _dir: dir,
        };
        etcd.wait_ready()?;
        Ok(etcd)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let url = format!("{}/health", self.endpoint());
        self.process.wait_ready(Duration::from_secs(20), || {
            http_request("GET", &url, None, b"")
                .map(|response| response.status == 200 && response.body.contains("true"))
                .unwrap_or(false)
        })
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
        let result = self.process.relaunch().and_then(|()| self.wait_ready());
        if let Err(error) = result {
            panic!("{error}");
        }
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
