//! Failover, endpoints leaving the rotation, probes bringing them back, and
//! operator-disabled endpoints staying out.

use maasctl::domain::{Change, EndpointState, Policy, Probe};
use maasctl::store::Store;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_a_dead_endpoint_fails_no_request_and_reports_why() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let live = mock("live").await;
    let dead = dead_url();
    ts.model(
        "fo",
        "x",
        vec![ep(&dead), ep(&live.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    for i in 0..60 {
        assert_eq!(
            answered_by(gw.chat(&key, "fo").await).await,
            "live",
            "request {i}"
        );
    }
    assert_eq!(live.hits(), 60);
    let s = gw
        .wait_stats(
            "the dead endpoint out of rotation and all requests counted",
            |s| {
                s.endpoints
                    .iter()
                    .any(|e| e.index == 0 && e.state == EndpointState::Down)
                    && s.gateway.requests == 60
                    && s.gateway.in_flight == 0
            },
        )
        .await;
    let e = s.endpoints.iter().find(|e| e.index == 0).unwrap();
    let reason = e.reason.as_deref().unwrap();
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    assert!(e.since_ms.is_some());
    assert_eq!(s.gateway.success, 60);
    assert_eq!(s.gateway.upstream_errors, 0);
    assert_eq!(
        s.endpoints[0].totals.upstream_errors,
        s.endpoints[0].totals.requests
    );
    // The report in the store says the same (that is where "gateway status" comes from).
    let report = wait_for("the report to show the endpoint down", || async {
        ts.store.reports().unwrap().into_iter().find(|r| {
            r.endpoints
                .iter()
                .any(|e| e.index == 0 && e.state == EndpointState::Down && e.reason.is_some())
        })
    })
    .await;
    assert_eq!(report.applied_revision, ts.revision());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_endpoint_is_probed_back_into_rotation() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let mut a = mock("a").await;
    let b = mock("b").await;
    ts.model(
        "pb",
        "x",
        vec![ep(&a.base_url()), ep(&b.base_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    a.stop().await;
    // Every request still succeeds while `a` fails and leaves the rotation.
    for _ in 0..10 {
        assert_eq!(answered_by(gw.chat(&key, "pb").await).await, "b");
    }
    gw.wait_stats("a to be down", |s| {
        s.endpoints[0].state == EndpointState::Down
    })
    .await;
    a.restart().await.unwrap();
    // The probe makes it half-open; its first real answer brings it back.
    gw.wait_stats("a to be probed half-open", |s| {
        s.endpoints[0].state == EndpointState::HalfOpen
            && s.events.iter().any(|e| e.message.contains("half-open"))
    })
    .await;
    assert!(
        a.seen()
            .iter()
            .any(|r| r.path == "/v1/models" && r.method == "GET"),
        "the probe is GET /models"
    );
    let mut got_a = 0;
    for _ in 0..10 {
        if answered_by(gw.chat(&key, "pb").await).await == "a" {
            got_a += 1;
        }
    }
    assert_eq!(got_a, 5, "back in the round-robin cycle");
    let s = gw
        .wait_stats("a to be back after its trial", |s| {
            s.endpoints[0].state == EndpointState::Healthy
                && s.events
                    .iter()
                    .any(|e| e.message.contains("back in rotation"))
        })
        .await;
    assert_eq!(s.endpoints[0].reason, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_none_comes_back_after_the_cool_down() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let mut a = mock("a").await;
    let b = mock("b").await;
    let mut e0 = ep(&a.base_url());
    e0.probe = Probe::None;
    ts.model("pn", "x", vec![e0, ep(&b.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    a.stop().await;
    for _ in 0..10 {
        assert_eq!(answered_by(gw.chat(&key, "pn").await).await, "b");
    }
    gw.wait_stats("a to be down", |s| {
        s.endpoints[0].state == EndpointState::Down
    })
    .await;
    a.restart().await.unwrap();
    gw.wait_stats("a to be half-open after its back-off", |s| {
        s.endpoints[0].state == EndpointState::HalfOpen
    })
    .await;
    assert!(
        a.seen().is_empty(),
        "probe none sends nothing to the endpoint"
    );
    // Real traffic is the trial.
    let mut got_a = 0;
    for _ in 0..4 {
        if answered_by(gw.chat(&key, "pn").await).await == "a" {
            got_a += 1;
        }
    }
    assert_eq!(got_a, 2);
    gw.wait_stats("a to be back after its trial", |s| {
        s.endpoints[0].state == EndpointState::Healthy
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_is_never_probed_back() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let off = mock("off").await; // alive: a probe would succeed
    let mut flaky = mock("flaky").await;
    let steady = mock("steady").await;
    ts.model(
        "dis",
        "x",
        vec![
            ep(&off.base_url()),
            ep(&flaky.base_url()),
            ep(&steady.base_url()),
        ],
        Policy::RoundRobin,
    );
    ts.apply(vec![Change::SetEndpointDisabled {
        model: "dis".into(),
        index: 0,
        disabled: true,
    }]);
    let gw = Gw::start(&ts, fast_config()).await;
    flaky.stop().await;
    for _ in 0..10 {
        assert_eq!(answered_by(gw.chat(&key, "dis").await).await, "steady");
    }
    gw.wait_stats("flaky to be down", |s| {
        s.endpoints[1].state == EndpointState::Down
    })
    .await;
    flaky.restart().await.unwrap();
    // Once the prober has brought `flaky` back, it has had its chance at `off` too.
    let s = gw
        .wait_stats("flaky to be probed half-open", |s| {
            s.endpoints[1].state == EndpointState::HalfOpen
        })
        .await;
    assert_eq!(s.endpoints[0].state, EndpointState::Disabled);
    assert_eq!(
        s.endpoints[0].reason.as_deref(),
        Some("disabled by the operator")
    );
    assert_eq!(
        off.hits(),
        0,
        "a disabled endpoint gets neither traffic nor probes"
    );
    // Re-enabling it by the operator puts it back.
    ts.apply(vec![Change::SetEndpointDisabled {
        model: "dis".into(),
        index: 0,
        disabled: false,
    }]);
    gw.wait_stats("the operator's re-enable to apply", |s| {
        s.endpoints[0].state == EndpointState::Healthy
    })
    .await;
    let mut hit_off = false;
    for _ in 0..6 {
        hit_off |= answered_by(gw.chat(&key, "dis").await).await == "off";
    }
    assert!(hit_off);
    gw.stop().await;
}
