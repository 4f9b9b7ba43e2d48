use std::path::PathBuf;

/// Why a test server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The server's binary is not installed.
    #[error(
        "`{binary}` ({server}) is not installed or not on PATH. Run scripts/setup.sh (as root) to install it; tests never skip a missing server."
    )]
    MissingBinary {
        /// Which server.
        server: &'static str,
        /// The program that was looked for.
        binary: String,
    },
    /// The server started but did not become ready, or exited.
    #[error(
        "{server} did not start: {reason}\n--- last lines of {log} ---\n{log_tail}\n--- end of log ---"
    )]
    NotReady {
        /// Which server.
        server: &'static str,
        /// What was observed (timeout, exit status).
        reason: String,
        /// Where the full log is.
        log: PathBuf,
        /// The end of the server's output.
        log_tail: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A request to a started server failed.
    #[error("{server}: {what}")]
    Request {
        /// Which server.
        server: &'static str,
        /// What failed and how.
        what: String,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}

impl HarnessError {
    /// Whether the server failed because one of its ports was already taken.
    pub(crate) fn is_port_clash(&self) -> bool {
        match self {
            HarnessError::NotReady { log_tail, .. } => {
                let log = log_tail.to_ascii_lowercase();
                log.contains("address already in use") || log.contains("addrinuse")
            }
            _ => false,
        }
    }
}
