use std::collections::BTreeMap;

use conf_file::schema::Schema;
use conf_file::{ConfigFormat, Scalars};
use serde::Deserialize;

use super::*;

crate::kafka_section! {
    /// A `[kafka]` section as the binaries declare it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Section {
        /// Brokers.
        pub address: String,
        /// A number: INI gives it as text.
        pub chan_size: u64,
        /// A renamed field keeps its serde attribute.
        #[serde(rename = "linger")]
        pub linger_ms: u64,
    }
}

impl Default for Section {
    fn default() -> Self {
        Section {
            address: "127.0.0.1:9092".into(),
            chan_size: 10,
            linger_ms: 5,
            security: KafkaSecurity::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Conf {
    kafka: Section,
}

fn load(text: &str, format: ConfigFormat) -> Result<Conf, String> {
    let table = conf_file::parse(text, format, Scalars::Typed).map_err(|e| e.to_string())?;
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}

const TOML: &str = r#"
[kafka]
address = "b1:9093"
chan_size = 7
linger = 9
security_protocol = "sasl_ssl"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "agent"
sasl_password = "hunter22"
tls_ca_file = "/etc/ca.pem"
[kafka.librdkafka_options]
"client.id" = "agent-1"
socket.keepalive.enable = true
"sasl.oauthbearer.client.secret" = "oauth-s3cret"
"#;

const INI: &str = "
[kafka]
address = b1:9093
chan_size = 7
linger = 9
security_protocol = sasl_ssl
sasl_mechanism = SCRAM-SHA-512
sasl_username = agent
sasl_password = hunter22
tls_ca_file = /etc/ca.pem
[kafka.librdkafka_options]
client.id = agent-1
socket.keepalive.enable = true
sasl.oauthbearer.client.secret = oauth-s3cret
";

#[test]
fn a_section_reads_its_own_keys_and_the_security_keys_from_ini_and_toml() {
    let toml = load(TOML, ConfigFormat::Toml).unwrap();
    let ini = load(INI, ConfigFormat::Ini).unwrap();
    assert_eq!(toml, ini);
    let kafka = toml.kafka;
    assert_eq!((kafka.chan_size, kafka.linger_ms), (7, 9));
    assert_eq!(kafka.security.security_protocol, SecurityProtocol::SaslSsl);
    assert_eq!(kafka.security.sasl_mechanism, SaslMechanism::ScramSha512);
    assert_eq!(kafka.security.sasl_password.expose(), "hunter22");
    let options: Vec<(&str, &str)> = kafka
        .security
        .librdkafka_options
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        options,
        vec![
            ("client.id", "agent-1"),
            ("sasl.oauthbearer.client.secret", "oauth-s3cret"),
            ("socket.keepalive.enable", "true"),
        ]
    );
    assert_eq!(
        load("", ConfigFormat::Ini).unwrap().kafka,
        Section::default()
    );
}

#[test]
fn unknown_keys_and_values_are_refused_by_name() {
    let err = load("[kafka]\nsasl_pasword = x\n", ConfigFormat::Ini).unwrap_err();
    assert!(err.contains("sasl_pasword"), "{err}");
    let err = load("[kafka]\nadress = x\n", ConfigFormat::Ini).unwrap_err();
    assert!(err.contains("adress"), "{err}");
    let err = load("[kafka]\nsecurity_protocol = tls\n", ConfigFormat::Ini).unwrap_err();
    assert!(
        err.contains("security_protocol") && err.contains("`tls`") && err.contains("sasl_ssl"),
        "{err}"
    );
    let err = load("[kafka]\nsasl_mechanism = GSSAPI\n", ConfigFormat::Ini).unwrap_err();
    assert!(
        err.contains("sasl_mechanism") && err.contains("GSSAPI"),
        "{err}"
    );
}

#[test]
fn the_schema_lists_the_security_keys_for_environment_overrides() {
    let schema = Schema::of::<Conf>();
    for key in [
        "address",
        "chan_size",
        "linger",
        "sasl_password",
        "sasl_password_file",
        "tls_key_password",
        "security_protocol",
    ] {
        assert!(schema.accepts("kafka", key), "{key}");
    }
    assert!(!schema.accepts("kafka", "sasl_pasword"));
    assert!(!schema.accepts("kafka", "security"));
}

#[test]
fn debug_never_shows_a_secret() {
    let mut conf = load(TOML, ConfigFormat::Toml).unwrap();
    conf.kafka.security.tls_key_password = Secret::new("key-pass-1");
    conf.kafka
        .security
        .librdkafka_options
        .0
        .insert("ssl.keystore.password".into(), "keystore-pw".into());
    let shown = format!("{conf:?} {:?}", conf.kafka.security.resolve("[kafka]"));
    for secret in ["hunter22", "oauth-s3cret", "key-pass-1", "keystore-pw"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("agent-1"),
        "other options are shown: {shown}"
    );
}

fn security(protocol: SecurityProtocol) -> KafkaSecurity {
    KafkaSecurity {
        security_protocol: protocol,
        ..KafkaSecurity::default()
    }
}

fn error(security: &KafkaSecurity) -> String {
    security.resolve("[kafka]").unwrap_err().to_string()
}

#[test]
fn sasl_needs_a_username_and_a_password_and_says_which_is_missing() {
    let mut s = security(SecurityProtocol::SaslSsl);
    assert!(error(&s).contains("[kafka] sasl_username is required"));
    s.sasl_username = "agent".into();
    let e = error(&s);
    assert!(
        e.contains("[kafka] sasl_password is required with security_protocol = sasl_ssl"),
        "{e}"
    );
    s.sasl_password = Secret::new("pw-123");
    let resolved = s.resolve("[kafka]").unwrap();
    let properties: BTreeMap<String, String> = resolved.properties().into_iter().collect();
    assert_eq!(properties["security.protocol"], "sasl_ssl");
    assert_eq!(properties["sasl.mechanisms"], "PLAIN");
    assert_eq!(properties["sasl.username"], "agent");
    assert_eq!(properties["sasl.password"], "pw-123");
}

#[test]
fn the_password_comes_from_its_file_and_not_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file-pw\n").unwrap();
    let mut s = security(SecurityProtocol::SaslPlaintext);
    s.sasl_username = "agent".into();
    s.sasl_password_file = file;
    let properties: BTreeMap<String, String> = s
        .resolve("[kafka]")
        .unwrap()
        .properties()
        .into_iter()
        .collect();
    assert_eq!(properties["sasl.password"], "from-file-pw");
    s.sasl_password = Secret::new("inline-pw");
    let e = error(&s);
    assert!(e.contains("[kafka] sasl_password_file"), "{e}");
    assert!(
        !e.contains("inline-pw") && !e.contains("from-file-pw"),
        "{e}"
    );
}

#[test]
fn keys_the_protocol_does_not_use_are_refused() {
    let mut s = security(SecurityProtocol::Plaintext);
    s.sasl_username = "agent".into();
    let e = error(&s);
    assert!(
        e.contains("[kafka] sasl_username is set, but security_protocol = plaintext"),
        "{e}"
    );
    let mut s = security(SecurityProtocol::SaslPlaintext);
    s.sasl_username = "agent".into();
    s.sasl_password = Secret::new("pw-123");
    s.tls_ca_file = "/etc/ca.pem".into();
    let e = error(&s);
    assert!(
        e.contains("[kafka] tls_ca_file is set, but security_protocol = sasl_plaintext")
            && e.contains("ssl or sasl_ssl"),
        "{e}"
    );
}

#[test]
fn a_certificate_needs_its_key_and_files_must_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    std::fs::write(&cert, "x").unwrap();
    let mut s = security(SecurityProtocol::Ssl);
    s.tls_cert_file = cert.clone();
    let e = error(&s);
    assert!(
        e.contains("[kafka] tls_cert_file is set without [kafka] tls_key_file"),
        "{e}"
    );
    s.tls_key_file = dir.path().join("missing.key");
    let e = error(&s);
    assert!(
        e.contains("[kafka] tls_key_file")
            && e.contains("missing.key")
            && e.contains("cannot read"),
        "{e}"
    );
    s.tls_key_file = cert.clone();
    s.tls_ca_file = cert.clone();
    let properties: BTreeMap<String, String> = s
        .resolve("[kafka]")
        .unwrap()
        .properties()
        .into_iter()
        .collect();
    assert_eq!(properties["security.protocol"], "ssl");
    assert_eq!(properties["ssl.ca.location"], cert.display().to_string());
    assert_eq!(properties["ssl.key.location"], cert.display().to_string());
    assert!(!properties.contains_key("sasl.username"));
}

#[test]
fn librdkafka_options_come_last_and_scrub_hides_secrets() {
    let mut s = security(SecurityProtocol::SaslSsl);
    s.sasl_username = "agent".into();
    s.sasl_password = Secret::new("pw-123");
    s.librdkafka_options
        .0
        .insert("security.protocol".into(), "sasl_plaintext".into());
    let resolved = s.resolve("[kafka]").unwrap();
    let last = resolved.properties().pop().unwrap();
    assert_eq!(last, ("security.protocol".into(), "sasl_plaintext".into()));
    assert_eq!(resolved.scrub("login pw-123 failed"), "login *** failed");
    assert_eq!(s.first_key_set(), Some("security_protocol"));
    assert_eq!(KafkaSecurity::default().first_key_set(), None);
}
