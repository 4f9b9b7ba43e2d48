//! HTTPS to Elasticsearch (rustls): the CA to trust, the client certificate, and telling
//! a TLS failure (an untrusted certificate, a handshake the server refused, a node that
//! does not speak TLS) apart from "Elasticsearch is down", so that the operator is told
//! what to fix instead of watching retries.

#[cfg(feature = "tls")]
use super::config::ElasticsearchConfig;
#[cfg(feature = "tls")]
use super::service::ServiceError;

/// Applies `[es] tls_ca_file`, `tls_cert_file`/`tls_key_file` and `tls_insecure` to the
/// client. The CA file adds to the system's roots; the client certificate is sent to
/// servers that ask for one (mutual TLS). Without an `https://` node (`any_https` false)
/// the files are still checked, but the system's roots are not loaded: reqwest's verifier
/// would read them all and refuse to build a client on a host without any
/// (`ca-certificates` not installed), which a plaintext deployment does not need.
#[cfg(feature = "tls")]
pub fn configure(
    builder: reqwest::ClientBuilder,
    config: &ElasticsearchConfig,
    any_https: bool,
) -> Result<reqwest::ClientBuilder, ServiceError> {
    // rustls even if another crate of the build turned on reqwest's native-tls.
    let mut builder = builder.tls_backend_rustls();
    if config.tls_insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if !config.tls_ca_file.is_empty() {
        let pem = read_pem("tls_ca_file", &config.tls_ca_file)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad_file("tls_ca_file", &config.tls_ca_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad_file(
                "tls_ca_file",
                &config.tls_ca_file,
                "no PEM certificate in it".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    match (
        config.tls_cert_file.is_empty(),
        config.tls_key_file.is_empty(),
    ) {
        (true, true) => {}
        (false, false) => {
            let mut pem = read_pem("tls_cert_file", &config.tls_cert_file)?;
            pem.push(b'\n');
            pem.extend(read_pem("tls_key_file", &config.tls_key_file)?);
            // reqwest's message names neither file: say which pair it was.
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                bad_file(
                    "tls_cert_file/tls_key_file",
                    &format!("{} + {}", config.tls_cert_file, config.tls_key_file),
                    format!(
                        "{e}: tls_cert_file must hold the certificate (chain) and tls_key_file \
                         its unencrypted private key, both PEM"
                    ),
                )
            })?;
            builder = builder.identity(identity);
        }
        _ => return Err(ServiceError::ClientCertificateHalf),
    }
    if !any_https {
        builder = builder.tls_certs_only(Vec::new());
    }
    Ok(builder)
}

#[cfg(feature = "tls")]
fn read_pem(key: &'static str, path: &str) -> Result<Vec<u8>, ServiceError> {
    std::fs::read(path).map_err(|e| {
        bad_file(
            key,
            path,
            format!("{e}; check the path and that this user may read it"),
        )
    })
}

#[cfg(feature = "tls")]
fn bad_file(key: &'static str, path: &str, reason: String) -> ServiceError {
    ServiceError::TlsFile {
        key,
        path: path.to_owned(),
        reason,
    }
}

/// A TLS failure under a request, by what the operator has to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The server's certificate is not trusted (unknown CA, expired, wrong name).
    UntrustedCertificate,
    /// The server refused our side of the handshake: no or a wrong client certificate,
    /// no common protocol version or cipher.
    HandshakeRefused,
    /// An `https://` node answered something that is not TLS (a plaintext port).
    NotTls,
}

impl TlsProblem {
    /// What to check.
    pub fn hint(self) -> &'static str {
        match self {
            TlsProblem::UntrustedCertificate => {
                "the node's TLS certificate is not trusted: set [es] tls_ca_file to the CA \
                 that signed it (PEM), or fix the certificate (name, expiry)"
            }
            TlsProblem::HandshakeRefused => {
                "the node refused the TLS handshake: if it requires a client certificate, \
                 set [es] tls_cert_file and tls_key_file to one signed by a CA it trusts"
            }
            TlsProblem::NotTls => {
                "the node does not speak TLS on that port: use http:// in [es] address (or \
                 the node's HTTPS port)"
            }
        }
    }

    /// Finds a TLS failure in `error`'s causes. rustls' error reaches us wrapped in
    /// `io::Error`s (sometimes one inside another), whose `source()` skips what they wrap:
    /// each `io::Error` is opened with `get_ref` as well as followed by `source()`.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
        Self::search(error, 0)
    }

    fn search(error: &(dyn std::error::Error + 'static), depth: usize) -> Option<TlsProblem> {
        if depth > 16 {
            return None;
        }
        if let Some(problem) = Self::of_one(error) {
            return Some(problem);
        }
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        wrapped
            .and_then(|inner| Self::search(inner, depth + 1))
            .or_else(|| Self::search(error.source()?, depth + 1))
    }

    #[cfg(feature = "tls")]
    fn of_one(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
        use rustls::Error as E;
        match error.downcast_ref::<rustls::Error>()? {
            E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => {
                Some(TlsProblem::UntrustedCertificate)
            }
            E::AlertReceived(_) | E::PeerIncompatible(_) | E::NoCertificatesPresented => {
                Some(TlsProblem::HandshakeRefused)
            }
            // What a plaintext HTTP answer to our ClientHello parses as.
            E::InvalidMessage(_)
            | E::PeerSentOversizedRecord
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. } => Some(TlsProblem::NotTls),
            _ => Some(TlsProblem::HandshakeRefused),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn of_one(_error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
        None
    }
}

/// What to check when a whole request was answered `status` with `body` by a TLS
/// front end (nginx's own pages): the request reached a TLS port without TLS, or without
/// the client certificate it requires. Real Elasticsearch closes the connection instead.
pub fn front_end_hint(status: u16, body: &str) -> Option<&'static str> {
    if status != 400 {
        return None;
    }
    if body.contains("plain HTTP request was sent to HTTPS port") {
        Some(
            "the node serves HTTPS on that port: write https:// in [es] address (or set \
             [es] tls = true for addresses without a scheme)",
        )
    } else if body.contains("No required SSL certificate was sent") {
        Some(
            "the node requires a client certificate: set [es] tls_cert_file and \
             tls_key_file (PEM)",
        )
    } else if body.contains("SSL certificate error") {
        Some(
            "the node does not accept the client certificate: check [es] tls_cert_file \
             and tls_key_file (signed by a CA the node trusts, not expired)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_front_end_s_own_400_pages_are_told_apart_from_a_refused_document() {
        let plain = "<html> <head><title>400 The plain HTTP request was sent to HTTPS port</title>";
        assert!(front_end_hint(400, plain).unwrap().contains("https://"));
        let no_cert = "<center>No required SSL certificate was sent</center>";
        assert!(
            front_end_hint(400, no_cert)
                .unwrap()
                .contains("tls_cert_file")
        );
        let mapping = r#"{"error":{"type":"mapper_parsing_exception"},"status":400}"#;
        assert_eq!(front_end_hint(400, mapping), None);
        assert_eq!(front_end_hint(401, plain), None);
    }

    #[test]
    fn an_io_error_around_nothing_tls_is_no_tls_problem() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(TlsProblem::of(&refused), None);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rustls_errors_inside_io_errors_are_found() {
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(
            TlsProblem::of(&untrusted),
            Some(TlsProblem::UntrustedCertificate)
        );
        // One io::Error inside another, as hyper-util hands it over.
        let plaintext = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ));
        assert_eq!(TlsProblem::of(&plaintext), Some(TlsProblem::NotTls));
    }
}
