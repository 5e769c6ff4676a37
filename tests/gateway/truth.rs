//! What the gateway publishes is true: endpoints never contacted are
//! `unknown` (in rotation, not claimed healthy), a newly saved endpoint is
//! probed at once, and the counters are published at least once a second
//! even when idle (so readers see rates fall to zero and notice silence).

use std::time::Instant;

use maasctl::domain::{EndpointState, Policy, Probe};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_unknown_until_evidence_and_new_ones_are_probed_at_once() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let live = mock("live").await;
    ts.model("u", "x", vec![ep(&live.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    // Never contacted: unknown, and it stays so (no probe at start).
    let s = gw
        .wait_stats("the first snapshot", |s| !s.endpoints.is_empty())
        .await;
    assert_eq!(s.endpoints[0].state, EndpointState::Unknown);
    // Unknown is in rotation: the first call goes there and makes it healthy.
    assert_eq!(answered_by(gw.chat(&key, "u").await).await, "live");
    gw.wait_stats("one answer: healthy", |s| {
        s.endpoints[0].state == EndpointState::Healthy
    })
    .await;

    // A newly saved endpoint that refuses: probed at once, down with the
    // probe's reason, never healthy; no caller needed to find out.
    let other = mock("other").await;
    let mut silent = ep(&other.base_url());
    silent.probe = Probe::None;
    ts.model(
        "n",
        "x",
        vec![ep(&dead_url()), ep(&live.base_url()), silent],
        Policy::RoundRobin,
    );
    let mut rx = gw.handle().stats();
    let deadline = Instant::now() + DEADLINE;
    let down = loop {
        let s = rx.borrow_and_update().clone();
        let n: Vec<_> = s.endpoints.iter().filter(|e| e.model == "n").collect();
        if let Some(e) = n.iter().find(|e| e.index == 0) {
            assert_ne!(
                e.state,
                EndpointState::Healthy,
                "a refusing endpoint is never healthy"
            );
        }
        if n.len() == 3 && n[0].state == EndpointState::Down && n[1].state == EndpointState::Healthy
        {
            break s;
        }
        assert!(Instant::now() < deadline, "timed out: {s:?}");
        let _ = tokio::time::timeout(deadline - Instant::now(), rx.changed()).await;
    };
    let n: Vec<_> = down.endpoints.iter().filter(|e| e.model == "n").collect();
    let reason = n[0].reason.as_deref().unwrap();
    assert!(
        reason.starts_with("probe failed") && reason.contains("refused"),
        "{reason}"
    );
    assert!(n[0].since_ms.is_some());
    assert!(
        live.seen().iter().any(|r| r.path == "/v1/models"),
        "the live one was probed (GET /models) and is healthy"
    );
    // Probe none: no probe, so nothing is known until a call.
    assert_eq!(n[2].state, EndpointState::Unknown);
    assert!(other.seen().is_empty());
    assert!(
        down.events
            .iter()
            .any(|e| e.message.contains("failed its first probe")),
        "{:?}",
        down.events
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_still_publishes_a_snapshot_a_second() {
    let ts = TestStore::new();
    let gw = Gw::start(&ts, fast_config()).await;
    let mut rx = gw.handle().stats();
    let first = rx.borrow_and_update().clone();
    // Nothing moves, yet new snapshots come (a second apart; without the
    // heartbeat none would), each taken later, same start.
    let mut last = first.taken_ms;
    for _ in 0..2 {
        tokio::time::timeout(DEADLINE, rx.changed())
            .await
            .unwrap()
            .unwrap();
        let s = rx.borrow_and_update().clone();
        assert!(s.taken_ms > last);
        assert_eq!(s.started_ms, first.started_ms);
        assert!(s.started_ms > 0);
        last = s.taken_ms;
    }
    gw.stop().await;
}
