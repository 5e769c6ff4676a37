//! SSE relayed as it arrives, tokens counted from it, cancellation reaching the upstream.

use std::time::Duration;

use futures_util::StreamExt;
use maasctl::demo::upstream::MockConfig;
use maasctl::domain::Policy;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_arrives_in_pieces_before_the_upstream_finishes() {
    let ts = TestStore::new();
    let (key_id, key) = ts.key("acme", "k");
    let m = mock_with(MockConfig {
        chunks: 5,
        chunk_delay: Duration::from_millis(300),
        prompt_tokens: 21,
        completion_tokens: 34,
        ..MockConfig::default()
    })
    .await;
    ts.model("s", "s-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "s", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    // The first piece is here while the upstream is still producing the rest.
    assert_eq!(m.completed(), 0, "the gateway buffered the stream");
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    let mut pieces = 1;
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        pieces += 1;
    }
    assert!(pieces >= 3, "the stream came in {pieces} piece(s)");
    assert_eq!(text.matches("data: ").count(), 5 + 2, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(text.contains("\"model\":\"s-up\""));
    let s = gw
        .wait_stats("streamed tokens counted", |s| {
            s.gateway.completion_tokens == 34 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.gateway.prompt_tokens, 21);
    assert_eq!(s.keys[&key_id].completion_tokens, 34);
    assert_eq!(s.models["s"].prompt_tokens, 21);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream_request() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    // 200 chunks 100 ms apart: 20 s if nobody cancels.
    let m = mock_with(MockConfig {
        chunks: 200,
        chunk_delay: Duration::from_millis(100),
        ..MockConfig::default()
    })
    .await;
    ts.model("s", "s-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let client = client();
    let res = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "s", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    drop(client);
    wait_for("the upstream to see the cancellation", || async {
        (m.cancelled() == 1).then_some(())
    })
    .await;
    assert_eq!(m.completed(), 0);
    let s = gw
        .wait_stats("the cancelled stream is no longer in flight", |s| {
            s.gateway.requests == 1 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.gateway.success, 1, "it had started with a 200");
    gw.stop().await;
}

// A client leaving before the answer: tests/gateway/edge.rs (a reset cancels;
// a FIN is a half-close and is answered, see docs/gateway.md "Callers").
