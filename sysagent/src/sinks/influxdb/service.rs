//! The HTTP calls: write a batch (1.x `/write` or 2.x `/api/v2/write`), create the database,
//! and what each failure means.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::{StatusCode, Url};

use super::config::{Api, InfluxConfig};

/// Why a write did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "InfluxDB at {address} is unreachable: {source}; points stay buffered and are retried \
         (is InfluxDB running, is [influxdb] address right?)"
    )]
    Unreachable {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "InfluxDB at {address} has no database {database:?}: {body}; points stay buffered \
         and are retried. Create it (CREATE DATABASE \"{database}\"), set \
         [influxdb] create_database = true, or fix [influxdb] database"
    )]
    DatabaseNotFound {
        address: String,
        database: String,
        body: String,
    },
    #[error(
        "InfluxDB at {address} refused the credentials (HTTP {status}): {body}; points stay \
         buffered and are retried. Check [influxdb] username/password (1.x) or token (2.x)"
    )]
    Unauthorized {
        address: String,
        status: u16,
        body: String,
    },
    #[error(
        "InfluxDB at {address} answered HTTP {status}: {body}; points stay buffered and are retried"
    )]
    Unavailable {
        address: String,
        status: u16,
        body: String,
    },
    #[error(
        "InfluxDB at {address} rejected a batch of {points} points (HTTP {status}): {body}; \
         the batch is dropped (a field type conflict means another writer uses these names \
         with other types)"
    )]
    Rejected {
        address: String,
        status: u16,
        points: usize,
        body: String,
    },
    #[error("could not gzip a request body: {0}")]
    Gzip(#[source] std::io::Error),
}

impl WriteError {
    /// Whether trying the same batch again can succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, WriteError::Rejected { .. } | WriteError::Gzip(_))
    }

    /// A short kind, to log a failure once per change of kind rather than once per retry.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteError::Unreachable { .. } => "unreachable",
            WriteError::DatabaseNotFound { .. } => "database-not-found",
            WriteError::Unauthorized { .. } => "unauthorized",
            WriteError::Unavailable { .. } => "unavailable",
            WriteError::Rejected { .. } => "rejected",
            WriteError::Gzip(_) => "gzip",
        }
    }
}

/// The answer to `SHOW DATABASES`:
/// `{"results":[{"series":[{"name":"databases","columns":["name"],"values":[["x"]]}]}]}`,
/// or `{"results":[{"error":"..."}]}` / `{"error":"..."}` when refused.
#[derive(Debug, serde::Deserialize)]
struct ShowDatabases {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    results: Vec<ShowResult>,
}

#[derive(Debug, serde::Deserialize)]
struct ShowResult {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    series: Vec<ShowSeries>,
}

#[derive(Debug, serde::Deserialize)]
struct ShowSeries {
    #[serde(default)]
    values: Vec<Vec<String>>,
}

impl ShowDatabases {
    fn error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.results.iter().find_map(|r| r.error.as_deref()))
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.results
            .iter()
            .flat_map(|r| &r.series)
            .flat_map(|s| &s.values)
            .filter_map(|row| row.first().map(String::as_str))
    }
}

/// The InfluxDB endpoint and how to talk to it.
#[derive(Debug, Clone)]
pub struct Service {
    client: reqwest::Client,
    address: String,
    write_url: Url,
    /// 1.x `/query` for `CREATE DATABASE`; `None` on 2.x or when creation is off.
    create_url: Option<Url>,
    api: Api,
    token: Option<String>,
    gzip: bool,
}

impl Service {
    /// Build the URLs for `config`; `Err` carries a message for `[influxdb]`.
    pub fn new(config: &InfluxConfig) -> Result<Self, String> {
        let api = config.api()?;
        let address = config.address.trim().trim_end_matches('/').to_string();
        let base = Url::parse(&format!("{address}/")).map_err(|e| e.to_string())?;
        let (write_url, create_url, token) = match &api {
            Api::V1 {
                database,
                username,
                password,
                create_database,
            } => {
                let mut w = base.join("write").map_err(|e| e.to_string())?;
                {
                    let mut q = w.query_pairs_mut();
                    q.append_pair("db", database).append_pair("precision", "ms");
                    if !username.is_empty() {
                        q.append_pair("u", username).append_pair("p", password);
                    }
                }
                let create = if *create_database {
                    let mut c = base.join("query").map_err(|e| e.to_string())?;
                    {
                        let mut q = c.query_pairs_mut();
                        q.append_pair("q", &format!("CREATE DATABASE \"{database}\""));
                        if !username.is_empty() {
                            q.append_pair("u", username).append_pair("p", password);
                        }
                    }
                    Some(c)
                } else {
                    None
                };
                (w, create, None)
            }
            Api::V2 { org, bucket, token } => {
                let mut w = base.join("api/v2/write").map_err(|e| e.to_string())?;
                w.query_pairs_mut()
                    .append_pair("org", org)
                    .append_pair("bucket", bucket)
                    .append_pair("precision", "ms");
                (w, None, Some(token.clone()))
            }
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Service {
            client,
            address,
            write_url,
            create_url,
            api,
            token,
            gzip: config.gzip,
        })
    }

    /// The configured base URL (no credentials), for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether this service creates its database (1.x with `create_database`).
    pub fn creates_database(&self) -> bool {
        self.create_url.is_some()
    }

    /// `CREATE DATABASE` (1.x; a no-op when it exists). `Ok` without a request on 2.x.
    pub async fn create_database(&self) -> Result<(), WriteError> {
        let Some(url) = &self.create_url else {
            return Ok(());
        };
        let resp = self
            .client
            .post(url.clone())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        // /query answers 200 even for a failed statement, with {"results":[{"error":…}]}.
        if status.is_success() && !body.contains("\"error\"") {
            return Ok(());
        }
        Err(self.classify(status, body, 0))
    }

    /// Send one batch of newline-separated line protocol.
    pub async fn write(&self, body: &[u8], points: usize) -> Result<(), WriteError> {
        let mut req = self
            .client
            .post(self.write_url.clone())
            .header("Content-Type", "text/plain; charset=utf-8");
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        req = if self.gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            enc.write_all(body).map_err(WriteError::Gzip)?;
            let gz = enc.finish().map_err(WriteError::Gzip)?;
            req.header("Content-Encoding", "gzip").body(gz)
        } else {
            req.body(body.to_vec())
        };
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(self.classify(status, body, points))
    }

    /// `GET /ping` with the client writes use (`--check-connections`): the server's
    /// version when it answers.
    pub async fn ping(&self) -> Result<String, WriteError> {
        let resp = self.get(format!("{}/ping", self.address)).await?;
        let status = resp.status();
        let version = resp
            .headers()
            .get("X-Influxdb-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_string();
        if status.is_success() {
            return Ok(version);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(self.classify(status, body, 0))
    }

    /// 1.x: whether the database exists, asked with the write credentials (`SHOW
    /// DATABASES`), so a refused user shows too. `None` on 2.x, whose token is only
    /// checked by a write.
    pub async fn database_exists(&self) -> Result<Option<bool>, WriteError> {
        let Api::V1 {
            database,
            username,
            password,
            ..
        } = &self.api
        else {
            return Ok(None);
        };
        // The write URL's base, with /query instead of /write.
        let mut url = self.write_url.clone();
        url.set_path(&url.path().replace("/write", "/query"));
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", "SHOW DATABASES");
            if !username.is_empty() {
                q.append_pair("u", username).append_pair("p", password);
            }
        }
        let resp = self.get(url).await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let shown: Option<ShowDatabases> = serde_json::from_str(&body).ok();
        let Some(shown) = shown.filter(|s| status.is_success() && s.error().is_none()) else {
            return Err(self.classify(status, body, 0));
        };
        Ok(Some(shown.names().any(|name| name == database)))
    }

    async fn get(&self, url: impl reqwest::IntoUrl) -> Result<reqwest::Response, WriteError> {
        self.client
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, e: reqwest::Error) -> WriteError {
        WriteError::Unreachable {
            address: self.address.clone(),
            // The URL may carry a password (`p=`); keep it out of logs.
            source: e.without_url(),
        }
    }

    fn classify(&self, status: StatusCode, body: String, points: usize) -> WriteError {
        let address = self.address.clone();
        let body = body.trim().chars().take(300).collect::<String>();
        let code = status.as_u16();
        let lower = body.to_ascii_lowercase();
        if code == 404 && (lower.contains("database not found") || lower.contains("not found")) {
            let database = match &self.api {
                Api::V1 { database, .. } => database.clone(),
                Api::V2 { bucket, .. } => bucket.clone(),
            };
            return WriteError::DatabaseNotFound {
                address,
                database,
                body,
            };
        }
        match code {
            401 | 403 => WriteError::Unauthorized {
                address,
                status: code,
                body,
            },
            // A 200 from /query with an error inside, 429, 5xx: worth another try.
            200 | 408 | 429 | 500..=599 => WriteError::Unavailable {
                address,
                status: code,
                body,
            },
            _ => WriteError::Rejected {
                address,
                status: code,
                points,
                body,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_urls_carry_database_precision_and_credentials() {
        let s = Service::new(&InfluxConfig {
            address: "http://127.0.0.1:8086/".into(),
            database: "my db".into(),
            username: "u".into(),
            password: "p w".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.write_url.as_str(),
            "http://127.0.0.1:8086/write?db=my+db&precision=ms&u=u&p=p+w"
        );
        assert_eq!(
            s.create_url.unwrap().as_str(),
            "http://127.0.0.1:8086/query?q=CREATE+DATABASE+%22my+db%22&u=u&p=p+w"
        );
        assert_eq!(s.address, "http://127.0.0.1:8086");
    }

    #[test]
    fn v2_urls_and_token() {
        let s = Service::new(&InfluxConfig {
            address: "http://influx:8086".into(),
            org: "acme".into(),
            bucket: "hosts".into(),
            token: "T".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.write_url.as_str(),
            "http://influx:8086/api/v2/write?org=acme&bucket=hosts&precision=ms"
        );
        assert!(s.create_url.is_none());
        assert_eq!(s.token.as_deref(), Some("T"));
    }

    #[test]
    fn statuses_map_to_retry_or_drop() {
        let s = Service::new(&InfluxConfig {
            address: "http://h:8086".into(),
            database: "d".into(),
            ..Default::default()
        })
        .unwrap();
        let e = s.classify(
            StatusCode::NOT_FOUND,
            r#"{"error":"database not found: \"d\""}"#.into(),
            5,
        );
        assert!(matches!(e, WriteError::DatabaseNotFound { .. }));
        assert!(e.retryable());
        assert!(e.to_string().contains("CREATE DATABASE \"d\""), "{e}");
        assert!(
            s.classify(StatusCode::SERVICE_UNAVAILABLE, String::new(), 1)
                .retryable()
        );
        assert!(
            s.classify(StatusCode::TOO_MANY_REQUESTS, String::new(), 1)
                .retryable()
        );
        assert!(
            s.classify(StatusCode::UNAUTHORIZED, String::new(), 1)
                .retryable()
        );
        let bad = s.classify(StatusCode::BAD_REQUEST, "field type conflict".into(), 7);
        assert!(!bad.retryable());
        assert!(bad.to_string().contains("batch of 7 points"));
    }
}
