//! The etcd client's security settings, the same in every `[etcd]` section (logagent's
//! collect config, logtransfer's topic list) and behind etcd-put's etcdctl-style flags:
//!
//! | key | flag | meaning |
//! |---|---|---|
//! | `address` with `https://` endpoints | `--endpoints https://…` | TLS |
//! | `username` | `--user NAME` | etcd user (authentication on) |
//! | `password` / `password_file` | `--user NAME:PASSWORD` or `--password` / `--password-file` | its password |
//! | `tls_ca_file` | `--cacert` | CA that signed etcd's certificate (empty: the system's) |
//! | `tls_cert_file`, `tls_key_file` | `--cert`, `--key` | client certificate (`--client-cert-auth`) |
//!
//! This module is plain data and checks: [`EtcdSecurity`] is what the user writes,
//! [`EtcdSecurity::resolve`] reads the files and checks the combination, giving
//! [`EtcdCredentials`] that `service_kit::etcd` hands to the client library. Errors name the
//! key or flag and the file, never a secret.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::{Secret, SecretError};

/// The security keys of an `[etcd]` section; see the [module docs](self).
///
/// Components embed it in their own `[etcd]` struct next to their own keys (address, key,
/// timeout), so that every etcd client reads the same keys; [`KEYS`] lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSecurity {
    /// etcd user to log in as; empty: no authentication (etcd with `auth` off, or a client
    /// certificate whose CN etcd takes as the user).
    pub username: String,
    /// The user's password. Better: `password_file`, or the environment override.
    pub password: Secret,
    /// File holding the password (one line); instead of `password`.
    pub password_file: PathBuf,
    /// CA certificate(s), PEM, that signed etcd's server certificate, for `https://`
    /// endpoints; empty: the system's trusted roots.
    pub tls_ca_file: PathBuf,
    /// Client certificate, PEM, for an etcd that requires one (`--client-cert-auth`); with
    /// `tls_key_file`.
    pub tls_cert_file: PathBuf,
    /// Private key of `tls_cert_file`, PEM, unencrypted.
    pub tls_key_file: PathBuf,
}

/// The keys of [`EtcdSecurity`], as written in an `[etcd]` section.
pub const KEYS: [&str; 6] = [
    "username",
    "password",
    "password_file",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
];

/// How the settings were given, so that errors name what the user wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// Keys of a config section: `[etcd] tls_ca_file`.
    Config,
    /// etcdctl's flags (etcd-put): `--cacert`.
    EtcdctlFlags,
}

impl Spelling {
    /// What the user wrote for `key` (one of [`KEYS`] or `address`).
    pub fn name(self, key: &str) -> String {
        match self {
            Spelling::Config => format!("[etcd] {key}"),
            Spelling::EtcdctlFlags => match key {
                "address" => "--endpoints",
                "username" => "--user",
                "password" => "--password",
                "password_file" => "--password-file",
                "tls_ca_file" => "--cacert",
                "tls_cert_file" => "--cert",
                "tls_key_file" => "--key",
                other => other,
            }
            .to_owned(),
        }
    }
}

/// What the client library needs, files read and the combination checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdCredentials {
    /// User name and password, when authentication is configured.
    pub user: Option<(String, Secret)>,
    /// TLS settings, when the endpoints are `https://`.
    pub tls: Option<EtcdTls>,
}

/// TLS material for the etcd client, read from the files.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificates (PEM); `None`: the system's trusted roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate (PEM) and its private key (PEM, never printed).
    pub identity: Option<(Vec<u8>, Secret)>,
}

/// Sizes, not contents: certificates are public but unreadable as byte lists, and the key
/// is a secret.
impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pem = |bytes: &Vec<u8>| format!("<{} bytes of PEM>", bytes.len());
        f.debug_struct("EtcdTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(pem))
            .field(
                "identity",
                &self.identity.as_ref().map(|(cert, key)| (pem(cert), key)),
            )
            .finish()
    }
}

/// Why the etcd security settings are unusable. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum EtcdSecurityError {
    /// The password could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The password given inline and as a file.
    #[error("both {password} and {password_file} are set; keep one of them")]
    PasswordTwice {
        /// The inline password key or flag.
        password: String,
        /// The password file key or flag.
        password_file: String,
    },
    /// A password without a user.
    #[error("{password} is set but {username} is empty; set the etcd user name too")]
    PasswordWithoutUser {
        /// How the password was given.
        password: String,
        /// The user key or flag.
        username: String,
    },
    /// A user without a password.
    #[error("{username} {user:?} has no password; set {password} or {password_file}")]
    UserWithoutPassword {
        /// The user key or flag.
        username: String,
        /// The user.
        user: String,
        /// The password key or flag.
        password: String,
        /// The password file key or flag.
        password_file: String,
    },
    /// Some endpoints are `https://`, others not.
    #[error(
        "{address} mixes https:// and plain endpoints ({endpoints}); write all of them with https:// (TLS) or none"
    )]
    MixedSchemes {
        /// The address key or flag.
        address: String,
        /// The endpoints.
        endpoints: String,
    },
    /// TLS files given for plaintext endpoints.
    #[error(
        "{key} is set but {address} has no https:// endpoints ({endpoints}); write them as https://host:port to use TLS, or drop {key}"
    )]
    TlsFilesWithoutHttps {
        /// The first TLS key or flag given.
        key: String,
        /// The address key or flag.
        address: String,
        /// The endpoints.
        endpoints: String,
    },
    /// Only one of the client certificate and its key.
    #[error("{given} is set but {missing} is not; a client certificate needs both")]
    HalfAnIdentity {
        /// The key or flag given.
        given: String,
        /// The one missing.
        missing: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read {key} {path}: {source}; check the path and that this user may read it")]
    File {
        /// The key or flag.
        key: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file holds no PEM block.
    #[error("{key} {path} holds no PEM data (-----BEGIN ...); give a PEM file")]
    NotPem {
        /// The key or flag.
        key: String,
        /// The file.
        path: PathBuf,
    },
}

/// Whether an endpoint asks for TLS.
pub fn is_tls_endpoint(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

impl EtcdSecurity {
    /// Reads the password and TLS files and checks the settings against `endpoints`
    /// (`https://` ones mean TLS); `spelling` says how errors name keys.
    pub fn resolve(
        &self,
        endpoints: &[String],
        spelling: Spelling,
    ) -> Result<EtcdCredentials, EtcdSecurityError> {
        let name = |key: &str| spelling.name(key);
        if !self.password.is_empty() && is_set(&self.password_file) {
            // Checked here rather than by `Secret::from_value_or_file`, whose message
            // derives the file key from the inline one (`--password_file` for a flag).
            return Err(EtcdSecurityError::PasswordTwice {
                password: name("password"),
                password_file: name("password_file"),
            });
        }
        let password =
            Secret::from_value_or_file(&name("password"), &self.password, &self.password_file)?;
        let user = match (self.username.is_empty(), password.is_empty()) {
            (true, true) => None,
            (true, false) => {
                return Err(EtcdSecurityError::PasswordWithoutUser {
                    password: if self.password.is_empty() {
                        name("password_file")
                    } else {
                        name("password")
                    },
                    username: name("username"),
                });
            }
            (false, true) => {
                return Err(EtcdSecurityError::UserWithoutPassword {
                    username: name("username"),
                    user: self.username.clone(),
                    password: name("password"),
                    password_file: name("password_file"),
                });
            }
            (false, false) => Some((self.username.clone(), password)),
        };

        let tls_endpoints = endpoints.iter().filter(|e| is_tls_endpoint(e)).count();
        if tls_endpoints > 0 && tls_endpoints < endpoints.len() {
            return Err(EtcdSecurityError::MixedSchemes {
                address: name("address"),
                endpoints: endpoints.join(","),
            });
        }
        let files = [
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ];
        if tls_endpoints == 0 {
            if let Some((key, _)) = files.iter().find(|(_, path)| is_set(path)) {
                return Err(EtcdSecurityError::TlsFilesWithoutHttps {
                    key: name(key),
                    address: name("address"),
                    endpoints: endpoints.join(","),
                });
            }
            return Ok(EtcdCredentials { user, tls: None });
        }

        let ca_pem = match is_set(&self.tls_ca_file) {
            true => Some(read_pem(&name("tls_ca_file"), &self.tls_ca_file)?),
            false => None,
        };
        let identity = match (is_set(&self.tls_cert_file), is_set(&self.tls_key_file)) {
            (false, false) => None,
            (true, false) | (false, true) => {
                let (given, missing) = if is_set(&self.tls_cert_file) {
                    ("tls_cert_file", "tls_key_file")
                } else {
                    ("tls_key_file", "tls_cert_file")
                };
                return Err(EtcdSecurityError::HalfAnIdentity {
                    given: name(given),
                    missing: name(missing),
                });
            }
            (true, true) => {
                let cert = read_pem(&name("tls_cert_file"), &self.tls_cert_file)?;
                let key = read_pem(&name("tls_key_file"), &self.tls_key_file)?;
                let key = String::from_utf8(key).map_err(|_| EtcdSecurityError::NotPem {
                    key: name("tls_key_file"),
                    path: self.tls_key_file.clone(),
                })?;
                Some((cert, Secret::new(key)))
            }
        };
        Ok(EtcdCredentials {
            user,
            tls: Some(EtcdTls { ca_pem, identity }),
        })
    }
}

fn is_set(path: &Path) -> bool {
    !path.as_os_str().is_empty()
}

fn read_pem(key: &str, path: &Path) -> Result<Vec<u8>, EtcdSecurityError> {
    let bytes = std::fs::read(path).map_err(|source| EtcdSecurityError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    // The TLS library's own error for a non-PEM file is "no certificates found" at
    // connect time, without the file's name.
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(EtcdSecurityError::NotPem {
            key: key.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn endpoints(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn nothing_set_is_plaintext_without_a_user() {
        let resolved = EtcdSecurity::default()
            .resolve(&endpoints(&["127.0.0.1:2379"]), Spelling::Config)
            .unwrap();
        assert_eq!(resolved, EtcdCredentials::default());
    }

    #[test]
    fn https_endpoints_mean_tls_with_the_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        let password = dir.path().join("pw");
        std::fs::write(&ca, PEM).unwrap();
        std::fs::write(&cert, PEM).unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nx\n").unwrap();
        std::fs::write(&password, "s3cret\n").unwrap();
        let security = EtcdSecurity {
            username: "agent".into(),
            password_file: password,
            tls_ca_file: ca,
            tls_cert_file: cert,
            tls_key_file: key,
            ..EtcdSecurity::default()
        };
        let resolved = security
            .resolve(
                &endpoints(&["https://a:2379", "HTTPS://b:2379"]),
                Spelling::Config,
            )
            .unwrap();
        let (user, password) = resolved.user.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("agent", "s3cret"));
        let tls = resolved.tls.clone().unwrap();
        assert_eq!(tls.ca_pem.as_deref(), Some(PEM.as_bytes()));
        assert!(tls.identity.is_some());
        let debug = format!("{resolved:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("PRIVATE"),
            "{debug}"
        );
        assert!(debug.contains("bytes of PEM"), "{debug}");
    }

    #[test]
    fn https_without_a_ca_file_trusts_the_system_roots() {
        let resolved = EtcdSecurity::default()
            .resolve(&endpoints(&["https://etcd:2379"]), Spelling::Config)
            .unwrap();
        assert_eq!(resolved.tls, Some(EtcdTls::default()));
    }

    #[test]
    fn debug_of_the_settings_hides_the_password() {
        let security = EtcdSecurity {
            username: "agent".into(),
            password: Secret::new("hunter2"),
            ..EtcdSecurity::default()
        };
        let debug = format!("{security:?}");
        assert!(
            debug.contains("***") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn wrong_combinations_are_named_errors() {
        let plain = endpoints(&["127.0.0.1:2379"]);
        let error = |security: EtcdSecurity, endpoints: &[String], spelling| {
            security
                .resolve(endpoints, spelling)
                .unwrap_err()
                .to_string()
        };
        let text = error(
            EtcdSecurity {
                password: Secret::new("hunter2"),
                ..EtcdSecurity::default()
            },
            &plain,
            Spelling::Config,
        );
        assert!(text.contains("[etcd] username is empty"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let text = error(
            EtcdSecurity {
                username: "agent".into(),
                ..EtcdSecurity::default()
            },
            &plain,
            Spelling::EtcdctlFlags,
        );
        assert!(text.contains("--password-file"), "{text}");
        let text = error(
            EtcdSecurity {
                tls_ca_file: "/ca.pem".into(),
                ..EtcdSecurity::default()
            },
            &plain,
            Spelling::Config,
        );
        assert!(text.contains("https://host:port"), "{text}");
        let text = error(
            EtcdSecurity::default(),
            &endpoints(&["https://a:1", "http://b:1"]),
            Spelling::Config,
        );
        assert!(text.contains("mixes"), "{text}");
        let text = error(
            EtcdSecurity {
                tls_cert_file: "/c.pem".into(),
                ..EtcdSecurity::default()
            },
            &endpoints(&["https://a:1"]),
            Spelling::EtcdctlFlags,
        );
        assert!(text.contains("--cert is set but --key is not"), "{text}");
        let text = error(
            EtcdSecurity {
                username: "agent".into(),
                password: Secret::new("hunter2"),
                password_file: "/pw".into(),
                ..EtcdSecurity::default()
            },
            &plain,
            Spelling::EtcdctlFlags,
        );
        assert!(
            text.contains("both --password and --password-file"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn unreadable_or_non_pem_files_name_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let text = EtcdSecurity {
            tls_ca_file: missing.clone(),
            ..EtcdSecurity::default()
        }
        .resolve(&endpoints(&["https://a:1"]), Spelling::Config)
        .unwrap_err()
        .to_string();
        assert!(text.contains("[etcd] tls_ca_file"), "{text}");
        assert!(text.contains(&missing.display().to_string()), "{text}");
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01]).unwrap();
        let text = EtcdSecurity {
            tls_ca_file: der,
            ..EtcdSecurity::default()
        }
        .resolve(&endpoints(&["https://a:1"]), Spelling::EtcdctlFlags)
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("--cacert") && text.contains("no PEM"),
            "{text}"
        );
    }
}
