//! `[es]` and `[batch]`: what the user writes about the Elasticsearch sink.

use serde::Deserialize;

/// `[es]`: the cluster and where documents go. Its `Debug` masks the secrets (`password`,
/// `api_key`, credentials in `address`), so printing a configuration shows none.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Nodes, comma-separated (`http://es1:9200,http://es2:9200`); requests go round-robin
    /// and a retried request moves on to the next node.
    pub address: String,
    /// Index name template: `{topic}` is the Kafka topic, `%Y %m %d %H` come from the
    /// record's own `@timestamp` (UTC), so a replay lands in the same index.
    pub index: String,
    /// Basic auth user (with `password`); empty for none.
    pub username: String,
    /// Basic auth password.
    pub password: String,
    /// API key (the base64 `id:key` Elasticsearch hands out); wins over username/password.
    pub api_key: String,
    /// Use HTTPS for addresses given without a scheme (needs the `tls` cargo feature).
    pub tls: bool,
    /// PEM file with an extra CA to trust (self-signed clusters); empty for the system roots.
    pub tls_ca_file: String,
    /// Accept any certificate. Only for tests against throwaway clusters.
    pub tls_insecure: bool,
    /// Timeout of one `_bulk` request; a timed-out request is retried.
    pub request_timeout_ms: u64,
    /// Install the index template on start.
    pub install_template: bool,
    /// Name of the index template (`PUT _index_template/<name>`).
    pub template_name: String,
    /// The `_bulk` action: `index` (a replay overwrites the document) or `create` (a
    /// document whose `_id` exists is left alone, and the 409 means "already indexed").
    pub op_type: OpType,
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
            password: String::new(),
            api_key: String::new(),
            tls: false,
            tls_ca_file: String::new(),
            tls_insecure: false,
            request_timeout_ms: 30_000,
            install_template: true,
            template_name: "logtransfer".into(),
            op_type: OpType::Index,
        }
    }
}

impl std::fmt::Debug for ElasticsearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |s: &str| if s.is_empty() { "" } else { "***" };
        let address: Vec<String> = service_kit::split_list(&self.address)
            .iter()
            .map(|a| super::service::redact_url(a))
            .collect();
        f.debug_struct("ElasticsearchConfig")
            .field("address", &address.join(","))
            .field("index", &self.index)
            .field("username", &self.username)
            .field("password", &mask(&self.password))
            .field("api_key", &mask(&self.api_key))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_insecure", &self.tls_insecure)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("install_template", &self.install_template)
            .field("template_name", &self.template_name)
            .field("op_type", &self.op_type)
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
    pub max_wait_ms: u64,
    /// Requests in flight at once; when all are busy, consumption waits (and pauses).
    pub concurrency: usize,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_initial_ms: u64,
    /// Retry delays never exceed this.
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
            password: "swordfish".into(),
            api_key: "aWQ6a2V5".into(),
            ..Default::default()
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "swordfish", "aWQ6a2V5"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("http://***@es1:9200,es2:9200"), "{shown}");
    }
}
