use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::pki::TestPki;
use crate::process::{
    Launch, ServerProcess, free_port, http_probe, launch, retry_port_clash, scratch_dir,
};

/// The user with read/write on [`EtcdOptions::auth`]'s prefix, what the pipeline's clients
/// log in as.
pub const ETCD_USER: &str = "logplatform";
/// [`ETCD_USER`]'s password.
pub const ETCD_USER_PASSWORD: &str = "logplatform-test-password";
/// The password of etcd's `root` user (the harness's own admin connection uses it).
pub const ETCD_ROOT_PASSWORD: &str = "root-test-password";

/// How to secure a test etcd: TLS on the client port and/or user authentication.
///
/// The client port ([`Etcd::endpoint`]) is the secured one. The harness keeps a second,
/// plaintext client port on loopback for itself (readiness, [`Etcd::put`], setting up the
/// users), logging in as `root` once authentication is on.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    tls: Option<EtcdTlsFiles>,
    client_cert_auth: bool,
    auth_prefix: Option<String>,
    auth_token_ttl: Option<Duration>,
}

#[derive(Debug, Clone)]
struct EtcdTlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl EtcdOptions {
    /// Plain etcd, as [`Etcd::start`].
    pub fn new() -> EtcdOptions {
        EtcdOptions::default()
    }

    /// Serves TLS with `pki`'s server certificate (signed by [`TestPki::ca_cert`]).
    pub fn tls(self, pki: &TestPki) -> EtcdOptions {
        self.tls_with(pki.server_cert(), pki.server_key(), pki.ca_cert())
    }

    /// Serves TLS with a certificate signed by [`TestPki::other_ca_cert`]: untrusted by a
    /// client that trusts [`TestPki::ca_cert`].
    pub fn untrusted_tls(self, pki: &TestPki) -> EtcdOptions {
        self.tls_with(
            pki.untrusted_server_cert(),
            pki.untrusted_server_key(),
            pki.ca_cert(),
        )
    }

    fn tls_with(mut self, cert: PathBuf, key: PathBuf, ca: PathBuf) -> EtcdOptions {
        self.tls = Some(EtcdTlsFiles { cert, key, ca });
        self
    }

    /// Also requires a client certificate signed by [`TestPki::ca_cert`]
    /// (`--client-cert-auth`); needs [`EtcdOptions::tls`].
    pub fn client_cert_auth(mut self) -> EtcdOptions {
        self.client_cert_auth = true;
        self
    }

    /// Turns authentication on: `root` with [`ETCD_ROOT_PASSWORD`], and [`ETCD_USER`] with
    /// [`ETCD_USER_PASSWORD`], whose role may read and write keys under `prefix`.
    pub fn auth(mut self, prefix: &str) -> EtcdOptions {
        self.auth_prefix = Some(prefix.to_owned());
        self
    }

    /// How long an auth token lives unused (`--auth-token-ttl`, whole seconds; etcd's
    /// default is 5 minutes).
    pub fn auth_token_ttl(mut self, ttl: Duration) -> EtcdOptions {
        self.auth_token_ttl = Some(ttl);
        self
    }
}

/// A real etcd 3.4 on free loopback ports with its own data dir.
pub struct Etcd {
    process: ServerProcess,
    client_port: u16,
    admin_port: u16,
    tls: bool,
    auth: bool,
    _dir: TempDir,
}

impl Etcd {
    /// Starts etcd and waits until `/health` says it is healthy; panics with its log otherwise.
    pub fn start() -> Etcd {
        Self::start_with(EtcdOptions::new())
    }

    /// Starts etcd secured as `options` say; panics with its log when it cannot.
    pub fn start_with(options: EtcdOptions) -> Etcd {
        Self::try_start_with(options).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts etcd; an error carries its log.
    pub fn try_start() -> Result<Etcd, HarnessError> {
        Self::try_start_with(EtcdOptions::new())
    }

    /// Starts etcd secured as `options` say; an error carries its log.
    pub fn try_start_with(options: EtcdOptions) -> Result<Etcd, HarnessError> {
        let etcd = retry_port_clash(|| Self::try_start_once(&options))?;
        if let Some(prefix) = &options.auth_prefix {
            enable_auth(&etcd.admin_endpoint(), prefix)?;
        }
        Ok(Etcd {
            auth: options.auth_prefix.is_some(),
            ..etcd
        })
    }

    fn try_start_once(options: &EtcdOptions) -> Result<Etcd, HarnessError> {
        let dir = scratch_dir("etcd")?;
        let client_port = free_port();
        let peer_port = free_port();
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.path().join("data").display().to_string();
        let mut args: Vec<String> = [
            "--name",
            "default",
            "--data-dir",
            &data_dir,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("default={peer}"),
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        // The harness's own port: plaintext, for readiness, puts and setting up users.
        let admin_port = if options.tls.is_some() {
            free_port()
        } else {
            client_port
        };
        let admin = format!("http://127.0.0.1:{admin_port}");
        let listen = if admin_port == client_port {
            client.clone()
        } else {
            format!("{client},{admin}")
        };
        args.extend(["--listen-client-urls".to_owned(), listen]);
        if let Some(tls) = &options.tls {
            for (flag, path) in [("--cert-file", &tls.cert), ("--key-file", &tls.key)] {
                args.extend([flag.to_owned(), path.display().to_string()]);
            }
            // etcd 3.4 asks every client for a certificate once it has a trusted CA, with or
            // without --client-cert-auth: give it one only when client certificates are wanted.
            if options.client_cert_auth {
                args.extend([
                    "--trusted-ca-file".to_owned(),
                    tls.ca.display().to_string(),
                    "--client-cert-auth".to_owned(),
                ]);
            }
        }
        if let Some(ttl) = options.auth_token_ttl {
            args.extend([
                "--auth-token-ttl".to_owned(),
                ttl.as_secs().max(1).to_string(),
            ]);
        }
        let process = launch(Launch {
            server: "etcd",
            binary: "etcd",
            args,
            log_path: dir.path().join("etcd.log"),
            ready_timeout: Duration::from_secs(20),
            ready: http_probe(format!("{admin}/health"), |r| {
                r.status == 200 && r.body.contains("true")
            }),
        })?;
        Ok(Etcd {
            process,
            client_port,
            admin_port,
            tls: options.tls.is_some(),
            auth: false,
            _dir: dir,
        })
    }

    /// Writes `value` under `key` (panics with the reason when etcd refuses); as `root`
    /// when authentication is on.
    pub fn put(&self, key: &str, value: &str) {
        let root = self.auth.then_some(("root", ETCD_ROOT_PASSWORD));
        etcd_put_as(&self.admin_endpoint(), root, key, value);
    }

    /// The client URL, `http://127.0.0.1:PORT`, or `https://` when it serves TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn admin_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Stops etcd (SIGTERM, then SIGKILL); the data dir stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }

    /// Kills etcd at once, as `kill -9` would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts etcd again on the same ports with the same data, and waits until it is ready.
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// Freezes etcd (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }
}

/// Writes `value` under `key` at the etcd `endpoint`; panics with the reason on failure.
pub fn etcd_put(endpoint: &str, key: &str, value: &str) {
    etcd_put_as(endpoint, None, key, value);
}

fn etcd_put_as(endpoint: &str, user: Option<(&str, &str)>, key: &str, value: &str) {
    let (key, value) = (key.to_owned(), value.to_owned());
    let outcome = with_client(endpoint, user, |mut client| async move {
        client
            .put(key.as_str(), value, None)
            .await
            .map_err(|e| format!("put {key}: {e}"))?;
        Ok(())
    });
    if let Err(what) = outcome {
        panic!("etcd put failed: {what}");
    }
}

/// Adds `root`, [`ETCD_USER`] with read/write on `prefix`, and turns authentication on.
fn enable_auth(admin_endpoint: &str, prefix: &str) -> Result<(), HarnessError> {
    let prefix = prefix.to_owned();
    with_client(admin_endpoint, None, |mut client| async move {
        let step = |what: &'static str| move |e: etcd_client::Error| format!("{what}: {e}");
        client
            .user_add("root", ETCD_ROOT_PASSWORD, None)
            .await
            .map_err(step("add user root"))?;
        // etcd refuses `auth enable` unless root holds the root role (etcdctl adds it too).
        client
            .role_add("root")
            .await
            .map_err(step("add role root"))?;
        client
            .user_grant_role("root", "root")
            .await
            .map_err(step("grant root to root"))?;
        let role = format!("{ETCD_USER}-rw");
        client
            .role_add(role.as_str())
            .await
            .map_err(step("add the user's role"))?;
        client
            .role_grant_permission(
                role.as_str(),
                etcd_client::Permission::read_write(prefix.as_str()).with_prefix(),
            )
            .await
            .map_err(step("grant read/write on the prefix"))?;
        client
            .user_add(ETCD_USER, ETCD_USER_PASSWORD, None)
            .await
            .map_err(step("add the user"))?;
        client
            .user_grant_role(ETCD_USER, role.as_str())
            .await
            .map_err(step("grant the role to the user"))?;
        client
            .auth_enable()
            .await
            .map_err(step("enable authentication"))?;
        Ok(())
    })
    .map_err(|what| HarnessError::Request {
        server: "etcd",
        what,
    })
}

/// Runs `f` with a client of `endpoint` on a private runtime on a private thread, so that
/// plain tests and tokio tests alike can call it.
fn with_client<F, Fut>(endpoint: &str, user: Option<(&str, &str)>, f: F) -> Result<(), String>
where
    F: FnOnce(etcd_client::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let endpoint = endpoint.to_owned();
    let user = user.map(|(name, password)| (name.to_owned(), password.to_owned()));
    std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let options = user.map(|(name, password)| {
                etcd_client::ConnectOptions::new().with_user(name, password)
            });
            let client = etcd_client::Client::connect([endpoint.as_str()], options)
                .await
                .map_err(|e| format!("connect to {endpoint}: {e}"))?;
            f(client).await
        })
    })
    .join()
    .map_err(|_| "etcd client thread panicked".to_owned())
    .and_then(|result| result)
}
