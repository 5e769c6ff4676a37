//! Counters are exact: after a known mix of requests, every total equals
//! what was sent, in the snapshot and in `/metrics`; shutdown removes the report.

use maasctl::demo::upstream::MockConfig;
use maasctl::domain::Policy;
use maasctl::store::Store;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_equal_the_requests_sent() {
    let ts = TestStore::new();
    let (k1, key1) = ts.key("acme", "one");
    let (k2, key2) = ts.key("globex", "two");
    let ok = mock_with(MockConfig {
        prompt_tokens: 3,
        completion_tokens: 5,
        ..MockConfig::default()
    })
    .await;
    let bad = mock_with(MockConfig {
        status: Some(500),
        ..MockConfig::default()
    })
    .await;
    let gone = mock_with(MockConfig {
        status: Some(422),
        ..MockConfig::default()
    })
    .await;
    ts.model("good", "g", vec![ep(&ok.base_url())], Policy::RoundRobin);
    ts.model("bad", "b", vec![ep(&bad.base_url())], Policy::RoundRobin);
    ts.model("picky", "p", vec![ep(&gone.base_url())], Policy::RoundRobin);
    let gw = std::sync::Arc::new(
        Gw::start(
            &ts,
            maasctl::gateway::GatewayConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..fast_config()
            },
        )
        .await,
    );

    // 120 + 40 streamed successes, 20 upstream 500s, 10 upstream 422s, 15 unknown
    // models, 5 malformed bodies (key1); 30 successes (key2); 25 bad keys.
    let mut tasks = Vec::new();
    let spawn =
        |f: std::pin::Pin<Box<dyn std::future::Future<Output = u16> + Send>>| tokio::spawn(f);
    for i in 0..240u32 {
        let gw = gw.clone();
        let (key1, key2) = (key1.clone(), key2.clone());
        tasks.push(spawn(Box::pin(async move {
            let res = match i {
                0..120 => gw.chat(&key1, "good").await,
                120..160 => {
                    gw.post(
                        "/v1/chat/completions",
                        &key1,
                        &json!({"model": "good", "stream": true, "messages": []}),
                    )
                    .await
                }
                160..180 => gw.chat(&key1, "bad").await,
                180..190 => gw.chat(&key1, "picky").await,
                190..205 => gw.chat(&key1, "nope").await,
                205..210 => {
                    gw.post("/v1/completions", &key1, &json!({"prompt": "no model"}))
                        .await
                }
                210..240 => {
                    gw.post(
                        "/v1/embeddings",
                        &key2,
                        &json!({"model": "good", "input": "x"}),
                    )
                    .await
                }
                _ => unreachable!(),
            };
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            status
        })));
    }
    for _ in 0..25 {
        let gw = gw.clone();
        tasks.push(spawn(Box::pin(async move {
            gw.chat("sk-wrong-key-000000", "good")
                .await
                .status()
                .as_u16()
        })));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0u64) += 1;
    }
    assert_eq!(
        statuses,
        [
            (200, 190),
            (400, 5),
            (401, 25),
            (404, 15),
            (422, 10),
            (500, 20)
        ]
        .into_iter()
        .collect()
    );

    let s = gw
        .wait_stats("every request counted and finished", |s| {
            s.gateway.requests == 265 && s.gateway.in_flight == 0
        })
        .await;
    let g = &s.gateway;
    assert_eq!(
        (
            g.success,
            g.upstream_errors,
            g.upstream_4xx,
            g.not_found,
            g.bad_request,
            g.unauthorized,
            g.throttled,
            g.cancelled
        ),
        (190, 20, 10, 15, 5, 25, 0, 0)
    );
    // Tokens: 3 + 5 per success (embeddings report prompt tokens only).
    assert_eq!(g.prompt_tokens, 190 * 3);
    assert_eq!(g.completion_tokens, 160 * 5);
    assert!(g.latency_p50_ms > 0.0 && g.latency_p99_ms >= g.latency_p50_ms);
    assert_eq!(g.latency_count, 220);
    assert!(g.latency_sum_us > 0);

    let a = &s.keys[&k1];
    assert_eq!(
        (
            a.requests,
            a.success,
            a.upstream_errors,
            a.upstream_4xx,
            a.not_found,
            a.bad_request
        ),
        (210, 160, 20, 10, 15, 5)
    );
    let b = &s.keys[&k2];
    assert_eq!(
        (b.requests, b.success, b.prompt_tokens, b.completion_tokens),
        (30, 30, 90, 0)
    );
    assert_eq!(s.workspaces["acme"].requests, 210);
    assert_eq!(s.workspaces["globex"].requests, 30);
    assert_eq!(
        (s.models["good"].requests, s.models["good"].success),
        (190, 190)
    );
    assert_eq!(
        (s.models["bad"].requests, s.models["bad"].upstream_errors),
        (20, 20)
    );
    assert_eq!(
        (s.models["picky"].requests, s.models["picky"].upstream_4xx),
        (10, 10)
    );
    let good_ep = s.endpoints.iter().find(|e| e.model == "good").unwrap();
    assert_eq!(
        (good_ep.totals.requests, good_ep.totals.success),
        (190, 190)
    );

    let scrape = gw.handle().metrics_addr().expect("--metrics-listen is set");
    let metrics = gw
        .http
        .get(format!("http://{scrape}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    for line in [
        "maasctl_requests_total{scope=\"gateway\"} 265",
        "maasctl_responses_total{scope=\"gateway\",outcome=\"success\"} 190",
        "maasctl_responses_total{scope=\"gateway\",outcome=\"unauthorized\"} 25",
        &format!("maasctl_requests_total{{scope=\"key\",key=\"{k1}\"}} 210"),
        "maasctl_tokens_total{scope=\"model\",model=\"good\",kind=\"completion\"} 800",
        "maasctl_in_flight{scope=\"gateway\"} 0",
        "# TYPE maasctl_requests_total counter",
        "# TYPE maasctl_responses_total counter",
        "# TYPE maasctl_in_flight gauge",
        "# TYPE maasctl_tokens_total counter",
        "# TYPE maasctl_latency_seconds summary",
        // Every forwarded request answered to the end has a latency: 190
        // successes, 20 upstream 500s, 10 upstream 422s.
        "maasctl_latency_seconds_count{scope=\"gateway\"} 220",
        "maasctl_latency_seconds_count{scope=\"model\",model=\"good\"} 190",
    ] {
        assert!(text.contains(line), "/metrics lacks {line}:\n{text}");
    }
    for series in [
        "maasctl_latency_seconds{scope=\"gateway\",quantile=\"0.5\"} ",
        "maasctl_latency_seconds{scope=\"gateway\",quantile=\"0.99\"} ",
        "maasctl_latency_seconds_sum{scope=\"gateway\"} ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "/metrics lacks {series}:\n{text}"
        );
    }
    let health = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let gw = std::sync::Arc::try_unwrap(gw).ok().unwrap();
    let listen = gw.handle().local_addr().to_string();
    assert!(
        ts.store
            .reports()
            .unwrap()
            .iter()
            .any(|r| r.listen == listen)
    );
    gw.stop().await;
    assert!(
        !ts.store
            .reports()
            .unwrap()
            .iter()
            .any(|r| r.listen == listen),
        "a gateway that stopped cleanly removes its report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let slow = mock_with(MockConfig {
        latency: std::time::Duration::from_millis(800),
        ..MockConfig::default()
    })
    .await;
    ts.model("slow", "x", vec![ep(&slow.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let (http, url) = (gw.http.clone(), gw.url("/v1/chat/completions"));
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(key)
            .json(&chat_body("slow"))
            .send()
            .await
    });
    wait_for("the request to reach the upstream", || async {
        (slow.hits() == 1).then_some(())
    })
    .await;
    let base = gw.base.clone();
    gw.stop().await;
    let res = in_flight
        .await
        .unwrap()
        .expect("the request in flight got its answer");
    assert_eq!(
        res.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "the stopping gateway told the client it closes the connection"
    );
    assert_eq!(answered_by(res).await, "mock");
    assert!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "a stopped gateway accepts nothing"
    );
}
