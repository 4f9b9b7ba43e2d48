//! Scenario: `/ready` follows the sinks. Ready once the producer has a broker connection and
//! the collect config's watch is established; not ready while the broker is frozen with
//! lines to ship (its produce requests time out: librdkafka's `socket.timeout.ms`, 60 s),
//! ready again once it thaws; not ready while etcd is stopped, ready again once it is back.
//! `/health` (liveness) answers `ok` throughout.
//!
//! The broker is frozen, not restarted: tansu restarts empty, and librdkafka 2.12 was seen
//! to crash (SIGSEGV in its metadata cache) on the metadata of a broker that came back
//! without the topics it knew.

use std::time::Duration;

use crate::common::*;
use test_servers::{Etcd, Kafka, http_request, wait_for_status};

const WAIT: Duration = Duration::from_secs(90);
/// A frozen broker is noticed when the requests to it time out (60 s).
const FROZEN_BROKER_WAIT: Duration = Duration::from_secs(150);

#[test]
fn ready_only_while_kafka_is_reachable_and_the_etcd_watch_alive() {
    let kafka = Kafka::start();
    let mut etcd = Etcd::start();
    kafka.create_topic("out", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    let f = logs.join("app.log");
    append(&f, lines("r", 0..10));
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&f, "out")));
    let agent = Agent::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    let ready = format!("http://{}/ready", agent.metrics);
    let health = format!("http://{}/health", agent.metrics);
    let live = || http_request("GET", &health, None, b"").unwrap().status;

    let up = wait_for_status(&ready, 200, WAIT);
    assert_eq!(up.body, "ready\nkafka: ok\netcd: ok\n");
    agent.wait_metric("logagent_lines_sent_total", WAIT, |v| v >= 10.0);

    kafka.pause();
    // Lines to ship: an idle producer sends nothing, so it would notice the freeze only
    // at its next metadata refresh (5 min).
    append(&f, lines("r", 10..20));
    let down = wait_for_status(&ready, 503, FROZEN_BROKER_WAIT);
    assert!(
        down.body.contains("kafka: not ready:") && down.body.contains("etcd: ok"),
        "{}",
        down.body
    );
    assert_eq!(live(), 200, "liveness does not follow the broker");
    kafka.resume();
    wait_for_status(&ready, 200, WAIT);
    agent.wait_metric("logagent_lines_sent_total", WAIT, |v| v >= 20.0);

    etcd.stop();
    let down = wait_for_status(&ready, 503, WAIT);
    assert!(
        down.body.contains("etcd: not ready: the watch of") && down.body.contains("kafka: ok"),
        "{}",
        down.body
    );
    assert_eq!(live(), 200);
    etcd.restart();
    let up = wait_for_status(&ready, 200, WAIT);
    assert_eq!(up.body, "ready\nkafka: ok\netcd: ok\n");
    agent.stop();
}
