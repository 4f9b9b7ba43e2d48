//! Prometheus really scrapes: a test endpoint's series becomes queryable and `up` is 1.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use test_servers::{Prometheus, wait_until};

/// Serves a fixed exposition on a free port from a background thread.
fn serve_metrics() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body =
                "# HELP smoke_answer The answer.\n# TYPE smoke_answer gauge\nsmoke_answer 42\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    address
}

#[test]
fn prometheus_scrapes_a_target_and_its_series_is_queryable() {
    let target = serve_metrics();
    let prometheus = Prometheus::start(&[&target]);
    let scraped = wait_until(Duration::from_secs(30), || {
        prometheus
            .query("smoke_answer")
            .as_array()
            .is_some_and(|series| !series.is_empty())
    });
    assert!(
        scraped,
        "series never appeared; targets: {}",
        prometheus.targets()
    );
    let series = prometheus.query("smoke_answer");
    assert_eq!(series[0]["value"][1], "42");
    assert_eq!(series[0]["metric"]["instance"], target.as_str());
    let up = prometheus.query("up{job=\"test\"}");
    assert_eq!(up[0]["value"][1], "1", "{up}");
}
