//! etcd really answers: put, get, and a watch that sees a later put.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use test_servers::Etcd;

#[tokio::test]
async fn etcd_put_get_and_watch() {
    let etcd = Etcd::start();
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();

    let put = client.put("/smoke/key", "v1", None).await.unwrap();
    let revision = put.header().unwrap().revision();
    let got = client.get("/smoke/key", None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), "v1");

    let mut stream = client
        .watch(
            "/smoke/key",
            Some(WatchOptions::new().with_start_revision(revision + 1)),
        )
        .await
        .unwrap();
    client.put("/smoke/key", "v2", None).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = stream.message().await.unwrap().expect("watch stream ended");
            if let Some(event) = response.events().first() {
                return event.clone();
            }
        }
    })
    .await
    .expect("no watch event within 10 s");
    assert_eq!(event.event_type(), EventType::Put);
    assert_eq!(event.kv().unwrap().value_str().unwrap(), "v2");
}

#[tokio::test]
async fn etcd_keeps_its_data_across_a_restart() {
    let mut etcd = Etcd::start();
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    client.put("/smoke/durable", "kept", None).await.unwrap();
    etcd.stop();
    etcd.restart();
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let got = client.get("/smoke/durable", None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), "kept");
}
