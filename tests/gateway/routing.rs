//! Policies, rewriting, pass-through and `GET /v1/models`.

use std::collections::HashMap;

use maasctl::domain::{Endpoint, Policy, Secret};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_an_exact_cycle() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let mocks = [mock("a").await, mock("b").await, mock("c").await];
    ts.model(
        "rr",
        "rr-upstream",
        mocks.iter().map(|m| ep(&m.base_url())).collect(),
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    let mut order = Vec::new();
    for _ in 0..30 {
        order.push(answered_by(gw.chat(&key, "rr").await).await);
    }
    let first: Vec<&String> = order[..3].iter().collect();
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{order:?}");
    for (i, who) in order.iter().enumerate() {
        assert_eq!(who, first[i % 3], "request {i} broke the cycle: {order:?}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_70_30_holds_over_5000_requests_and_weight_0_gets_nothing() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let (a, b, z) = (mock("a").await, mock("b").await, mock("z").await);
    ts.model(
        "w",
        "w-upstream",
        vec![
            weighted(&a.base_url(), 70),
            weighted(&b.base_url(), 30),
            weighted(&z.base_url(), 0),
        ],
        Policy::Weighted,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    const N: usize = 5000;
    const CONCURRENCY: usize = 16;
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let gw = gw.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for _ in (t..N).step_by(CONCURRENCY) {
                if gw.chat(&key, "w").await.status() == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, N);
    let share_a = a.hits() as f64 / N as f64;
    assert!(
        (0.67..=0.73).contains(&share_a),
        "a got {} of {N}, b {}",
        a.hits(),
        b.hits()
    );
    assert_eq!(a.hits() + b.hits(), N as u64);
    assert_eq!(z.hits(), 0, "a weight-0 endpoint got traffic");
    std::sync::Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_touches_every_endpoint() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let mocks = [mock("a").await, mock("b").await, mock("c").await];
    ts.model(
        "rand",
        "r",
        mocks.iter().map(|m| ep(&m.base_url())).collect(),
        Policy::Random,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        *seen
            .entry(answered_by(gw.chat(&key, "rand").await).await)
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n >= 30), "{seen:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_key_are_rewritten_and_the_rest_passes_through() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let with_key = mock("keyed").await;
    let without = mock("open").await;
    ts.model(
        "DeepSeek-V3",
        "deepseek-chat",
        vec![Endpoint {
            api_key: Some(Secret::new("sk-upstream-secret-0001")),
            ..ep(&with_key.base_url())
        }],
        Policy::RoundRobin,
    );
    ts.model(
        "Qwen-Open",
        "qwen-open",
        vec![ep(&without.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;

    // Odd spacing, field order, unicode and an escaped quote must survive byte for byte.
    let raw = "{ \"temperature\" : 0.5,\n \"model\":\"DeepSeek-V3\" , \"messages\":[{\"role\":\"user\",\"content\":\"h\u{e9}llo \\\"x\\\" {model}\"}],\"user\":\"u1\"}";
    let res = gw
        .http
        .post(gw.url("/v1/chat/completions?trace=1"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("x-custom", "kept")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = with_key.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/v1/chat/completions?trace=1");
    assert_eq!(s.model.as_deref(), Some("deepseek-chat"));
    assert_eq!(s.authorization(), Some("Bearer sk-upstream-secret-0001"));
    assert_eq!(s.headers.get("x-custom").unwrap(), "kept");
    assert_eq!(
        std::str::from_utf8(&s.body).unwrap(),
        raw.replace("\"DeepSeek-V3\"", "\"deepseek-chat\""),
        "only the model token changes"
    );

    // No endpoint key: the caller's key does not leak upstream.
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let res = gw
            .post(
                path,
                &key,
                &json!({"model": "Qwen-Open", "prompt": "x", "input": "x"}),
            )
            .await;
        assert_eq!(res.status(), 200, "{path}");
    }
    let seen = without.seen();
    assert_eq!(
        seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    );
    for s in &seen {
        assert_eq!(s.model.as_deref(), Some("qwen-open"));
        assert_eq!(s.authorization(), None, "the caller's key was forwarded");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_enabled_models_of_the_served_cluster() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.apply(vec![maasctl::domain::Change::AddCluster(
        maasctl::domain::Cluster {
            name: "east".into(),
            entry_address: "https://gw.east.example.com".into(),
        },
    )]);
    ts.model("local-on", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    ts.model(
        "local-off",
        "x",
        vec![ep(&m.base_url())],
        Policy::RoundRobin,
    );
    ts.apply(vec![maasctl::domain::Change::SetEnabled {
        name: "local-off".into(),
        enabled: false,
    }]);
    ts.model_in(
        "east",
        "east-on",
        "x",
        vec![ep(&m.base_url())],
        Policy::RoundRobin,
    );

    let ids = |v: Value| -> Vec<String> {
        assert_eq!(v["object"], "list");
        let mut ids: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["object"], "model");
                assert_eq!(m["owned_by"], "Test Provider");
                m["id"].as_str().unwrap().to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    let all = Gw::start(&ts, fast_config()).await;
    let res = all
        .http
        .get(all.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(res.json().await.unwrap()), ["east-on", "local-on"]);
    let (status, _, _) = error_of(all.http.get(all.url("/v1/models")).send().await.unwrap()).await;
    assert_eq!(status, 401, "listing models needs a key");
    all.stop().await;

    let east = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            cluster: Some("east".into()),
            ..fast_config()
        },
    )
    .await;
    let res = east
        .http
        .get(east.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(res.json().await.unwrap()), ["east-on"]);
    // A model of another cluster is not served here, and the answer says where it is.
    let (status, _, err) = error_of(east.chat(&key, "local-on").await).await;
    assert_eq!(status, 404);
    assert_eq!(err["code"], "model_not_found");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:8080/v1"),
        "{err}"
    );
    assert_eq!(east.chat(&key, "east-on").await.status(), 200);
    east.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_passes_through_intact() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("big").await;
    ts.model(
        "big",
        "big-upstream",
        vec![ep(&m.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // Larger than the gateway's inline-write size and than one socket read.
    let content: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let sent = json!({"messages": [{"role": "user", "content": content}], "model": "big", "n": 1});
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &sent).await.status(),
        200
    );
    let seen: Value = serde_json::from_slice(&m.seen()[0].body).unwrap();
    let mut expected = sent.clone();
    expected["model"] = json!("big-upstream");
    assert_eq!(seen, expected);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_including_after_empty_answers() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("a").await;
    ts.model(
        "ka",
        "ka-upstream",
        vec![ep(&m.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // One caller connection, sequential requests: one upstream connection
    // per gateway worker at most, whatever the answers' framing.
    for _ in 0..10 {
        assert_eq!(gw.chat(&key, "ka").await.status(), 200);
    }
    // 204: no body at all (hyper drops such a body without reading it).
    m.configure(|c| c.status = Some(204));
    for _ in 0..10 {
        assert_eq!(gw.chat(&key, "ka").await.status(), 204);
    }
    assert_eq!(m.hits(), 20);
    assert!(
        m.connections() <= 2,
        "{} upstream connections for 20 sequential requests",
        m.connections()
    );
    gw.stop().await;
}
