//! HTTPS upstreams verified against a CA the test makes (per endpoint and
//! global), refused without it, and TLS on the gateway's own listener.

use maasctl::demo::upstream::MockConfig;
use maasctl::domain::{Endpoint, EndpointState, Policy};
use maasctl::gateway::{GatewayConfig, ListenerTls};

use crate::support::*;

async fn tls_mock(pki: &TestPki, label: &str) -> maasctl::demo::upstream::MockUpstream {
    mock_with(MockConfig {
        label: label.into(),
        tls: Some((pki.cert_pem.clone(), pki.key_pem.clone())),
        ..MockConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_extra_ca() {
    let ts = TestStore::new();
    let pki = test_pki(ts.dir.path());
    let (_, key) = ts.key("acme", "k");
    let up = tls_mock(&pki, "secure").await;
    assert!(up.base_url().starts_with("https://127.0.0.1:"));
    let localhost_url = up.base_url().replace("127.0.0.1", "localhost");
    ts.model(
        "per-endpoint",
        "x",
        vec![Endpoint {
            ca_file: Some(pki.ca_file.display().to_string()),
            ..ep(&localhost_url)
        }],
        Policy::RoundRobin,
    );
    ts.model(
        "system-roots-only",
        "x",
        vec![ep(&up.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    assert_eq!(
        answered_by(gw.chat(&key, "per-endpoint").await).await,
        "secure"
    );
    // Without the CA, the certificate is not trusted: 502, and the reason says why.
    let (status, _, err) = error_of(gw.chat(&key, "system-roots-only").await).await;
    assert_eq!(status, 502);
    let msg = err["message"].as_str().unwrap().to_lowercase();
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(
        up.hits(),
        1,
        "the unverified request never reached the upstream"
    );
    gw.stop().await;

    // A global CA file (serve --ca-file) trusts it for every endpoint.
    let gw = Gw::start(
        &ts,
        GatewayConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..fast_config()
        },
    )
    .await;
    assert_eq!(
        answered_by(gw.chat(&key, "system-roots-only").await).await,
        "secure"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ca_file_takes_only_that_endpoint_out() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let good = mock("good").await;
    ts.model(
        "m",
        "x",
        vec![
            Endpoint {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..ep(&good.base_url())
            },
            ep(&good.base_url()),
        ],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(&key, "m").await.status(), 200);
    }
    let s = gw
        .wait_stats("the endpoint with a bad CA file to be down", |s| {
            s.endpoints[0].state == EndpointState::Down
        })
        .await;
    assert!(
        s.endpoints[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("/nonexistent/ca.pem"),
        "{:?}",
        s.endpoints[0].reason
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_tls() {
    let ts = TestStore::new();
    let pki = test_pki(ts.dir.path());
    let (_, key) = ts.key("acme", "k");
    let up = mock("plain").await;
    ts.model("m", "x", vec![ep(&up.base_url())], Policy::RoundRobin);
    let gw = Gw::start(
        &ts,
        GatewayConfig {
            tls: Some(ListenerTls {
                cert: pki.cert_file.clone(),
                key: pki.key_file.clone(),
            }),
            ..fast_config()
        },
    )
    .await;
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let url = gw
        .url("/v1/chat/completions")
        .replace("http://", "https://");
    let res = https
        .post(&url)
        .bearer_auth(&key)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(res).await, "plain");
    // Plain HTTP to a TLS listener does not get an answer.
    assert!(
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat_body("m"))
            .send()
            .await
            .is_err()
    );
    gw.stop().await;
}

#[test]
fn a_bad_listener_certificate_is_refused_at_start() {
    let ts = TestStore::new();
    let bogus = ts.dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let store: std::sync::Arc<dyn maasctl::store::Store> = ts.store.clone();
    let err = maasctl::gateway::Gateway::start(
        GatewayConfig {
            tls: Some(ListenerTls {
                cert: bogus.clone(),
                key: bogus,
            }),
            ..fast_config()
        },
        store,
    )
    .err()
    .expect("start refuses a bad certificate");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
}
