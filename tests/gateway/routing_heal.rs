//! Routing that heals itself (issue 14): outlier ejection by failure rate,
//! half-open trials, and never every endpoint out at once.

use std::time::{Duration, Instant};

use maasctl::demo::upstream::MockConfig;
use maasctl::domain::{EndpointState, Policy};
use maasctl::gateway::StatsSnapshot;

use crate::support::*;

fn endpoint_event(s: &StatsSnapshot, index: usize, what: &str) -> bool {
    s.events
        .iter()
        .any(|e| e.message.starts_with(&format!("endpoint {index} ")) && e.message.contains(what))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_endpoint_is_ejected_and_heals_through_half_open_with_no_failed_request() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let flaky = mock_with(MockConfig {
        label: "flaky".into(),
        fail_rate: 0.3,
        fail_status: 503,
        ..MockConfig::default()
    })
    .await;
    let steady = mock("steady").await;
    ts.model(
        "heal",
        "x",
        vec![ep(&flaky.base_url()), ep(&steady.base_url())],
        Policy::RoundRobin,
    );
    let mut cfg = fast_config();
    cfg.cooldown_max = Duration::from_secs(2);
    let gw = Gw::start(&ts, cfg).await;
    // 30 % of flaky's answers are 503: every caller still gets a 200 (the
    // failed try moves to steady), and flaky is ejected by its rate.
    for i in 0..200 {
        let who = answered_by(gw.chat(&key, "heal").await).await;
        assert!(who == "flaky" || who == "steady", "request {i}: {who}");
    }
    let s = gw
        .wait_stats("flaky ejected by its failure rate", |s| {
            endpoint_event(s, 0, "left the rotation") && s.gateway.requests == 200
        })
        .await;
    assert_eq!(s.gateway.success, 200, "no caller saw a failure");
    let ejected = s
        .events
        .iter()
        .find(|e| e.message.starts_with("endpoint 0 ") && e.message.contains("left the rotation"))
        .unwrap();
    assert!(
        ejected.message.contains("tries failed in 10s"),
        "{}",
        ejected.message
    );
    assert!(
        !endpoint_event(&s, 1, "left the rotation"),
        "steady never left"
    );
    // Healed: it comes back through half-open, callers still see only 200s.
    flaky.configure(|c| c.fail_rate = 0.0);
    let deadline = Instant::now() + DEADLINE;
    loop {
        answered_by(gw.chat(&key, "heal").await).await;
        let s = gw.handle().stats().borrow().clone();
        if s.endpoints[0].state == EndpointState::Healthy
            && endpoint_event(&s, 0, "half-open")
            && endpoint_event(&s, 0, "back in rotation")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flaky never came back: {:?}",
            s.endpoints[0]
        );
        tokio::task::yield_now().await;
    }
    let mut got = [0usize; 2];
    for _ in 0..40 {
        match answered_by(gw.chat(&key, "heal").await).await.as_str() {
            "flaky" => got[0] += 1,
            _ => got[1] += 1,
        }
    }
    assert_eq!(got, [20, 20], "back in the round-robin cycle");
    let s = gw
        .wait_stats("every request counted", |s| s.gateway.in_flight == 0)
        .await;
    assert_eq!(s.gateway.success, s.gateway.requests, "no failed request");
    assert_eq!(s.endpoints[0].reason, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_error_does_not_eject() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let a = mock_with(MockConfig {
        label: "a".into(),
        status: Some(500),
        ..MockConfig::default()
    })
    .await;
    let b = mock("b").await;
    ts.model(
        "one",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // The first pick is a: its 500 moves the request to b.
    assert_eq!(answered_by(gw.chat(&key, "one").await).await, "b");
    assert_eq!(a.hits(), 1);
    a.configure(|c| c.status = None);
    let mut got_a = 0;
    for _ in 0..20 {
        if answered_by(gw.chat(&key, "one").await).await == "a" {
            got_a += 1;
        }
    }
    assert_eq!(got_a, 10, "a stayed in the cycle");
    let s = gw
        .wait_stats("all requests counted", |s| {
            s.gateway.requests == 21 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.endpoints[0].state, EndpointState::Healthy);
    assert_eq!(s.endpoints[0].totals.upstream_errors, 1);
    assert!(!endpoint_event(&s, 0, "left the rotation"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_out_keeps_serving_through_the_least_recently_failed() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let broken = || MockConfig {
        status: Some(500),
        ..MockConfig::default()
    };
    let a = mock_with(MockConfig {
        label: "a".into(),
        ..broken()
    })
    .await;
    let b = mock_with(MockConfig {
        label: "b".into(),
        ..broken()
    })
    .await;
    ts.model(
        "allout",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url())],
        Policy::RoundRobin,
    );
    let mut cfg = fast_config();
    // No trial during the test: both stay ejected.
    cfg.cooldown = Duration::from_secs(60);
    let gw = Gw::start(&ts, cfg).await;
    for _ in 0..6 {
        // Each request tries both; the last 500 passes through.
        assert_eq!(gw.chat(&key, "allout").await.status(), 500);
    }
    let s = gw
        .wait_stats("both ejected", |s| {
            s.endpoints.iter().all(|e| e.state == EndpointState::Down)
        })
        .await;
    let serving = "all endpoints out: serving through the least recently failed";
    let marked: Vec<usize> = s
        .endpoints
        .iter()
        .filter(|e| e.reason.as_deref().unwrap_or("").contains(serving))
        .map(|e| e.index)
        .collect();
    assert_eq!(marked.len(), 1, "{:?}", s.endpoints);
    let lrf = marked[0];
    let label = ["a", "b"][lrf];
    // Both heal but stay ejected (long back-off): the least recently
    // failed one keeps serving, so callers get answers.
    a.configure(|c| c.status = None);
    b.configure(|c| c.status = None);
    for i in 0..10 {
        assert_eq!(
            answered_by(gw.chat(&key, "allout").await).await,
            label,
            "request {i}"
        );
    }
    let s = gw
        .wait_stats("the answers counted", |s| s.gateway.success == 10)
        .await;
    assert!(s.endpoints.iter().all(|e| e.state == EndpointState::Down));
    assert!(
        s.endpoints[lrf]
            .reason
            .as_deref()
            .unwrap()
            .contains(serving)
    );
    // The report says the same.
    let report = wait_for("the report to show the last resort", || async {
        use maasctl::store::Store;
        ts.store.reports().unwrap().into_iter().find(|r| {
            r.endpoints
                .iter()
                .any(|e| e.index == lrf && e.reason.as_deref().is_some_and(|w| w.contains(serving)))
        })
    })
    .await;
    assert_eq!(report.endpoints.len(), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_cools_exactly_that_endpoint_for_its_retry_after() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let a = mock_with(MockConfig {
        label: "a".into(),
        status: Some(429),
        retry_after: Some("2".into()),
        ..MockConfig::default()
    })
    .await;
    let b = mock("b").await;
    let c = mock("c").await;
    ts.model(
        "cool",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url()), ep(&c.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // The first pick is a: its 429 cools it, the request moves on.
    let before = maasctl::domain::now_ms();
    assert_eq!(answered_by(gw.chat(&key, "cool").await).await, "b");
    let t0 = Instant::now();
    a.configure(|c| c.status = None); // a would answer now if asked
    let s = gw
        .wait_stats("a cooling", |s| {
            s.endpoints[0].state == EndpointState::Cooling
        })
        .await;
    let reason = s.endpoints[0].reason.clone().unwrap();
    assert!(reason.contains("429"), "{reason}");
    assert!(endpoint_event(&s, 0, "is cooling for 2.0s"));
    assert_eq!(s.endpoints[1].state, EndpointState::Healthy);
    let report = wait_for("the report to show a cooling until when", || async {
        use maasctl::store::Store;
        ts.store.reports().unwrap().into_iter().find_map(|r| {
            r.endpoints
                .into_iter()
                .find(|e| e.index == 0 && e.state == EndpointState::Cooling)
        })
    })
    .await;
    let until = report.until_ms.expect("until_ms in the report");
    assert!(
        until >= before + 2000 && until <= maasctl::domain::now_ms() + 2000,
        "until {until} vs start {before}"
    );
    // The others serve every request until a's 2 s are over.
    let mut others = [0usize; 2];
    let back = loop {
        let who = answered_by(gw.chat(&key, "cool").await).await;
        match who.as_str() {
            "a" => break t0.elapsed(),
            "b" => others[0] += 1,
            _ => others[1] += 1,
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "a never came back");
    };
    assert_eq!(a.hits(), 2, "nothing reached a while it cooled");
    assert!(
        back >= Duration::from_millis(1800) && back < Duration::from_millis(3000),
        "a back after {back:?}"
    );
    assert!(others[0] > 10 && others[1] > 10, "{others:?}");
    gw.wait_stats("the end of the cooling in the events", |s| {
        endpoint_event(s, 0, "back in rotation after cooling")
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_see_429_only_when_every_endpoint_cools() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let limited = |label: &str, secs: &str| MockConfig {
        label: label.into(),
        status: Some(429),
        retry_after: Some(secs.into()),
        ..MockConfig::default()
    };
    let a = mock_with(limited("a", "2")).await;
    let b = mock_with(limited("b", "4")).await;
    ts.model(
        "busy",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // a then b answer 429: b's answer passes on, with the soonest end (a's 2 s).
    let res = gw.chat(&key, "busy").await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "2");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["error"]["message"], "mock b answers 429",
        "the upstream's own answer"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    // Both cool: the gateway answers 429 itself, nothing goes upstream.
    let (status, headers, err) = error_of(gw.chat(&key, "busy").await).await;
    assert_eq!(status, 429);
    assert_eq!(err["code"], "upstream_rate_limited");
    let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    assert_eq!((a.hits(), b.hits()), (1, 1));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_sends_less_to_a_slow_endpoint() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let slow = mock_with(MockConfig {
        label: "slow".into(),
        latency: Duration::from_millis(150),
        ..MockConfig::default()
    })
    .await;
    let (f1, f2) = (mock("f1").await, mock("f2").await);
    ts.model(
        "ll",
        "x",
        vec![ep(&slow.base_url()), ep(&f1.base_url()), ep(&f2.base_url())],
        Policy::LeastLoaded,
    );
    let gw = std::sync::Arc::new(Gw::start(&ts, fast_config()).await);
    // 6 callers, 30 requests each, back to back.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (gw, key) = (gw.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..30 {
                    answered_by(gw.chat(&key, "ll").await).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = slow.hits() + f1.hits() + f2.hits();
    assert_eq!(total, 180);
    // An even split would give slow 60.
    assert!(slow.hits() <= 18, "slow got {} of 180", slow.hits());
    assert!(
        f1.hits() >= 60 && f2.hits() >= 60,
        "{} {}",
        f1.hits(),
        f2.hits()
    );
    std::sync::Arc::into_inner(gw).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_endpoint_finishes_its_stream_and_gets_nothing_new() {
    use futures_util::StreamExt;
    use maasctl::domain::Change;
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    // 20 chunks 50 ms apart: a stream of about a second.
    let a = mock_with(MockConfig {
        label: "a".into(),
        chunks: 20,
        chunk_delay: Duration::from_millis(50),
        ..MockConfig::default()
    })
    .await;
    let b = mock("b").await;
    ts.model(
        "dr",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    // The first pick is a: a stream starts there.
    let res = gw
        .post(
            "/v1/chat/completions",
            &key,
            &serde_json::json!({"model": "dr", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut body = stream.next().await.unwrap().unwrap().to_vec();
    assert_eq!(a.hits(), 1);
    ts.apply(vec![Change::SetEndpointDrain {
        model: "dr".into(),
        index: 0,
        drain: true,
    }]);
    gw.wait_applied(&ts).await;
    let s = gw
        .wait_stats("a draining", |s| {
            s.endpoints[0].state == EndpointState::Draining
        })
        .await;
    assert!(
        s.endpoints[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("1 request(s) still in flight"),
        "{:?}",
        s.endpoints[0]
    );
    // Nothing new goes to a while its stream runs.
    for _ in 0..10 {
        assert_eq!(answered_by(gw.chat(&key, "dr").await).await, "b");
    }
    assert_eq!(a.hits(), 1);
    // The stream finishes whole.
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(body).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(a.completed(), 1);
    gw.wait_stats("a drained", |s| {
        s.endpoints[0].state == EndpointState::Drained
    })
    .await;
    // Undrained: back in the cycle.
    ts.apply(vec![Change::SetEndpointDrain {
        model: "dr".into(),
        index: 0,
        drain: false,
    }]);
    gw.wait_applied(&ts).await;
    let mut got_a = 0;
    for _ in 0..4 {
        if answered_by(gw.chat(&key, "dr").await).await == "a" {
            got_a += 1;
        }
    }
    assert_eq!(got_a, 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_show_each_endpoint_state_and_its_share_of_the_last_minute() {
    use maasctl::store::Store;
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let live = mock("live").await;
    let dead = dead_url();
    ts.model(
        "rt",
        "x",
        vec![ep(&dead), ep(&live.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    for _ in 0..20 {
        assert_eq!(answered_by(gw.chat(&key, "rt").await).await, "live");
    }
    // Dead took 5 tries (the 5th ejected it); live answered all 20.
    let rows = wait_for("the report to carry the last minute's tries", || async {
        let reg = ts.store.load().unwrap();
        let rows = maasctl::domain::endpoint_routes(
            &reg.models["rt"],
            &ts.store.reports().unwrap(),
            maasctl::domain::now_ms(),
        );
        (rows[1].requests_1m == 20).then_some(rows)
    })
    .await;
    assert_eq!(rows[0].state, Some(EndpointState::Down));
    assert!(
        rows[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("5 of 5 tries failed"),
        "{rows:?}"
    );
    assert!(rows[0].since_ms.is_some());
    assert_eq!(rows[0].requests_1m, 5);
    assert_eq!(rows[1].state, Some(EndpointState::Healthy));
    assert_eq!(rows[1].reason, None);
    let share = rows[1].share.unwrap();
    assert!((share - 20.0 / 25.0).abs() < 1e-9, "{share}");
    gw.stop().await;
}
