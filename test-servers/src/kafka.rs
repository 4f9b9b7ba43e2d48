use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tempfile::TempDir;

use crate::error::HarnessError;
use crate::pki::TestPki;
use crate::process::{
    Launch, ServerProcess, free_port, launch, retry_port_clash, scratch_dir, tcp_probe,
};

/// How [`Kafka::start_tls`] fronts the broker with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaTls {
    /// The broker presents [`TestPki::server_cert`]; clients need no certificate.
    ServerOnly,
    /// As `ServerOnly`, and clients must present a certificate signed by
    /// [`TestPki::ca_cert`] (mutual TLS).
    Mutual,
    /// The broker presents [`TestPki::untrusted_server_cert`], which a client that trusts
    /// [`TestPki::ca_cert`] refuses.
    Untrusted,
}

/// The TLS-terminating proxy (stunnel) in front of a broker, and what the harness' own
/// clients need to talk through it.
struct TlsFront {
    _stunnel: ServerProcess,
    port: u16,
    /// The CA the harness' clients trust.
    ca: PathBuf,
    /// The harness' client certificate and key, for `Mutual`.
    client: Option<(PathBuf, PathBuf)>,
}

/// A real Kafka-protocol broker (tansu) on a free loopback port, with in-memory storage.
///
/// Memory storage means [`Kafka::restart`] comes back EMPTY (topics gone); for an outage that
/// keeps data, [`Kafka::pause`] and [`Kafka::resume`] freeze and thaw the broker.
pub struct Kafka {
    process: ServerProcess,
    port: u16,
    tls: Option<TlsFront>,
    _dir: TempDir,
}

/// Messages read back from a topic: the key and the payload.
pub type KeyedMessage = (Option<Vec<u8>>, Vec<u8>);

impl Kafka {
    /// Starts the broker and waits until it accepts connections; panics with its log otherwise.
    pub fn start() -> Kafka {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts the broker; an error carries its log.
    pub fn try_start() -> Result<Kafka, HarnessError> {
        retry_port_clash(|| Self::try_start_once(None))
    }

    /// Starts the broker behind a TLS-terminating proxy (Debian's stunnel4, as in
    /// `scripts/setup.sh`), with certificates from `pki`: clients reach it only with TLS,
    /// at [`Kafka::bootstrap_servers`] (the broker advertises the proxy's port, so metadata
    /// sends every client back through it). The broker's own TLS does not work (it answers
    /// plaintext), hence the proxy. Panics with the logs when either cannot start.
    pub fn start_tls(pki: &TestPki, mode: KafkaTls) -> Kafka {
        retry_port_clash(|| Self::try_start_once(Some((pki, mode))))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Properties for a librdkafka client of the harness: the bootstrap list, and behind
    /// TLS the trusted CA (and client certificate).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap_servers());
        if let Some(tls) = &self.tls {
            config
                .set("security.protocol", "ssl")
                .set("ssl.ca.location", tls.ca.display().to_string());
            if let Some((cert, key)) = &tls.client {
                config
                    .set("ssl.certificate.location", cert.display().to_string())
                    .set("ssl.key.location", key.display().to_string());
            }
        }
        config
    }

    fn try_start_once(tls: Option<(&TestPki, KafkaTls)>) -> Result<Kafka, HarnessError> {
        let dir = scratch_dir("kafka")?;
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://127.0.0.1:{}", tls_port.unwrap_or(port));
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            "memory://tansu/",
        ];
        let process = launch(Launch {
            server: "Kafka broker (tansu)",
            binary: "tansu",
            args: args.iter().map(|arg| arg.to_string()).collect(),
            log_path: dir.path().join("tansu.log"),
            ready_timeout: Duration::from_secs(20),
            ready: tcp_probe(port),
        })?;
        let tls = match (tls, tls_port) {
            (Some((pki, mode)), Some(tls_port)) => {
                Some(start_stunnel(&dir, pki, mode, tls_port, port)?)
            }
            _ => None,
        };
        Ok(Kafka {
            process,
            port,
            tls,
            _dir: dir,
        })
    }

    /// The bootstrap list for clients, `127.0.0.1:PORT` (behind TLS, the proxy's port).
    pub fn bootstrap_servers(&self) -> String {
        let port = self.tls.as_ref().map_or(self.port, |tls| tls.port);
        format!("127.0.0.1:{port}")
    }

    /// Creates `topic` with `partitions` partitions (the broker would auto-create with 4).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        if let Err(error) = self.try_create_topic(topic, partitions) {
            panic!("{error}");
        }
    }

    /// Creates `topic`; an error says why.
    pub fn try_create_topic(&self, topic: &str, partitions: i32) -> Result<(), HarnessError> {
        let client_config = self.client_config();
        let topic = topic.to_owned();
        // The admin future is driven by librdkafka's own thread; a private runtime on a private
        // thread lets this work from plain tests and from inside a tokio test alike.
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin: AdminClient<DefaultClientContext> =
                    client_config.create().map_err(|e| e.to_string())?;
                let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                let results = admin
                    .create_topics([&new_topic], &options)
                    .await
                    .map_err(|e| e.to_string())?;
                for result in results {
                    result.map_err(|(name, code)| format!("topic {name}: {code}"))?;
                }
                Ok(())
            })
        })
        .join()
        .map_err(|_| "admin thread panicked".to_owned())
        .and_then(|result| result);
        outcome.map_err(|what| HarnessError::Request {
            server: "Kafka broker (tansu)",
            what: format!("create topic: {what}"),
        })
    }

    /// Reads `topic` from the beginning of every partition until `expected` messages arrived
    /// or `timeout` passed, and returns what arrived (in partition order, then offset order).
    ///
    /// Partitions are assigned directly, without a consumer group, so no group join wait.
    pub fn consume_all(
        &self,
        topic: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<KeyedMessage> {
        let consumer: BaseConsumer = match self
            .client_config()
            .set("group.id", "test-servers-reader")
            .set("enable.auto.commit", "false")
            .create()
        {
            Ok(consumer) => consumer,
            Err(error) => panic!("cannot create a consumer for {topic}: {error}"),
        };
        let deadline = Instant::now() + timeout;
        let partitions = loop {
            match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(metadata) => {
                    let count = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map(|t| t.partitions().len())
                        .unwrap_or(0);
                    if count > 0 {
                        break count;
                    }
                }
                Err(error) if Instant::now() >= deadline => {
                    panic!("no metadata for topic {topic}: {error}")
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Vec::new();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            if let Err(error) = assignment.add_partition_offset(topic, partition, Offset::Beginning)
            {
                panic!("cannot assign {topic}/{partition}: {error}");
            }
        }
        if let Err(error) = consumer.assign(&assignment) {
            panic!("cannot assign {topic}: {error}");
        }
        let mut by_partition: Vec<Vec<(i64, KeyedMessage)>> = vec![Vec::new(); partitions];
        let mut received = 0;
        while received < expected && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let partition = message.partition() as usize;
                if partition < by_partition.len() {
                    by_partition[partition].push((
                        message.offset(),
                        (
                            message.key().map(<[u8]>::to_vec),
                            message.payload().unwrap_or_default().to_vec(),
                        ),
                    ));
                    received += 1;
                }
            }
        }
        by_partition
            .into_iter()
            .flat_map(|mut messages| {
                messages.sort_by_key(|(offset, _)| *offset);
                messages.into_iter().map(|(_, message)| message)
            })
            .collect()
    }

    /// Freezes the broker (SIGSTOP): clients see an unresponsive broker, no data is lost.
    pub fn pause(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Stops the broker (SIGTERM, waits for the exit so the port can be reused).
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    /// Kills the broker at once.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the broker again on the same port. It comes back EMPTY (memory storage), and
    /// an idempotent producer connected before never gets a produce request accepted again:
    /// tansu answers its epoch bump with a producer id it then does not recognise, in a loop
    /// (seen with librdkafka 2.12). For a broker that goes down and comes back with its
    /// state, as a real one does, use `rdkafka::mocking::MockCluster::broker_down`/`_up`.
    pub fn restart(&mut self) {
        self.process.restart();
    }
}

/// Starts stunnel on `tls_port`, forwarding to the broker on `broker_port`.
fn start_stunnel(
    dir: &TempDir,
    pki: &TestPki,
    mode: KafkaTls,
    tls_port: u16,
    broker_port: u16,
) -> Result<TlsFront, HarnessError> {
    let (cert, key, ca) = match mode {
        KafkaTls::Untrusted => (
            pki.untrusted_server_cert(),
            pki.untrusted_server_key(),
            pki.other_ca_cert(),
        ),
        KafkaTls::ServerOnly | KafkaTls::Mutual => {
            (pki.server_cert(), pki.server_key(), pki.ca_cert())
        }
    };
    // verify = 2: a client certificate is required and must chain to CAfile.
    let client_auth = match mode {
        KafkaTls::Mutual => format!("verify = 2\nCAfile = {}\n", pki.ca_cert().display()),
        KafkaTls::ServerOnly | KafkaTls::Untrusted => String::new(),
    };
    let conf = format!(
        "foreground = yes\npid =\ndebug = notice\n[kafka]\naccept = 127.0.0.1:{tls_port}\n\
         connect = 127.0.0.1:{broker_port}\ncert = {}\nkey = {}\n{client_auth}",
        cert.display(),
        key.display()
    );
    let conf_path = dir.path().join("stunnel.conf");
    std::fs::write(&conf_path, conf)
        .map_err(HarnessError::io(format!("write {}", conf_path.display())))?;
    let stunnel = launch(Launch {
        server: "TLS proxy for the Kafka broker (stunnel4)",
        binary: "stunnel4",
        args: vec![conf_path.display().to_string()],
        log_path: dir.path().join("stunnel.log"),
        ready_timeout: Duration::from_secs(20),
        ready: tcp_probe(tls_port),
    })?;
    let client = (mode == KafkaTls::Mutual).then(|| (pki.client_cert(), pki.client_key()));
    Ok(TlsFront {
        _stunnel: stunnel,
        port: tls_port,
        ca,
        client,
    })
}
