//! TLS and SASL for every Kafka client of the pipeline (logagent's producer, logtransfer's
//! consumer and dead-letter producer, the logger's Kafka output), in one vocabulary:
//!
//! | key | meaning |
//! |---|---|
//! | `security_protocol` | `plaintext` (default), `ssl`, `sasl_plaintext`, `sasl_ssl` |
//! | `sasl_mechanism` | `PLAIN` (default), `SCRAM-SHA-256`, `SCRAM-SHA-512` |
//! | `sasl_username`, `sasl_password` / `sasl_password_file` | SASL credentials |
//! | `tls_ca_file` | CA certificates (PEM) the brokers' certificates must chain to; empty: the system's |
//! | `tls_cert_file`, `tls_key_file` | client certificate and key (PEM), for brokers that require one |
//! | `tls_key_password` / `tls_key_password_file` | passphrase of an encrypted `tls_key_file` |
//! | `librdkafka_options` | any other librdkafka property, applied last |
//!
//! [`KafkaSecurity`] holds them; [`kafka_section!`](crate::kafka_section) gives a config
//! section (`[kafka]`, a logger output) these keys next to its own, with unknown keys still
//! refused and environment overrides (`<PREFIX>_KAFKA_SASL_PASSWORD`) still found. With the
//! cargo feature `kafka`, [`KafkaSecurity::apply`] checks them (a mistake is an error naming
//! the key, never showing a secret) and sets them on a librdkafka `ClientConfig`, and
//! [`check_brokers`] turns a refused TLS handshake or SASL login at start into an error that
//! says what to check, instead of a client that retries in silence.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::secret::{Secret, SecretError};

/// `security_protocol`: how the client talks to the brokers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    #[default]
    #[serde(rename = "plaintext", alias = "PLAINTEXT")]
    Plaintext,
    /// TLS; with `tls_cert_file` also the client's certificate (mutual TLS).
    #[serde(rename = "ssl", alias = "SSL")]
    Ssl,
    /// SASL login without encryption.
    #[serde(rename = "sasl_plaintext", alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL login over TLS.
    #[serde(rename = "sasl_ssl", alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The name the config uses (and librdkafka's `security.protocol` value).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the connection is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client logs in with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `sasl_mechanism`: how the SASL login proves the password. (GSSAPI/Kerberos is not built
/// in: it would need cyrus-sasl.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// The password itself, sent to the broker (use with `sasl_ssl`).
    #[default]
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name the config uses (and librdkafka's `sasl.mechanisms` value).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `librdkafka_options`: other librdkafka properties, passed through as they are. A nested
/// TOML table is read as dotted names (`[kafka.librdkafka_options] socket.keepalive.enable
/// = true` is `socket.keepalive.enable`); numbers and booleans become their text.
///
/// `Debug` shows `***` for the values of properties that hold secrets (names with
/// `password`, `secret`, `token`, `jaas`, `.pem` or `oauthbearer.config`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LibrdkafkaOptions(pub BTreeMap<String, String>);

impl LibrdkafkaOptions {
    /// Whether the property `name` holds a secret (its value is never printed).
    pub fn is_secret(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        [
            "password",
            "secret",
            "token",
            "jaas",
            ".pem",
            "oauthbearer.config",
        ]
        .iter()
        .any(|part| name.contains(part))
    }
}

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown: &dyn fmt::Debug = if Self::is_secret(name) { &"***" } else { value };
                (name, shown)
            }))
            .finish()
    }
}

impl<'de> Deserialize<'de> for LibrdkafkaOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut options = BTreeMap::new();
        deserializer.deserialize_map(OptionsVisitor {
            prefix: String::new(),
            into: &mut options,
        })?;
        Ok(LibrdkafkaOptions(options))
    }
}

/// Reads one table of `librdkafka_options`, nested tables as dotted names.
struct OptionsVisitor<'a> {
    prefix: String,
    into: &'a mut BTreeMap<String, String>,
}

impl<'de> Visitor<'de> for OptionsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of librdkafka properties (name = value)")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(name) = map.next_key::<String>()? {
            let name = if self.prefix.is_empty() {
                name
            } else {
                format!("{}.{name}", self.prefix)
            };
            map.next_value_seed(OptionValue {
                name,
                into: &mut *self.into,
            })?;
        }
        Ok(())
    }
}

/// One value of `librdkafka_options`: a scalar (kept as text) or a nested table.
struct OptionValue<'a> {
    name: String,
    into: &'a mut BTreeMap<String, String>,
}

impl<'de> de::DeserializeSeed<'de> for OptionValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OptionValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a text, number or boolean for librdkafka property {}",
            self.name
        )
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.into.insert(self.name, value.to_owned());
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.visit_str(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.visit_str(&value.to_string())
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        OptionsVisitor {
            prefix: self.name,
            into: self.into,
        }
        .visit_map(map)
    }
}

/// The TLS and SASL keys of one Kafka client's config section (see the [module docs](self)).
///
/// `Debug` never shows the password, the key passphrase or secret `librdkafka_options`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// With `sasl_*`: `PLAIN` (default), `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: SaslMechanism,
    /// With `sasl_*`: the user name (required).
    pub sasl_username: String,
    /// With `sasl_*`: the password (required, here, in `sasl_password_file` or from the
    /// environment). Never printed.
    pub sasl_password: Secret,
    /// File holding the password (its first line), instead of `sasl_password`.
    pub sasl_password_file: PathBuf,
    /// With `ssl`/`sasl_ssl`: PEM file of the CA certificates the brokers' certificates must
    /// chain to. Empty: the system's trusted CAs.
    pub tls_ca_file: PathBuf,
    /// With `ssl`/`sasl_ssl`: the client's certificate (PEM), for brokers that require one
    /// (mutual TLS). Needs `tls_key_file`.
    pub tls_cert_file: PathBuf,
    /// The private key (PEM) of `tls_cert_file`.
    pub tls_key_file: PathBuf,
    /// Passphrase of an encrypted `tls_key_file`. Never printed.
    pub tls_key_password: Secret,
    /// File holding the passphrase, instead of `tls_key_password`.
    pub tls_key_password_file: PathBuf,
    /// Any other librdkafka property (`"socket.keepalive.enable" = "true"`), applied after
    /// everything else, so it can also override what the client sets itself.
    pub librdkafka_options: LibrdkafkaOptions,
}

impl KafkaSecurity {
    /// The first of these keys that is set (not at its default), if any: for config
    /// sections where they do not apply (a logger output that is not Kafka).
    pub fn first_key_set(&self) -> Option<&'static str> {
        let d = KafkaSecurity::default();
        let set = [
            (
                "security_protocol",
                self.security_protocol != d.security_protocol,
            ),
            ("sasl_mechanism", self.sasl_mechanism != d.sasl_mechanism),
            ("sasl_username", !self.sasl_username.is_empty()),
            ("sasl_password", !self.sasl_password.is_empty()),
            ("sasl_password_file", is_set(&self.sasl_password_file)),
            ("tls_ca_file", is_set(&self.tls_ca_file)),
            ("tls_cert_file", is_set(&self.tls_cert_file)),
            ("tls_key_file", is_set(&self.tls_key_file)),
            ("tls_key_password", !self.tls_key_password.is_empty()),
            ("tls_key_password_file", is_set(&self.tls_key_password_file)),
            ("librdkafka_options", !self.librdkafka_options.0.is_empty()),
        ];
        set.into_iter().find(|(_, set)| *set).map(|(key, _)| key)
    }

    /// Checks the keys and reads the `*_file` secrets: what [`KafkaSecurity::apply`] sets.
    /// `section` names the config section in errors (`[kafka]`, `outputs.bus`).
    pub fn resolve(&self, section: &str) -> Result<ResolvedSecurity, KafkaSecurityError> {
        let protocol = self.security_protocol;
        let key = |name: &'static str| format!("{section} {name}");
        let mismatch = |name: &'static str, needs: &'static str| KafkaSecurityError::NotUsed {
            key: key(name),
            protocol,
            needs,
        };
        let sasl_password = Secret::from_value_or_file(
            &key("sasl_password"),
            &self.sasl_password,
            &self.sasl_password_file,
        )?;
        if protocol.uses_sasl() {
            if self.sasl_username.is_empty() {
                return Err(KafkaSecurityError::Missing {
                    key: key("sasl_username"),
                    protocol,
                });
            }
            if sasl_password.is_empty() {
                return Err(KafkaSecurityError::Missing {
                    key: key("sasl_password"),
                    protocol,
                });
            }
        } else {
            let sasl_set = [
                ("sasl_username", !self.sasl_username.is_empty()),
                ("sasl_password", !sasl_password.is_empty()),
                (
                    "sasl_mechanism",
                    self.sasl_mechanism != SaslMechanism::default(),
                ),
            ];
            if let Some((name, _)) = sasl_set.into_iter().find(|(_, set)| *set) {
                return Err(mismatch(name, "sasl_plaintext or sasl_ssl"));
            }
        }
        let tls_files = [
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ];
        let key_password = Secret::from_value_or_file(
            &key("tls_key_password"),
            &self.tls_key_password,
            &self.tls_key_password_file,
        )?;
        if !protocol.uses_tls() {
            if let Some((name, _)) = tls_files.iter().find(|(_, path)| is_set(path)) {
                return Err(mismatch(name, "ssl or sasl_ssl"));
            }
            if !key_password.is_empty() {
                return Err(mismatch("tls_key_password", "ssl or sasl_ssl"));
            }
        }
        match (is_set(&self.tls_cert_file), is_set(&self.tls_key_file)) {
            (true, false) => {
                return Err(KafkaSecurityError::Pair {
                    given: key("tls_cert_file"),
                    missing: key("tls_key_file"),
                });
            }
            (false, true) => {
                return Err(KafkaSecurityError::Pair {
                    given: key("tls_key_file"),
                    missing: key("tls_cert_file"),
                });
            }
            _ => {}
        }
        if !key_password.is_empty() && !is_set(&self.tls_key_file) {
            return Err(KafkaSecurityError::Pair {
                given: key("tls_key_password"),
                missing: key("tls_key_file"),
            });
        }
        for (name, path) in tls_files.iter().filter(|(_, path)| is_set(path)) {
            if let Err(source) = std::fs::File::open(path) {
                return Err(KafkaSecurityError::File {
                    key: key(name),
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let mut properties: Vec<(&'static str, String)> =
            vec![("security.protocol", protocol.name().to_owned())];
        if protocol.uses_sasl() {
            properties.push(("sasl.mechanisms", self.sasl_mechanism.name().to_owned()));
            properties.push(("sasl.username", self.sasl_username.clone()));
        }
        for (property, path) in [
            ("ssl.ca.location", &self.tls_ca_file),
            ("ssl.certificate.location", &self.tls_cert_file),
            ("ssl.key.location", &self.tls_key_file),
        ] {
            if is_set(path) {
                properties.push((property, path.display().to_string()));
            }
        }
        Ok(ResolvedSecurity {
            protocol,
            properties,
            sasl_password,
            key_password,
            options: self.librdkafka_options.clone(),
        })
    }
}

fn is_set(path: &Path) -> bool {
    !path.as_os_str().is_empty()
}

/// The librdkafka properties [`KafkaSecurity`] stands for, secrets read. `Debug` shows no
/// secret.
#[derive(Clone, Debug)]
pub struct ResolvedSecurity {
    /// `security_protocol`.
    pub protocol: SecurityProtocol,
    /// Properties that hold no secret.
    properties: Vec<(&'static str, String)>,
    sasl_password: Secret,
    key_password: Secret,
    options: LibrdkafkaOptions,
}

impl ResolvedSecurity {
    /// Every property, secrets included, in the order they are set (`librdkafka_options`
    /// last). For the client library only: never print them.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if !self.sasl_password.is_empty() {
            all.push(("sasl.password".into(), self.sasl_password.expose().into()));
        }
        if !self.key_password.is_empty() {
            all.push(("ssl.key.password".into(), self.key_password.expose().into()));
        }
        all.extend(self.options.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// `text` with every secret replaced by `***` (librdkafka's messages should never
    /// carry one; this makes sure).
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let option_secrets = self
            .options
            .0
            .iter()
            .filter(|(k, _)| LibrdkafkaOptions::is_secret(k))
            .map(|(_, v)| v.as_str());
        for secret in [self.sasl_password.expose(), self.key_password.expose()]
            .into_iter()
            .chain(option_secrets)
            .filter(|s| s.len() >= 3)
        {
            text = text.replace(secret, "***");
        }
        text
    }
}

/// Why the Kafka security settings cannot be used. Names the key; never shows a secret.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSecurityError {
    /// A key the protocol needs is empty.
    #[error(
        "{key} is required with security_protocol = {protocol}; set it (or switch security_protocol)"
    )]
    Missing {
        /// Section and key.
        key: String,
        /// `security_protocol`.
        protocol: SecurityProtocol,
    },
    /// A key is set that the protocol does not use: a config that says less than it means.
    #[error(
        "{key} is set, but security_protocol = {protocol} does not use it; set security_protocol to {needs}, or remove {key}"
    )]
    NotUsed {
        /// Section and key.
        key: String,
        /// `security_protocol`.
        protocol: SecurityProtocol,
        /// The protocols that use it.
        needs: &'static str,
    },
    /// One of a certificate and its key (or a passphrase and its key) without the other.
    #[error(
        "{given} is set without {missing}; a client certificate needs both its certificate and its key file"
    )]
    Pair {
        /// The key that is set.
        given: String,
        /// The key that is missing.
        missing: String,
    },
    /// A certificate or key file cannot be read.
    #[error(
        "{key} {path}: cannot read it: {source}; check the path and that this user may read it"
    )]
    File {
        /// Section and key.
        key: String,
        /// The file named.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A password from a `*_file` key cannot be read, or both it and the inline key are set.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The brokers refused the TLS handshake or the SASL login at start.
    #[error(
        "Kafka brokers {brokers} refused the connection with {section} security_protocol = {protocol}: {reason}; {hint}"
    )]
    Refused {
        /// The config section.
        section: String,
        /// The bootstrap brokers.
        brokers: String,
        /// `security_protocol`.
        protocol: SecurityProtocol,
        /// What librdkafka said (scrubbed of secrets).
        reason: String,
        /// What to check.
        hint: String,
    },
}

#[cfg(feature = "kafka")]
mod client;
#[cfg(feature = "kafka")]
pub use client::{BrokerCheck, STARTUP_CHECK_TIMEOUT, check_brokers};

/// Declares a config section struct (`[kafka]` of a binary, a logger output) that carries
/// the [`KafkaSecurity`] keys next to its own fields, in the same section.
///
/// serde's `flatten` would do this but turns the section into a map: unknown keys are no
/// longer refused, the schema the environment overrides are matched against is lost, and
/// INI's text values are no longer converted to numbers. Instead, this writes the section's
/// fields and the security keys into one private struct that serde derives with
/// `default, deny_unknown_fields`, and builds the declared struct from it; the declared
/// struct gets a field `security: KafkaSecurity`.
///
/// Write doc comments before `#[serde(...)]` attributes on a field (these go to the private
/// struct only). The caller depends on `serde` and implements `Default` (with
/// `security: KafkaSecurity::default()`), which gives the section's defaults.
///
/// ```
/// secure_transport::kafka_section! {
///     /// `[kafka]`: where to produce.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct KafkaConfig {
///         /// Bootstrap brokers.
///         pub address: String,
///     }
/// }
/// impl Default for KafkaConfig {
///     fn default() -> Self {
///         KafkaConfig { address: "127.0.0.1:9092".into(), security: Default::default() }
///     }
/// }
/// ```
#[macro_export]
macro_rules! kafka_section {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:expr])*
                $(#[serde($($serde:tt)*)])*
                $field_vis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $field_vis $field: $ty,
            )*
            /// TLS and SASL: the keys `security_protocol`, `sasl_mechanism`,
            /// `sasl_username`, `sasl_password[_file]`, `tls_ca_file`, `tls_cert_file`,
            /// `tls_key_file`, `tls_key_password[_file]` and `librdkafka_options` of this
            /// same section.
            pub security: $crate::kafka::KafkaSecurity,
        }

        const _: () = {
            use $crate::kafka::{KafkaSecurity, LibrdkafkaOptions, SaslMechanism, SecurityProtocol};
            use $crate::secret::Secret;
            use ::std::path::PathBuf;

            /// Every key of the section, as serde reads it.
            #[derive(::serde::Deserialize)]
            #[serde(default, deny_unknown_fields)]
            struct KafkaSectionKeys {
                $(
                    $(#[serde($($serde)*)])*
                    $field: $ty,
                )*
                security_protocol: SecurityProtocol,
                sasl_mechanism: SaslMechanism,
                sasl_username: String,
                sasl_password: Secret,
                sasl_password_file: PathBuf,
                tls_ca_file: PathBuf,
                tls_cert_file: PathBuf,
                tls_key_file: PathBuf,
                tls_key_password: Secret,
                tls_key_password_file: PathBuf,
                librdkafka_options: LibrdkafkaOptions,
            }

            impl ::std::default::Default for KafkaSectionKeys {
                fn default() -> Self {
                    let $name {
                        $($field,)*
                        security: KafkaSecurity {
                            security_protocol,
                            sasl_mechanism,
                            sasl_username,
                            sasl_password,
                            sasl_password_file,
                            tls_ca_file,
                            tls_cert_file,
                            tls_key_file,
                            tls_key_password,
                            tls_key_password_file,
                            librdkafka_options,
                        },
                    } = <$name as ::std::default::Default>::default();
                    KafkaSectionKeys {
                        $($field,)*
                        security_protocol,
                        sasl_mechanism,
                        sasl_username,
                        sasl_password,
                        sasl_password_file,
                        tls_ca_file,
                        tls_cert_file,
                        tls_key_file,
                        tls_key_password,
                        tls_key_password_file,
                        librdkafka_options,
                    }
                }
            }

            impl<'de> ::serde::Deserialize<'de> for $name {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    let KafkaSectionKeys {
                        $($field,)*
                        security_protocol,
                        sasl_mechanism,
                        sasl_username,
                        sasl_password,
                        sasl_password_file,
                        tls_ca_file,
                        tls_cert_file,
                        tls_key_file,
                        tls_key_password,
                        tls_key_password_file,
                        librdkafka_options,
                    } = KafkaSectionKeys::deserialize(deserializer)?;
                    Ok($name {
                        $($field,)*
                        security: KafkaSecurity {
                            security_protocol,
                            sasl_mechanism,
                            sasl_username,
                            sasl_password,
                            sasl_password_file,
                            tls_ca_file,
                            tls_cert_file,
                            tls_key_file,
                            tls_key_password,
                            tls_key_password_file,
                            librdkafka_options,
                        },
                    })
                }
            }
        };
    };
}

#[cfg(test)]
mod tests;
