//! Hot reload: registry changes apply while load runs, and nothing fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use maasctl::domain::{Change, ModelSpec, Policy};
use maasctl::store::Store;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_apply_under_load_without_failing_a_request() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let (old_id, old_key) = ts.key("acme", "old");
    let first = mock("first").await;
    let second = mock("second").await;
    ts.model(
        "alpha",
        "alpha-up",
        vec![ep(&first.base_url())],
        Policy::RoundRobin,
    );
    let gw = Arc::new(Gw::start(&ts, fast_config()).await);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (gw, key, stop, sent) = (gw.clone(), key.clone(), stop.clone(), sent.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Relaxed) {
                let res = gw.chat(&key, "alpha").await;
                sent.fetch_add(1, Relaxed);
                if res.status() != 200 {
                    failures.push(format!(
                        "{} {}",
                        res.status(),
                        res.text().await.unwrap_or_default()
                    ));
                }
            }
            failures
        }));
    }
    wait_for("load to run", || async {
        (sent.load(Relaxed) > 50).then_some(())
    })
    .await;

    // A new model becomes callable.
    ts.model(
        "beta",
        "beta-up",
        vec![ep(&second.base_url())],
        Policy::RoundRobin,
    );
    wait_for("beta to be served", || async {
        (gw.chat(&key, "beta").await.status() == 200).then_some(())
    })
    .await;

    // alpha moves to another upstream while requests run on the old one.
    let reg = ts.store.load().unwrap();
    let mut spec: ModelSpec = reg.models["alpha"].spec.clone();
    spec.endpoints = vec![ep(&second.base_url())];
    ts.apply(vec![Change::UpdateModel {
        name: "alpha".into(),
        spec,
    }]);
    let before = second.hits();
    wait_for("alpha's traffic to reach the new upstream", || async {
        (second
            .seen()
            .iter()
            .filter(|s| s.model.as_deref() == Some("alpha-up"))
            .count()
            > 20)
            .then_some(())
    })
    .await;
    assert!(second.hits() > before);

    // A key revoked while load runs is refused at once after the reload.
    // (Checked on beta so alpha's counters hold exactly the load's requests.)
    assert_eq!(gw.chat(&old_key, "beta").await.status(), 200);
    ts.apply(vec![Change::RevokeKey { id: old_id.clone() }]);
    wait_for("the revoked key to be refused", || async {
        (gw.chat(&old_key, "beta").await.status() == 401).then_some(())
    })
    .await;

    // Disabling beta makes it 404.
    ts.apply(vec![Change::SetEnabled {
        name: "beta".into(),
        enabled: false,
    }]);
    wait_for("beta to be disabled", || async {
        (gw.chat(&key, "beta").await.status() == 404).then_some(())
    })
    .await;

    let sent_before_stop = sent.load(Relaxed);
    wait_for("more load after the last change", || async {
        (sent.load(Relaxed) > sent_before_stop + 50).then_some(())
    })
    .await;
    stop.store(true, Relaxed);
    let mut failures = Vec::new();
    for t in load {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        sent.load(Relaxed),
        &failures[..failures.len().min(5)]
    );
    let total = sent.load(Relaxed);
    let s = gw
        .wait_stats("alpha's counters to match what the load sent", |s| {
            s.models
                .get("alpha")
                .is_some_and(|m| m.requests == total && m.in_flight == 0)
        })
        .await;
    assert_eq!(s.models["alpha"].success, total);
    gw.wait_applied(&ts).await;
    let report = wait_for("the report to show the applied revision", || async {
        ts.store
            .reports()
            .unwrap()
            .into_iter()
            .find(|r| r.applied_revision == ts.revision())
    })
    .await;
    assert!(
        report
            .endpoints
            .iter()
            .any(|e| e.model == "alpha" && e.url == second.base_url())
    );
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}
