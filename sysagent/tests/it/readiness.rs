//! Scenario: `/ready` follows InfluxDB. Ready once a write was answered, not ready while
//! InfluxDB is stopped (the writes every interval fail), ready again once it is back.
//! Without InfluxDB there is nothing to wait for: ready at once. `/health` stays `ok`.

use std::time::Duration;

use crate::common::*;
use test_servers::{Influx, free_port, http_request, wait_for_status};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn ready_only_while_influxdb_answers_writes() {
    let mut influx = Influx::start();
    let mut config = influx_config(&influx.url(), 200);
    let listen = format!("127.0.0.1:{}", free_port());
    config.prometheus.listen = listen.clone();
    let agent = Running::start(config);
    let ready = format!("http://{listen}/ready");
    let live = || {
        http_request("GET", &format!("http://{listen}/health"), None, b"")
            .unwrap()
            .status
    };

    let up = wait_for_status(&ready, 200, WAIT);
    assert_eq!(up.body, "ready\ninfluxdb: ok\n");
    influx.stop();
    let down = wait_for_status(&ready, 503, WAIT);
    assert!(
        down.body
            .starts_with("not ready\ninfluxdb: not ready: InfluxDB at"),
        "{}",
        down.body
    );
    assert_eq!(live(), 200, "liveness does not follow InfluxDB");
    influx.restart();
    wait_for_status(&ready, 200, WAIT);
    agent.stop();
}

#[test]
fn without_influxdb_it_is_ready_at_once() {
    let mut config = influx_config("", 200);
    config.influxdb.address = String::new();
    let listen = format!("127.0.0.1:{}", free_port());
    config.prometheus.listen = listen.clone();
    let agent = Running::start(config);
    let up = wait_for_status(&format!("http://{listen}/ready"), 200, WAIT);
    assert_eq!(up.body, "ready\n");
    agent.stop();
}
