//! `logtransfer --check [--check-connections]`: the index name template, the Elasticsearch
//! client, the consumer and dead-letter producer settings, the topic list (from
//! `[kafka] topics`, or fetched from the `[etcd]` key as [`run`](crate::run) would); with
//! `--check-connections` also the Kafka brokers (metadata, and that the topics and the
//! dead-letter topic exist), every Elasticsearch node (`GET /`), the index template and the
//! credentials' privileges as far as the cluster's API tells, and the `/metrics` address.
//! Every client is built by the constructor `run` uses ([`ElasticsearchService::new`],
//! [`KafkaSource::new`], [`DeadLetter::new`], `service_kit::etcd::connect`), so a check
//! covers the same TLS and credentials. The table and exit code are `service_kit::check`'s.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use service_kit::check::{self, CheckReport, CheckScope, KafkaMetadata};

use crate::acks::OffsetTracker;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::sinks::dead_letter::DeadLetter;
use crate::sinks::elasticsearch::encoder::IndexName;
use crate::sinks::elasticsearch::service::{ElasticsearchService, redact_url};
use crate::sources::etcd_topics;
use crate::sources::kafka::KafkaSource;

/// Checks `config` as far as `scope` says.
pub async fn check(config: &Config, scope: CheckScope) -> CheckReport {
    let mut report = CheckReport::new();
    let pattern = report
        .record("[es] index", IndexName::parse(&config.es.index), |name| {
            format!("{} (indices {})", config.es.index, name.pattern())
        })
        .map(|name| name.pattern());
    let es = report.record(
        "[es] address",
        ElasticsearchService::new(&config.es),
        |service| service.node_urls().join(","),
    );
    let source = report.record(
        "[kafka]",
        KafkaSource::new(
            &config.kafka,
            Arc::new(OffsetTracker::default()),
            Metrics::default(),
        ),
        |_| {
            format!(
                "consumer group {:?} on {}",
                config.kafka.group_id, config.kafka.address
            )
        },
    );
    report.record(
        "[transfer] dead_letter_topic",
        DeadLetter::new(
            &config.kafka.address,
            &config.kafka.security,
            &config.transfer.dead_letter_topic,
        ),
        |_| format!("producer for {:?}", config.transfer.dead_letter_topic),
    );
    let metrics_address = config.transfer.metrics_address.trim();
    if !metrics_address.is_empty() && !scope.connections {
        report.record(
            "[transfer] metrics_address",
            check::listen_address_syntax(metrics_address),
            |()| metrics_address.to_string(),
        );
    }

    if !scope.connections {
        topics(config, scope, &mut report).await;
        return report;
    }

    // The topic list, the brokers and the nodes at the same time: the check takes as long
    // as the slowest endpoint, not their sum.
    let what = format!("Kafka {}", config.kafka.address);
    let kafka = async {
        let source = Arc::new(source?);
        let timeout = scope.timeout;
        Some(check::within_blocking(timeout, &what, move || source.metadata(timeout)).await)
    };
    let es_checks = async {
        match (&es, &pattern) {
            (Some(service), Some(pattern)) => Some(check_es(service, config, pattern, scope).await),
            _ => None,
        }
    };
    let (topics, kafka, es_report) =
        tokio::join!(topics(config, scope, &mut report), kafka, es_checks);
    if let Some(kafka) = kafka {
        let metadata = report.record(&what, kafka, |m: &KafkaMetadata| {
            format!("{} broker(s): {}", m.brokers.len(), m.brokers.join(","))
        });
        if let Some(metadata) = metadata {
            if let Some(topics) = topics.filter(|t| !t.is_empty()) {
                metadata.check_topics("Kafka topics", &topics, &mut report);
            }
            metadata.check_topics(
                "Kafka dead-letter topic",
                std::slice::from_ref(&config.transfer.dead_letter_topic),
                &mut report,
            );
        }
    }
    if let Some(es_report) = es_report {
        report.extend(es_report);
    }
    if !metrics_address.is_empty() {
        report.record(
            "[transfer] metrics_address",
            check::listen_address_free(metrics_address).await,
            String::clone,
        );
    }
    report
}

/// The topics to consume: `[kafka] topics`, or the `[etcd]` key's value read now.
async fn topics(
    config: &Config,
    scope: CheckScope,
    report: &mut CheckReport,
) -> Option<Vec<String>> {
    let Some(etcd) = &config.etcd else {
        let topics = service_kit::split_list(&config.kafka.topics);
        if topics.is_empty() {
            report.fail("[kafka] topics", crate::Error::NoTopics.to_string());
            return None;
        }
        report.ok("[kafka] topics", topics.join(", "));
        return Some(topics);
    };
    // The target logtransfer connects with: endpoints, TLS and login.
    let mut target = match etcd.target() {
        Ok(target) => target,
        Err(e) => {
            report.fail("[etcd]", format!("security settings: {e}"));
            return None;
        }
    };
    target.timeout = scope.timeout_for(target.timeout);
    let timeout = target.timeout;
    let key = service_kit::host::expand_key_template(
        &etcd.key,
        &service_kit::host::primary_ipv4(),
        &service_kit::host::hostname(),
    );
    let read = async {
        let mut client = service_kit::etcd::connect(&target).await?;
        let response = client.get(key.as_str(), None).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            response.kvs().first().map(|kv| kv.value().to_vec()),
        )
    };
    let what = format!("etcd {}", target.endpoints.join(","));
    let subject = format!("[etcd] key {key}");
    match check::within(timeout, &what, read).await {
        Err(e) => {
            report.fail(what, e);
            None
        }
        Ok(None) => {
            report.warn(
                subject,
                "does not exist: logtransfer would consume nothing until it is written",
            );
            None
        }
        Ok(Some(value)) => match etcd_topics::parse_topics(&value) {
            Some(topics) if !topics.is_empty() => {
                report.ok(subject, topics.join(", "));
                Some(topics)
            }
            Some(_) => {
                report.warn(subject, "holds no topic: logtransfer would consume nothing");
                None
            }
            None => {
                report.fail(
                    subject,
                    format!(
                        "holds {:?}: neither a JSON array of topics nor a comma-separated list",
                        String::from_utf8_lossy(&value)
                    ),
                );
                None
            }
        },
    }
}

/// Every node answers `GET /`; the index template is there (or will be installed); the
/// credentials may write the indices and install the template, where the cluster has a
/// security API to ask.
async fn check_es(
    service: &ElasticsearchService,
    config: &Config,
    pattern: &str,
    scope: CheckScope,
) -> CheckReport {
    let mut report = CheckReport::new();
    let timeout = scope.timeout_for(Duration::from_millis(config.es.request_timeout_ms));
    let urls = service.node_urls();
    let mut answered = None;
    // Every node at once.
    let infos = futures::future::join_all(urls.iter().enumerate().map(|(i, url)| async move {
        let what = format!("Elasticsearch {}", redact_url(url));
        let info = check::within(
            timeout,
            &what,
            service.request_json(i, Method::GET, "/", None),
        )
        .await;
        (what, info)
    }))
    .await;
    for (i, (what, info)) in infos.into_iter().enumerate() {
        let shown = report.record(&what, info, |v: &Value| {
            format!(
                "answers: {} {} (cluster {})",
                v["version"]["distribution"]
                    .as_str()
                    .unwrap_or("elasticsearch"),
                v["version"]["number"].as_str().unwrap_or("?"),
                v["cluster_name"].as_str().unwrap_or("?")
            )
        });
        if shown.is_some() {
            answered.get_or_insert(i);
        }
    }
    let Some(node) = answered else {
        return report;
    };

    let name = &config.es.template_name;
    let path = format!("/_index_template/{name}");
    let subject = format!("[es] template_name {name}");
    let what = format!("Elasticsearch {}", redact_url(&urls[node]));
    let what = &what;
    let ask = |method, path: String, body: Option<Value>| async move {
        tokio::time::timeout(
            timeout,
            service.request_json(node, method, &path, body.as_ref()),
        )
        .await
        .map_err(|_| {
            format!(
                "{what} did not answer within {}",
                humantime::format_duration(timeout)
            )
        })
    };
    match ask(Method::GET, path, None).await {
        Err(late) => report.fail(subject, late),
        Ok(Ok(_)) if config.es.install_template => {
            report.ok(subject, "installed; replaced at start")
        }
        Ok(Ok(_)) => report.ok(subject, "installed"),
        Ok(Err(e)) if e.status() == Some(404) && config.es.install_template => {
            report.ok(subject, "not installed yet; installed at start")
        }
        Ok(Err(e)) if e.status() == Some(404) => report.warn(
            subject,
            format!(
                "not installed and install_template = false: indices {pattern} get dynamic \
                 mappings"
            ),
        ),
        Ok(Err(e)) => report.fail(subject, hinted(&e)),
    }

    // The privileges the writes and the template need, where the cluster can tell.
    let mut cluster = Vec::new();
    if config.es.install_template {
        cluster.push("manage_index_templates");
    }
    let body = json!({
        "cluster": cluster,
        "index": [{"names": [pattern], "privileges": ["create_doc", "create_index"]}]
    });
    let asked = ask(
        Method::POST,
        "/_security/user/_has_privileges".into(),
        Some(body),
    )
    .await;
    let subject = "[es] privileges";
    let user = |v: &Value| v["username"].as_str().unwrap_or("the user").to_owned();
    let wanted = if config.es.install_template {
        "create_doc and create_index on indices, manage_index_templates"
    } else {
        "create_doc and create_index on indices"
    };
    match asked {
        Err(late) => report.fail(subject, late),
        Ok(Ok(v)) if v["has_all_requested"].as_bool() == Some(true) => {
            report.ok(subject, format!("{} has {wanted} {pattern}", user(&v)))
        }
        Ok(Ok(v)) => report.fail(
            subject,
            format!(
                "{} lacks some of {wanted} {pattern}: {}",
                user(&v),
                v["index"].to_string().chars().take(300).collect::<String>()
            ),
        ),
        // The credentials themselves are refused.
        Ok(Err(e)) if matches!(e.status(), Some(401)) => report.fail(subject, hinted(&e)),
        // 400, 404, 500 with security disabled, OpenSearch without the plugin: no API to ask.
        Ok(Err(e)) => report.warn(
            subject,
            format!(
                "not checked: the cluster has no usable _has_privileges API (HTTP {})",
                e.status().map_or_else(|| "error".into(), |s| s.to_string())
            ),
        ),
    }
    report
}

/// A request error with what the operator should check, when there is a hint.
fn hinted(e: &crate::sinks::elasticsearch::service::RequestError) -> String {
    match e.operator_hint() {
        Some(hint) => format!("{}; {hint}", check::describe(e)),
        None => check::describe(e),
    }
}
