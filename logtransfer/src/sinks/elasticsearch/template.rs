//! The index template installed on start: ECS-compatible mappings for every index the
//! `[es] index` name template can produce, and its installation.

use std::time::Duration;

use serde_json::{Value, json};
use service_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::service::ElasticsearchService;

/// The `_index_template` body for indices matching `pattern` (e.g. `logs-*`).
pub fn index_template(pattern: &str) -> Value {
    let keyword = || json!({"type": "keyword", "ignore_above": 1024});
    json!({
        "index_patterns": [pattern],
        "priority": 200,
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
                        "original": {"type": "keyword", "index": false, "doc_values": false}
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

/// Installs the index template `name` for `pattern`, retrying while Elasticsearch is not
/// up yet. False when `stop` fired first.
pub async fn install(
    service: &ElasticsearchService,
    name: &str,
    pattern: &str,
    stop: &CancellationToken,
) -> bool {
    let path = format!("/_index_template/{name}");
    let body = index_template(pattern);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match service.put_json(&path, &body).await {
            Ok(()) => {
                log::info!("index template {name:?} installed for {pattern}");
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                log::log!(
                    e.retry_log_level(),
                    "cannot install index template: {e}; retrying in {} ms",
                    delay.as_millis()
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
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
    }
}
