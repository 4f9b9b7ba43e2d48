//! A service run on its own tokio runtime in a background thread and stopped through its
//! [`Shutdown`]: how a program embeds one of our pipelines, and how the tests run them in
//! process.

use std::future::Future;
use std::thread::JoinHandle;

use crate::shutdown::Shutdown;

/// A running service; dropping it triggers its shutdown and waits for it.
pub struct Background<E> {
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), E>>>,
}

impl<E: Send + 'static> Background<E> {
    /// Runs `service(shutdown)` on a new multi-thread runtime of `worker_threads` threads
    /// (at least one) in a new thread. Fails only if the runtime or the thread cannot be
    /// created.
    pub fn spawn<F, Fut>(worker_threads: usize, service: F) -> std::io::Result<Self>
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .enable_all()
            .build()?;
        let shutdown = Shutdown::new();
        let signal = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("background-service".into())
            .spawn(move || runtime.block_on(service(signal)))?;
        Ok(Background {
            shutdown,
            thread: Some(thread),
        })
    }

    /// Whether the service ended on its own (it failed, or finished its work).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Triggers the shutdown and returns the service's result once it ended; a panic in
    /// the service is passed on to the caller.
    pub fn stop(mut self) -> Result<(), E> {
        self.shutdown.trigger();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl<E> Drop for Background<E> {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_triggers_the_shutdown_and_returns_the_result() {
        let bg = Background::spawn(1, |shutdown| async move {
            shutdown.wait().await;
            Err::<(), _>("stopped")
        })
        .unwrap();
        assert_eq!(bg.stop(), Err("stopped"));
    }

    #[test]
    fn a_service_that_ends_on_its_own_is_finished_and_keeps_its_result() {
        let bg = Background::spawn(1, |_| async { Err::<(), _>("failed") }).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !bg.is_finished() {
            assert!(std::time::Instant::now() < deadline, "never finished");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(bg.stop(), Err("failed"));
    }
}
