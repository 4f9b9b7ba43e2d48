//! `[es]` and `[batch]`: what the user writes about the Elasticsearch sink.

use serde::Deserialize;
use service_kit::secret::Secret;

/// `[es]`: the cluster, how to reach it (TLS, credentials) and where documents go. Its
/// `Debug` masks the secrets (`password`, `api_key`, credentials in `address`), so printing
/// a configuration shows none.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Nodes, comma-separated (`http://es1:9200,http://es2:9200`); requests go round-robin
    /// and a retried request moves on to the next node.
    pub address: String,
    /// Index name template: `{topic}` is the Kafka topic, `%Y %m %d %H` come from the
    /// record's own `@timestamp` (UTC), so a replay lands in the same index.
    pub index: String,
    /// Basic auth user (with `password` or `password_file`); empty for none.
    pub username: String,
    /// Basic auth password (or `LOGTRANSFER_ES_PASSWORD`). Never printed.
    pub password: Secret,
    /// File whose first line is the basic auth password, instead of `password`.
    pub password_file: String,
    /// API key (the base64 `id:api_key` Elasticsearch hands out), sent as
    /// `Authorization: ApiKey <key>`; wins over username/password. Never printed.
    pub api_key: Secret,
    /// File whose first line is the API key, instead of `api_key`.
    pub api_key_file: String,
    /// Use HTTPS for addresses given without a scheme (`https://` addresses always are).
    pub tls: bool,
    /// PEM file with extra CA certificates to trust (self-signed clusters), on top of the
    /// system's roots; empty for the system's roots only.
    pub tls_ca_file: String,
    /// PEM client certificate (chain) sent to nodes that ask for one (mutual TLS); with
    /// `tls_key_file`.
    pub tls_cert_file: String,
    /// Unencrypted PEM private key of `tls_cert_file`.
    pub tls_key_file: String,
    /// Accept any server certificate. Only for tests against throwaway clusters.
    pub tls_insecure: bool,
    /// Timeout of one `_bulk` request; a timed-out request is retried.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub request_timeout_ms: u64,
    /// Install the index template on start.
    pub install_template: bool,
    /// Name of the index template (`PUT _index_template/<name>`).
    pub template_name: String,
    /// The `_bulk` action: `index` (a replay overwrites the document) or `create` (a
    /// document whose `_id` exists is left alone, and the 409 means "already indexed").
    pub op_type: OpType,
    // Data streams and their lifecycle (see `template.rs`).
    /// Write into data streams: each name `index` makes is a data stream (so it has no
    /// `%Y %m %d %H`: rollover replaces dated names), documents go with the `create` action
    /// whatever `op_type` says (data streams take no other), and the installed index template
    /// has `data_stream: {}`.
    pub data_stream: bool,
    /// Priority of the installed index template: above 500 so that it wins over
    /// Elasticsearch's built-in templates (`logs-*-*` at 100) and Fleet's (200); two
    /// templates whose patterns overlap may not share a priority.
    pub template_priority: u32,
    /// ILM policy installed on start and named in the template (`index.lifecycle.name`);
    /// empty for none. Needs `data_stream = true`.
    pub lifecycle_policy: String,
    /// The policy rolls the write index over at this age (`1d`, `12h`); empty for no age
    /// condition.
    pub rollover_max_age: String,
    /// ... or when its primary shard reaches this size (`50gb`); empty for no size condition.
    pub rollover_max_primary_shard_size: String,
    /// The policy deletes a backing index this many days after its rollover; 0 keeps it.
    pub delete_after_days: u32,
}

/// `[es] op_type`: how a document whose `_id` already exists is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// Overwrite it (replays rewrite the same document).
    #[default]
    Index,
    /// Keep it: the 409 version conflict is a success, counted as a duplicate.
    Create,
}

impl ElasticsearchConfig {
    /// The `_bulk` action actually written: `create` for data streams, else `op_type`.
    pub fn effective_op_type(&self) -> OpType {
        if self.data_stream {
            OpType::Create
        } else {
            self.op_type
        }
    }
}

impl OpType {
    /// The action's name in a `_bulk` body.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Index => "index",
            OpType::Create => "create",
        }
    }
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:9200".into(),
            index: "logs-{topic}-%Y.%m.%d".into(),
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            api_key: Secret::default(),
            api_key_file: String::new(),
            tls: false,
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_insecure: false,
            request_timeout_ms: 30_000,
            install_template: true,
            template_name: "logtransfer".into(),
            op_type: OpType::Index,
            data_stream: false,
            template_priority: 501,
            lifecycle_policy: String::new(),
            rollover_max_age: "1d".into(),
            rollover_max_primary_shard_size: "50gb".into(),
            delete_after_days: 30,
        }
    }
}

impl std::fmt::Debug for ElasticsearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address: Vec<String> = service_kit::split_list(&self.address)
            .iter()
            .map(|a| super::service::redact_url(a))
            .collect();
        f.debug_struct("ElasticsearchConfig")
            .field("address", &address.join(","))
            .field("index", &self.index)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("api_key", &self.api_key)
            .field("api_key_file", &self.api_key_file)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_insecure", &self.tls_insecure)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("install_template", &self.install_template)
            .field("template_name", &self.template_name)
            .field("op_type", &self.op_type)
            .field("data_stream", &self.data_stream)
            .field("template_priority", &self.template_priority)
            .field("lifecycle_policy", &self.lifecycle_policy)
            .field("rollover_max_age", &self.rollover_max_age)
            .field(
                "rollover_max_primary_shard_size",
                &self.rollover_max_primary_shard_size,
            )
            .field("delete_after_days", &self.delete_after_days)
            .finish()
    }
}

/// `[batch]`: how documents become `_bulk` requests and how they are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// A request is sent once it holds this many documents.
    pub max_docs: usize,
    /// ... or this many bytes of NDJSON body.
    pub max_bytes: usize,
    /// ... or when its first document has waited this long.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub max_wait_ms: u64,
    /// Send a partial request at once when no document is waiting in the input and no
    /// request is in flight, instead of waiting for `max_wait_ms`: at low rates a document
    /// does not sit out the wait, and under load documents still gather while requests are
    /// in flight (what arrives meanwhile goes together). `false`: partial requests go only
    /// at `max_wait_ms`.
    pub flush_when_idle: bool,
    /// Requests in flight at once; when all are busy, consumption waits (and pauses).
    pub concurrency: usize,
    /// First retry delay; doubled per attempt, with jitter.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub retry_initial_ms: u64,
    /// Retry delays never exceed this.
    #[serde(deserialize_with = "service_kit::duration::millis")]
    pub retry_max_ms: u64,
    /// A document refused with a retriable status (429, 5xx) this many times in a row is
    /// dead-lettered instead of retried forever. Whole-request failures (Elasticsearch
    /// down) are retried without limit: they say nothing about the document.
    pub item_max_retries: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_docs: 1_000,
            max_bytes: 5 * 1024 * 1024,
            max_wait_ms: 1_000,
            flush_when_idle: true,
            concurrency: 4,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            item_max_retries: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let config = ElasticsearchConfig {
            address: "http://elastic:hunter2@es1:9200,es2:9200".into(),
            password: Secret::new("swordfish"),
            api_key: Secret::new("aWQ6a2V5"),
            ..Default::default()
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "swordfish", "aWQ6a2V5"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("http://***@es1:9200,es2:9200"), "{shown}");
    }

    #[test]
    fn every_tls_and_secret_key_loads_from_ini() {
        #[derive(Deserialize)]
        struct File {
            es: ElasticsearchConfig,
        }
        let ini = "[es]\naddress = https://es:9200\nusername = writer\npassword_file = /run/pw\n\
                   api_key = k3y-from-ini\ntls_ca_file = /etc/ca.pem\n\
                   tls_cert_file = /etc/client.pem\ntls_key_file = /etc/client.key\n";
        let file: File =
            service_kit::config::load_str(ini, service_kit::config::ConfigFormat::Ini, None)
                .unwrap();
        let es = file.es;
        assert_eq!(es.password_file, "/run/pw");
        assert!(es.password.is_empty());
        assert_eq!(es.api_key.expose(), "k3y-from-ini");
        assert_eq!(
            (
                es.tls_ca_file.as_str(),
                es.tls_cert_file.as_str(),
                es.tls_key_file.as_str()
            ),
            ("/etc/ca.pem", "/etc/client.pem", "/etc/client.key")
        );
        assert!(!format!("{es:?}").contains("k3y"));
    }
}
