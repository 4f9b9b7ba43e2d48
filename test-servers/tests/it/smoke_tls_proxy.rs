//! nginx in front of the ES API really does TLS and authentication: the right basic auth or
//! API key gets the server's answer, anything else a 401; a client that does not trust the
//! certificate, or sends none where one is required, fails; plaintext on the TLS port is
//! refused.

use test_servers::{Elasticsearch, TestPki, TlsAuthProxy};

/// A rustls client trusting `ca` (and presenting `identity`, PEM cert + key, if given).
fn client(ca: Option<&std::path::Path>, identity: Option<Vec<u8>>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().tls_backend_rustls();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
    }
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn basic_auth_or_an_api_key_gets_through_and_nothing_else() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let proxy = TlsAuthProxy::builder(&es.url(), &pki)
        .user("elastic", "right")
        .api_key("aWQ6a2V5")
        .start();
    let client = client(Some(&pki.ca_cert()), None);
    let url = format!("{}/", proxy.url());
    runtime().block_on(async {
        let status = |req: reqwest::RequestBuilder| async move {
            req.send().await.unwrap().status().as_u16()
        };
        assert_eq!(status(client.get(&url)).await, 401);
        assert_eq!(
            status(client.get(&url).basic_auth("elastic", Some("right"))).await,
            200
        );
        assert_eq!(
            status(client.get(&url).basic_auth("elastic", Some("wrong"))).await,
            401
        );
        let key = |k: &str| {
            client
                .get(&url)
                .header("Authorization", format!("ApiKey {k}"))
        };
        assert_eq!(status(key("aWQ6a2V5")).await, 200);
        assert_eq!(status(key("d3Jvbmc6a2V5")).await, 401);
        let body = client
            .get(&url)
            .basic_auth("elastic", Some("right"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("\"version\""),
            "the server's own answer: {body}"
        );
        // Plaintext on the TLS port.
        let plain = reqwest::Client::new()
            .get(format!("{}/", proxy.plaintext_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status().as_u16(), 400);
        assert!(plain.text().await.unwrap().contains("HTTPS port"));
    });
}

#[test]
fn an_untrusted_certificate_or_a_missing_client_certificate_fails() {
    let pki = TestPki::generate();
    let es = Elasticsearch::start();
    let untrusted = TlsAuthProxy::builder(&es.url(), &pki)
        .user("elastic", "right")
        .untrusted_cert(&pki)
        .start();
    let mutual = TlsAuthProxy::builder(&es.url(), &pki)
        .user("elastic", "right")
        .require_client_cert(&pki)
        .start();
    let trusting = client(Some(&pki.ca_cert()), None);
    let mut identity = std::fs::read(pki.client_cert()).unwrap();
    identity.extend(std::fs::read(pki.client_key()).unwrap());
    let with_cert = client(Some(&pki.ca_cert()), Some(identity));
    runtime().block_on(async {
        let error = trusting
            .get(format!("{}/", untrusted.url()))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        let get = |client: &reqwest::Client| {
            client
                .get(format!("{}/", mutual.url()))
                .basic_auth("elastic", Some("right"))
                .send()
        };
        let refused = get(&trusting).await.unwrap();
        assert_eq!(refused.status().as_u16(), 400);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("No required SSL certificate")
        );
        assert_eq!(get(&with_cert).await.unwrap().status().as_u16(), 200);
    });
}
