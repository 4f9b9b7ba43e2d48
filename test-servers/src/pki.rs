//! Throw-away certificates for the secure-transport tests, made with the `openssl` command
//! (Debian `openssl`, installed by `scripts/setup.sh`).
//!
//! One [`TestPki`] holds a CA, a server certificate for `localhost` / `127.0.0.1` signed by
//! it, a client certificate signed by it (for mutual TLS), and a second, unrelated CA with
//! its own server certificate: what "an untrusted certificate" looks like to a client that
//! trusts only the first CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::process::find_binary;

/// A CA, a server and a client certificate in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Generates everything (RSA 2048, valid for a day); panics with the fix when `openssl`
    /// is missing or fails.
    pub fn generate() -> TestPki {
        TestPki::try_generate().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`TestPki::generate`], returning the failure.
    pub fn try_generate() -> Result<TestPki, HarnessError> {
        let openssl = find_binary("openssl", "openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("test-pki-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                what: "creating the certificate directory".into(),
                source,
            })?;
        let pki = TestPki { dir };
        for ca in ["ca", "other-ca"] {
            pki.run(
                &openssl,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    &format!("/CN=logplatform test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            )?;
        }
        pki.sign(&openssl, "server", "ca", "localhost", true)?;
        pki.sign(&openssl, "client", "ca", "logplatform-client", false)?;
        pki.sign(&openssl, "other-server", "other-ca", "localhost", true)?;
        Ok(pki)
    }

    /// The CA that signed [`TestPki::server_cert`] and [`TestPki::client_cert`] (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// Server certificate for `localhost`, `127.0.0.1` and `::1` (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    /// Private key of [`TestPki::server_cert`] (PEM, unencrypted).
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// Client certificate for mutual TLS, signed by [`TestPki::ca_cert`] (PEM).
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }

    /// Private key of [`TestPki::client_cert`] (PEM, unencrypted).
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    /// A CA nothing else here trusts (PEM).
    pub fn other_ca_cert(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// A server certificate for `localhost` signed by [`TestPki::other_ca_cert`]: a server
    /// presenting it is "untrusted" to a client that trusts [`TestPki::ca_cert`].
    pub fn untrusted_server_cert(&self) -> PathBuf {
        self.path("other-server.pem")
    }

    /// Private key of [`TestPki::untrusted_server_cert`].
    pub fn untrusted_server_key(&self) -> PathBuf {
        self.path("other-server.key")
    }

    /// The directory holding every file (for configs that want a directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sign(
        &self,
        openssl: &Path,
        name: &str,
        ca: &str,
        common_name: &str,
        server: bool,
    ) -> Result<(), HarnessError> {
        let extensions = if server {
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        let extensions_file = self.path(&format!("{name}.ext"));
        std::fs::write(&extensions_file, extensions).map_err(|source| HarnessError::Io {
            what: format!("writing {}", extensions_file.display()),
            source,
        })?;
        self.run(
            openssl,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={common_name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        )?;
        self.run(
            openssl,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        )
    }

    fn run(&self, openssl: &Path, args: &[&str]) -> Result<(), HarnessError> {
        let output = Command::new(openssl)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|source| HarnessError::Io {
                what: format!("running {} {}", openssl.display(), args.join(" ")),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(HarnessError::Io {
            what: format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            source: std::io::Error::other("openssl exited with an error"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificate_verifies_against_its_ca_and_not_the_other() {
        let pki = TestPki::generate();
        let verify = |ca: PathBuf, cert: PathBuf| {
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(ca)
                .arg(cert)
                .output()
                .expect("openssl runs")
                .status
                .success()
        };
        assert!(verify(pki.ca_cert(), pki.server_cert()));
        assert!(verify(pki.ca_cert(), pki.client_cert()));
        assert!(!verify(pki.ca_cert(), pki.untrusted_server_cert()));
    }
}
