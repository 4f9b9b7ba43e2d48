//! What is installed on start: the index template (ECS-compatible mappings for every index
//! or data stream the `[es] index` name template can produce) and, for data streams, an
//! optional ILM lifecycle policy; and their installation. That installation (or, without
//! it, a `GET /`) is logtransfer's first request: a refusal that retrying cannot end (wrong
//! credentials, TLS settings, a body Elasticsearch does not take) stops the start with what
//! to fix, before anything is consumed, instead of a retry loop.
//!
//! Written from the Elasticsearch reference (composable `_index_template` with
//! `data_stream: {}`, `_ilm/policy`), not tried against a live Elasticsearch here: the ES
//! API server of the tests has neither data streams nor ILM (see the README).
//!
//! Priority: Elasticsearch ships templates for `logs-*-*` (priority 100; Fleet's are 200)
//! that would make `logs-web-2026.11.25` or `logs-web-default` a data stream with their
//! mappings. Ours is above 500 by default (`[es] template_priority`), as the reference
//! advises, so it is the one applied; two templates whose patterns overlap may not share a
//! priority, which Elasticsearch refuses with a 400, reported at start.

use std::time::Duration;

use serde_json::{Value, json};
use service_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::config::ElasticsearchConfig;
use super::encoder::IndexName;
use super::service::{ElasticsearchService, RequestError};

/// What stops the start: the configuration cannot work, or Elasticsearch refused the first
/// requests for a reason retrying will not end.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A data stream name that changes with time.
    #[error(
        "[es] data_stream = true but [es] index {index:?} has a time specifier (%Y %m %d %H): a data stream is one name whose backing indices roll over by themselves; use a fixed name such as \"logs-{{topic}}-default\""
    )]
    DatedDataStream {
        /// `[es] index`.
        index: String,
    },
    /// A lifecycle policy for plain indices.
    #[error(
        "[es] lifecycle_policy {policy:?} needs [es] data_stream = true: its rollover works on data streams (dated indices have no write alias); set data_stream = true or empty lifecycle_policy"
    )]
    LifecycleWithoutDataStream {
        /// `[es] lifecycle_policy`.
        policy: String,
    },
    /// Elasticsearch refused the template or the policy (not "not up yet", which is retried).
    #[error("cannot install {what}: {source}; {hint}. Not starting: fix [es] and start again")]
    Refused {
        /// `index template "logtransfer" (pattern logs-*-default)`, `lifecycle policy "..."`.
        what: String,
        /// Elasticsearch's answer.
        source: Box<RequestError>,
        /// What to check.
        hint: String,
    },
    /// Without a template to install, the `GET /` at start was refused for a reason
    /// retrying will not end: wrong credentials or TLS settings.
    #[error(
        "Elasticsearch refused logtransfer's first request: {source}; {hint}. Not starting: fix [es] and start again"
    )]
    AccessRefused {
        /// The failure (names the node, without credentials).
        source: Box<RequestError>,
        /// What to check.
        hint: &'static str,
    },
}

/// One `PUT` of the installation.
#[derive(Debug, Clone)]
pub struct Install {
    /// What it is, for messages: `index template "logtransfer" (pattern logs-*)`.
    pub what: String,
    /// The path: `/_index_template/<name>`, `/_ilm/policy/<name>`.
    pub path: String,
    /// The body.
    pub body: Value,
}

/// What to install for `es` and the parsed `[es] index`, in order (the policy before the
/// template that names it); refuses configurations that cannot work.
pub fn plan(es: &ElasticsearchConfig, index: &IndexName) -> Result<Vec<Install>, TemplateError> {
    if es.data_stream && index.has_time() {
        return Err(TemplateError::DatedDataStream {
            index: es.index.clone(),
        });
    }
    let policy = (!es.lifecycle_policy.is_empty()).then_some(es.lifecycle_policy.as_str());
    if let (Some(policy), false) = (policy, es.data_stream) {
        return Err(TemplateError::LifecycleWithoutDataStream {
            policy: policy.to_owned(),
        });
    }
    let mut steps = Vec::new();
    if let Some(policy) = policy {
        steps.push(Install {
            what: format!("lifecycle policy {policy:?}"),
            path: format!("/_ilm/policy/{policy}"),
            body: lifecycle_policy(es),
        });
    }
    // Data streams: every name the template makes (`logs-*-default`); daily indices: the
    // prefix (`logs-*`), as before.
    let pattern = if es.data_stream {
        index.full_pattern()
    } else {
        index.pattern()
    };
    let mut body = index_template(&pattern);
    body["priority"] = json!(es.template_priority);
    if es.data_stream {
        body["data_stream"] = json!({});
    }
    if let Some(policy) = policy {
        body["template"]["settings"]["index.lifecycle.name"] = json!(policy);
    }
    steps.push(Install {
        what: format!(
            "index template {:?} (pattern {pattern}, priority {})",
            es.template_name, es.template_priority
        ),
        path: format!("/_index_template/{}", es.template_name),
        body,
    });
    Ok(steps)
}

/// The ILM policy: roll over at `rollover_max_age` or `rollover_max_primary_shard_size`
/// (the conditions given), delete `delete_after_days` after the rollover (when not 0).
pub fn lifecycle_policy(es: &ElasticsearchConfig) -> Value {
    let mut rollover = serde_json::Map::new();
    if !es.rollover_max_age.is_empty() {
        rollover.insert("max_age".into(), json!(es.rollover_max_age));
    }
    if !es.rollover_max_primary_shard_size.is_empty() {
        rollover.insert(
            "max_primary_shard_size".into(),
            json!(es.rollover_max_primary_shard_size),
        );
    }
    let mut phases = serde_json::Map::new();
    let hot_actions = if rollover.is_empty() {
        json!({})
    } else {
        json!({"rollover": rollover})
    };
    phases.insert("hot".into(), json!({"actions": hot_actions}));
    if es.delete_after_days > 0 {
        phases.insert(
            "delete".into(),
            json!({"min_age": format!("{}d", es.delete_after_days), "actions": {"delete": {}}}),
        );
    }
    json!({"policy": {"phases": phases}})
}

/// The `_index_template` body for indices matching `pattern` (e.g. `logs-*`), plain indices,
/// priority 501 ([`plan`] sets the configured priority, data stream and policy).
pub fn index_template(pattern: &str) -> Value {
    let keyword = || json!({"type": "keyword", "ignore_above": 1024});
    json!({
        "index_patterns": [pattern],
        "priority": 501,
        "_meta": {"managed_by": "logtransfer"},
        "template": {
            "settings": {"number_of_shards": 1, "refresh_interval": "5s"},
            "mappings": {
                // Fields our producers add later get dynamic mappings; strings become
                // keywords (aggregatable) unless they are `message`-like text below.
                "dynamic_templates": [
                    {"strings_as_keyword": {
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": 1024}
                    }}
                ],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "text"},
                    "ecs": {"properties": {"version": keyword()}},
                    "event": {"properties": {
                        // Kept for reference, not searched: ECS says keyword, not indexed.
                        "original": {"type": "keyword", "index": false, "doc_values": false},
                        // Set by logtransfer: when the pipeline took the document in.
                        "ingested": {"type": "date"}
                    }},
                    "host": {"properties": {"name": keyword()}},
                    "agent": {"properties": {"type": keyword(), "version": keyword()}},
                    "log": {"properties": {
                        "level": keyword(),
                        "logger": keyword(),
                        "offset": {"type": "long"},
                        "file": {"properties": {"path": keyword()}},
                        "origin": {"properties": {
                            "file": {"properties": {
                                "name": keyword(),
                                "line": {"type": "long"}
                            }},
                            "function": keyword()
                        }}
                    }},
                    "process": {"properties": {
                        "pid": {"type": "long"},
                        "thread": {"properties": {"name": keyword(), "id": {"type": "long"}}}
                    }},
                    "error": {"properties": {
                        "message": {"type": "text"},
                        "type": keyword(),
                        "stack_trace": {"type": "keyword", "index": false, "doc_values": false}
                    }},
                    "fields": {"type": "object"}
                }
            }
        }
    })
}

/// Installs `steps` in order, retrying while Elasticsearch is not up yet (no answer, 408,
/// 429, 5xx). A refusal (any other status: a body Elasticsearch does not take, a priority
/// clash, wrong credentials, missing privileges, an API the cluster does not have) or a TLS
/// failure is an error at once: it will not end by itself. `Ok(false)` when `stop` fired
/// first.
pub async fn install(
    service: &ElasticsearchService,
    steps: &[Install],
    stop: &CancellationToken,
) -> Result<bool, TemplateError> {
    for step in steps {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let e = match service.put_json_at_start(&step.path, &step.body).await {
                Ok(()) => {
                    log::info!("{} installed", step.what);
                    break;
                }
                Err(e) => e,
            };
            if !is_transient(&e) {
                return Err(TemplateError::Refused {
                    what: step.what.clone(),
                    hint: hint(&step.path, &e),
                    source: Box::new(e),
                });
            }
            let delay = backoff.next_delay();
            log::warn!(
                "cannot install {} yet: {e}; retrying in {} ms",
                step.what,
                delay.as_millis()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Elasticsearch not up or overloaded: worth waiting for. A TLS failure is not: the
/// settings on one side must change.
fn is_transient(e: &RequestError) -> bool {
    match e {
        RequestError::Transport { tls, .. } => tls.is_none(),
        RequestError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
        RequestError::Decode { .. } => false,
    }
}

/// The check at start without a template to install: one `GET /`. Only wrong credentials
/// (401) and TLS failures stop the start; anything else (the node not up yet, no `monitor`
/// privilege, which a writer may well lack: 403) is left to the `_bulk` requests, which
/// retry.
pub async fn check_access(service: &ElasticsearchService) -> Result<(), TemplateError> {
    let error = match service.ping_at_start().await {
        Ok(()) => {
            log::info!("Elasticsearch accepts logtransfer's credentials");
            return Ok(());
        }
        Err(error) => error,
    };
    match error.operator_hint() {
        Some(hint) if !matches!(error.status(), Some(403 | 404)) => {
            Err(TemplateError::AccessRefused {
                source: Box::new(error),
                hint,
            })
        }
        _ => {
            log::warn!("cannot check Elasticsearch at start: {error}; going on");
            Ok(())
        }
    }
}

/// What the operator should check after a refusal.
fn hint(path: &str, e: &RequestError) -> String {
    let no_handler = match e {
        RequestError::Status { status, body, .. } => {
            *status == 404 || *status == 405 || body.contains("no handler found")
        }
        _ => false,
    };
    if no_handler && path.starts_with("/_ilm/") {
        return "this cluster has no index lifecycle management (ILM) API (OpenSearch has ISM instead): empty [es] lifecycle_policy, or check [es] address".into();
    }
    if let Some(hint) = e.operator_hint() {
        return hint.into();
    }
    if path.starts_with("/_ilm/") {
        "check [es] rollover_max_age (e.g. 1d, 12h), rollover_max_primary_shard_size (e.g. 50gb) and delete_after_days".into()
    } else {
        "check [es] template_priority (another template whose pattern overlaps may have the same priority: choose another), that the pattern does not cover existing data streams of another template (Elasticsearch refuses to take them over: choose an [es] index outside them), and that the cluster supports data streams if [es] data_stream = true; or set [es] install_template = false and install the template yourself".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_fields_are_mapped() {
        let t = index_template("logs-*");
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(t["index_patterns"][0], "logs-*");
        assert_eq!(p["@timestamp"]["type"], "date");
        assert_eq!(p["message"]["type"], "text");
        assert_eq!(p["log"]["properties"]["level"]["type"], "keyword");
        assert_eq!(p["host"]["properties"]["name"]["type"], "keyword");
        assert_eq!(
            p["log"]["properties"]["file"]["properties"]["path"]["type"],
            "keyword"
        );
        assert_eq!(p["log"]["properties"]["offset"]["type"], "long");
        assert_eq!(p["event"]["properties"]["ingested"]["type"], "date");
    }

    fn data_stream_config() -> ElasticsearchConfig {
        ElasticsearchConfig {
            index: "logs-{topic}-default".into(),
            data_stream: true,
            lifecycle_policy: "logs-30d".into(),
            ..ElasticsearchConfig::default()
        }
    }

    fn plan_for(es: &ElasticsearchConfig) -> Result<Vec<Install>, TemplateError> {
        plan(es, &IndexName::parse(&es.index).unwrap())
    }

    /// The shapes of the Elasticsearch reference: the policy first (the template names it),
    /// rollover by age and primary shard size in the hot phase, deletion N days after it;
    /// a composable template with `data_stream: {}`, the policy in its settings, a pattern
    /// covering every name `[es] index` makes, and a priority above the built-in templates'.
    #[test]
    fn a_data_stream_gets_its_policy_then_a_data_stream_template_that_names_it() {
        let steps = plan_for(&data_stream_config()).unwrap();
        let paths: Vec<&str> = steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/_ilm/policy/logs-30d", "/_index_template/logtransfer"]
        );
        assert_eq!(
            steps[0].body,
            json!({"policy": {"phases": {
                "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}}},
                "delete": {"min_age": "30d", "actions": {"delete": {}}}
            }}})
        );
        let t = &steps[1].body;
        assert_eq!(t["data_stream"], json!({}));
        assert_eq!(t["index_patterns"], json!(["logs-*-default"]));
        assert_eq!(
            t["template"]["settings"]["index.lifecycle.name"],
            "logs-30d"
        );
        assert_eq!(
            t["template"]["mappings"]["properties"]["@timestamp"]["type"],
            "date"
        );
        // The reference: "assign templates with an overlapping pattern a priority higher
        // than 500" (built-in logs-*-* is 100, Fleet's 200).
        assert!(t["priority"].as_u64().unwrap() > 500, "{}", t["priority"]);
        assert!(
            steps[1].what.contains("logs-*-default"),
            "{}",
            steps[1].what
        );
    }

    #[test]
    fn conditions_left_empty_are_left_out_of_the_policy() {
        let es = ElasticsearchConfig {
            rollover_max_primary_shard_size: String::new(),
            delete_after_days: 0,
            ..data_stream_config()
        };
        assert_eq!(
            lifecycle_policy(&es),
            json!({"policy": {"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}}}}})
        );
    }

    #[test]
    fn plain_indices_keep_a_prefix_template_without_data_stream_or_policy() {
        let steps = plan_for(&ElasticsearchConfig::default()).unwrap();
        assert_eq!(steps.len(), 1);
        let t = &steps[0].body;
        assert_eq!(t["index_patterns"], json!(["logs-*"]));
        assert!(t.get("data_stream").is_none());
        assert!(
            t["template"]["settings"]
                .get("index.lifecycle.name")
                .is_none()
        );
        assert!(t["priority"].as_u64().unwrap() > 500);
    }

    #[test]
    fn configurations_that_cannot_work_are_refused_before_anything_starts() {
        let dated = ElasticsearchConfig {
            index: "logs-{topic}-%Y.%m.%d".into(),
            ..data_stream_config()
        };
        let e = plan_for(&dated).unwrap_err().to_string();
        assert!(
            e.contains("time specifier") && e.contains("logs-{topic}-default"),
            "{e}"
        );
        let plain_with_policy = ElasticsearchConfig {
            data_stream: false,
            ..data_stream_config()
        };
        let e = plan_for(&plain_with_policy).unwrap_err().to_string();
        assert!(e.contains("needs [es] data_stream = true"), "{e}");
    }

    #[test]
    fn data_streams_write_create_whatever_op_type_says() {
        use super::super::config::OpType;
        assert_eq!(data_stream_config().effective_op_type(), OpType::Create);
        assert_eq!(
            ElasticsearchConfig::default().effective_op_type(),
            OpType::Index
        );
    }
}
