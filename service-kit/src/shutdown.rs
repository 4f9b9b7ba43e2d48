//! One cancellation signal for the whole process, triggered by SIGINT or SIGTERM.
//!
//! Every long-running task takes a clone of [`Shutdown`] and selects on [`Shutdown::wait`];
//! the binary then flushes and exits 0, as operators expect from `kill` or Ctrl-C.

use tokio_util::sync::CancellationToken;

/// A cloneable handle on the process's stop signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers this signal on the first SIGINT or SIGTERM. Needs a running tokio runtime.
    ///
    /// A second signal while shutting down exits the process at once with status 130, so an
    /// operator can always get out of a stuck flush.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let token = self.token.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            log::info!("{name} received: stopping after flushing (send it again to exit at once)");
            token.cancel();
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            log::warn!("second stop signal: exiting without waiting for the flush");
            std::process::exit(130);
        });
        Ok(())
    }

    /// Starts the shutdown, as a signal would.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// The underlying token, for APIs that take one.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;
    use std::time::Duration;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        let waiter = tokio::spawn(async move { clone.wait().await });
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter did not see the trigger")
            .unwrap();
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn sigterm_triggers_the_shutdown() {
        let shutdown = Shutdown::new();
        shutdown.install_signal_handlers().unwrap();
        // SAFETY: sending a signal to our own process; the handler above is installed.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("SIGTERM did not trigger the shutdown");
    }
}
