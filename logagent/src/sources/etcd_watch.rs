//! Reads the collect-config key, then watches it, and keeps doing so across etcd restarts
//! and compactions.
//!
//! The watch starts at the revision the read returned + 1, so an update written between
//! the read and the watch is still delivered. Any error (etcd restarted: the stream dies
//! once and stays dead; the watched revision was compacted: the watch comes back canceled)
//! leads to the same recovery: back off with jitter, read the key again (which delivers
//! whatever changed meanwhile) and watch from the new revision. Updates can therefore
//! arrive twice; the supervisor's diff makes a repeated config a no-op.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The value of the key at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigUpdate {
    /// The key's mod revision (or the store revision when the key does not exist).
    pub revision: i64,
    /// The value; `None` when the key does not exist or was deleted.
    pub value: Option<Vec<u8>>,
}

/// Why one read-and-watch round ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A call to etcd failed.
    #[error("etcd request failed: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// Connecting failed.
    #[error("cannot connect to etcd: {0}")]
    Connect(String),
    /// etcd canceled the watch (compaction, or a restart).
    #[error("etcd canceled the watch (compact revision {compact_revision}, reason {reason:?})")]
    Canceled {
        /// Compacted up to here, 0 if not a compaction.
        compact_revision: i64,
        /// etcd's reason, often empty on 3.4.
        reason: String,
    },
    /// The stream ended without an error.
    #[error("etcd closed the watch stream")]
    Closed,
}

/// Watches one key.
#[derive(Debug, Clone)]
pub struct EtcdWatch {
    /// Endpoints.
    pub endpoints: Vec<String>,
    /// Connect and request timeout.
    pub timeout: Duration,
    /// The key.
    pub key: String,
}

/// Exponential backoff with jitter, 200 ms up to 10 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Backoff { next: Self::MIN }
    }

    fn reset(&mut self) {
        self.next = Self::MIN;
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // full jitter in [base/2, base]: agents restarted together do not hit etcd together
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

impl EtcdWatch {
    /// Sends the key's value now and on every change until cancelled.
    pub async fn run(self, tx: mpsc::Sender<ConfigUpdate>, cancel: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut client: Option<Client> = None;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let result = match client.as_mut() {
                Some(c) => self.read_and_watch(c, &tx, &cancel, &mut backoff).await,
                None => match service_kit::etcd::connect(&self.endpoints, self.timeout).await {
                    Ok(c) => {
                        client = Some(c);
                        continue;
                    }
                    Err(e) => Err(WatchError::Connect(e.to_string())),
                },
            };
            match result {
                Ok(()) => return,
                Err(e) => {
                    let wait = backoff.next();
                    log::warn!(
                        "etcd {:?}, key {}: {e}; reading the key again and re-watching in {wait:?}",
                        self.endpoints,
                        self.key
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn read_and_watch(
        &self,
        client: &mut Client,
        tx: &mpsc::Sender<ConfigUpdate>,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), WatchError> {
        let resp = client.get(self.key.as_str(), None).await?;
        let store_revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let update = match resp.kvs().first() {
            Some(kv) => ConfigUpdate {
                revision: kv.mod_revision(),
                value: Some(kv.value().to_vec()),
            },
            None => ConfigUpdate {
                revision: store_revision,
                value: None,
            },
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
        let options = WatchOptions::new()
            .with_start_revision(store_revision + 1)
            .with_progress_notify();
        let mut stream = client.watch(self.key.as_str(), Some(options)).await?;
        backoff.reset();
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                m = stream.message() => m?,
            };
            let Some(resp) = msg else {
                return Err(WatchError::Closed);
            };
            if resp.canceled() {
                return Err(WatchError::Canceled {
                    compact_revision: resp.compact_revision(),
                    reason: resp.cancel_reason().to_string(),
                });
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value().to_vec()),
                    EventType::Delete => None,
                };
                if tx
                    .send(ConfigUpdate {
                        revision: kv.mod_revision(),
                        value,
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(
            first >= Duration::from_millis(100) && first <= Duration::from_millis(200),
            "{first:?}"
        );
        for _ in 0..10 {
            b.next();
        }
        let capped = b.next();
        assert!(
            capped >= Duration::from_secs(5) && capped <= Duration::from_secs(10),
            "{capped:?}"
        );
        b.reset();
        assert!(b.next() <= Duration::from_millis(200));
    }
}
