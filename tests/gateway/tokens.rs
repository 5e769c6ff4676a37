//! Token rules end to end (docs/rate-limits.md, "Token rules"): requests
//! reserve their estimate before forwarding, answers settle it to the
//! upstream's `usage` (plain and streamed), failures and cancellations give
//! back what they did not use, and under many concurrent callers a rule
//! of L tokens per D admits at most L tokens, counted at the upstream.
//!
//! The upstream is a mock of this file: each request says in its body
//! (`"mock": {…}`) how to answer, and the mock sums the usage it reports.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use maasctl::domain::LimiterMode;
use maasctl::domain::{Change, Policy, RuleSpec, RuleTarget, RuleUnit};
use maasctl::gateway::config::GatewayConfig;
use maasctl::gateway::limiter::{Limiter, SharedConfig, estimate};
use maasctl::store::Store;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::support::*;

#[path = "../support/redis.rs"]
mod redis_server;

/// What the mock reported: (arrival, prompt + completion tokens).
type Ledger = Arc<Mutex<Vec<(Instant, u64)>>>;

/// A mock upstream answering as each request's `mock` object says:
/// `mode` plain | stream | stream-no-usage | error | cut | slow | hang,
/// `prompt` and `completion` (the usage it reports), `events` (content
/// events of a stream).
struct Upstream {
    url: String,
    ledger: Ledger,
}

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let ledger: Ledger = Arc::default();
        let l = Arc::clone(&ledger);
        tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    return;
                };
                let l = Arc::clone(&l);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(Arc::clone(&l), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .await;
                });
            }
        });
        Self { url, ledger }
    }

    /// Tokens reported so far.
    fn total(&self) -> u64 {
        self.ledger.lock().iter().map(|x| x.1).sum()
    }
}

type MockBody = BoxBody<Bytes, std::io::Error>;

fn sse(chunks: Vec<String>, then: Option<std::io::Error>, hang: bool) -> MockBody {
    let items = chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c))));
    // The break comes a moment after the data, so that hyper has written
    // the data out (it drops unsent bytes when a body fails).
    let broken = futures_util::stream::iter(then).then(|e| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(e)
    });
    let s = futures_util::stream::iter(items).chain(broken);
    if hang {
        BodyExt::boxed(StreamBody::new(s.chain(futures_util::stream::pending())))
    } else {
        BodyExt::boxed(StreamBody::new(s))
    }
}

fn delta(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"delta": {"content": text}}]})
    )
}

fn usage_event(prompt: u64, completion: u64) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
    )
}

async fn answer(
    ledger: Ledger,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let arrived = Instant::now();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let m = &v["mock"];
    let (prompt, completion) = (
        m["prompt"].as_u64().unwrap_or(0),
        m["completion"].as_u64().unwrap_or(0),
    );
    let events = m["events"].as_u64().unwrap_or(3);
    let mode = m["mode"].as_str().unwrap_or("plain").to_owned();
    let record = |n: u64| ledger.lock().push((arrived, n));
    let stream_head = |b: MockBody| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(b)
            .unwrap()
    };
    let deltas = || {
        (0..events)
            .map(|i| delta(&format!("t{i}")))
            .collect::<Vec<_>>()
    };
    let res = match mode.as_str() {
        "plain" | "slow" => {
            if mode == "slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            record(prompt + completion);
            let b = json!({"choices": [{"message": {"content": "ok"}}],
                           "usage": {"prompt_tokens": prompt, "completion_tokens": completion}});
            Response::builder()
                .header("content-type", "application/json")
                .body(
                    http_body_util::Full::new(Bytes::from(b.to_string()))
                        .map_err(|e| match e {})
                        .boxed(),
                )
                .unwrap()
        }
        "stream" => {
            record(prompt + completion);
            let mut c = deltas();
            c.push(usage_event(prompt, completion));
            c.push("data: [DONE]\n\n".into());
            stream_head(sse(c, None, false))
        }
        "stream-no-usage" => {
            let mut c = deltas();
            c.push("data: [DONE]\n\n".into());
            stream_head(sse(c, None, false))
        }
        "cut" => {
            // A running total in every chunk, then the connection breaks.
            record(prompt + 2);
            let c = vec![usage_event(prompt, 1), usage_event(prompt, 2)];
            stream_head(sse(c, Some(std::io::Error::other("cut")), false))
        }
        "hang" => stream_head(sse(deltas(), None, true)),
        _ => Response::builder()
            .status(500)
            .header("content-type", "application/json")
            .body(
                http_body_util::Full::new(Bytes::from(r#"{"error":{"message":"boom"}}"#))
                    .map_err(|e| match e {})
                    .boxed(),
            )
            .unwrap(),
    };
    Ok(res)
}

/// A store with model `tok` on `up`, a key of workspace acme, and a
/// workspace token rule (id returned) of `limit` per `secs`.
fn setup(up: &Upstream, limit: u32, secs: u32) -> (TestStore, String, u64) {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    ts.model("tok", "tok-up", vec![ep(&up.url)], Policy::RoundRobin);
    ts.apply(vec![Change::AddRule {
        model: "tok".into(),
        spec: RuleSpec {
            target: RuleTarget::Workspace,
            workspace: "acme".into(),
            key_id: None,
            limit,
            duration_secs: secs,
            unit: RuleUnit::Tokens,
        },
    }]);
    let rule = ts.store.load().unwrap().models["tok"].rules[0].id;
    (ts, key, rule)
}

async fn gateway(ts: &TestStore, limiter: &Arc<Limiter>) -> Gw {
    let cfg = GatewayConfig {
        limiter: Some(Arc::clone(limiter)),
        ..fast_config()
    };
    Gw::start(ts, cfg).await
}

fn used(limiter: &Limiter, rule: u64) -> u64 {
    limiter
        .stats()
        .iter()
        .find(|s| s.rule_id == rule)
        .map_or(0, |s| u64::from(s.used))
}

/// A chat completion POSTed over a raw socket (so the test can leave with
/// a reset, which reqwest cannot do).
async fn raw_post(gw: &Gw, key: &str, body: &Value) -> tokio::net::TcpStream {
    let payload = serde_json::to_string(body).unwrap();
    let mut s = tokio::net::TcpStream::connect(gw.handle().local_addr())
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        payload.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut s, (head + &payload).as_bytes())
        .await
        .unwrap();
    s
}

/// Leave with a reset (linger 0), as a caller that really went away: a FIN
/// alone is a half-close, still answered (docs/gateway.md).
fn reset(s: tokio::net::TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Wait until the rule's count is `want`.
async fn wait_used(limiter: &Limiter, rule: u64, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = used(limiter, rule);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: rule count {now}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn body(mode: &str, prompt: u64, completion: u64, max_tokens: u64, stream: bool) -> Value {
    let mut b = json!({
        "model": "tok",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say something short."}],
        "mock": {"mode": mode, "prompt": prompt, "completion": completion, "events": 3},
    });
    if stream {
        b["stream"] = json!(true);
    }
    b
}

/// What the gateway reserves for `b` (the bytes reqwest sends).
fn reserved(b: &Value) -> u64 {
    estimate::estimate(
        "/v1/chat/completions",
        &serde_json::to_vec(b).unwrap(),
        4096,
    )
    .total()
}

/// The largest reservation of the bursts' bodies.
fn max_reservation() -> u64 {
    (0..128u64)
        .flat_map(|i| {
            ["plain", "stream"].map(|m| reserved(&body(m, 10, 20 + i % 81, 100, m == "stream")))
        })
        .max()
        .unwrap()
}

fn prompt_estimate(b: &Value) -> u64 {
    estimate::prompt_tokens(&serde_json::to_vec(b).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_settle_to_usage_and_failures_give_back_what_they_did_not_use() {
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, 1_000_000, 60);
    let limiter = Limiter::local();
    let gw = gateway(&ts, &limiter).await;
    let mut expect = 0;

    // Plain answer: settled to its usage.
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &body("plain", 12, 30, 200, false),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    expect += 42;
    wait_used(&limiter, rule, expect, "plain answer settled").await;

    // Stream with usage (include_usage): settled to it.
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &body("stream", 12, 55, 200, true),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    expect += 67;
    wait_used(&limiter, rule, expect, "stream with usage settled").await;

    // Stream without usage: the prompt estimate + one token per event
    // (3 deltas + [DONE]).
    let b = body("stream-no-usage", 0, 0, 200, true);
    let res = gw.post("/v1/chat/completions", &key, &b).await;
    res.bytes().await.unwrap();
    expect += prompt_estimate(&b) + 4;
    wait_used(&limiter, rule, expect, "stream without usage settled").await;

    // No max_tokens: the default cap (4096) is reserved, then settled.
    let mut b = body("slow", 1, 1, 0, false);
    b.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(reserved(&b), prompt_estimate(&b) + 4096);

    // Upstream error without usage: everything back.
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &body("error", 0, 0, 200, false),
        )
        .await;
    assert_eq!(res.status(), 500);
    res.bytes().await.unwrap();
    wait_used(&limiter, rule, expect, "error answer refunded").await;

    // Stream cut by the upstream after a running total of 12 + 2.
    let res = gw
        .post("/v1/chat/completions", &key, &body("cut", 12, 0, 200, true))
        .await;
    let _ = res.bytes().await;
    expect += 14;
    wait_used(
        &limiter,
        rule,
        expect,
        "cut stream settled to what was seen",
    )
    .await;

    // The caller goes away (a reset: a FIN alone is a half-close, still
    // answered, docs/gateway.md) while the upstream thinks: the
    // reservation is held meanwhile, then given back whole.
    let slow = raw_post(&gw, &key, &b).await;
    wait_used(
        &limiter,
        rule,
        expect + reserved(&body_without_max(&key)),
        "reservation held",
    )
    .await;
    reset(slow);
    wait_used(&limiter, rule, expect, "cancelled request refunded").await;

    // The caller goes away mid-stream (no usage seen): the prompt estimate
    // and the events it received stay counted.
    // (A reset, over a raw socket: see the cancelled request above.)
    let b = body("hang", 0, 0, 300, true);
    let mut s = raw_post(&gw, &key, &b).await;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("\n\n").count() < 3 {
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
            .await
            .unwrap();
        assert!(n > 0, "the stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    wait_used(
        &limiter,
        rule,
        expect + reserved(&b),
        "streaming request holds its reservation",
    )
    .await;
    reset(s);
    expect += prompt_estimate(&b) + 3;
    wait_used(
        &limiter,
        rule,
        expect,
        "cancelled stream settled to what was relayed",
    )
    .await;
    gw.stop().await;
}

/// The `slow` body of the cancellation case (no max_tokens).
fn body_without_max(_key: &str) -> Value {
    let mut b = body("slow", 1, 1, 0, false);
    b.as_object_mut().unwrap().remove("max_tokens");
    b
}

/// 128 concurrent callers, half streaming, against a rule of 4000 tokens
/// per 8 s: the upstream reports at most 4000 tokens for the requests
/// admitted in that window, the rule's count is exactly what it reported,
/// every 429 names the rule in OpenAI's shape with Retry-After, and once
/// the window is full nothing is admitted again before D has passed since
/// the burst began — then it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_stay_within_the_token_limit_counted_at_the_upstream() {
    const L: u64 = 4000;
    // Long enough that a burst on a loaded machine stays inside one window.
    const D: Duration = Duration::from_secs(8);
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, L as u32, D.as_secs() as u32);
    let limiter = Limiter::local();
    let gw = gateway(&ts, &limiter).await;
    let start = Instant::now();
    let calls: Vec<_> = (0..128u64)
        .map(|i| {
            let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat/completions"), key.clone());
            // Prompt 10 (under the estimate), completion 20..100 (under max_tokens).
            let b = body(
                if i % 2 == 0 { "plain" } else { "stream" },
                10,
                20 + i % 81,
                100,
                i % 2 == 1,
            );
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&b)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let text = res.text().await.unwrap();
                (status, retry, text)
            })
        })
        .collect();
    let mut ok = 0;
    let mut throttled = 0;
    for c in calls {
        let (status, retry, text) = c.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                throttled += 1;
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{text}");
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(
                    msg.contains(&format!("rule #{rule}")) && msg.contains("4000 tokens per 8s"),
                    "{msg}"
                );
                assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
            }
            other => panic!("status {other}: {text}"),
        }
    }
    let burst = start.elapsed();
    assert!(
        burst < D,
        "the burst took {burst:?}, longer than the window: the bound below would not apply"
    );
    let total = up.total();
    assert!(
        total <= L,
        "the upstream reported {total} tokens in one window of {L}"
    );
    // A refusal means the reservations held plus its own exceeded L, so at
    // least L / (largest reservation) were admitted.
    assert!(
        throttled > 0 && ok >= L / max_reservation(),
        "{ok} admitted, {throttled} throttled"
    );
    wait_used(
        &limiter,
        rule,
        total,
        "the rule counts exactly what the upstream reported",
    )
    .await;

    // Fill the window (one request at a time, so nothing is in flight). A
    // 429 counts as full only once the previous answer's settlement is in
    // (it gives back what the reservation did not use, and may land just
    // after the answer).
    let fill = async || {
        let res = gw
            .post(
                "/v1/chat/completions",
                &key,
                &body("plain", 10, 100, 100, false),
            )
            .await;
        let status = res.status();
        res.bytes().await.unwrap();
        status
    };
    loop {
        if fill().await == 429 {
            wait_used(&limiter, rule, up.total(), "every settlement is in").await;
            if fill().await == 429 {
                break;
            }
        }
        assert!(start.elapsed() < D, "the window never filled");
    }
    assert!(up.total() <= L);
    // Admitted again only once the burst's tokens leave the window.
    let again = wait_for("a request admitted again", || async {
        let res = gw
            .post(
                "/v1/chat/completions",
                &key,
                &body("plain", 10, 50, 100, false),
            )
            .await;
        let ok = res.status() == 200;
        res.bytes().await.unwrap();
        ok.then(|| start.elapsed())
    })
    .await;
    assert!(
        again >= D,
        "admitted again {again:?} after the burst began, before the window of {D:?}"
    );
    gw.stop().await;
}

/// A reservation larger than the rule is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_above_the_limit_is_refused_naming_the_cap() {
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, 1000, 60);
    let limiter = Limiter::local();
    let gw = gateway(&ts, &limiter).await;
    // No max_tokens: the default cap of 4096 alone is above the limit.
    let mut b = body("plain", 1, 1, 0, false);
    b.as_object_mut().unwrap().remove("max_tokens");
    let (status, headers, err) = error_of(gw.post("/v1/chat/completions", &key, &b).await).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("rule #{rule}"))
            && msg.contains(&format!("reserves {}", reserved(&b)))
            && msg.contains("lower max_tokens"),
        "{msg}"
    );
    assert_eq!(used(&limiter, rule), 0);
    assert_eq!(up.total(), 0, "nothing reached the upstream");
    // With a cap that fits, it passes.
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &body("plain", 5, 5, 100, false),
        )
        .await;
    assert_eq!(res.status(), 200);
    gw.stop().await;
}

/// Two gateways (each its own shared limiter, as two replicas) behind one
/// Redis, 128 callers spread over both: together they admit at most L
/// tokens in the window (counted at the upstream), Redis counts exactly
/// what the upstream reported, and room comes back only after D.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_stay_within_the_token_limit_together() {
    const L: u64 = 4000;
    // Long enough that a burst on a loaded machine stays inside one window.
    const D: Duration = Duration::from_secs(8);
    let redis = redis_server::RedisServer::start();
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, L as u32, D.as_secs() as u32);
    let key_id = ts.store.load().unwrap().keys.keys().next().unwrap().clone();
    let shared = || SharedConfig {
        timeout: Duration::from_secs(2),
        heartbeat: Duration::from_millis(200),
        retry: Duration::from_millis(100),
        ..SharedConfig::default()
    };
    let la = Limiter::shared(&redis.url(), shared()).await.unwrap();
    let lb = Limiter::shared(&redis.url(), shared()).await.unwrap();
    let gws = [gateway(&ts, &la).await, gateway(&ts, &lb).await];
    let start = Instant::now();
    let calls: Vec<_> = (0..128u64)
        .map(|i| {
            let gw = &gws[i as usize % 2];
            let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat/completions"), key.clone());
            let b = body(
                if i % 4 < 2 { "plain" } else { "stream" },
                10,
                20 + i % 81,
                100,
                i % 4 >= 2,
            );
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&b)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let text = res.text().await.unwrap();
                (status, text)
            })
        })
        .collect();
    let mut ok = [0; 2];
    let mut throttled = 0;
    for (i, c) in calls.into_iter().enumerate() {
        match c.await.unwrap() {
            (200, _) => ok[i % 2] += 1,
            (429, text) => {
                throttled += 1;
                assert!(
                    text.contains(&format!("rule #{rule}")) && text.contains("tokens"),
                    "{text}"
                );
            }
            (status, text) => panic!("status {status}: {text}"),
        }
    }
    let burst = start.elapsed();
    assert!(
        burst < D,
        "the burst took {burst:?}, longer than the window: the bound below would not apply"
    );
    assert_eq!(
        (la.mode(), lb.mode()),
        (LimiterMode::Shared, LimiterMode::Shared)
    );
    let total = up.total();
    assert!(
        total <= L,
        "two gateways let {total} tokens through one window of {L}"
    );
    assert!(
        throttled > 0 && ok[0] + ok[1] >= L / max_reservation(),
        "admitted {ok:?}, throttled {throttled}"
    );
    // Redis (read live by either gateway) counts exactly what the upstream
    // reported, once every settlement is in.
    let settled = async || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = gws[1]
                .handle()
                .view()
                .explain("tok", &key_id, "acme")
                .await
                .unwrap();
            let (used, total) = (u64::from(e.rules[0].used), up.total());
            if used == total {
                assert_eq!(e.rules[0].unit, RuleUnit::Tokens);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Redis counts {used}, the upstream reported {total}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    settled().await;
    // Fill the window through one gateway; the other admits again only after D.
    // A 429 counts as full only once the previous answers' settlements are
    // in (a settlement gives back what a reservation did not use, and may
    // land just after its answer).
    let fill = async || {
        let res = gws[0]
            .post(
                "/v1/chat/completions",
                &key,
                &body("plain", 10, 100, 100, false),
            )
            .await;
        let status = res.status();
        res.bytes().await.unwrap();
        status
    };
    loop {
        if fill().await == 429 {
            settled().await;
            if fill().await == 429 {
                break;
            }
        }
        assert!(start.elapsed() < D, "the window never filled");
    }
    assert!(up.total() <= L);
    let again = wait_for("a request admitted again", || async {
        let res = gws[1]
            .post(
                "/v1/chat/completions",
                &key,
                &body("plain", 10, 50, 100, false),
            )
            .await;
        let ok = res.status() == 200;
        res.bytes().await.unwrap();
        ok.then(|| start.elapsed())
    })
    .await;
    assert!(
        again >= D,
        "admitted again {again:?} after the burst began, before the window of {D:?}"
    );
    for gw in gws {
        gw.stop().await;
    }
}

/// Give model `tok` a completion cap (`None`: the default).
fn set_cap(ts: &TestStore, cap: Option<u32>) {
    let mut spec = ts.store.load().unwrap().models["tok"].spec.clone();
    spec.completion_cap = cap;
    ts.apply(vec![Change::UpdateModel {
        name: "tok".into(),
        spec,
    }]);
}

/// What the gateway reserves for `b` under completion cap `cap`.
fn reserved_at(b: &Value, cap: u64) -> u64 {
    estimate::estimate("/v1/chat/completions", &serde_json::to_vec(b).unwrap(), cap).total()
}

/// A model's completion cap is what a request without max_tokens reserves
/// for its completion: prompt estimate + 100, held while the answer runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_completion_cap_replaces_the_default_for_requests_without_max_tokens() {
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, 1000, 60);
    set_cap(&ts, Some(100));
    let limiter = Limiter::local();
    let gw = gateway(&ts, &limiter).await;
    let mut b = body("hang", 1, 1, 0, false);
    b.as_object_mut().unwrap().remove("max_tokens");
    let want = reserved_at(&b, 100);
    assert_eq!(want, prompt_estimate(&b) + 100);
    // At the default cap the same body would not fit the rule at all.
    assert!(reserved(&b) > 1000);
    let s = raw_post(&gw, &key, &b).await;
    wait_used(&limiter, rule, want, "held while the answer hangs").await;
    reset(s);
    // Back to the default: the same body is refused as above the limit.
    set_cap(&ts, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = {
            let mut b = body("plain", 1, 1, 0, false);
            b.as_object_mut().unwrap().remove("max_tokens");
            b
        };
        let res = gw.post("/v1/chat/completions", &key, &b).await;
        if res.status() == 429 {
            let (_, _, err) = error_of(res).await;
            let msg = err["message"].as_str().unwrap();
            assert!(msg.contains(&format!("reserves {}", reserved(&b))), "{msg}");
            break;
        }
        assert!(Instant::now() < deadline, "the default cap never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

/// Admitted answers carry the tightest token rule's `x-ratelimit-*-tokens`
/// (and no request-rule headers when the model has none); a 429 from a
/// token rule carries them with the rule's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rules_send_openai_token_headers() {
    let up = Upstream::start().await;
    let (ts, key, rule) = setup(&up, 1000, 60);
    let limiter = Limiter::local();
    let gw = gateway(&ts, &limiter).await;
    let b = body("plain", 5, 7, 100, false);
    let r1 = reserved(&b);
    let res = gw.post("/v1/chat/completions", &key, &b).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let _ = res.bytes().await.unwrap();
    let get = |h: &reqwest::header::HeaderMap, n: &str| {
        h.get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {n} in {h:?}"))
    };
    assert_eq!(get(&h, "x-ratelimit-limit-tokens"), "1000");
    // What was left right after the reservation was counted.
    assert_eq!(
        get(&h, "x-ratelimit-remaining-tokens"),
        (1000 - r1).to_string()
    );
    // The window empties 60 s (+ at most one 1% bucket) after admission.
    let reset = get(&h, "x-ratelimit-reset-tokens");
    assert!(
        ["59.", "1m0", "1m0."].iter().any(|p| reset.starts_with(p)) || reset == "1m0s",
        "{reset}"
    );
    assert!(
        h.get("x-ratelimit-limit").is_none(),
        "no request rule: {h:?}"
    );
    // Settled to usage (12), the next one sees 1000 − 12 − its reservation.
    wait_used(&limiter, rule, 12, "settled").await;
    let b2 = body("plain", 5, 7, 940, false);
    let r2 = reserved(&b2);
    assert!(12 + r2 > 1000 && r2 < 1000, "b2 must not fit: {r2}");
    let (status, h, err) = error_of(gw.post("/v1/chat/completions", &key, &b2).await).await;
    assert_eq!(status, 429);
    assert_eq!(get(&h, "x-ratelimit-limit-tokens"), "1000");
    assert_eq!(get(&h, "x-ratelimit-remaining-tokens"), "988");
    assert!(get(&h, "x-ratelimit-reset-tokens").ends_with('s'));
    assert_eq!(get(&h, "x-ratelimit-rule"), rule.to_string());
    let retry: u64 = get(&h, "retry-after").parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("rule #{rule}"))
            && msg.contains(&format!("reserves {r2}"))
            && msg.contains(&format!("The tokens free up in {retry}s")),
        "{msg}"
    );
    assert!(h.get("x-ratelimit-limit").is_none(), "{h:?}");
    gw.stop().await;
}
