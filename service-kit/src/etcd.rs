//! Connecting to etcd with the settings that survive an etcd restart or freeze, and
//! following one key's value across restarts and compactions ([`KeyWatcher`]).
//!
//! Seen with etcd 3.4: a connect "succeeds" with nothing listening (errors come on the first
//! call), and a frozen server is only noticed with keep-alive. So every client gets a connect
//! timeout, a request timeout and keep-alive, and [`connect`] probes with one request.
//!
//! Secured etcd ([`EtcdTarget::with_credentials`]): `https://` endpoints are TLS (rustls),
//! with the configured CA (else the system's roots) and client certificate; a user name logs
//! in at connect. What the user got wrong (password, certificate, TLS on one side only, no
//! credentials where etcd wants them) is an [`EtcdError`] at [`connect`] naming the endpoint
//! and what to check, so a binary can stop at start instead of retrying forever; only
//! [`EtcdError::Unreachable`] is worth retrying.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, TlsOptions, WatchOptions,
};
pub use secure_transport::etcd::{
    EtcdCredentials, EtcdSecurity, EtcdSecurityError, KEYS as SECURITY_KEYS, Spelling,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::readiness::Condition;

/// Implements `Deserialize` for a component's `[etcd]` section struct: its own keys (listed
/// here, read by its `#[serde(remote = "Self")]` derive) and the [`SECURITY_KEYS`] every
/// `[etcd]` section carries, into its `#[serde(skip)] security: EtcdSecurity` field
/// ([`crate::section::split`]). Unknown keys stay errors, INI text still converts, and
/// environment overrides see every key.
///
/// ```ignore
/// service_kit::etcd_section!(EtcdConfig, ["address", "timeout", "collect_log_key"]);
/// ```
#[macro_export]
macro_rules! etcd_section {
    ($section:ident, [$($key:literal),+ $(,)?]) => {
        impl<'de> ::serde::Deserialize<'de> for $section {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                const OWN: &[&str] = &[$($key),+];
                const SHARED: &[&str] = &$crate::etcd::SECURITY_KEYS;
                static KEYS: [&str; OWN.len() + SHARED.len()] =
                    $crate::section::join_keys(OWN, SHARED);
                let (mut section, security) = $crate::section::split(
                    deserializer,
                    stringify!($section),
                    &KEYS,
                    SHARED,
                    $section::deserialize,
                )?;
                section.security = security;
                Ok(section)
            }
        }
    };
}

/// Where etcd is and how to log in: what every etcd client of the pipeline connects with.
/// Its `Debug` shows no secret (passwords and keys are `Secret`s).
#[derive(Debug, Clone)]
pub struct EtcdTarget {
    /// Endpoints, `host:port`, `http://host:port` or `https://host:port` (TLS).
    pub endpoints: Vec<String>,
    /// Connect and request timeout.
    pub timeout: Duration,
    /// User and TLS material (`secure_transport::etcd::EtcdSecurity::resolve`).
    pub credentials: EtcdCredentials,
    /// How errors name the settings: `[etcd] tls_ca_file` or etcd-put's `--cacert`.
    pub spelling: Spelling,
}

impl EtcdTarget {
    /// Plaintext endpoints without a user.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> EtcdTarget {
        EtcdTarget {
            endpoints,
            timeout,
            credentials: EtcdCredentials::default(),
            spelling: Spelling::Config,
        }
    }

    /// Logs in and/or talks TLS as `credentials` say.
    pub fn with_credentials(mut self, credentials: EtcdCredentials) -> EtcdTarget {
        self.credentials = credentials;
        self
    }

    /// Names settings in errors as `spelling` does (default: config keys).
    pub fn with_spelling(mut self, spelling: Spelling) -> EtcdTarget {
        self.spelling = spelling;
        self
    }

    fn endpoint_list(&self) -> String {
        self.endpoints.join(",")
    }

    fn name(&self, key: &str) -> String {
        self.spelling.name(key)
    }
}

/// Why etcd could not be used. Never carries a password or key.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered within the timeout.
    #[error("cannot reach etcd at {endpoints}: {source}; check {address} and that etcd is running")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The address key or flag.
        address: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// TLS could not be set up: an untrusted or wrong certificate, TLS on one side only, a
    /// client certificate missing or refused.
    #[error("TLS with etcd at {endpoints} failed: {source}; {check}")]
    Tls {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What to check.
        check: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd refused the login, or wants one.
    #[error("etcd at {endpoints} refused the client: {source}; {check}")]
    Authentication {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What to check.
        check: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The endpoints or TLS material were refused by the client library.
    #[error("invalid etcd settings for {endpoints}: {source}; check {address} and the tls_* files")]
    Invalid {
        /// The endpoints given, comma-separated.
        endpoints: String,
        /// The address key or flag.
        address: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// No endpoints were configured.
    #[error("no etcd endpoints configured; set {address} (comma-separated host:port list)")]
    NoEndpoints {
        /// The address key or flag.
        address: String,
    },
}

impl EtcdError {
    /// Whether trying again later may help (etcd down or not reachable yet). Every other
    /// error is a setting to fix: stop and say so.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, EtcdError::Unreachable { .. })
    }
}

/// The options every etcd client of the pipeline uses: timeouts, keep-alive, and the
/// target's TLS and user. Expired auth tokens are renewed on the call that finds them
/// expired (etcd's simple tokens live 5 minutes unused by default).
pub fn connect_options(target: &EtcdTarget) -> ConnectOptions {
    let timeout = target.timeout;
    let mut options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(5), timeout)
        .with_keep_alive_while_idle(true)
        .with_auto_token_refresh(true);
    if let Some(tls) = &target.credentials.tls {
        let mut tls_options = TlsOptions::new();
        tls_options = match &tls.ca_pem {
            Some(ca) => tls_options.ca_certificate(Certificate::from_pem(ca)),
            None => tls_options.with_native_roots(),
        };
        if let Some((cert, key)) = &tls.identity {
            tls_options = tls_options.identity(Identity::from_pem(cert, key.expose()));
        }
        options = options.with_tls(tls_options);
    }
    if let Some((user, password)) = &target.credentials.user {
        options = options.with_user(user.as_str(), password.expose());
    }
    options
}

/// Connects to `target`, logging in when it has a user, and checks with one request that
/// etcd really answers (and, without a user, that it does not want one).
pub async fn connect(target: &EtcdTarget) -> Result<Client, EtcdError> {
    if target.endpoints.is_empty() {
        return Err(EtcdError::NoEndpoints {
            address: target.name("address"),
        });
    }
    let mut options = connect_options(target);
    let mut client = match Client::connect(&target.endpoints, Some(options.clone())).await {
        Ok(client) => client,
        Err(error) if auth_not_enabled(&error) => {
            // As etcdctl: a user for an etcd without authentication is not an error (the
            // user may be set up before authentication is turned on). The watcher logs in
            // again when etcd later asks for it.
            log::warn!(
                "etcd at {} has authentication off; connecting without logging in as {}",
                target.endpoint_list(),
                target.name("username")
            );
            options = connect_options(&EtcdTarget {
                credentials: EtcdCredentials {
                    user: None,
                    ..target.credentials.clone()
                },
                ..target.clone()
            });
            Client::connect(&target.endpoints, Some(options))
                .await
                .map_err(|e| explain(target, e))?
        }
        Err(error) => return Err(explain(target, error)),
    };
    client.status().await.map_err(|e| explain(target, e))?;
    if target.credentials.user.is_none() {
        // Status needs no login; a read does. Only "no user" is an answer here: a
        // permission error on this probe key says nothing about the keys the caller reads.
        let probe = GetOptions::new().with_count_only().with_serializable();
        if let Err(error) = client.get("/", Some(probe)).await
            && !status_message(&error).is_some_and(|m| m.contains("permission denied"))
        {
            return Err(explain(target, error));
        }
    }
    Ok(client)
}

/// The grpc status message, when the error is one.
fn status_message(error: &etcd_client::Error) -> Option<&str> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some(status.message()),
        _ => None,
    }
}

fn auth_not_enabled(error: &etcd_client::Error) -> bool {
    status_message(error).is_some_and(|m| m.contains("authentication is not enabled"))
}

fn user_missing(error: &etcd_client::Error) -> bool {
    status_message(error).is_some_and(|m| m.contains("user name is empty"))
}

/// Whether `error` says the login is missing, failed or expired: the next round should
/// connect (and log in) afresh.
pub fn is_auth_error(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => [
            "invalid auth token",
            "user name is empty",
            "authentication failed",
            "revision of auth store is old",
        ]
        .iter()
        .any(|m| status.message().contains(m)),
        _ => false,
    }
}

/// The client's error with the endpoint and what to check, sorted into what to fix and what
/// to retry. The TLS causes are told apart by rustls' and hyper's messages (seen against
/// etcd 3.4; `tests` pins them).
fn explain(target: &EtcdTarget, error: etcd_client::Error) -> EtcdError {
    let endpoints = target.endpoint_list();
    let tls = target.credentials.tls.is_some();
    let text = error_chain(&error).to_lowercase();
    let name = |key| target.name(key);
    if let etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) = &error {
        return EtcdError::Invalid {
            endpoints,
            address: name("address"),
            source: error,
        };
    }
    if status_message(&error).is_some_and(|m| m.contains("authentication failed")) {
        return EtcdError::Authentication {
            endpoints,
            check: format!(
                "check {} and {} (or {})",
                name("username"),
                name("password"),
                name("password_file")
            ),
            source: error,
        };
    }
    if user_missing(&error) {
        return EtcdError::Authentication {
            endpoints,
            check: format!(
                "etcd has authentication on: set {} and {} (or {})",
                name("username"),
                name("password"),
                name("password_file")
            ),
            source: error,
        };
    }
    let any = |markers: &[&str]| markers.iter().any(|m| text.contains(m));
    // Nothing listening, or nothing answering: worth retrying, whatever the TLS settings.
    let unreachable = any(&[
        "connection refused",
        "timed out",
        "timeout",
        "deadline",
        "dns error",
    ]);
    let closed = any(&[
        "broken pipe",
        "connection closed",
        "connection reset",
        "frame",
        "fatal alert",
    ]);
    let identity = target
        .credentials
        .tls
        .as_ref()
        .map(|t| t.identity.is_some());
    let check = if any(&[
        "invalid peer certificate",
        "notvalidforname",
        "not valid for name",
    ]) {
        Some(format!(
            "etcd's certificate is not trusted or not for this address; check that {} is the CA that signed it and that {} names a host in the certificate",
            name("tls_ca_file"),
            name("address")
        ))
    } else if tls
        && any(&[
            "tls handshake eof",
            "corrupt message",
            "invalidcontenttype",
            "invalid content type",
        ])
    {
        Some(format!(
            "etcd does not answer TLS there; check that it serves TLS (--cert-file) on that port, or write {} without https://",
            name("address")
        ))
    } else if unreachable || !closed {
        None
    } else {
        match identity {
            // etcd 3.4 closes a plaintext connection to its TLS port without a word.
            None => Some(format!(
                "etcd closed the plaintext connection; if it serves TLS, write {} as https://host:port and set {}",
                name("address"),
                name("tls_ca_file")
            )),
            // And a TLS connection without the client certificate it requires.
            Some(false) => Some(format!(
                "etcd closed the TLS connection; if it requires client certificates (--client-cert-auth), set {} and {}",
                name("tls_cert_file"),
                name("tls_key_file")
            )),
            Some(true) => Some(format!(
                "etcd closed the TLS connection; check that {} and {} are a certificate signed by a CA etcd trusts (its --trusted-ca-file)",
                name("tls_cert_file"),
                name("tls_key_file")
            )),
        }
    };
    match check {
        Some(check) => EtcdError::Tls {
            endpoints,
            check,
            source: error,
        },
        None => EtcdError::Unreachable {
            endpoints,
            address: name("address"),
            source: error,
        },
    }
}

/// The error and its sources, one string (the TLS cause is a few levels down).
fn error_chain(error: &etcd_client::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

impl WatchError {
    /// Whether the next round should connect and log in afresh: a login error, or a cancel
    /// that is not a compaction (etcd 3.4's answer to a watch made with an expired token).
    fn needs_login(&self) -> bool {
        match self {
            WatchError::Etcd(error) => is_auth_error(error),
            WatchError::Canceled {
                compact_revision, ..
            } => *compact_revision == 0,
            WatchError::Connect(_) | WatchError::Closed => false,
        }
    }
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
///
/// With a user, the login is renewed where it lapses: a read or watch refused for an
/// expired or unknown token (etcd forgets its simple tokens on restart and after
/// `--auth-token-ttl` unused) is retried with a new token by the client, and a round that
/// ends in a login error or in a cancel that is not a compaction (how etcd 3.4 answers a
/// watch made with an expired token) drops the client, so that the next round connects and
/// logs in afresh.
pub struct KeyWatcher {
    target: EtcdTarget,
    key: String,
    client: Option<Client>,
    backoff: Backoff,
    /// Ready while a watch is established; not ready from its end until the next one.
    alive: Option<Condition>,
}

impl std::fmt::Debug for KeyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcd_client::Client is not Debug; whether one is held is what matters.
        f.debug_struct("KeyWatcher")
            .field("target", &self.target)
            .field("key", &self.key)
            .field("connected", &self.client.is_some())
            .field("backoff", &self.backoff)
            .field("alive", &self.alive)
            .finish()
    }
}

impl KeyWatcher {
    /// Watches `key` on `target`. Connects on [`KeyWatcher::run`], retrying until etcd
    /// answers.
    pub fn new(target: EtcdTarget, key: impl Into<String>) -> Self {
        KeyWatcher {
            target,
            key: key.into(),
            client: None,
            // 200 ms to 10 s: the agents' and transfers' etcd retries since the start.
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            alive: None,
        }
    }

    /// Keeps `alive` ready while a watch is established, and not ready (with the error)
    /// from the moment a round fails until the next watch is established. etcd that stops
    /// or restarts ends the stream at once; a frozen etcd is noticed by the keep-alive of
    /// [`connect_options`] (5 s, then the timeout).
    pub fn with_readiness(mut self, alive: Condition) -> Self {
        self.alive = Some(alive);
        self
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
                    // The client reconnects by itself for new calls after etcd restarts;
                    // a lapsed login is renewed by connecting afresh.
                    if !round.as_ref().is_err_and(WatchError::needs_login) {
                        self.client = Some(client);
                    }
                    round
                }
                None => match connect(&self.target).await {
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
                    if let Some(alive) = &self.alive {
                        alive.set_not_ready(format!(
                            "the watch of {} on etcd {} ended: {error}; re-watching",
                            self.key,
                            self.target.endpoints.join(",")
                        ));
                    }
                    let wait = self.backoff.next_delay();
                    log::warn!(
                        "etcd {:?}, key {:?}: {error}; reading the key again and re-watching in {wait:?}",
                        self.target.endpoints,
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
        if let Some(alive) = &self.alive {
            alive.set_ready();
        }
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
        let target = EtcdTarget::new(vec![endpoint.clone()], Duration::from_millis(500));
        let Err(err) = connect(&target).await else {
            panic!("connect succeeded with nothing listening");
        };
        assert!(err.to_string().contains(&endpoint), "{err}");
        assert!(err.is_unreachable(), "{err}");
    }

    /// A frozen etcd is down, not misconfigured: the agents retry it (and logagent runs
    /// from its cache) instead of stopping.
    #[tokio::test]
    async fn a_frozen_etcd_is_unreachable_not_a_settings_error() {
        let etcd = test_servers::Etcd::start();
        etcd.pause();
        let target = EtcdTarget::new(vec![etcd.endpoint()], Duration::from_millis(500));
        let result = connect(&target).await;
        etcd.resume();
        let Err(err) = result else {
            panic!("connect succeeded with etcd frozen");
        };
        assert!(err.is_unreachable(), "{err}");
    }

    #[tokio::test]
    async fn no_endpoints_is_an_error() {
        let Err(err) = connect(&EtcdTarget::new(vec![], Duration::from_secs(1))).await else {
            panic!("connect succeeded without endpoints");
        };
        assert!(matches!(err, EtcdError::NoEndpoints { .. }));
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
        KeyWatcher::new(
            EtcdTarget::new(vec![etcd.endpoint()], Duration::from_secs(2)),
            key,
        )
        .with_backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
    }

    #[tokio::test]
    async fn a_watched_key_is_delivered_now_and_on_every_change_and_delete() {
        let etcd = test_servers::Etcd::start();
        let mut client = connect(&EtcdTarget::new(
            vec![etcd.endpoint()],
            Duration::from_secs(5),
        ))
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
        let mut client = connect(&EtcdTarget::new(
            vec![etcd.endpoint()],
            Duration::from_secs(5),
        ))
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

    /// Polls `condition` every 50 ms until it holds; panics after 60 s naming `what`.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "never {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_is_ready_while_alive_not_while_etcd_is_frozen_or_gone() {
        let mut etcd = test_servers::Etcd::start();
        let readiness = crate::readiness::Readiness::new();
        let alive = readiness.condition("etcd", "not watching yet");
        assert!(!alive.is_ready());
        let (tx, mut rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let watch = watcher(&etcd, "/r").with_readiness(alive.clone());
        let task = tokio::spawn(watch.run(tx, stop.clone()));
        // Drains the updates (re-reads deliver the value again) so the watcher never waits.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        eventually("ready once watching", || alive.is_ready()).await;

        etcd.pause();
        eventually("not ready while etcd is frozen", || !alive.is_ready()).await;
        let report = readiness.report().to_text();
        assert!(
            report.contains("etcd: not ready: the watch of /r"),
            "{report}"
        );
        etcd.resume();
        eventually("ready again once etcd thaws", || alive.is_ready()).await;

        tokio::task::block_in_place(|| etcd.stop());
        eventually("not ready while etcd is down", || !alive.is_ready()).await;
        tokio::task::block_in_place(|| etcd.restart());
        eventually("ready again after the restart", || alive.is_ready()).await;

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher did not stop")
            .unwrap();
        drain.await.unwrap();
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

    #[test]
    fn non_compaction_cancels_reconnect_and_compactions_do_not() {
        let canceled = |compact_revision| WatchError::Canceled {
            compact_revision,
            reason: String::new(),
        };
        assert!(
            canceled(0).needs_login(),
            "etcd 3.4's answer to an expired token"
        );
        assert!(
            !canceled(42).needs_login(),
            "a compaction: re-read, same client"
        );
        assert!(!WatchError::Closed.needs_login());
    }

    mod secured {
        //! Against a real etcd with TLS and/or authentication on (test_servers::EtcdOptions).

        use super::*;
        use secure_transport::Secret;
        use secure_transport::etcd::EtcdSecurity;
        use test_servers::{ETCD_USER, ETCD_USER_PASSWORD, Etcd, EtcdOptions, TestPki};

        /// The settings a user writes: CA, client certificate, user and password.
        fn security(pki: &TestPki, password: &str) -> EtcdSecurity {
            EtcdSecurity {
                username: ETCD_USER.into(),
                password: Secret::new(password),
                tls_ca_file: pki.ca_cert(),
                tls_cert_file: pki.client_cert(),
                tls_key_file: pki.client_key(),
                ..EtcdSecurity::default()
            }
        }

        fn target(endpoint: String, security: &EtcdSecurity) -> EtcdTarget {
            let endpoints = vec![endpoint];
            let credentials = security
                .resolve(&endpoints, Spelling::Config)
                .expect("valid settings");
            EtcdTarget::new(endpoints, Duration::from_secs(3)).with_credentials(credentials)
        }

        async fn connect_error(target: &EtcdTarget) -> EtcdError {
            match connect(target).await {
                Ok(_) => panic!("connected to {:?}", target.endpoints),
                Err(error) => error,
            }
        }

        /// Asserts that `error` is of the kind `is_kind` tells and says each of `needles`.
        fn assert_says(error: &EtcdError, is_kind: fn(&EtcdError) -> bool, needles: &[&str]) {
            let text = error.to_string();
            assert!(is_kind(error), "{text}");
            for needle in needles {
                assert!(text.contains(needle), "{needle:?} not in: {text}");
            }
        }

        fn is_tls(error: &EtcdError) -> bool {
            matches!(error, EtcdError::Tls { .. })
        }

        fn is_authentication(error: &EtcdError) -> bool {
            matches!(error, EtcdError::Authentication { .. })
        }

        #[tokio::test]
        async fn tls_with_a_client_certificate_and_a_user_reads_and_watches() {
            let pki = TestPki::generate();
            let etcd = Etcd::start_with(
                EtcdOptions::new()
                    .tls(&pki)
                    .client_cert_auth()
                    .auth("/secured/"),
            );
            let target = target(etcd.endpoint(), &security(&pki, ETCD_USER_PASSWORD));
            let mut client = connect(&target).await.unwrap();
            client.put("/secured/k", "one", None).await.unwrap();
            let (tx, mut rx) = mpsc::channel(16);
            let stop = CancellationToken::new();
            let watcher = KeyWatcher::new(target, "/secured/k");
            let task = tokio::spawn(watcher.run(tx, stop.clone()));
            expect_value(&mut rx, Some("one"), &[]).await;
            client.put("/secured/k", "two", None).await.unwrap();
            expect_value(&mut rx, Some("two"), &[]).await;
            stop.cancel();
            task.await.unwrap();
        }

        #[tokio::test]
        async fn a_wrong_password_is_an_authentication_error_without_the_password() {
            let pki = TestPki::generate();
            let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki).auth("/secured/"));
            let target = target(etcd.endpoint(), &security(&pki, "not-the-password"));
            let error = connect_error(&target).await;
            assert_says(
                &error,
                is_authentication,
                &[&etcd.endpoint(), "[etcd] password"],
            );
            assert!(!error.to_string().contains("not-the-password"), "{error}");
            assert!(!error.is_unreachable());
        }

        #[tokio::test]
        async fn an_untrusted_server_certificate_is_a_tls_error_naming_the_ca_file() {
            let pki = TestPki::generate();
            let etcd = Etcd::start_with(EtcdOptions::new().untrusted_tls(&pki));
            for password in ["", ETCD_USER_PASSWORD] {
                // With a user the login fails first, without one the status probe.
                let mut settings = security(&pki, password);
                if password.is_empty() {
                    settings.username.clear();
                }
                let error = connect_error(&target(etcd.endpoint(), &settings)).await;
                assert_says(&error, is_tls, &[&etcd.endpoint(), "[etcd] tls_ca_file"]);
            }
        }

        #[tokio::test]
        async fn a_plaintext_client_of_a_tls_etcd_is_told_to_use_https() {
            let pki = TestPki::generate();
            let etcd = Etcd::start_with(EtcdOptions::new().tls(&pki));
            let plaintext = etcd.endpoint().replace("https://", "http://");
            let error = connect_error(&EtcdTarget::new(
                vec![plaintext.clone()],
                Duration::from_secs(3),
            ))
            .await;
            assert_says(&error, is_tls, &[&plaintext, "https://"]);
        }

        #[tokio::test]
        async fn a_tls_client_of_a_plaintext_etcd_is_told_so() {
            let pki = TestPki::generate();
            let etcd = Etcd::start();
            let tls = etcd.endpoint().replace("http://", "https://");
            let mut settings = security(&pki, "");
            settings.username.clear();
            let error = connect_error(&target(tls.clone(), &settings)).await;
            assert_says(&error, is_tls, &["does not answer TLS"]);
        }

        #[tokio::test]
        async fn a_tls_etcd_that_wants_a_client_certificate_says_so() {
            let pki = TestPki::generate();
            let etcd = Etcd::start_with(
                EtcdOptions::new()
                    .tls(&pki)
                    .client_cert_auth()
                    .auth("/secured/"),
            );
            // With a user the login meets the refusal (a TLS alert), without one the status
            // probe (the connection closed).
            for password in ["", ETCD_USER_PASSWORD] {
                let mut settings = security(&pki, password);
                if password.is_empty() {
                    settings.username.clear();
                }
                settings.tls_cert_file.clear();
                settings.tls_key_file.clear();
                let error = connect_error(&target(etcd.endpoint(), &settings)).await;
                assert_says(&error, is_tls, &["[etcd] tls_cert_file"]);
            }
        }

        #[tokio::test]
        async fn no_credentials_for_an_etcd_with_authentication_is_an_error_at_connect() {
            let etcd = Etcd::start_with(EtcdOptions::new().auth("/secured/"));
            let error = connect_error(&EtcdTarget::new(
                vec![etcd.endpoint()],
                Duration::from_secs(3),
            ))
            .await;
            assert_says(
                &error,
                is_authentication,
                &[&etcd.endpoint(), "[etcd] username"],
            );
        }

        #[tokio::test]
        async fn a_user_for_an_etcd_without_authentication_connects_anyway() {
            let etcd = Etcd::start();
            let security = EtcdSecurity {
                username: ETCD_USER.into(),
                password: Secret::new(ETCD_USER_PASSWORD),
                ..EtcdSecurity::default()
            };
            let mut client = connect(&target(etcd.endpoint(), &security)).await.unwrap();
            client.put("/k", "v", None).await.unwrap();
        }

        /// etcd forgets a simple token unused for `--auth-token-ttl`, and all of them when it
        /// restarts: the watch must keep delivering across both.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_watch_keeps_delivering_after_the_auth_token_expires() {
            let mut etcd = Etcd::start_with(
                EtcdOptions::new()
                    .auth("/secured/")
                    .auth_token_ttl(Duration::from_secs(1)),
            );
            let security = EtcdSecurity {
                username: ETCD_USER.into(),
                password: Secret::new(ETCD_USER_PASSWORD),
                ..EtcdSecurity::default()
            };
            let target = target(etcd.endpoint(), &security);
            etcd.put("/secured/k", "before");
            let (tx, mut rx) = mpsc::channel(16);
            let stop = CancellationToken::new();
            let watcher = KeyWatcher::new(target.clone(), "/secured/k").with_backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(500),
            ));
            let task = tokio::spawn(watcher.run(tx, stop.clone()));
            expect_value(&mut rx, Some("before"), &[]).await;

            // Idle past the token's life: the established watch still delivers.
            tokio::time::sleep(Duration::from_secs(3)).await;
            etcd.put("/secured/k", "expired");
            expect_value(&mut rx, Some("expired"), &[]).await;

            // The watch dies with the server, which forgot every token: the watcher has to
            // read and re-watch with a new one.
            tokio::time::sleep(Duration::from_secs(3)).await;
            tokio::task::block_in_place(|| etcd.restart());
            etcd.put("/secured/k", "after restart");
            expect_value(&mut rx, Some("after restart"), &[Some("expired")]).await;

            // And a client of the watcher's kind, idle past the token's life, still reads.
            let mut client = connect(&target).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let got = client.get("/secured/k", None).await.unwrap();
            assert_eq!(got.kvs()[0].value(), b"after restart");

            stop.cancel();
            task.await.unwrap();
        }
    }
}
