//! Every error answer of the gateway (`src/gateway/proxy/errors.rs`, `docs/gateway.md` "Request path"), with its status and OpenAI-shaped body.

use std::time::Duration;

use maasctl::demo::upstream::MockConfig;
use maasctl::domain::{Change, Endpoint, Policy, RuleUnit};
use maasctl::gateway::GatewayConfig;
use serde_json::json;

use crate::support::*;

async fn expect(
    res: reqwest::Response,
    status: u16,
    kind: &str,
    code: &str,
    says: &str,
) -> reqwest::header::HeaderMap {
    let (got, headers, err) = error_of(res).await;
    assert_eq!(got, status, "{err}");
    assert_eq!(err["type"], kind, "{err}");
    assert_eq!(err["code"], code, "{err}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(says),
        "message {msg:?} should mention {says:?}"
    );
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_are_401() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let (revoked_id, revoked) = ts.key("acme", "old");
    ts.apply(vec![Change::RevokeKey {
        id: revoked_id.clone(),
    }]);
    let m = mock("m").await;
    ts.model("m", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let url = gw.url("/v1/chat/completions");
    let body = chat_body("m");

    let res = gw.http.post(&url).json(&body).send().await.unwrap();
    expect(
        res,
        401,
        "invalid_request_error",
        "missing_api_key",
        "Authorization",
    )
    .await;
    let res = gw
        .http
        .post(&url)
        .header("authorization", "Basic abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect(
        res,
        401,
        "invalid_request_error",
        "invalid_api_key",
        "Bearer",
    )
    .await;
    let res = gw
        .http
        .post(&url)
        .bearer_auth("sk-not-a-real-key-abcd")
        .json(&body)
        .send()
        .await
        .unwrap();
    let h = expect(
        res,
        401,
        "invalid_request_error",
        "invalid_api_key",
        "sk-…abcd",
    )
    .await;
    assert!(h.get("retry-after").is_none());
    expect(
        gw.chat(&revoked, "m").await,
        401,
        "invalid_request_error",
        "invalid_api_key",
        &format!("{revoked_id} has been revoked"),
    )
    .await;
    assert_eq!(gw.chat(&key, "m").await.status(), 200);
    assert_eq!(m.hits(), 1, "rejected requests never reach the upstream");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_body_errors() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("on", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.model("off", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.apply(vec![Change::SetEnabled {
        name: "off".into(),
        enabled: false,
    }]);
    let gw = Gw::start(
        &ts,
        GatewayConfig {
            body_limit: 1024,
            ..fast_config()
        },
    )
    .await;
    let post_raw = |body: &'static str| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    expect(
        gw.chat(&key, "nope").await,
        404,
        "invalid_request_error",
        "model_not_found",
        "'nope' does not exist",
    )
    .await;
    expect(
        gw.chat(&key, "off").await,
        404,
        "invalid_request_error",
        "model_not_found",
        "'off' is disabled",
    )
    .await;
    expect(
        post_raw("{\"model\": \"on\", \"messages\": [")
            .await
            .unwrap(),
        400,
        "invalid_request_error",
        "invalid_json",
        "not valid JSON",
    )
    .await;
    expect(
        post_raw("").await.unwrap(),
        400,
        "invalid_request_error",
        "invalid_json",
        "empty",
    )
    .await;
    expect(
        post_raw("[]").await.unwrap(),
        400,
        "invalid_request_error",
        "invalid_json",
        "JSON object",
    )
    .await;
    expect(
        post_raw("{\"messages\": []}").await.unwrap(),
        400,
        "invalid_request_error",
        "missing_model",
        "no \"model\" field",
    )
    .await;
    expect(
        post_raw("{\"model\": 7}").await.unwrap(),
        400,
        "invalid_request_error",
        "invalid_model",
        "must be a string",
    )
    .await;

    // Over the limit, declared up front…
    let big = json!({"model": "on", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let h = expect(
        gw.post("/v1/chat/completions", &key, &big).await,
        413,
        "invalid_request_error",
        "request_too_large",
        "at most 1024 bytes",
    )
    .await;
    assert_eq!(
        h.get("connection").unwrap(),
        "close",
        "the unread body ends the connection"
    );
    // A caller that sends a large declared body anyway reads the 413, not
    // a reset (the refused body is drained in the background), every time.
    let huge = vec![b' '; 8 << 20];
    for _ in 0..5 {
        let res = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .expect("the 413 is read, not a reset");
        expect(
            res,
            413,
            "invalid_request_error",
            "request_too_large",
            "at most 1024 bytes",
        )
        .await;
    }
    // …and streamed without a length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 200])).collect();
    let res = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect(
        res,
        413,
        "invalid_request_error",
        "request_too_large",
        "at most 1024 bytes",
    )
    .await;

    expect(
        gw.http
            .post(gw.url("/v1/other"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
        404,
        "invalid_request_error",
        "unknown_url",
        "/v1/other",
    )
    .await;
    let h = expect(
        gw.http
            .get(gw.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
        405,
        "invalid_request_error",
        "method_not_allowed",
        "use POST",
    )
    .await;
    assert_eq!(h.get("allow").unwrap(), "POST");
    assert_eq!(m.hits(), 0, "no error reached the upstream");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_502_504_503_and_upstream_statuses_pass_through() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let slow = mock_with(MockConfig {
        latency: Duration::from_secs(20),
        ..MockConfig::default()
    })
    .await;
    let teapot = mock_with(MockConfig {
        status: Some(418),
        ..MockConfig::default()
    })
    .await;
    let broken = mock_with(MockConfig {
        status: Some(503),
        ..MockConfig::default()
    })
    .await;
    ts.model("dead", "x", vec![ep(&dead_url())], Policy::RoundRobin);
    ts.model("slow", "x", vec![ep(&slow.base_url())], Policy::RoundRobin);
    ts.model(
        "teapot",
        "x",
        vec![ep(&teapot.base_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "broken",
        "x",
        vec![ep(&broken.base_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "unplugged",
        "x",
        vec![Endpoint {
            disabled: true,
            ..ep(&teapot.base_url())
        }],
        Policy::RoundRobin,
    );
    let gw = Gw::start(
        &ts,
        GatewayConfig {
            upstream_timeout: Duration::from_millis(300),
            ..fast_config()
        },
    )
    .await;

    expect(
        gw.chat(&key, "dead").await,
        502,
        "upstream_error",
        "upstream_unreachable",
        "could not be reached",
    )
    .await;
    expect(
        gw.chat(&key, "slow").await,
        504,
        "upstream_error",
        "upstream_timeout",
        "did not answer within 0.3s",
    )
    .await;
    expect(
        gw.chat(&key, "unplugged").await,
        503,
        "upstream_error",
        "no_available_endpoint",
        "no endpoint in service",
    )
    .await;
    // An upstream's own error answer is passed through as it is.
    let (status, _, err) = error_of(gw.chat(&key, "teapot").await).await;
    assert_eq!((status, err["type"].as_str()), (418, Some("mock_error")));
    let (status, _, err) = error_of(gw.chat(&key, "broken").await).await;
    assert_eq!((status, err["type"].as_str()), (503, Some("mock_error")));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_gets_a_500() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let mut rng = fastrand::Rng::with_seed(3);
    let base = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
    for _ in 0..200 {
        let mut b = base.to_vec();
        for _ in 0..rng.usize(1..6) {
            let i = rng.usize(0..b.len());
            b[i] = rng.u8(..);
        }
        let res = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .body(b)
            .send()
            .await
            .unwrap();
        let s = res.status().as_u16();
        assert!(matches!(s, 200 | 400 | 404), "got {s}");
    }
    gw.stop().await;
}

/// 429 comes from the rate limiter (src/gateway/limiter.rs, built by the
/// rate-limiting work); this checks the gateway's side: status, body naming
/// the rule, Retry-After and x-ratelimit-* headers, nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_get_429_naming_the_rule() {
    let ts = TestStore::new();
    let (key_id, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.key_rule("m", &key_id, 1, RuleUnit::Requests);
    let gw = Gw::start(&ts, fast_config()).await;
    let ok = gw.chat(&key, "m").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers().get("x-ratelimit-limit").unwrap(), "1");
    assert_eq!(ok.headers().get("x-ratelimit-remaining").unwrap(), "0");
    let h = expect(
        gw.chat(&key, "m").await,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        &format!("api-key {key_id}"),
    )
    .await;
    let retry: u64 = h
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // At most the window plus the limiter's granularity (1% of D, docs/rate-limits.md).
    assert!((1..=61).contains(&retry), "retry-after {retry}");
    assert_eq!(h.get("x-ratelimit-limit").unwrap(), "1");
    assert_eq!(h.get("x-ratelimit-remaining").unwrap(), "0");
    assert!(h.get("x-ratelimit-reset").is_some());
    assert_eq!(m.hits(), 1);
    let s = gw
        .wait_stats("throttled counted", |s| s.gateway.throttled == 1)
        .await;
    assert_eq!(s.keys[&key_id].throttled, 1);
    assert_eq!(s.models["m"].throttled, 1);
    assert_eq!(s.workspaces["acme"].throttled, 1);
    gw.stop().await;
}

/// `--ratelimit-headers on-429`: admitted answers do not show callers the
/// limits (request rules and token rules alike); refusals still carry them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ratelimit_headers_on_429_only_refusals_carry_them() {
    let ts = TestStore::new();
    let (key_id, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.model("t", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.key_rule("m", &key_id, 1, RuleUnit::Requests);
    ts.key_rule("t", &key_id, 1_000_000, RuleUnit::Tokens);
    let gw = Gw::start(
        &ts,
        GatewayConfig {
            ratelimit_headers: maasctl::gateway::RateLimitHeaders::On429,
            ..fast_config()
        },
    )
    .await;
    let limit_headers = |h: &reqwest::header::HeaderMap| -> Vec<String> {
        h.keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("x-ratelimit-"))
            .collect()
    };
    for model in ["m", "t"] {
        let ok = gw.chat(&key, model).await;
        assert_eq!(ok.status(), 200, "{model}");
        assert_eq!(limit_headers(ok.headers()), Vec::<String>::new(), "{model}");
    }
    let h = expect(
        gw.chat(&key, "m").await,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        &format!("api-key {key_id}"),
    )
    .await;
    assert_eq!(h.get("x-ratelimit-limit").unwrap(), "1");
    assert_eq!(h.get("x-ratelimit-remaining").unwrap(), "0");
    assert!(h.get("retry-after").is_some());
    gw.stop().await;
}
