//! InfluxDB really answers: create a database, write line protocol, query it back.

use test_servers::{Influx, http_request};

#[test]
fn influx_write_and_query() {
    let influx = Influx::start();
    influx.query("", "CREATE DATABASE smoke");
    let lines = "cpu,host=a usage_idle=91.5 1700000000000000000\ncpu,host=b usage_idle=42 1700000000000000000\n";
    let response = http_request(
        "POST",
        &format!("{}/write?db=smoke", influx.url()),
        Some("text/plain"),
        lines.as_bytes(),
    )
    .unwrap();
    assert_eq!(response.status, 204, "{}", response.body);
    let answer = influx.query("smoke", "SELECT usage_idle FROM cpu WHERE host = 'b'");
    let value = &answer["results"][0]["series"][0]["values"][0][1];
    assert_eq!(value.as_f64(), Some(42.0), "{answer}");
}

#[test]
fn influx_keeps_its_data_across_a_restart() {
    let mut influx = Influx::start();
    influx.query("", "CREATE DATABASE smoke");
    let response = http_request(
        "POST",
        &format!("{}/write?db=smoke", influx.url()),
        Some("text/plain"),
        b"mem,host=a used=7i 1700000000000000000\n",
    )
    .unwrap();
    assert_eq!(response.status, 204, "{}", response.body);
    influx.stop();
    influx.restart();
    let answer = influx.query("smoke", "SELECT used FROM mem");
    assert_eq!(
        answer["results"][0]["series"][0]["values"][0][1].as_i64(),
        Some(7),
        "{answer}"
    );
}
