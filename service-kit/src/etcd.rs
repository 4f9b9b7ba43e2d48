//! Connecting to etcd with the settings that survive an etcd restart or freeze, and
//! following one key's value across restarts and compactions ([`KeyWatcher`]).
//!
//! Seen with etcd 3.4: a connect "succeeds" with nothing listening (errors come on the first
//! call), and a frozen server is only noticed with keep-alive. So every client gets a connect
//! timeout, a request timeout and keep-alive, and [`connect`] probes with one request.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, WatchOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// Why etcd could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered within the timeout.
    #[error(
        "cannot reach etcd at {endpoints}: {source}; check [etcd] address and that etcd is running"
    )]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// No endpoints were configured.
    #[error("no etcd endpoints configured; set [etcd] address (comma-separated host:port list)")]
    NoEndpoints,
}

/// The options every etcd client of the pipeline uses.
pub fn connect_options(timeout: Duration) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(5), timeout)
        .with_keep_alive_while_idle(true)
}

/// Connects to `endpoints` and checks with one request that etcd really answers.
pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Client, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::NoEndpoints);
    }
    let unreachable = |source| EtcdError::Unreachable {
        endpoints: endpoints.join(","),
        source,
    };
    let mut client = Client::connect(endpoints, Some(connect_options(timeout)))
        .await
        .map_err(unreachable)?;
    client.status().await.map_err(unreachable)?;
    Ok(client)
}

/// The watched key's value at one revision, as [`KeyWatcher`] delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUpdate {
    /// The key's mod revision; the store revision when a read finds no key.
    pub revision: i64,
    /// The value; `None` when the key does not exist or was deleted.
    pub value: Option<Vec<u8>>,
}

/// Why one read-and-watch round ended. [`KeyWatcher`] logs it, backs off and starts a new
/// round; it is public so that callers can match the logged causes in tests.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] EtcdError),
    /// A call to etcd failed (etcd restarted: the stream errors once and stays dead).
    #[error("etcd request failed: {0}")]
    Etcd(#[from] etcd_client::Error),
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

/// Follows one key: delivers its value now and after every change, across etcd restarts,
/// freezes and compactions, until stopped.
///
/// What held up against etcd 3.4 (TESTING.md): read the key, then watch from the read's
/// store revision + 1 with progress notifications, so that a change written between the
/// read and the watch is still delivered. On any error, cancel or end of stream: back off
/// with jitter, read the key again (which delivers whatever changed meanwhile) and watch
/// from the new revision. A value can therefore be delivered twice; consumers treat a
/// repeated value as a no-op. The backoff is reset once a watch is established.
pub struct KeyWatcher {
    endpoints: Vec<String>,
    timeout: Duration,
    key: String,
    client: Option<Client>,
    backoff: Backoff,
}

impl std::fmt::Debug for KeyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcd_client::Client is not Debug; whether one is held is what matters.
        f.debug_struct("KeyWatcher")
            .field("endpoints", &self.endpoints)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("connected", &self.client.is_some())
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl KeyWatcher {
    /// Watches `key` on `endpoints`; `timeout` is the connect and request timeout of
    /// [`connect_options`]. Connects on [`KeyWatcher::run`], retrying until etcd answers.
    pub fn new(endpoints: Vec<String>, key: impl Into<String>, timeout: Duration) -> Self {
        KeyWatcher {
            endpoints,
            timeout,
            key: key.into(),
            client: None,
            // 200 ms to 10 s: the agents' and transfers' etcd retries since the start.
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
        }
    }

    /// Uses an already connected client (e.g. the one [`connect`] checked at start-up)
    /// instead of connecting on the first round.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Replaces the retry backoff (default: 200 ms doubling up to 10 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The watched key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sends every update into `tx` until `stop` triggers or the receiver is dropped.
    /// A full channel holds the watcher back (etcd's own buffering takes the slack).
    pub async fn run(self, tx: mpsc::Sender<KeyUpdate>, stop: CancellationToken) {
        self.run_with(stop, |update| {
            let tx = tx.clone();
            async move { tx.send(update).await.is_ok() }
        })
        .await;
    }

    /// Calls `on_update` with every update until `stop` triggers or `on_update` returns
    /// `false` (its consumer is gone).
    pub async fn run_with<F, Fut>(mut self, stop: CancellationToken, mut on_update: F)
    where
        F: FnMut(KeyUpdate) -> Fut,
        Fut: Future<Output = bool>,
    {
        while !stop.is_cancelled() {
            let result = match self.client.take() {
                Some(mut client) => {
                    let round = self
                        .read_and_watch(&mut client, &stop, &mut on_update)
                        .await;
                    // The client reconnects by itself for new calls after etcd restarts.
                    self.client = Some(client);
                    round
                }
                None => match connect(&self.endpoints, self.timeout).await {
                    Ok(client) => {
                        self.client = Some(client);
                        continue;
                    }
                    Err(error) => Err(WatchError::Connect(error)),
                },
            };
            match result {
                Ok(()) => return,
                Err(error) => {
                    let wait = self.backoff.next_delay();
                    log::warn!(
                        "etcd {:?}, key {:?}: {error}; reading the key again and re-watching in {wait:?}",
                        self.endpoints,
                        self.key
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One round: read, deliver, watch and deliver until an error (`Err`), or until stopped
    /// or the consumer is gone (`Ok`).
    async fn read_and_watch<F, Fut>(
        &mut self,
        client: &mut Client,
        stop: &CancellationToken,
        on_update: &mut F,
    ) -> Result<(), WatchError>
    where
        F: FnMut(KeyUpdate) -> Fut,
        Fut: Future<Output = bool>,
    {
        let response = client.get(self.key.as_str(), None).await?;
        let store_revision = response.header().map_or(0, |h| h.revision());
        let update = match response.kvs().first() {
            Some(kv) => KeyUpdate {
                revision: kv.mod_revision(),
                value: Some(kv.value().to_vec()),
            },
            None => KeyUpdate {
                revision: store_revision,
                value: None,
            },
        };
        if !on_update(update).await {
            return Ok(());
        }
        let options = WatchOptions::new()
            .with_start_revision(store_revision + 1)
            .with_progress_notify();
        let mut stream = client.watch(self.key.as_str(), Some(options)).await?;
        self.backoff.reset();
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                message = stream.message() => message?,
            };
            let Some(response) = message else {
                return Err(WatchError::Closed);
            };
            if response.canceled() {
                return Err(WatchError::Canceled {
                    compact_revision: response.compact_revision(),
                    reason: response.cancel_reason().to_owned(),
                });
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value().to_vec()),
                    EventType::Delete => None,
                };
                let update = KeyUpdate {
                    revision: kv.mod_revision(),
                    value,
                };
                if !on_update(update).await {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_listening_is_an_error_naming_the_endpoint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("127.0.0.1:{port}");
        let Err(err) = connect(std::slice::from_ref(&endpoint), Duration::from_millis(500)).await
        else {
            panic!("connect succeeded with nothing listening");
        };
        assert!(err.to_string().contains(&endpoint), "{err}");
    }

    #[tokio::test]
    async fn no_endpoints_is_an_error() {
        let Err(err) = connect(&[], Duration::from_secs(1)).await else {
            panic!("connect succeeded without endpoints");
        };
        assert!(matches!(err, EtcdError::NoEndpoints));
    }
    /// Receives updates until one carries `value`; earlier repeats are allowed (a re-read
    /// after an error delivers the current value again), anything else is not.
    async fn expect_value(
        rx: &mut mpsc::Receiver<KeyUpdate>,
        value: Option<&str>,
        allowed_before: &[Option<&str>],
    ) -> KeyUpdate {
        let wanted = value.map(|v| v.as_bytes().to_vec());
        loop {
            let update = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no update with {value:?} within 30 s"))
                .expect("the watcher stopped");
            if update.value == wanted {
                return update;
            }
            let got = update.value.as_deref().map(String::from_utf8_lossy);
            assert!(
                allowed_before
                    .iter()
                    .any(|a| a.map(str::as_bytes) == update.value.as_deref()),
                "unexpected update {got:?} while waiting for {value:?}"
            );
        }
    }

    fn watcher(etcd: &test_servers::Etcd, key: &str) -> KeyWatcher {
        KeyWatcher::new(vec![etcd.endpoint()], key, Duration::from_secs(2)).with_backoff(
            Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        )
    }

    #[tokio::test]
    async fn a_watched_key_is_delivered_now_and_on_every_change_and_delete() {
        let etcd = test_servers::Etcd::start();
        let mut client = connect(&[etcd.endpoint()], Duration::from_secs(5))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher(&etcd, "/k").run(tx, stop.clone()));

        let missing = expect_value(&mut rx, None, &[]).await;
        assert!(missing.revision > 0, "the store revision of the read");
        client.put("/k", "one", None).await.unwrap();
        client.put("/other", "ignored", None).await.unwrap();
        let one = expect_value(&mut rx, Some("one"), &[]).await;
        client.put("/k", "two", None).await.unwrap();
        let two = expect_value(&mut rx, Some("two"), &[]).await;
        assert!(two.revision > one.revision, "{two:?} after {one:?}");
        client.delete("/k", None).await.unwrap();
        let deleted = expect_value(&mut rx, None, &[]).await;
        assert!(deleted.revision > two.revision);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher did not stop")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_resumes_after_an_etcd_restart_and_a_compaction() {
        let mut etcd = test_servers::Etcd::start();
        etcd.put("/k", "before");
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher(&etcd, "/k").run(tx, stop.clone()));
        expect_value(&mut rx, Some("before"), &[]).await;

        // Compacting the history under a running watch does not disturb it.
        let mut client = connect(&[etcd.endpoint()], Duration::from_secs(5))
            .await
            .unwrap();
        let mut revision = 0;
        for value in ["x", "y", "z"] {
            let put = client.put("/other", value, None).await.unwrap();
            revision = put.header().map_or(0, |h| h.revision());
        }
        client.compact(revision, None).await.unwrap();
        etcd.put("/k", "compacted");
        expect_value(&mut rx, Some("compacted"), &[]).await;

        // The stream dies with the server; the watcher re-reads and re-watches.
        tokio::task::block_in_place(|| etcd.restart());
        etcd.put("/k", "after");
        expect_value(&mut rx, Some("after"), &[Some("compacted")]).await;

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher did not stop")
            .unwrap();
    }

    #[tokio::test]
    async fn the_watcher_stops_when_its_consumer_is_gone() {
        let etcd = test_servers::Etcd::start();
        let mut seen = Vec::new();
        let run = watcher(&etcd, "/gone").run_with(CancellationToken::new(), |update| {
            seen.push(update);
            async { false }
        });
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the watcher did not stop");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].value, None);
    }
}
