//! The HTTP calls to Elasticsearch (reqwest): `_bulk`, the index template and the check at
//! start, with the credentials of `[es]` (held as `Secret`s) on every call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use serde_json::Value;
use service_kit::check::describe;
use service_kit::readiness::Condition;
use service_kit::secret::{Secret, SecretError};
use tokio_util::sync::CancellationToken;

use super::config::ElasticsearchConfig;
use super::tls::{self, TlsProblem};
use crate::metrics::StatusLabels;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No response: refused, reset, timed out, or TLS failed.
    #[error("request to {url} failed: {reason}{}", transport_advice(.url, *.tls))]
    Transport {
        /// The URL, without credentials.
        url: String,
        /// The cause and its causes, without the URL.
        reason: String,
        /// A TLS failure among the causes: the operator has to fix it.
        tls: Option<TlsProblem>,
    },
    /// A non-2xx answer to the whole request.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL, without credentials.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// A 2xx answer we could not read.
    #[error("{url} answered something that is not a _bulk response: {reason}")]
    Decode {
        /// The URL, without credentials.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl RequestError {
    /// Wraps a transport error (no response) of a request to `url`. reqwest's error
    /// carries the request URL and prints it; ours is printed instead, from a node whose
    /// credentials were taken out, so that no error can show a password. reqwest's own
    /// message is only "error sending request": its causes (refused, the TLS alert...) are
    /// what the operator needs, so they are spelled out.
    fn transport(url: &str) -> impl FnOnce(reqwest::Error) -> RequestError + '_ {
        move |source| {
            let source = source.without_url();
            RequestError::Transport {
                url: url.to_owned(),
                reason: describe(&source),
                tls: TlsProblem::of(&source),
            }
        }
    }
}

/// The end of a transport error's message: a TLS failure is explained by its operator
/// hint; anything else is most often a node that is down. Real Elasticsearch closes the
/// connection on a plaintext request to its TLS port, which looks the same: say so for
/// `http://` nodes.
fn transport_advice(url: &str, tls: Option<TlsProblem>) -> &'static str {
    match tls {
        Some(_) => "",
        None if url.starts_with("http://") => {
            " (is Elasticsearch up and reachable? If the node serves HTTPS, write https:// in \
             [es] address)"
        }
        None => " (is Elasticsearch up and reachable?)",
    }
}

impl RequestError {
    /// The HTTP status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the operator must fix when Elasticsearch refuses every request this way (bad
    /// credentials, missing privileges, wrong URL, TLS settings): retrying alone will not
    /// end it.
    pub fn operator_hint(&self) -> Option<&'static str> {
        let status = match self {
            RequestError::Transport { tls, .. } => return tls.map(TlsProblem::hint),
            RequestError::Decode { .. } => return None,
            RequestError::Status { status, body, .. } => {
                if let Some(hint) = tls::front_end_hint(*status, body) {
                    return Some(hint);
                }
                *status
            }
        };
        match status {
            401 => {
                Some("check [es] username/password or api_key (or the credentials in [es] address)")
            }
            403 => Some(
                "the credentials lack privileges: they need create_doc/index and create_index \
                 on the target indices (manage_index_templates for the template)",
            ),
            404 => {
                Some("check [es] address: the URL (path, proxy prefix) reaches no Elasticsearch")
            }
            _ => None,
        }
    }

    /// The level of a per-retry log line about this error: what needs the operator was
    /// reported as an ERROR once per spell by the service, and repeating it per retry
    /// would bury it.
    pub fn retry_log_level(&self) -> log::Level {
        if self.operator_hint().is_some() {
            log::Level::Debug
        } else {
            log::Level::Warn
        }
    }

    /// Whether this failure means Elasticsearch is not reachable for our requests: no
    /// answer, a 5xx, or a refusal of every request (401, 403, 404: the credentials or the
    /// URL). A 400, 409, 413 or 429 is an answer about the documents or the load: reachable.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RequestError::Transport { .. } => true,
            RequestError::Status { status, .. } => {
                matches!(status, 401 | 403 | 404) || *status >= 500
            }
            RequestError::Decode { .. } => false,
        }
    }

    /// The `status` label of `logtransfer_es_request_errors_total`: a fixed set of values.
    fn label(&self) -> &'static str {
        match self {
            RequestError::Transport { tls: Some(_), .. } => "tls",
            RequestError::Transport { .. } => "transport",
            RequestError::Decode { .. } => "invalid_response",
            RequestError::Status { status, .. } => match status {
                400 => "400",
                401 => "401",
                403 => "403",
                404 => "404",
                413 => "413",
                429 => "429",
                500..=599 => "5xx",
                _ => "4xx",
            },
        }
    }
}

/// Building the client from the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Nothing in `[es] address`.
    #[error("[es] address is empty: give at least one node, e.g. http://127.0.0.1:9200")]
    NoAddress,
    /// A node that is not a URL (shown without its credentials).
    #[error("[es] address {address:?} is not a valid URL: {reason}")]
    BadAddress {
        /// The address, credentials masked.
        address: String,
        /// Why.
        reason: String,
    },
    /// HTTPS asked for in a build without TLS.
    #[error(
        "[es] address {0:?} needs TLS, but this logtransfer was built without it: rebuild with the default features (the `tls` feature)"
    )]
    TlsUnavailable(String),
    /// A TLS file (CA, client certificate or key) could not be used.
    #[error("[es] {key} {path:?}: {reason}")]
    TlsFile {
        /// The key naming it.
        key: &'static str,
        /// The file.
        path: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// Only one of the client certificate and its key was given.
    #[error(
        "[es] tls_cert_file and tls_key_file go together: set both (client certificate and its key) or neither"
    )]
    ClientCertificateHalf,
    /// The API key cannot be sent in a header.
    #[error(
        "[es] api_key (or the file api_key_file names) holds characters an HTTP header cannot carry (a line break, a control character): give the base64 key Elasticsearch handed out"
    )]
    BadApiKey,
    /// A password or API key could not be read (names the key and file, never the value).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// reqwest refused the settings (with its causes, e.g. no CA certificate on the system).
    #[error(
        "cannot build the HTTP client for Elasticsearch: {0} (for https:// nodes, the system's CA certificates must be installed, e.g. Debian's ca-certificates, or [es] tls_ca_file given)"
    )]
    Client(String),
}

/// The result of one document in a `_bulk` response.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemResult {
    /// HTTP status of this document.
    pub status: u16,
    /// The error object, when it failed (`type`, `reason`, `caused_by`...).
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ItemWrapper {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    index: ItemResult,
}

#[derive(Debug, Deserialize)]
struct BulkResponseRaw {
    #[serde(default)]
    errors: bool,
    items: Vec<ItemWrapper>,
}

/// A `_bulk` response.
#[derive(Debug, Clone)]
pub struct BulkResponse {
    /// True when at least one item failed.
    pub errors: bool,
    /// One per document, in request order.
    pub items: Vec<ItemResult>,
}

/// One Elasticsearch node: its URL without credentials (what requests go to and what
/// errors name) and the credentials its address carried (`http://user:pass@host`).
struct Node {
    url: String,
    basic: Option<(String, Option<String>)>,
}

/// The Elasticsearch client: nodes taken round-robin, auth applied to every call.
pub struct ElasticsearchService {
    client: reqwest::Client,
    nodes: Vec<Node>,
    next: AtomicUsize,
    /// `ApiKey <key>`, marked sensitive (kept out of HTTP/2 header tables and debug output).
    api_key: Option<reqwest::header::HeaderValue>,
    basic: Option<(String, Secret)>,
    /// Counts whole-request failures (`logtransfer_es_request_errors_total`).
    errors: Family<StatusLabels, Counter>,
    /// The kind (metric label) of the operator-facing failure (401/403/404, TLS) going on,
    /// if any: one ERROR per spell, shared by every request in flight, instead of one per
    /// retry.
    spell: Mutex<Option<&'static str>>,
    /// `/ready`'s `elasticsearch` condition, set from every request's outcome.
    readiness: Option<Condition>,
    /// When the last request got an answer or failed: [`Self::keep_readiness`] pings only
    /// after this long a silence.
    last_outcome: Mutex<Instant>,
}

impl std::fmt::Debug for ElasticsearchService {
    /// Names the nodes, never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.url.as_str()).collect();
        f.debug_struct("ElasticsearchService")
            .field("nodes", &nodes)
            .finish_non_exhaustive()
    }
}

/// `url` with its userinfo replaced by `***` (`http://***@host:9200`), for messages about
/// an address that may hold a password. Works on text that is not a valid URL too.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// Splits the credentials out of a node address: the URL without userinfo, and the
/// (percent-decoded) user and password it held.
fn split_credentials(address: &str) -> Result<Node, ServiceError> {
    let bad = |reason: String| ServiceError::BadAddress {
        address: redact_url(address),
        reason,
    };
    let mut url = reqwest::Url::parse(address).map_err(|e| bad(e.to_string()))?;
    let user = percent_decode(url.username());
    let pass = url.password().map(percent_decode);
    let basic = (!user.is_empty() || pass.is_some()).then_some((user, pass));
    if basic.is_some() {
        url.set_username("")
            .and_then(|()| url.set_password(None))
            .map_err(|()| bad("cannot take the credentials out of it".into()))?;
    }
    Ok(Node {
        url: url.as_str().trim_end_matches('/').to_owned(),
        basic,
    })
}

/// Decodes `%XX` escapes (userinfo in a URL is percent-encoded); invalid ones stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ElasticsearchService {
    /// A client for `[es]`.
    pub fn new(config: &ElasticsearchConfig) -> Result<Self, ServiceError> {
        let scheme = if config.tls { "https" } else { "http" };
        let nodes: Vec<Node> = service_kit::split_list(&config.address)
            .into_iter()
            .map(|a| {
                let a = a.trim_end_matches('/').to_owned();
                if a.contains("://") {
                    split_credentials(&a)
                } else {
                    split_credentials(&format!("{scheme}://{a}"))
                }
            })
            .collect::<Result<_, _>>()?;
        if nodes.is_empty() {
            return Err(ServiceError::NoAddress);
        }
        let api_key = Secret::from_value_or_file(
            "[es] api_key",
            &config.api_key,
            std::path::Path::new(&config.api_key_file),
        )?;
        let password = Secret::from_value_or_file(
            "[es] password",
            &config.password,
            std::path::Path::new(&config.password_file),
        )?;
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .connect_timeout(Duration::from_secs(5))
            .gzip(true);
        #[cfg(not(feature = "tls"))]
        if let Some(https) = nodes.iter().find(|n| n.url.starts_with("https://")) {
            return Err(ServiceError::TlsUnavailable(https.url.clone()));
        }
        #[cfg(feature = "tls")]
        let builder = tls::configure(
            builder,
            config,
            nodes.iter().any(|n| n.url.starts_with("https://")),
        )?;
        let client = builder
            .build()
            .map_err(|e| ServiceError::Client(describe(&e)))?;
        Ok(Self {
            client,
            nodes,
            next: AtomicUsize::new(0),
            api_key: api_key_header(&api_key)?,
            basic: (!config.username.is_empty()).then(|| (config.username.clone(), password)),
            errors: Family::default(),
            spell: Mutex::new(None),
            readiness: None,
            last_outcome: Mutex::new(Instant::now()),
        })
    }

    /// Counts whole-request failures into `errors` (the registered metric family).
    pub fn with_error_counter(mut self, errors: Family<StatusLabels, Counter>) -> Self {
        self.errors = errors;
        self
    }

    /// Sets `readiness` (`/ready`'s `elasticsearch` condition) from every request's outcome
    /// (see [`RequestError::is_unreachable`]), and from the pings of
    /// [`Self::keep_readiness`] while no request is sent.
    pub fn with_readiness(mut self, readiness: Condition) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// While idle, pings (`GET /`) every `every` when no request had an outcome for that
    /// long, so that `/ready` follows Elasticsearch without traffic too; while documents
    /// flow the bulk requests themselves say it, and nothing is added. Runs until `stop`.
    pub async fn keep_readiness(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        if self.readiness.is_none() {
            return;
        }
        loop {
            let silent_for = self.last_outcome.lock().elapsed();
            let wait = every
                .saturating_sub(silent_for)
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.last_outcome.lock().elapsed() < every {
                continue;
            }
            let result = self.send_get_root().await;
            self.note_outcome(&result);
        }
    }

    /// Notes that a request had an outcome (for [`Self::keep_readiness`]) and sets `/ready`
    /// from it.
    fn note_outcome<T>(&self, result: &Result<T, RequestError>) {
        *self.last_outcome.lock() = Instant::now();
        if let Some(readiness) = &self.readiness {
            match result {
                Err(e) if e.is_unreachable() => {
                    readiness.set_not_ready(format!("Elasticsearch is unreachable: {e}"))
                }
                _ => readiness.set_ready(),
            }
        }
    }

    /// Notes the outcome of one request (see [`Self::note_outcome`]) and counts a failure
    /// in `logtransfer_es_request_errors_total`.
    fn record<T>(&self, result: &Result<T, RequestError>) {
        self.note_outcome(result);
        if let Err(e) = result {
            self.errors
                .get_or_create(&StatusLabels {
                    status: e.label().to_owned(),
                })
                .inc();
        }
    }

    /// Counts and reports the outcome of one request. A 401/403/404 or a TLS failure
    /// starts a spell with one ERROR naming the failure, the node and what to check; a
    /// success ends it.
    fn observe<T>(&self, result: Result<T, RequestError>) -> Result<T, RequestError> {
        self.record(&result);
        match &result {
            Ok(_) => {
                if self.spell.lock().take().is_some() {
                    log::info!("Elasticsearch accepts requests again");
                }
            }
            Err(e) => {
                if let Some(hint) = e.operator_hint() {
                    let kind = e.label();
                    let mut spell = self.spell.lock();
                    if *spell != Some(kind) {
                        *spell = Some(kind);
                        let what = e
                            .status()
                            .map_or("a TLS failure".to_owned(), |s| s.to_string());
                        log::error!(
                            "Elasticsearch refuses every request with {what}: {e}; {hint}. \
                             Retrying with backoff until it accepts (nothing is lost, \
                             consumption waits)"
                        );
                    }
                }
            }
        }
        result
    }

    fn node(&self) -> &Node {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        &self.nodes[i]
    }

    /// `[es] api_key` wins over `[es] username`/`password`, which win over credentials
    /// in the node's address.
    fn auth(&self, node: &Node, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(key) = &self.api_key {
            req.header(reqwest::header::AUTHORIZATION, key.clone())
        } else if let Some((user, pass)) = &self.basic {
            req.basic_auth(user, Some(pass.expose()))
        } else if let Some((user, pass)) = &node.basic {
            req.basic_auth(user, pass.as_ref())
        } else {
            req
        }
    }

    /// Sends one `_bulk` body.
    pub async fn bulk(&self, body: Vec<u8>) -> Result<BulkResponse, RequestError> {
        self.observe(self.send_bulk(body).await)
    }

    async fn send_bulk(&self, body: Vec<u8>) -> Result<BulkResponse, RequestError> {
        let node = self.node();
        let url = format!("{}/_bulk", node.url);
        let req = self
            .client
            .post(&url)
            .header("Content-Type", "application/x-ndjson")
            .body(body);
        let resp = self
            .auth(node, req)
            .send()
            .await
            .map_err(RequestError::transport(&url))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(RequestError::transport(&url))?;
        if !(200..300).contains(&status) {
            return Err(RequestError::Status {
                url,
                status,
                body: truncate(&bytes),
            });
        }
        let raw: BulkResponseRaw =
            serde_json::from_slice(&bytes).map_err(|e| RequestError::Decode {
                url: url.clone(),
                reason: format!("{e}: {}", truncate(&bytes)),
            })?;
        Ok(BulkResponse {
            errors: raw.errors,
            items: raw.items.into_iter().map(|w| w.index).collect(),
        })
    }

    /// `GET /` at start: whether the node lets us in (when no template is installed). Any
    /// 2xx is success. Counted and noted for `/ready`, not reported: the caller decides
    /// whether the start stops.
    pub async fn ping_at_start(&self) -> Result<(), RequestError> {
        let result = self.send_get_root().await;
        self.record(&result);
        result
    }

    /// `GET /` on the next node (also the idle ping of [`Self::keep_readiness`]).
    async fn send_get_root(&self) -> Result<(), RequestError> {
        let node = self.node();
        let url = format!("{}/", node.url);
        let resp = self
            .auth(node, self.client.get(&url))
            .send()
            .await
            .map_err(RequestError::transport(&url))?;
        success(url, resp).await
    }

    /// `PUT {path}` with a JSON body at start (the ILM policy, the index template); any
    /// 2xx is success. Counted and noted for `/ready`, not reported: the caller decides
    /// whether the start stops.
    pub async fn put_json_at_start(&self, path: &str, body: &Value) -> Result<(), RequestError> {
        let result = self.send_put_json(path, body).await;
        self.record(&result);
        result
    }

    async fn send_put_json(&self, path: &str, body: &Value) -> Result<(), RequestError> {
        let node = self.node();
        let url = format!("{}{path}", node.url);
        let req = self.client.put(&url).json(body);
        let resp = self
            .auth(node, req)
            .send()
            .await
            .map_err(RequestError::transport(&url))?;
        success(url, resp).await
    }

    /// The nodes' URLs, without credentials, in `[es] address` order.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// `method path` (with a JSON `body`) on the node at `index` of
    /// [`node_urls`](Self::node_urls), with the client and credentials every request uses;
    /// the JSON of a 2xx answer. Neither counted nor logged: for `--check-connections`.
    pub async fn request_json(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RequestError> {
        let node = &self.nodes[index % self.nodes.len()];
        let url = format!("{}{path}", node.url);
        let mut req = self.client.request(method, &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = self
            .auth(node, req)
            .send()
            .await
            .map_err(RequestError::transport(&url))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(RequestError::transport(&url))?;
        if !(200..300).contains(&status) {
            return Err(RequestError::Status {
                url,
                status,
                body: truncate(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| RequestError::Decode {
            url,
            reason: format!("{e}: {}", truncate(&bytes)),
        })
    }
}

/// The `Authorization` value for `key` (none when empty), sensitive like basic_auth's.
fn api_key_header(key: &Secret) -> Result<Option<reqwest::header::HeaderValue>, ServiceError> {
    if key.is_empty() {
        return Ok(None);
    }
    let mut value = reqwest::header::HeaderValue::try_from(format!("ApiKey {}", key.expose()))
        .map_err(|_| ServiceError::BadApiKey)?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Success for a 2xx answer; the status and the start of the body otherwise.
async fn success(url: String, resp: reqwest::Response) -> Result<(), RequestError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    Err(RequestError::Status {
        url,
        status,
        body: truncate(&bytes),
    })
}

/// The start of a response body for a message, on one line (a proxy's HTML error page
/// spans many).
fn truncate(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepts one request, returns its head, answers with an empty successful bulk.
    async fn one_request(listener: tokio::net::TcpListener) -> String {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            n += sock.read(&mut buf[n..]).await.unwrap();
        }
        let body = r#"{"errors":false,"items":[]}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_lowercase()
    }

    async fn auth_header(config: ElasticsearchConfig) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(one_request(listener));
        let service = ElasticsearchService::new(&ElasticsearchConfig {
            address: format!("127.0.0.1:{}", addr.port()),
            ..config
        })
        .unwrap();
        let resp = service.bulk(Vec::new()).await.unwrap();
        assert!(resp.items.is_empty());
        let head = server.await.unwrap();
        assert!(head.starts_with("post /_bulk "), "{head}");
        assert!(
            head.contains("content-type: application/x-ndjson"),
            "{head}"
        );
        head.lines()
            .find_map(|l| l.strip_prefix("authorization: "))
            .unwrap_or("")
            .trim()
            .to_owned()
    }

    #[tokio::test]
    async fn api_key_wins_over_basic_auth_and_basic_auth_is_sent() {
        let basic = ElasticsearchConfig {
            username: "elastic".into(),
            password: Secret::new("changeme"),
            ..Default::default()
        };
        // base64("elastic:changeme")
        assert_eq!(
            auth_header(basic.clone()).await,
            "basic zwxhc3rpyzpjagfuz2vtzq=="
        );
        let key = ElasticsearchConfig {
            api_key: Secret::new("aWQ6a2V5"),
            ..basic
        };
        assert_eq!(auth_header(key).await, "apikey awq6a2v5");
        assert_eq!(auth_header(ElasticsearchConfig::default()).await, "");
    }

    #[tokio::test]
    async fn credentials_in_the_address_are_sent_as_basic_auth_and_never_shown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(one_request(listener));
        let service = ElasticsearchService::new(&ElasticsearchConfig {
            address: format!("http://elastic:chan%40geme@127.0.0.1:{port}/"),
            ..Default::default()
        })
        .unwrap();
        service.bulk(Vec::new()).await.unwrap();
        // base64("elastic:chan@geme")
        assert!(
            server
                .await
                .unwrap()
                .contains("authorization: basic zwxhc3rpyzpjagfuqgdlbwu="),
            "the decoded credentials are sent"
        );
        assert!(!format!("{service:?}").contains("geme"));
        // Nothing listens any more: the error names the node, not the password.
        let err = service.bulk(Vec::new()).await.unwrap_err().to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("geme") && !err.contains("elastic:"), "{err}");
    }

    #[test]
    fn redacted_urls_keep_everything_but_the_userinfo() {
        assert_eq!(redact_url("http://u:p@h:9200/x@y"), "http://***@h:9200/x@y");
        assert_eq!(redact_url("u:p@h:9200"), "***@h:9200");
        assert_eq!(redact_url("http://h:9200/_bulk"), "http://h:9200/_bulk");
        assert_eq!(percent_decode("a%40b%zz%4"), "a@b%zz%4");
        let bad = ElasticsearchService::new(&ElasticsearchConfig {
            address: "http://u:secret@[::1".into(),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(!bad.contains("secret"), "{bad}");
    }

    #[test]
    fn bad_secret_and_tls_settings_fail_at_build_naming_the_key_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let error = |config: ElasticsearchConfig| {
            ElasticsearchService::new(&ElasticsearchConfig {
                address: "https://127.0.0.1:9200".into(),
                ..config
            })
            .unwrap_err()
            .to_string()
        };
        let both = error(ElasticsearchConfig {
            password: Secret::new("hunter2"),
            password_file: missing.clone(),
            ..Default::default()
        });
        assert!(
            both.contains("[es] password") && !both.contains("hunter2"),
            "{both}"
        );
        let unreadable = error(ElasticsearchConfig {
            api_key_file: missing.clone(),
            ..Default::default()
        });
        assert!(
            unreadable.contains("api_key_file") && unreadable.contains(&missing),
            "{unreadable}"
        );
        #[cfg(feature = "tls")]
        {
            let ca = error(ElasticsearchConfig {
                tls_ca_file: missing.clone(),
                ..Default::default()
            });
            assert!(ca.contains("tls_ca_file") && ca.contains(&missing), "{ca}");
            let half = error(ElasticsearchConfig {
                tls_cert_file: missing.clone(),
                ..Default::default()
            });
            assert!(half.contains("tls_key_file"), "{half}");
            let not_pem = dir.path().join("not.pem");
            std::fs::write(&not_pem, "not a certificate\n").unwrap();
            let ca = error(ElasticsearchConfig {
                tls_ca_file: not_pem.display().to_string(),
                ..Default::default()
            });
            assert!(ca.contains("no PEM certificate"), "{ca}");
        }
        let newline = error(ElasticsearchConfig {
            api_key: Secret::new("abc\ndef"),
            ..Default::default()
        });
        assert!(
            newline.contains("api_key") && !newline.contains("abc"),
            "{newline}"
        );
    }

    #[test]
    fn addresses_need_a_node_and_https_needs_tls() {
        let empty = ElasticsearchConfig {
            address: " , ".into(),
            ..Default::default()
        };
        assert!(matches!(
            ElasticsearchService::new(&empty),
            Err(ServiceError::NoAddress)
        ));
        #[cfg(not(feature = "tls"))]
        {
            let https = ElasticsearchConfig {
                address: "es:9200".into(),
                tls: true,
                ..Default::default()
            };
            assert!(matches!(
                ElasticsearchService::new(&https),
                Err(ServiceError::TlsUnavailable(_))
            ));
        }
    }
}
