//! Fallback models (docs/gateway.md, "Fallback models"): a model none of
//! whose endpoints can answer hands the request to its fallbacks, in order,
//! each under its own rules; `x-maasctl-model` names who answered.

use maasctl::domain::{Change, Policy, RuleUnit};
use maasctl::store::Store;
use serde_json::Value;

use crate::support::*;

/// Set `model`'s fallbacks (the models exist).
fn set_fallbacks(ts: &TestStore, model: &str, fallbacks: &[&str]) {
    let mut spec = ts.store.load().unwrap().model(model).unwrap().spec.clone();
    spec.fallbacks = fallbacks.iter().map(|f| f.to_string()).collect();
    ts.apply(vec![Change::UpdateModel {
        name: model.into(),
        spec,
    }]);
}

/// The answering model's header and the `model` the upstream was sent.
async fn who(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let header = res
        .headers()
        .get("x-maasctl-model")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    (status, header, model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_hands_over_to_its_fallback_and_a_live_one_answers_itself() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let backup = mock("backup").await;
    ts.model(
        "backup",
        "backup-upstream",
        vec![ep(&backup.base_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "main",
        "main-upstream",
        vec![ep(&dead_url())],
        Policy::RoundRobin,
    );
    set_fallbacks(&ts, "main", &["backup"]);
    let gw = Gw::start(&ts, fast_config()).await;
    for _ in 0..5 {
        let (status, header, model) = who(gw.chat(&key, "main").await).await;
        assert_eq!(status, 200);
        assert_eq!(header, "backup", "the fallback answered");
        assert_eq!(
            model, "backup-upstream",
            "the body carries the fallback's model ID"
        );
    }
    gw.stop().await;

    // The same primary, alive: it answers itself, and says so.
    let primary = mock("primary").await;
    let ts2 = TestStore::new();
    let (_, key2) = ts2.key("acme", "k");
    ts2.model(
        "backup",
        "backup-upstream",
        vec![ep(&backup.base_url())],
        Policy::RoundRobin,
    );
    ts2.model(
        "main",
        "main-upstream",
        vec![ep(&primary.base_url())],
        Policy::RoundRobin,
    );
    set_fallbacks(&ts2, "main", &["backup"]);
    let gw = Gw::start(&ts2, fast_config()).await;
    let (status, header, model) = who(gw.chat(&key2, "main").await).await;
    assert_eq!(
        (status, header.as_str(), model.as_str()),
        (200, "main", "main-upstream")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_tried_in_order_past_a_dead_one() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let last = mock("last").await;
    ts.model(
        "second",
        "second-upstream",
        vec![ep(&dead_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "third",
        "third-upstream",
        vec![ep(&last.base_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "first",
        "first-upstream",
        vec![ep(&dead_url())],
        Policy::RoundRobin,
    );
    set_fallbacks(&ts, "first", &["second", "third"]);
    let gw = Gw::start(&ts, fast_config()).await;
    let (status, header, model) = who(gw.chat(&key, "first").await).await;
    assert_eq!(
        (status, header.as_str(), model.as_str()),
        (200, "third", "third-upstream")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallbacks_own_rule_throttles_and_its_429_is_the_answer() {
    let ts = TestStore::new();
    let (key_id, key) = ts.key("acme", "k");
    let backup = mock("backup").await;
    ts.model(
        "backup",
        "backup-upstream",
        vec![ep(&backup.base_url())],
        Policy::RoundRobin,
    );
    ts.model(
        "main",
        "main-upstream",
        vec![ep(&dead_url())],
        Policy::RoundRobin,
    );
    set_fallbacks(&ts, "main", &["backup"]);
    ts.key_rule("backup", &key_id, 1, RuleUnit::Requests);
    let gw = Gw::start(&ts, fast_config()).await;
    let (status, header, _) = who(gw.chat(&key, "main").await).await;
    assert_eq!((status, header.as_str()), (200, "backup"));
    let res = gw.chat(&key, "main").await;
    let model = res.headers().get("x-maasctl-model").cloned();
    let (status, headers, err) = error_of(res).await;
    assert_eq!(status, 429, "{err}");
    assert_eq!(model.unwrap(), "backup", "{headers:?}");
    assert!(
        err["message"].as_str().unwrap().contains("backup"),
        "the fallback's rule throttled: {err}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fallbacks_a_dead_model_answers_its_own_error_naming_itself() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    ts.model(
        "main",
        "main-upstream",
        vec![ep(&dead_url())],
        Policy::RoundRobin,
    );
    let gw = Gw::start(&ts, fast_config()).await;
    let res = gw.chat(&key, "main").await;
    assert_eq!(res.headers().get("x-maasctl-model").unwrap(), "main");
    let (status, _, _) = error_of(res).await;
    assert_eq!(status, 502);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_or_5xx_before_the_first_byte_falls_back_too() {
    for (status, retry_after) in [(429, Some("30".to_string())), (503, None)] {
        let ts = TestStore::new();
        let (_, key) = ts.key("acme", "k");
        let backup = mock("backup").await;
        let sick = mock_with(maasctl::demo::upstream::MockConfig {
            label: "sick".into(),
            status: Some(status),
            retry_after,
            ..Default::default()
        })
        .await;
        ts.model(
            "backup",
            "backup-upstream",
            vec![ep(&backup.base_url())],
            Policy::RoundRobin,
        );
        ts.model(
            "main",
            "main-upstream",
            vec![ep(&sick.base_url())],
            Policy::RoundRobin,
        );
        set_fallbacks(&ts, "main", &["backup"]);
        let gw = Gw::start(&ts, fast_config()).await;
        // The first request meets the 429/503; later ones (the endpoint
        // cooling, for the 429) go straight to the fallback.
        for _ in 0..3 {
            let (got, header, model) = who(gw.chat(&key, "main").await).await;
            assert_eq!(
                (got, header.as_str(), model.as_str()),
                (200, "backup", "backup-upstream"),
                "upstream answering {status}"
            );
        }
        gw.stop().await;
    }
}
