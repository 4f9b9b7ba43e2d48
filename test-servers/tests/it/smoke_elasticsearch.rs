//! The Elasticsearch-API server really answers: bulk, refresh, count, search.

use test_servers::{Elasticsearch, Fault, FaultProxy, http_request};

#[test]
fn elasticsearch_bulk_refresh_and_count() {
    let es = Elasticsearch::start();
    let mut bulk = String::new();
    for i in 0..50 {
        bulk.push_str(&format!(
            "{{\"index\":{{\"_index\":\"smoke-1\",\"_id\":\"{i}\"}}}}\n"
        ));
        bulk.push_str(&format!("{{\"message\":\"line {i}\",\"n\":{i}}}\n"));
    }
    let response = http_request(
        "POST",
        &format!("{}/_bulk", es.url()),
        Some("application/x-ndjson"),
        bulk.as_bytes(),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["errors"], false, "{}", response.body);
    assert_eq!(es.count("smoke-1"), 50);
    let hits = es.search(
        "smoke-1",
        &serde_json::json!({"query": {"match": {"message": "line 7"}}}),
    );
    assert!(
        hits["hits"]["total"]["value"].as_u64().unwrap() >= 1,
        "{hits}"
    );
}

#[test]
fn the_fault_proxy_injects_statuses_and_refusals_then_forwards_again() {
    let es = Elasticsearch::start();
    let proxy = FaultProxy::start(&es.url());
    let get = || http_request("GET", &format!("{}/", proxy.url()), None, b"");

    assert_eq!(get().unwrap().status, 200);
    proxy.fail_next(2, 429);
    assert_eq!(get().unwrap().status, 429);
    assert_eq!(get().unwrap().status, 429);
    assert_eq!(get().unwrap().status, 200);

    proxy.set_fault(Fault::Status(503));
    assert_eq!(get().unwrap().status, 503);
    proxy.set_fault(Fault::Refuse);
    assert!(test_servers::wait_until(
        std::time::Duration::from_secs(5),
        || get().is_err()
    ));
    proxy.set_fault(Fault::None);
    assert!(test_servers::wait_until(
        std::time::Duration::from_secs(5),
        || { get().map(|r| r.status == 200).unwrap_or(false) }
    ));
    assert_eq!(proxy.faulted(), 3);
}
