//! `[es] data_stream = true`: the lifecycle policy and the data stream template installed on
//! start (or an error at start when they cannot be), and `create` actions whose 409 for an
//! existing `_id` is a settled duplicate.
//!
//! osmem-server (our ES API server) has neither data streams nor ILM, so the request shapes
//! and Elasticsearch's documented answers are checked against a capture server that
//! answers like Elasticsearch does (`create` only, 409 for an `_id` already in the data
//! stream); the refusal of a policy is checked against osmem-server itself, which has no ILM
//! API. What this leaves untried against a live Elasticsearch is listed in the README.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use logtransfer::config::Config;
use logtransfer::sinks::elasticsearch::encoder::IndexName;
use logtransfer::sinks::elasticsearch::service::ElasticsearchService;
use logtransfer::sinks::elasticsearch::template;
use parking_lot::Mutex;
use serde_json::{Value, json};
use service_kit::shutdown::Shutdown;
use test_servers::{Elasticsearch, Kafka, wait_until};
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// What the capture server saw and how it answers.
#[derive(Default)]
struct Seen {
    /// `(method, path, body)` of every request.
    requests: Vec<(String, String, String)>,
    /// `(index, id)` of every document created.
    created: HashSet<(String, String)>,
    /// Answer `PUT`s to paths starting with this with `(status, body)`, `times` times
    /// (`usize::MAX`: always).
    refuse: Option<(String, u16, String, usize)>,
}

/// An HTTP server answering the Elasticsearch APIs logtransfer uses the way Elasticsearch
/// documents them for data streams: `PUT` templates and policies acknowledged, `_bulk` with
/// `create` actions only (another action is a per-item 400), 409 for an `_id` the stream
/// already has.
struct CaptureEs {
    url: String,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl CaptureEs {
    fn start() -> CaptureEs {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = seen.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let state = state.clone();
            async move { answer(&state, method, uri, &body) }
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        CaptureEs {
            url,
            seen,
            _runtime: runtime,
        }
    }

    fn refuse(&self, path_prefix: &str, status: u16, body: Value, times: usize) {
        self.seen.lock().refuse = Some((path_prefix.into(), status, body.to_string(), times));
    }

    fn requests(&self) -> Vec<(String, String, String)> {
        self.seen.lock().requests.clone()
    }

    /// The `_bulk` action lines seen.
    fn actions(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|(_, path, _)| path == "/_bulk")
            .flat_map(|(_, _, body)| {
                body.lines()
                    .step_by(2)
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn answer(seen: &Mutex<Seen>, method: Method, uri: Uri, body: &[u8]) -> (StatusCode, String) {
    let path = uri.path().to_owned();
    let text = String::from_utf8_lossy(body).into_owned();
    let mut seen = seen.lock();
    seen.requests
        .push((method.to_string(), path.clone(), text.clone()));
    let ok = |v: Value| (StatusCode::OK, v.to_string());
    if method == Method::PUT {
        if let Some((prefix, status, body, times)) = seen.refuse.as_mut()
            && path.starts_with(prefix.as_str())
            && *times > 0
        {
            *times = times.saturating_sub(1);
            let status = StatusCode::from_u16(*status).unwrap();
            return (status, body.clone());
        }
        return ok(json!({"acknowledged": true}));
    }
    if method == Method::POST && path == "/_bulk" {
        let mut items = Vec::new();
        let mut errors = false;
        for action in text.lines().step_by(2) {
            let action: Value = serde_json::from_str(action).unwrap();
            let (op, meta) = action.as_object().unwrap().iter().next().unwrap();
            let index = meta["_index"].as_str().unwrap_or_default().to_owned();
            let id = meta["_id"].as_str().unwrap_or_default().to_owned();
            let backing = format!(".ds-{index}-2026.12.02-000001");
            let item = if op != "create" {
                json!({"status": 400, "error": {"type": "illegal_argument_exception",
                    "reason": "only write ops with an op_type of create are allowed in data streams"}})
            } else if !seen.created.insert((index, id.clone())) {
                json!({"_index": backing, "_id": id, "status": 409, "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}})
            } else {
                json!({"_index": backing, "_id": id, "result": "created", "status": 201})
            };
            errors |= item["status"] != 201;
            items.push(json!({op.as_str(): item}));
        }
        return ok(json!({"took": 1, "errors": errors, "items": items}));
    }
    (
        StatusCode::NOT_FOUND,
        json!({"error": "no handler"}).to_string(),
    )
}

fn data_stream_config(mut cfg: Config) -> Config {
    cfg.es.index = "logs-{topic}-default".into();
    cfg.es.data_stream = true;
    cfg.es.lifecycle_policy = "logs-ds".into();
    cfg
}

/// Runs logtransfer until it returns by itself (within 30 s): for starts that must fail.
fn run_until_it_returns(mut cfg: Config) -> Result<(), logtransfer::Error> {
    cfg.transfer.metrics_address = String::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = Shutdown::new();
    let guard = shutdown.clone();
    runtime.block_on(async move {
        match tokio::time::timeout(Duration::from_secs(30), logtransfer::run(cfg, shutdown)).await {
            Ok(result) => result,
            Err(_) => {
                guard.trigger();
                panic!("logtransfer kept retrying instead of stopping with an error")
            }
        }
    })
}

/// The policy goes first (the template names it), then the template; while Elasticsearch
/// answers 503 (starting) the install is retried, and what arrives is the planned bodies.
#[test]
fn the_policy_then_the_data_stream_template_are_installed_retrying_while_es_starts() {
    let es = CaptureEs::start();
    es.refuse("/_ilm/policy/", 503, json!({"error": "starting"}), 2);
    let mut cfg = Config::default();
    cfg.es.address = es.url.clone();
    let cfg = data_stream_config(cfg);
    let steps = template::plan(&cfg.es, &IndexName::parse(&cfg.es.index).unwrap()).unwrap();
    let service = ElasticsearchService::new(&cfg.es).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let installed = runtime
        .block_on(template::install(
            &service,
            &steps,
            &CancellationToken::new(),
        ))
        .unwrap();
    assert!(installed);
    let requests = es.requests();
    let calls: Vec<(&str, &str)> = requests
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("PUT", "/_ilm/policy/logs-ds"),
            ("PUT", "/_ilm/policy/logs-ds"),
            ("PUT", "/_ilm/policy/logs-ds"),
            ("PUT", "/_index_template/logtransfer"),
        ]
    );
    let template: Value = serde_json::from_str(&requests[3].2).unwrap();
    assert_eq!(template, steps[1].body);
    assert_eq!(template["data_stream"], json!({}));
    assert_eq!(
        template["template"]["settings"]["index.lifecycle.name"],
        "logs-ds"
    );
    let policy: Value = serde_json::from_str(&requests[2].2).unwrap();
    assert_eq!(
        policy["policy"]["phases"]["hot"]["actions"]["rollover"]["max_age"],
        "1d"
    );
}

/// A template Elasticsearch refuses (here: another template with an overlapping pattern has
/// the same priority, Elasticsearch's 400) stops the start with an error saying what and
/// what to change, after one attempt: it used to be retried forever.
#[test]
fn a_refused_template_stops_the_start_with_an_error_instead_of_retrying() {
    let es = CaptureEs::start();
    es.refuse(
        "/_index_template/",
        400,
        json!({"error": {"type": "illegal_argument_exception", "reason":
            "index template [logtransfer] has index patterns [logs-*-default] matching patterns from existing templates [other] with patterns (other => [logs-*]) that have the same priority [501], multiple index templates may not match during index creation, please use a different priority"},
            "status": 400}),
        usize::MAX,
    );
    let mut cfg = Config::default();
    cfg.es.address = es.url.clone();
    let error = run_until_it_returns(data_stream_config(cfg))
        .expect_err("a refused template is an error")
        .to_string();
    for expected in [
        "index template \"logtransfer\"",
        "priority 501",
        "same priority",
        "template_priority",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    let template_puts = es
        .requests()
        .iter()
        .filter(|(_, p, _)| p.starts_with("/_index_template/"))
        .count();
    assert_eq!(template_puts, 1, "refused once, not retried");
}

/// osmem-server, like OpenSearch, has no ILM API: a lifecycle policy it cannot take is an
/// error at start that says so.
#[test]
fn a_cluster_without_ilm_stops_the_start_with_an_error_naming_the_policy() {
    let es = Elasticsearch::start();
    let mut cfg = Config::default();
    cfg.es.address = es.url();
    let error = run_until_it_returns(data_stream_config(cfg))
        .expect_err("a policy that cannot be installed is an error")
        .to_string();
    assert!(error.contains("lifecycle policy \"logs-ds\""), "{error}");
    assert!(error.contains("no index lifecycle management"), "{error}");
}

/// Through the pipeline: every action is `create` into the data stream (whatever `op_type`
/// says), and a second group re-reading the records gets 409s, which are settled
/// duplicates: committed, never retried or dead-lettered.
#[test]
fn records_are_created_in_the_data_stream_and_a_replay_is_a_settled_duplicate() {
    let kafka = Kafka::start();
    let es = CaptureEs::start();
    kafka.create_topic("dsx", 1);
    let records: Vec<_> = (0..10u64)
        .map(|i| {
            let value = agent_message("2026-11-25T08:00:00Z", &format!("line {i}"), "h", "/f", i);
            ("h:/f".to_string(), value, None)
        })
        .collect();
    produce(&kafka, "dsx", &records);
    let cfg = data_stream_config(config(&kafka, &es.url, "dsx", "first"));
    let first = InProcess::start(cfg.clone());
    assert!(wait_until(Duration::from_secs(60), || first
        .metric("logtransfer_indexed_total")
        == 10.0));
    first.stop();

    let mut cfg = cfg;
    cfg.kafka.group_id = "second".into();
    let second = InProcess::start(cfg);
    assert!(wait_until(Duration::from_secs(60), || second
        .metric("logtransfer_duplicates_total")
        == 10.0));
    assert!(wait_until(Duration::from_secs(10), || {
        let lag = metric_series(&second.metrics_url, "logtransfer_consumer_lag");
        !lag.is_empty() && lag.iter().all(|(_, v)| *v == 0.0)
    }));
    assert_eq!(second.metric("logtransfer_dead_lettered_total"), 0.0);
    assert_eq!(second.metric("logtransfer_retried_total"), 0.0);
    second.stop();

    let actions = es.actions();
    assert_eq!(actions.len(), 20);
    for action in &actions {
        assert_eq!(action["create"]["_index"], "logs-dsx-default", "{action}");
    }
    let ids: HashSet<&str> = actions
        .iter()
        .map(|a| a["create"]["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10, "the replay used the same _ids");
}
