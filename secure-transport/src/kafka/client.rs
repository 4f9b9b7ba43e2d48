//! The settings on a librdkafka client, and the check at start that the brokers accept them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use super::{KafkaSecurity, KafkaSecurityError, ResolvedSecurity};

impl KafkaSecurity {
    /// Checks the keys, reads the `*_file` secrets and sets the librdkafka properties on
    /// `config` (`librdkafka_options` last). `section` names the section in errors
    /// (`[kafka]`). Never print `config` afterwards: its `Debug` shows the password.
    pub fn apply(
        &self,
        section: &str,
        config: &mut ClientConfig,
    ) -> Result<ResolvedSecurity, KafkaSecurityError> {
        let resolved = self.resolve(section)?;
        for (name, value) in resolved.properties() {
            config.set(name, value);
        }
        Ok(resolved)
    }
}

/// How long a client waits at start for the brokers to answer before it goes on without
/// them ([`check_brokers`]; a refused TLS handshake or SASL login comes back at once).
pub const STARTUP_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`check_brokers`] found, when it is not a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerCheck {
    /// A broker answered a metadata request: TLS and SASL are accepted.
    Reachable,
    /// No broker could be reached (all down, or no answer in time); the client keeps trying
    /// in the background, as it would after an outage. The text is librdkafka's last word.
    Unreachable(String),
}

/// Connects to the brokers of `config` (a producer's or a consumer's, security applied
/// with [`KafkaSecurity::apply`], whose result is `security`) and waits up to `timeout`
/// for a metadata answer.
///
/// A TLS handshake the brokers or the client refuse (an untrusted certificate, a plaintext
/// client on a TLS port or the other way round, a missing client certificate) and a refused
/// SASL login are [`KafkaSecurityError::Refused`], naming the brokers, the protocol and
/// what to check, never a secret. Brokers that are all down, or silent, are not an error:
/// clients wait for them (logged by the caller as [`BrokerCheck::Unreachable`]).
pub fn check_brokers(
    config: &ClientConfig,
    section: &str,
    security: &ResolvedSecurity,
    timeout: Duration,
) -> Result<BrokerCheck, KafkaSecurityError> {
    let brokers = config.get("bootstrap.servers").unwrap_or("").to_owned();
    let refused = |failure: Failure| KafkaSecurityError::Refused {
        section: section.to_owned(),
        brokers: brokers.clone(),
        protocol: security.protocol,
        reason: security.scrub(&failure.reason),
        hint: failure.kind.hint(section),
    };
    let mut probe_config = config.clone();
    // A short-lived client of its own: the caller's may be a consumer, and an idempotent
    // producer would ask the brokers for a producer id.
    // A TLS client on a plaintext port can wait for the handshake forever (the broker
    // waits for the rest of what it takes for a request): give up on it within `timeout`,
    // which librdkafka reports in state SSL_HANDSHAKE.
    let setup_ms = (timeout.as_millis() * 3 / 4).max(1000);
    probe_config
        .set("enable.idempotence", "false")
        .set("socket.connection.setup.timeout.ms", setup_ms.to_string())
        // The diagnosis of a plaintext client on a TLS port is only logged.
        .set_log_level(RDKafkaLogLevel::Info);
    let probe: BaseProducer<Probe> = match probe_config.create_with_context(Probe::default()) {
        Ok(probe) => probe,
        // librdkafka refused the settings: the caller's own client will say why.
        Err(error) => return Ok(BrokerCheck::Unreachable(error.to_string())),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let answer = probe.client().fetch_metadata(None, slice);
        // Serves the error callbacks.
        probe.poll(Duration::ZERO);
        if let Some(failure) = probe.context().failure() {
            return Err(refused(failure));
        }
        match answer {
            Ok(_) => return Ok(BrokerCheck::Reachable),
            Err(error) => {
                let all_down = probe.context().all_down.load(Ordering::SeqCst);
                if all_down || Instant::now() >= deadline {
                    // What librdkafka reports just after the brokers went down.
                    probe.poll(Duration::from_millis(200));
                    if let Some(failure) = probe.context().failure() {
                        return Err(refused(failure));
                    }
                    let last = probe.context().last_error().unwrap_or(error.to_string());
                    return Ok(BrokerCheck::Unreachable(security.scrub(&last)));
                }
            }
        }
    }
}

/// Why a connection was refused, by librdkafka's error code and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// The TLS handshake failed (certificate not trusted, no client certificate, not TLS).
    Tls,
    /// The client spoke plaintext to a TLS (or SASL) listener.
    ProtocolMismatch,
    /// The SASL login was refused or is not offered.
    Sasl,
}

impl FailureKind {
    fn of(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<FailureKind> {
        match code {
            Some(RDKafkaErrorCode::SSL) => Some(FailureKind::Tls),
            Some(
                RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState,
            ) => Some(FailureKind::Sasl),
            // librdkafka's own diagnosis of a connection closed during the first request:
            // "might be caused by incorrect security.protocol configuration (connecting to
            // a SSL listener?)".
            _ if reason.contains("security.protocol") => Some(FailureKind::ProtocolMismatch),
            // The same, when the listener resets the connection instead: a TLS listener
            // reading a plaintext request ("Disconnected: connection reset by peer (after
            // 2ms in state APIVERSION_QUERY)"). A broker that is down refuses the connect
            // instead, in state CONNECT.
            _ if reason.contains("Disconnected") && reason.contains("state APIVERSION_QUERY") => {
                Some(FailureKind::ProtocolMismatch)
            }
            // A TLS 1.3 server refuses a client certificate after the handshake, so the
            // client sees it on its first read ("Receive failed: error:0A00045C:SSL
            // routines::tlsv13 alert certificate required").
            // And a handshake that never completes: the port does not speak TLS.
            _ if reason.contains("SSL routines")
                || reason.contains("SSL alert")
                || reason.contains("state SSL_HANDSHAKE") =>
            {
                Some(FailureKind::Tls)
            }
            _ => None,
        }
    }

    fn hint(self, section: &str) -> String {
        match self {
            FailureKind::Tls => format!(
                "check {section} tls_ca_file (the CA that signed the brokers' certificates; \
                 the brokers' host names must match their certificates), that the brokers \
                 speak TLS on this port, and {section} tls_cert_file / tls_key_file if they \
                 require a client certificate"
            ),
            FailureKind::ProtocolMismatch => format!(
                "the brokers closed the connection at the first request: check that \
                 {section} security_protocol matches their listener on this port (TLS needs \
                 ssl or sasl_ssl, SASL needs sasl_plaintext or sasl_ssl)"
            ),
            FailureKind::Sasl => format!(
                "check {section} sasl_mechanism, sasl_username and sasl_password (or \
                 sasl_password_file), and that the brokers' listener on this port has SASL \
                 enabled"
            ),
        }
    }
}

#[derive(Debug, Clone)]
struct Failure {
    kind: FailureKind,
    reason: String,
}

/// Records what librdkafka reports while the probe connects.
#[derive(Default)]
struct Probe {
    failure: Mutex<Option<Failure>>,
    last_error: Mutex<Option<String>>,
    all_down: AtomicBool,
}

impl Probe {
    fn failure(&self) -> Option<Failure> {
        self.failure.lock().ok()?.clone()
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok()?.clone()
    }
}

impl Probe {
    fn record(&self, code: Option<RDKafkaErrorCode>, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_owned());
        }
        if let Some(kind) = FailureKind::of(code, reason)
            && let Ok(mut failure) = self.failure.lock()
        {
            failure.get_or_insert(Failure {
                kind,
                reason: reason.to_owned(),
            });
        }
    }
}

impl ClientContext for Probe {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_down.store(true, Ordering::SeqCst);
            return;
        }
        self.record(code, reason);
    }

    // Connection failures, some of them only logged. Not forwarded: they would repeat the
    // errors, and warn about the caller's consumer properties that a producer ignores.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection failures are facility FAIL, logged at Info when librdkafka does not
        // also report them as errors (a connection reset during the first request).
        let failure = fac == "FAIL" || log_message.contains("SSL");
        if fac != "CONFWARN" && (failure || level as i32 <= RDKafkaLogLevel::Warning as i32) {
            self.record(None, log_message);
        }
    }
}

impl ProducerContext for Probe {
    type DeliveryOpaque = ();

    // The probe sends no messages.
    fn delivery(&self, _result: &DeliveryResult<'_>, _opaque: ()) {}
}
