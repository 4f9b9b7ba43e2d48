//! nginx (Debian `nginx-light`) as a TLS-terminating, authenticating proxy in front of a
//! plaintext HTTP server: what a secured Elasticsearch looks like to its clients, built
//! from the osmem-server test server, which has neither TLS nor security.
//!
//! It answers like Elasticsearch with security on where the client can tell: 401 for
//! missing or wrong credentials (basic auth or `Authorization: ApiKey <key>`), a failed
//! handshake for a client that does not trust its certificate or (with
//! [`TlsAuthProxyBuilder::require_client_cert`]) sends no client certificate. A plaintext
//! request on its TLS port gets nginx's own 400 ("The plain HTTP request was sent to
//! HTTPS port"); real Elasticsearch closes the connection instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::pki::TestPki;
use crate::process::{
    Launch, ServerProcess, find_binary, free_port, launch, retry_port_clash, scratch_dir, tcp_probe,
};

/// nginx with TLS and authentication in front of an HTTP upstream, on a free loopback port;
/// stopped when dropped.
pub struct TlsAuthProxy {
    process: ServerProcess,
    port: u16,
    dir: TempDir,
}

/// What a [`TlsAuthProxy`] serves and whom it lets in.
#[derive(Debug, Clone)]
pub struct TlsAuthProxyBuilder {
    upstream: String,
    cert: PathBuf,
    key: PathBuf,
    users: Vec<(String, String)>,
    api_keys: Vec<String>,
    client_ca: Option<PathBuf>,
}

impl TlsAuthProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`) presenting `pki`'s trusted server
    /// certificate, letting nobody in until users or API keys are added.
    pub fn builder(upstream: &str, pki: &TestPki) -> TlsAuthProxyBuilder {
        TlsAuthProxyBuilder {
            upstream: upstream.trim_end_matches('/').to_owned(),
            cert: pki.server_cert(),
            key: pki.server_key(),
            users: Vec::new(),
            api_keys: Vec::new(),
            client_ca: None,
        }
    }

    /// The base URL, `https://127.0.0.1:PORT` (an address the certificate is for).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The same port with the wrong scheme, `http://127.0.0.1:PORT`: a plaintext client
    /// against the TLS port.
    pub fn plaintext_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// nginx's error log so far (handshake failures, refused credentials).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }

    /// Stops nginx.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}

impl TlsAuthProxyBuilder {
    /// Lets `user` in with basic auth and `password`.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.to_owned(), password.to_owned()));
        self
    }

    /// Lets in requests with `Authorization: ApiKey <key>` (`key` as sent: Elasticsearch's
    /// base64 `id:api_key`).
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_keys.push(key.to_owned());
        self
    }

    /// Presents `pki`'s untrusted server certificate (signed by its other CA) instead.
    pub fn untrusted_cert(mut self, pki: &TestPki) -> Self {
        self.cert = pki.untrusted_server_cert();
        self.key = pki.untrusted_server_key();
        self
    }

    /// Mutual TLS: a client must present a certificate signed by `pki`'s CA.
    pub fn require_client_cert(mut self, pki: &TestPki) -> Self {
        self.client_ca = Some(pki.ca_cert());
        self
    }

    /// Starts nginx and waits until it accepts connections; panics with its log otherwise.
    pub fn start(self) -> TlsAuthProxy {
        self.try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts nginx; an error carries its log.
    pub fn try_start(self) -> Result<TlsAuthProxy, HarnessError> {
        retry_port_clash(|| self.try_start_once())
    }

    fn try_start_once(&self) -> Result<TlsAuthProxy, HarnessError> {
        let dir = scratch_dir("nginx")?;
        let port = free_port();
        let htpasswd = dir.path().join("htpasswd");
        let mut lines = String::new();
        for (user, password) in &self.users {
            lines.push_str(&format!("{user}:{}\n", apr1_hash(password)?));
        }
        std::fs::write(&htpasswd, lines)
            .map_err(HarnessError::io(format!("write {}", htpasswd.display())))?;
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, self.config(dir.path(), port, &htpasswd))
            .map_err(HarnessError::io(format!("write {}", conf.display())))?;
        let process = launch(Launch {
            server: "TLS and auth proxy (nginx)",
            binary: "nginx",
            args: vec![
                "-p".into(),
                path_arg(dir.path()),
                "-c".into(),
                path_arg(&conf),
                "-e".into(),
                path_arg(&dir.path().join("error.log")),
            ],
            log_path: dir.path().join("nginx.out"),
            ready_timeout: Duration::from_secs(10),
            ready: tcp_probe(port),
        })
        .map_err(|error| with_error_log(error, dir.path()))?;
        Ok(TlsAuthProxy { process, port, dir })
    }

    /// nginx.conf: one process in the foreground, everything it writes in `dir`.
    fn config(&self, dir: &Path, port: u16, htpasswd: &Path) -> String {
        let d = dir.display();
        // `auth_basic off` for a request carrying a known API key, basic auth for the rest:
        // either way of authenticating is accepted, nothing else is.
        let api_keys: String = self
            .api_keys
            .iter()
            .map(|key| format!("        \"ApiKey {key}\" off;\n"))
            .collect();
        let client_ca = self.client_ca.as_ref().map_or(String::new(), |ca| {
            format!(
                "        ssl_client_certificate {};\n        ssl_verify_client on;\n",
                ca.display()
            )
        });
        format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 0;
    map $http_authorization $es_realm {{
        default \"elasticsearch\";
{api_keys}    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
{client_ca}        location / {{
            auth_basic $es_realm;
            auth_basic_user_file {htpasswd};
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Authorization \"\";
        }}
    }}
}}
",
            cert = self.cert.display(),
            key = self.key.display(),
            htpasswd = htpasswd.display(),
            upstream = self.upstream,
        )
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// nginx logs configuration errors to its error log, not to stdout: add it to the failure.
fn with_error_log(error: HarnessError, dir: &Path) -> HarnessError {
    match error {
        HarnessError::NotReady {
            server,
            reason,
            log,
            log_tail,
        } => HarnessError::NotReady {
            server,
            reason,
            log,
            log_tail: format!(
                "{log_tail}\n{}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            ),
        },
        other => other,
    }
}

/// An htpasswd line's hash of `password` (`openssl passwd -apr1`, which nginx reads).
fn apr1_hash(password: &str) -> Result<String, HarnessError> {
    let openssl = find_binary("openssl", "openssl")?;
    let mut child = Command::new(openssl)
        .args(["passwd", "-apr1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(HarnessError::io("run openssl passwd"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .map_err(HarnessError::io("write to openssl passwd"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(HarnessError::io("run openssl passwd"))?;
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !hash.starts_with("$apr1$") {
        return Err(HarnessError::Io {
            what: format!(
                "openssl passwd -apr1 failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            source: std::io::Error::other("openssl exited with an error"),
        });
    }
    Ok(hash)
}
