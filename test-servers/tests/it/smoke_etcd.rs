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

fn tls_options(pki: &test_servers::TestPki) -> etcd_client::TlsOptions {
    let read = |path: std::path::PathBuf| std::fs::read(path).unwrap();
    etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(pki.ca_cert())))
        .identity(etcd_client::Identity::from_pem(
            read(pki.client_cert()),
            read(pki.client_key()),
        ))
}

#[tokio::test]
async fn a_secured_etcd_serves_tls_with_client_certificates_and_checks_users() {
    use test_servers::{ETCD_USER, ETCD_USER_PASSWORD, EtcdOptions, TestPki};
    let pki = TestPki::generate();
    let mut etcd = Etcd::start_with(
        EtcdOptions::new()
            .tls(&pki)
            .client_cert_auth()
            .auth("/smoke/"),
    );
    assert!(
        etcd.endpoint().starts_with("https://"),
        "{}",
        etcd.endpoint()
    );
    let options = etcd_client::ConnectOptions::new()
        .with_tls(tls_options(&pki))
        .with_user(ETCD_USER, ETCD_USER_PASSWORD);
    let mut client = Client::connect([etcd.endpoint()], Some(options.clone()))
        .await
        .unwrap();
    client.put("/smoke/secured", "v1", None).await.unwrap();
    let denied = client.put("/elsewhere", "x", None).await.unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    // Without a user, etcd takes the client certificate's CN as the user name, which is
    // no user here: refused.
    let anonymous = etcd_client::ConnectOptions::new().with_tls(tls_options(&pki));
    let mut nobody = Client::connect([etcd.endpoint()], Some(anonymous))
        .await
        .unwrap();
    let refused = nobody.get("/smoke/secured", None).await.unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );

    // The harness's own writes and the restart work with authentication on.
    etcd.put("/smoke/secured", "v2");
    etcd.restart();
    let mut client = Client::connect([etcd.endpoint()], Some(options))
        .await
        .unwrap();
    let got = client.get("/smoke/secured", None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), "v2");
}
