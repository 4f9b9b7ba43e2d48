//! Scenario: `/ready` follows the sinks. Ready once the consumer has a broker connection and
//! Elasticsearch answered; not ready while Elasticsearch is stopped (noticed by the idle
//! ping: nothing is consumed meanwhile) or frozen, ready again once it is back; not ready
//! while the broker is frozen (its fetches time out: librdkafka's `socket.timeout.ms`,
//! 60 s), ready again once it thaws. `/health` (liveness) answers `ok` throughout.
//!
//! The broker is frozen, not restarted: tansu restarts empty, and librdkafka 2.12 was seen
//! to crash (SIGSEGV in its metadata cache, `rd_kafka_metadata_cache_find`) on the metadata
//! of a broker that came back without the subscribed topic.

use std::time::Duration;

use crate::common::*;
use test_servers::{Elasticsearch, Kafka, http_request, wait_for_status};

const WAIT: Duration = Duration::from_secs(90);
/// A frozen broker is noticed when the requests to it time out (60 s).
const FROZEN_BROKER_WAIT: Duration = Duration::from_secs(150);

#[test]
fn ready_only_while_kafka_and_elasticsearch_are_reachable() {
    let kafka = Kafka::start();
    let mut es = Elasticsearch::start();
    kafka.create_topic("rdy", 1);
    let transfer = InProcess::start(config(&kafka, &es.url(), "rdy", "rdy-group"));
    let base = transfer.metrics_url.trim_end_matches("/metrics").to_owned();
    let ready = format!("{base}/ready");
    let live = || {
        http_request("GET", &format!("{base}/health"), None, b"")
            .unwrap()
            .status
    };

    let up = wait_for_status(&ready, 200, WAIT);
    assert_eq!(up.body, "ready\nkafka: ok\nelasticsearch: ok\n");

    es.stop();
    let down = wait_for_status(&ready, 503, WAIT);
    assert!(
        down.body
            .contains("elasticsearch: not ready: Elasticsearch is unreachable")
            && down.body.contains("kafka: ok"),
        "{}",
        down.body
    );
    assert_eq!(live(), 200, "liveness does not follow Elasticsearch");
    es.restart();
    wait_for_status(&ready, 200, WAIT);

    // Frozen: the ping's request times out ([es] request_timeout_ms).
    es.pause();
    let down = wait_for_status(&ready, 503, WAIT);
    assert!(
        down.body.contains("elasticsearch: not ready"),
        "{}",
        down.body
    );
    es.resume();
    wait_for_status(&ready, 200, WAIT);

    kafka.pause();
    let down = wait_for_status(&ready, 503, FROZEN_BROKER_WAIT);
    assert!(
        down.body.contains("kafka: not ready:") && down.body.contains("elasticsearch: ok"),
        "{}",
        down.body
    );
    assert_eq!(live(), 200);
    kafka.resume();
    let up = wait_for_status(&ready, 200, WAIT);
    assert_eq!(up.body, "ready\nkafka: ok\nelasticsearch: ok\n");
    transfer.stop();
}
