//! Starting a server process, waiting for it, and stopping it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::{HttpResponse, http_request};

/// Ports handed out by [`free_port`] lie below the kernel's ephemeral range (32768 and up on
/// Linux), where the source ports of outgoing connections come from: a port picked there can
/// be taken by any client socket before the server binds it.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A TCP port on 127.0.0.1 that was free at the time of the call.
///
/// Another process can still take it before it is used; the servers of this crate retry
/// with new ports when that happens.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let port = fastrand::u16(PORT_RANGE);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|error| panic!("no free loopback port: {error}"))
}

/// Runs `start` again (it picks new ports each time) while the server failed only because a
/// port it was given was taken meanwhile.
pub(crate) fn retry_port_clash<T>(
    mut start: impl FnMut() -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(error) if attempt < 5 && error.is_port_clash() => attempt += 1,
            other => return other,
        }
    }
}

/// Finds `binary` on PATH, or says to run scripts/setup.sh.
pub(crate) fn find_binary(server: &'static str, binary: &str) -> Result<PathBuf, HarnessError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::MissingBinary {
            server,
            binary: binary.to_owned(),
        })
}

/// A readiness probe: true once the server answers.
pub(crate) type Probe = Box<dyn FnMut() -> bool + Send>;

/// A probe that holds when `GET url` answers and `accept` likes the answer.
pub(crate) fn http_probe(url: String, accept: fn(&HttpResponse) -> bool) -> Probe {
    Box::new(move || {
        http_request("GET", &url, None, b"")
            .map(|response| accept(&response))
            .unwrap_or(false)
    })
}

/// A probe that holds when something accepts TCP connections on `port`.
pub(crate) fn tcp_probe(port: u16) -> Probe {
    Box::new(move || port_open(port))
}

/// A temporary directory for one server's data and log, removed on drop.
pub(crate) fn scratch_dir(server: &str) -> Result<TempDir, HarnessError> {
    tempfile::Builder::new()
        .prefix(&format!("test-{server}-"))
        .tempdir()
        .map_err(HarnessError::io(format!("create a temp dir for {server}")))
}

/// How to start one server and how to tell that it is ready.
pub(crate) struct Launch {
    /// The server's name in messages.
    pub(crate) server: &'static str,
    /// The program looked up on PATH.
    pub(crate) binary: &'static str,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// Where its stdout and stderr go.
    pub(crate) log_path: PathBuf,
    /// How long it may take to become ready.
    pub(crate) ready_timeout: Duration,
    /// What "ready" means.
    pub(crate) ready: Probe,
}

/// A running server process whose output goes to a log file; killed on drop.
pub(crate) struct ServerProcess {
    pub(crate) server: &'static str,
    program: PathBuf,
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
    ready: Probe,
    ready_timeout: Duration,
}

/// Finds the binary, starts it and waits until it is ready.
pub(crate) fn launch(launch: Launch) -> Result<ServerProcess, HarnessError> {
    let program = find_binary(launch.server, launch.binary)?;
    let mut process = ServerProcess {
        server: launch.server,
        program,
        args: launch.args,
        log_path: launch.log_path,
        child: None,
        ready: launch.ready,
        ready_timeout: launch.ready_timeout,
    };
    process.launch()?;
    process.wait_until_ready()?;
    Ok(process)
}

impl ServerProcess {
    fn launch(&mut self) -> Result<(), HarnessError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(HarnessError::io(format!(
                "open {}",
                self.log_path.display()
            )))?;
        let log_err = log
            .try_clone()
            .map_err(HarnessError::io("duplicate log handle"))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe; it makes the server die with its starting thread,
        // so a killed test run leaves no servers behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(HarnessError::io(format!(
            "start {} ({})",
            self.server,
            self.program.display()
        )))?;
        self.child = Some(child);
        Ok(())
    }

    /// The OS process id, while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Polls the readiness probe until it holds; fails with the log tail if the process
    /// exits or the timeout passes first.
    pub(crate) fn wait_until_ready(&mut self) -> Result<(), HarnessError> {
        let timeout = self.ready_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.not_ready(format!("exited early with {status}")));
            }
            if (self.ready)() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("not ready after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub(crate) fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::NotReady {
            server: self.server,
            reason,
            log: self.log_path.clone(),
            log_tail: tail(&self.log_path, 40),
        }
    }

    /// Sends `signal` to the process (SIGSTOP/SIGCONT to freeze and thaw it).
    pub(crate) fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`; waits for the exit so the port
    /// can be reused.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // A frozen process cannot handle SIGTERM.
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGCONT);
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process at once, as `kill -9` would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same command again (same ports, same data dir) and waits until it is
    /// ready; panics with the log when it does not come back.
    pub(crate) fn restart(&mut self) {
        self.kill();
        if let Err(error) = self.launch().and_then(|()| self.wait_until_ready()) {
            panic!("{error}");
        }
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a file, or a note that it could not be read.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(log unreadable: {error})"),
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_setup_script() {
        let error = find_binary("Example server", "no-such-server-binary-xyz").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("scripts/setup.sh"), "{text}");
        assert!(text.contains("no-such-server-binary-xyz"), "{text}");
    }

    #[test]
    fn free_ports_come_from_below_the_ephemeral_range() {
        let port = free_port();
        assert!(PORT_RANGE.contains(&port), "{port}");
    }

    #[test]
    fn a_port_clash_is_retried_and_other_failures_are_not() {
        let mut calls = 0;
        let result: Result<(), HarnessError> = retry_port_clash(|| {
            calls += 1;
            Err(HarnessError::NotReady {
                server: "x",
                reason: "exited early".into(),
                log: PathBuf::from("x.log"),
                log_tail: "listen tcp 127.0.0.1:1: bind: address already in use".into(),
            })
        });
        assert!(result.is_err());
        assert_eq!(calls, 5);

        let mut calls = 0;
        let result: Result<(), HarnessError> = retry_port_clash(|| {
            calls += 1;
            Err(HarnessError::MissingBinary {
                server: "x",
                binary: "x".into(),
            })
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_server_that_exits_at_once_fails_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let Err(error) = launch(Launch {
            server: "shell",
            binary: "sh",
            args: vec!["-c".into(), "echo boom-from-server; exit 3".into()],
            log_path: dir.path().join("sh.log"),
            ready_timeout: Duration::from_secs(10),
            ready: Box::new(|| false),
        }) else {
            panic!("a server that exits cannot be ready");
        };
        let text = error.to_string();
        assert!(text.contains("exited early"), "{text}");
        assert!(text.contains("boom-from-server"), "{text}");
    }
}
