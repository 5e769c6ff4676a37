//! The in-process limiter through its public API: exactness properties on
//! a manual clock, concurrency, several rules at once, live edits, deletes,
//! explain, stats.

#[path = "support/limits.rs"]
mod limits;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use limits::{check_now, key_rule, model, workspace_rule};
use maasctl::domain::{LimiterMode, Rule, RuleTarget};
use maasctl::gateway::limiter::{Decision, Limiter, ManualClock, bucket_width_ms};

fn admitted(d: &Decision) -> bool {
    matches!(d, Decision::Admit(_))
}

/// Does `rule` count a request of `key` (workspace `ws`)?
fn counts(rule: &Rule, key: &str, ws: &str) -> bool {
    match rule.spec.target {
        RuleTarget::ApiKey => rule.spec.key_id.as_deref() == Some(key),
        RuleTarget::Workspace => rule.spec.workspace == ws,
    }
}

mod exactness {
    use super::*;

    /// Random rule sets and arrival patterns (bursts, steady trickles, long
    /// gaps) on a manual clock. For every rule: no D-second span holds more
    /// than L admissions it counts, and every rejection it is named in
    /// happened with at least L of its admissions in the last D + 1% of D.
    /// A rejected request counted anywhere would break the second check.
    #[test]
    fn at_most_limit_in_any_window_and_no_early_reject() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let clock = Arc::new(ManualClock::new(rng.u64(0..100_000_000)));
            let limiter = Limiter::with_clock(clock.clone());
            let keys = [("key_a", "acme"), ("key_b", "acme"), ("key_c", "other")];
            let mut rules = Vec::new();
            for (id, (key, ws)) in keys.iter().enumerate() {
                if rng.bool() {
                    let (l, d) = (rng.u32(1..=12), rng.u32(1..=4));
                    rules.push(key_rule(id as u64 + 1, ws, key, l, d));
                }
            }
            if rng.bool() {
                rules.push(workspace_rule(10, "acme", rng.u32(1..=20), rng.u32(1..=4)));
            }
            let limits = limiter.compile(&model("m", rules.clone()));
            let mut log: Vec<(u64, &str, &str)> = Vec::new();
            for _ in 0..400 {
                let gap = match rng.u8(0..10) {
                    0..=3 => 0,
                    4..=7 => rng.u64(1..80),
                    8 => rng.u64(80..1_500),
                    _ => rng.u64(1_500..5_000),
                };
                clock.advance(gap);
                let t = clock_now(&clock);
                let (key, ws) = keys[rng.usize(..keys.len())];
                match check_now(&limiter, &limits, key, ws) {
                    Decision::Admit(_) => log.push((t, key, ws)),
                    Decision::Reject(r) => {
                        let rule = rules.iter().find(|x| x.id == r.rule_id).unwrap();
                        assert!(
                            counts(rule, key, ws),
                            "seed {seed}: rejected by a rule that does not apply"
                        );
                        let d_ms = u64::from(rule.spec.duration_secs) * 1000;
                        let horizon =
                            t.saturating_sub(d_ms + bucket_width_ms(rule.spec.duration_secs));
                        let recent = log
                            .iter()
                            .filter(|(a, k, w)| *a > horizon && counts(rule, k, w))
                            .count();
                        assert!(
                            recent >= rule.spec.limit as usize,
                            "seed {seed}: rule #{} rejected at {t} with only {recent} of {} admitted in the last D+1%",
                            rule.id,
                            rule.spec.limit
                        );
                    }
                }
            }
            for rule in &rules {
                let times: Vec<u64> = log
                    .iter()
                    .filter(|(_, k, w)| counts(rule, k, w))
                    .map(|(t, _, _)| *t)
                    .collect();
                let d_ms = u64::from(rule.spec.duration_secs) * 1000;
                let mut first = 0;
                for (j, &t) in times.iter().enumerate() {
                    while times[first] + d_ms <= t {
                        first += 1;
                    }
                    assert!(
                        j + 1 - first <= rule.spec.limit as usize,
                        "seed {seed}: rule #{} admitted {} in the {d_ms} ms ending at {t}",
                        rule.id,
                        j + 1 - first
                    );
                }
            }
        }
    }

    fn clock_now(clock: &ManualClock) -> u64 {
        use maasctl::gateway::limiter::Clock;
        clock.now_ms()
    }

    /// Retry-after is exact: one millisecond earlier the request is still
    /// refused, at retry-after it is admitted.
    #[test]
    fn retry_after_is_the_first_instant_a_request_passes() {
        for seed in 0..100 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let clock = Arc::new(ManualClock::new(rng.u64(0..10_000_000)));
            let limiter = Limiter::with_clock(clock.clone());
            let (l, d) = (rng.u32(1..=8), rng.u32(1..=3));
            let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", l, d)]));
            let mut checked = 0;
            for _ in 0..200 {
                clock.advance(rng.u64(0..300));
                if let Decision::Reject(r) = check_now(&limiter, &limits, "key_a", "acme") {
                    assert!(r.retry_after_ms > 0 && r.retry_after_ms <= r.reset_ms);
                    clock.advance(r.retry_after_ms - 1);
                    match check_now(&limiter, &limits, "key_a", "acme") {
                        Decision::Reject(again) => {
                            assert_eq!(again.retry_after_ms, 1, "seed {seed}")
                        }
                        Decision::Admit(_) => panic!("seed {seed}: admitted before retry-after"),
                    }
                    clock.advance(1);
                    assert!(
                        admitted(&check_now(&limiter, &limits, "key_a", "acme")),
                        "seed {seed}"
                    );
                    checked += 1;
                }
            }
            assert!(checked > 0, "seed {seed} never hit the limit");
        }
    }

    /// A fixed-window limiter lets 2×L through around a window edge; a
    /// rolling one does not.
    #[test]
    fn no_double_burst_across_a_window_edge() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = Limiter::with_clock(clock.clone());
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 10, 10)]));
        clock.set(9_990);
        for _ in 0..10 {
            assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        }
        clock.set(10_010);
        for _ in 0..10 {
            let Decision::Reject(r) = check_now(&limiter, &limits, "key_a", "acme") else {
                panic!("admitted across the window edge");
            };
            // Bucket [9900, 10000) leaves the 10 s window at 20000.
            assert_eq!(r.retry_after_ms, 20_000 - 10_010);
        }
        clock.set(19_999);
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        clock.set(20_000);
        for _ in 0..10 {
            assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        }
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
    }
}

mod concurrency {
    use super::*;

    async fn burst(
        limiter: &Arc<Limiter>,
        limits: &Arc<maasctl::gateway::limiter::ModelLimits>,
        keys: &[&'static str],
    ) -> Vec<(&'static str, bool)> {
        let tasks: Vec<_> = (0..256)
            .map(|i| {
                let (limiter, limits) = (Arc::clone(limiter), Arc::clone(limits));
                let key = keys[i % keys.len()];
                tokio::spawn(
                    async move { (key, admitted(&limiter.check(&limits, key, "acme").await)) },
                )
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_limit_of_256_concurrent_requests_then_room_after_the_window() {
        let clock = Arc::new(ManualClock::new(5_000));
        let limiter = Limiter::with_clock(clock.clone());
        let limits =
            Arc::new(limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 50, 2)])));
        let results = burst(&limiter, &limits, &["key_a"]).await;
        assert_eq!(results.iter().filter(|r| r.1).count(), 50);
        let stats = &limiter.stats()[0];
        assert_eq!((stats.admitted, stats.throttled, stats.used), (50, 206, 50));
        clock.advance(2_000 + bucket_width_ms(2) - 1);
        assert!(!admitted(&limiter.check(&limits, "key_a", "acme").await));
        clock.advance(1);
        let results = burst(&limiter, &limits, &["key_a"]).await;
        assert_eq!(results.iter().filter(|r| r.1).count(), 50);
    }

    /// The same on the real clock: 50 of 256, and room again only once the
    /// window has rolled (never before D).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn on_the_real_clock_room_returns_after_the_duration() {
        let limiter = Limiter::local();
        let limits =
            Arc::new(limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 50, 2)])));
        let start = Instant::now();
        let results = burst(&limiter, &limits, &["key_a"]).await;
        assert_eq!(results.iter().filter(|r| r.1).count(), 50);
        let deadline = start + Duration::from_secs(30);
        while !admitted(&limiter.check(&limits, "key_a", "acme").await) {
            assert!(Instant::now() < deadline, "no room 30 s after the burst");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "room after {:?} < D",
            start.elapsed()
        );
    }

    /// Per-key rules and a workspace rule under a concurrent burst: the
    /// workspace admits exactly its limit, no key exceeds its own, and the
    /// per-rule counts add up (a rejected request is counted nowhere).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn several_rules_stay_consistent_under_concurrency() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = Limiter::with_clock(clock.clone());
        let keys = ["key_a", "key_b", "key_c", "key_d"];
        let mut rules: Vec<Rule> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| key_rule(i as u64 + 1, "acme", k, 20, 10))
            .collect();
        rules.push(workspace_rule(9, "acme", 50, 10));
        let limits = Arc::new(limiter.compile(&model("m", rules)));
        let results = burst(&limiter, &limits, &keys).await;
        assert_eq!(results.iter().filter(|r| r.1).count(), 50);
        let stats = limiter.stats();
        let ws = stats.iter().find(|s| s.rule_id == 9).unwrap();
        assert_eq!((ws.used, ws.admitted), (50, 50));
        let mut key_sum = 0;
        for key in keys {
            let s = stats.iter().find(|s| s.subject == key).unwrap();
            let got = results.iter().filter(|r| r.0 == key && r.1).count() as u32;
            assert!(got <= 20);
            assert_eq!((s.used, s.admitted), (got, u64::from(got)));
            key_sum += got;
        }
        assert_eq!(key_sum, 50);
        let throttled: u64 = stats.iter().map(|s| s.throttled).sum();
        assert_eq!(
            throttled,
            256 - 50,
            "each 429 is charged to exactly one rule"
        );
    }
}

mod rules {
    use super::*;

    fn fixture(
        rules: Vec<Rule>,
    ) -> (
        Arc<ManualClock>,
        Arc<Limiter>,
        maasctl::gateway::limiter::ModelLimits,
    ) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter = Limiter::with_clock(clock.clone());
        let limits = limiter.compile(&model("m", rules));
        (clock, limiter, limits)
    }

    #[test]
    fn the_tightest_rule_rejects_and_a_rejected_request_counts_nowhere() {
        let (_, limiter, limits) = fixture(vec![
            key_rule(1, "acme", "key_a", 5, 10),
            workspace_rule(2, "acme", 3, 10),
        ]);
        for remaining in (0..3).rev() {
            let Decision::Admit(Some(h)) = check_now(&limiter, &limits, "key_a", "acme") else {
                panic!("refused under both limits");
            };
            assert_eq!(
                (h.rule_id, h.limit, h.remaining),
                (2, 3, remaining),
                "headroom names the tightest rule"
            );
        }
        let Decision::Reject(r) = check_now(&limiter, &limits, "key_a", "acme") else {
            panic!("admitted over the workspace limit");
        };
        assert_eq!(
            (
                r.rule_id,
                r.target,
                r.subject.as_str(),
                r.limit,
                r.duration_secs
            ),
            (2, RuleTarget::Workspace, "acme", 3, 10)
        );
        assert!(r.retry_after_ms > 0 && r.retry_after_ms <= 10_100);
        let stats = limiter.stats();
        assert_eq!(
            (
                stats[0].rule_id,
                stats[0].used,
                stats[0].admitted,
                stats[0].throttled
            ),
            (1, 3, 3, 0)
        );
        assert_eq!(
            (
                stats[1].rule_id,
                stats[1].used,
                stats[1].admitted,
                stats[1].throttled
            ),
            (2, 3, 3, 1)
        );
        assert!(stats[1].reset_ms > 0, "a full window says when it has room");
        assert_eq!(stats[0].reset_ms, 0, "a window with room says 0");
    }

    #[test]
    fn a_workspace_rule_sums_over_its_keys_only() {
        let (_, limiter, limits) = fixture(vec![workspace_rule(1, "acme", 6, 60)]);
        for key in ["key_a", "key_b", "key_c"] {
            for _ in 0..2 {
                assert!(admitted(&check_now(&limiter, &limits, key, "acme")));
            }
        }
        for key in ["key_a", "key_b", "key_c", "key_new"] {
            assert!(
                !admitted(&check_now(&limiter, &limits, key, "acme")),
                "{key}"
            );
        }
        for _ in 0..20 {
            assert!(
                admitted(&check_now(&limiter, &limits, "key_x", "other")),
                "another workspace is not limited"
            );
        }
    }

    #[test]
    fn a_key_rule_limits_that_key_only() {
        let (_, limiter, limits) = fixture(vec![key_rule(1, "acme", "key_a", 2, 60)]);
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(admitted(&check_now(&limiter, &limits, "key_b", "acme")));
        assert_eq!(
            check_now(&limiter, &limits, "key_b", "acme"),
            Decision::Admit(None),
            "no rule, no headroom"
        );
    }

    #[test]
    fn edits_take_effect_at_once_and_keep_the_history() {
        let (clock, limiter, limits) = fixture(vec![key_rule(1, "acme", "key_a", 5, 10)]);
        for _ in 0..5 {
            assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        }
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        // Raised to 8: exactly 3 more.
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 8, 10)]));
        for _ in 0..3 {
            assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        }
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        // Lowered to 3: still full, the 8 already counted stay counted.
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 3, 10)]));
        let Decision::Reject(r) = check_now(&limiter, &limits, "key_a", "acme") else {
            panic!()
        };
        assert_eq!(r.limit, 3);
        assert_eq!(limiter.stats()[0].used, 8);
        // Lengthened to 60 s: the history now counts for 60 s.
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 10, 60)]));
        clock.advance(30_000);
        assert_eq!(limiter.stats()[0].used, 8);
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
    }

    #[test]
    fn a_deleted_rule_frees_its_subject_at_once() {
        let (_, limiter, limits) = fixture(vec![
            key_rule(1, "acme", "key_a", 1, 3600),
            workspace_rule(2, "acme", 100, 60),
        ]);
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        let limits = limiter.compile(&model("m", vec![workspace_rule(2, "acme", 100, 60)]));
        limiter.retain(&HashSet::from([2]));
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        let stats = limiter.stats();
        assert_eq!(stats.len(), 1, "the deleted rule left the stats");
        assert_eq!((stats[0].rule_id, stats[0].used), (2, 2));
        // A new rule (new id) on the same key starts empty.
        let limits = limiter.compile(&model(
            "m",
            vec![
                key_rule(3, "acme", "key_a", 1, 3600),
                workspace_rule(2, "acme", 100, 60),
            ],
        ));
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        assert!(!admitted(&check_now(&limiter, &limits, "key_a", "acme")));
    }

    #[test]
    fn a_rule_moved_to_another_subject_starts_afresh() {
        let (_, limiter, limits) = fixture(vec![key_rule(1, "acme", "key_a", 1, 60)]);
        assert!(admitted(&check_now(&limiter, &limits, "key_a", "acme")));
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_b", 1, 60)]));
        assert!(
            admitted(&check_now(&limiter, &limits, "key_a", "acme")),
            "key_a is no longer limited"
        );
        assert!(
            admitted(&check_now(&limiter, &limits, "key_b", "acme")),
            "key_b starts with an empty window"
        );
        assert!(!admitted(&check_now(&limiter, &limits, "key_b", "acme")));
    }

    #[test]
    fn windows_are_per_model() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = Limiter::with_clock(clock);
        let a = limiter.compile(&model("a", vec![key_rule(1, "acme", "key_a", 1, 60)]));
        let b = limiter.compile(&model("b", vec![key_rule(2, "acme", "key_a", 1, 60)]));
        assert!(admitted(&check_now(&limiter, &a, "key_a", "acme")));
        assert!(admitted(&check_now(&limiter, &b, "key_a", "acme")));
        assert!(!admitted(&check_now(&limiter, &a, "key_a", "acme")));
        let models: Vec<_> = limiter.stats().into_iter().map(|s| s.model).collect();
        assert_eq!(models, ["a", "b"]);
    }

    #[test]
    fn local_mode_is_reported() {
        assert_eq!(Limiter::local().mode(), LimiterMode::Local);
    }
}

mod explain {
    use super::*;

    #[tokio::test]
    async fn explain_shows_use_and_the_blocking_rule_without_counting() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = Limiter::with_clock(clock.clone());
        let limits = limiter.compile(&model(
            "DeepSeek-V3",
            vec![
                key_rule(3, "acme", "key_a", 2, 2),
                workspace_rule(7, "acme", 1000, 60),
                key_rule(8, "acme", "key_b", 1, 1),
            ],
        ));
        clock.set(1_000);
        for _ in 0..2 {
            assert!(admitted(&limiter.check(&limits, "key_a", "acme").await));
        }
        clock.set(1_500);
        let before = limiter.stats();
        let e = limiter.explain(&limits, "key_a", "acme").await;
        let again = limiter.explain(&limits, "key_a", "acme").await;
        assert_eq!(e, again);
        assert_eq!(limiter.stats(), before, "explain counts nothing");
        assert_eq!(e.rules.len(), 2, "key_b's rule does not apply");
        assert_eq!(e.rejected_by, Some(3));
        assert_eq!(e.retry_after_ms, 1_520);
        let expected = "\
model DeepSeek-V3 · key key_a · workspace acme · limiter local
RULE  TARGET     SUBJECT  USED/LIMIT  PER  RESET  NEXT REQUEST
#3    api-key    key_a    2/2         2s   1.5s   full, room in 1.5s
#7    workspace  acme     2/1000      60s  59.7s  ok, 998 left
next request: rejected by rule #3 (api-key key_a: 2 per 2s); admitted again in 1.5s
";
        assert_eq!(e.to_string(), expected);
        clock.set(3_020);
        let e = limiter.explain(&limits, "key_a", "acme").await;
        assert_eq!(e.rejected_by, None);
        assert!(e.to_string().ends_with("next request: admitted\n"));
        assert!(admitted(&limiter.check(&limits, "key_a", "acme").await));
    }

    #[tokio::test]
    async fn explain_says_when_nothing_applies() {
        let limiter = Limiter::local();
        let limits = limiter.compile(&model("m", vec![key_rule(1, "acme", "key_a", 2, 2)]));
        let e = limiter.explain(&limits, "key_z", "other").await;
        assert!(e.rules.is_empty());
        assert_eq!(
            e.to_string(),
            "model m · key key_z · workspace other · limiter local\n\
             no rule of model m applies to key key_z or workspace other: its requests are not rate limited\n"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["limiter"], "local");
        assert_eq!(json["rejected_by"], serde_json::Value::Null);
    }
}

/// Token rules (docs/rate-limits.md, "Token rules"): reservations counted
/// atomically with request rules, settled to what was used, given back when
/// dropped; the window guarantee holds for tokens.
mod tokens {
    use super::*;
    use limits::{reserve_now, tokens};
    use maasctl::domain::RuleUnit;
    use maasctl::gateway::limiter::Estimate;

    fn est(prompt: u64, completion: u64) -> Estimate {
        Estimate { prompt, completion }
    }

    fn used(limiter: &Limiter, rule: u64) -> u32 {
        limiter
            .stats()
            .iter()
            .find(|s| s.rule_id == rule)
            .unwrap()
            .used
    }

    #[test]
    fn answering_at_once_and_through_the_future_decide_alike() {
        // Twin limiters on one clock: `*_now` (the request path without
        // Redis) and the async `check`/`reserve` give the same decisions,
        // headroom and holdings, request after request, into refusal.
        let clock = Arc::new(ManualClock::new(1_000_000));
        let rules = || {
            vec![
                tokens(workspace_rule(1, "acme", 1000, 2)),
                key_rule(2, "acme", "key_a", 4, 2),
            ]
        };
        let (now, polled) = (
            Limiter::with_clock(clock.clone()),
            Limiter::with_clock(clock.clone()),
        );
        let (ln, lp) = (
            now.compile(&model("m", rules())),
            polled.compile(&model("m", rules())),
        );
        let (rn, rp) = (
            now.compile(&model("r", vec![key_rule(3, "acme", "key_a", 2, 2)])),
            polled.compile(&model("r", vec![key_rule(3, "acme", "key_a", 2, 2)])),
        );
        let mut held = Vec::new();
        for i in 0..6 {
            let (dn, hn) = reserve_now(&now, &ln, "key_a", "acme", est(100, 150));
            let (dp, hp) = limits::reserve_polled(&polled, &lp, "key_a", "acme", est(100, 150));
            assert_eq!(format!("{dn:?}"), format!("{dp:?}"), "request {i}");
            assert_eq!(hn.is_some(), hp.is_some(), "request {i}");
            held.push((hn, hp));
            let cn = limits::check_now(&now, &rn, "key_a", "acme");
            let cp = limits::check_polled(&polled, &rp, "key_a", "acme");
            assert_eq!(format!("{cn:?}"), format!("{cp:?}"), "request {i}");
            clock.advance(100);
        }
        // Refused alike (and counted alike) past the request rule.
        let (dn, _) = reserve_now(&now, &ln, "key_a", "acme", est(1, 1));
        let (dp, _) = limits::reserve_polled(&polled, &lp, "key_a", "acme", est(1, 1));
        assert!(matches!(dn, Decision::Reject(_)));
        assert_eq!(format!("{dn:?}"), format!("{dp:?}"));
        for (hn, hp) in held {
            if let (Some(hn), Some(hp)) = (hn, hp) {
                hn.settle(60);
                hp.settle(60);
            }
        }
        let stats = |l: &Limiter| format!("{:?}", l.stats());
        assert_eq!(stats(&now), stats(&polled));
    }

    #[test]
    fn reservations_are_settled_refunded_and_retry_after_says_when_tokens_free_up() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter = Limiter::with_clock(clock.clone());
        let limits = limiter.compile(&model(
            "m",
            vec![
                tokens(workspace_rule(1, "acme", 1000, 2)),
                key_rule(2, "acme", "key_a", 50, 2),
            ],
        ));
        assert!(limits.counts_tokens());
        // Reserved: prompt estimate + completion cap; the request rule counts 1.
        let (d, r) = reserve_now(&limiter, &limits, "key_a", "acme", est(100, 200));
        let Decision::Admit(h) = d else {
            panic!("refused")
        };
        assert_eq!(h.map(|h| h.rule_id), Some(2), "headroom speaks of requests");
        assert_eq!((used(&limiter, 1), used(&limiter, 2)), (300, 1));
        // Settled below the reservation: the rest comes back.
        r.unwrap().settle(120);
        assert_eq!(used(&limiter, 1), 120);
        // Dropped unsettled (no answer): everything comes back.
        let (_, r) = reserve_now(&limiter, &limits, "key_a", "acme", est(100, 200));
        assert_eq!(used(&limiter, 1), 420);
        drop(r);
        assert_eq!(used(&limiter, 1), 120);
        // Used more than reserved: the excess is counted.
        clock.advance(500);
        let (_, r) = reserve_now(&limiter, &limits, "key_a", "acme", est(100, 200));
        r.unwrap().settle(350);
        assert_eq!(used(&limiter, 1), 470);
        // 470 + 600 > 1000: refused by the token rule until the 120 of the
        // first bucket ([1_000_000, 1_000_020)) leave the window at 1_002_020.
        let (d, r) = reserve_now(&limiter, &limits, "key_a", "acme", est(100, 500));
        assert!(r.is_none());
        let Decision::Reject(rej) = d else {
            panic!("admitted over the token limit")
        };
        assert_eq!(
            (
                rej.rule_id,
                rej.unit,
                rej.requested,
                rej.limit,
                rej.retry_after_ms
            ),
            (1, RuleUnit::Tokens, 600, 1000, 1_520)
        );
        assert_eq!(
            (used(&limiter, 1), used(&limiter, 2)),
            (470, 3),
            "a refusal counts nowhere"
        );
        clock.advance(1_519);
        assert!(!admitted(
            &reserve_now(&limiter, &limits, "key_a", "acme", est(100, 500)).0
        ));
        clock.advance(1);
        let (d, r) = reserve_now(&limiter, &limits, "key_a", "acme", est(100, 500));
        assert!(admitted(&d));
        assert_eq!(used(&limiter, 1), 350 + 600);
        r.unwrap().settle(600);
        // A reservation above the limit never fits: refused, saying so.
        let (d, _) = reserve_now(&limiter, &limits, "key_a", "acme", est(500, 4096));
        let Decision::Reject(rej) = d else {
            panic!("admitted a reservation above the limit")
        };
        assert_eq!((rej.requested, rej.limit), (4596, 1000));
        // Explain shows the unit.
        let text = futures_now(limiter.explain(&limits, "key_a", "acme")).to_string();
        assert!(text.contains("950/1000 tokens"), "{text}");
        let e = futures_now(limiter.explain(&limits, "key_a", "acme"));
        assert_eq!(e.rules[0].unit, RuleUnit::Tokens);
        assert_eq!(e.rules[1].unit, RuleUnit::Requests);
    }

    fn futures_now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a local call waited"),
        }
    }

    /// Random reservations, settlements (never above the estimate, as with
    /// an estimator that bounds the prompt) and drops on a manual clock:
    /// in no D-second span do the tokens finally used by requests admitted
    /// in it exceed L, and the limiter's count equals what is held.
    #[test]
    fn at_most_limit_tokens_in_any_window() {
        for seed in 0..100 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let clock = Arc::new(ManualClock::new(rng.u64(0..100_000_000)));
            let limiter = Limiter::with_clock(clock.clone());
            let (l, d) = (rng.u32(500..5_000), rng.u32(1..=3));
            let limits =
                limiter.compile(&model("m", vec![tokens(workspace_rule(1, "acme", l, d))]));
            // (admitted at, final tokens) and the reservations still open.
            let mut log: Vec<(u64, u64)> = Vec::new();
            let mut open: Vec<(usize, maasctl::gateway::limiter::Reservation)> = Vec::new();
            for _ in 0..400 {
                clock.advance(match rng.u8(0..10) {
                    0..=5 => rng.u64(0..20),
                    6..=8 => rng.u64(20..400),
                    _ => rng.u64(400..3_000),
                });
                if !open.is_empty() && rng.u8(0..3) > 0 {
                    let (i, r) = open.swap_remove(rng.usize(..open.len()));
                    let used = if rng.u8(0..5) == 0 {
                        0
                    } else {
                        rng.u64(0..=r.estimate().total())
                    };
                    if used == 0 && rng.bool() {
                        drop(r);
                    } else {
                        r.settle(used);
                    }
                    log[i].1 = used;
                    continue;
                }
                let e = est(rng.u64(1..300), rng.u64(0..600));
                if let (Decision::Admit(_), Some(r)) =
                    reserve_now(&limiter, &limits, "k", "acme", e)
                {
                    log.push((maasctl::gateway::limiter::Clock::now_ms(&*clock), e.total()));
                    open.push((log.len() - 1, r));
                }
            }
            let d_ms = u64::from(d) * 1000;
            for &(t, _) in &log {
                let span: u64 = log
                    .iter()
                    .filter(|(a, _)| *a + d_ms > t && *a <= t)
                    .map(|x| x.1)
                    .sum();
                assert!(
                    span <= u64::from(l),
                    "seed {seed}: {span} tokens in the {d}s before {t}, limit {l}"
                );
            }
        }
    }

    /// 256 concurrent callers reserving and settling: the window never
    /// holds more than L, the count is exactly what was used, and room
    /// returns after D.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_stay_within_the_limit_and_count_exactly() {
        let clock = Arc::new(ManualClock::new(5_000_000));
        let limiter = Limiter::with_clock(clock.clone());
        let limits = Arc::new(limiter.compile(&model(
            "m",
            vec![tokens(workspace_rule(1, "acme", 10_000, 2))],
        )));
        let tasks: Vec<_> = (0..256u64)
            .map(|i| {
                let (limiter, limits) = (Arc::clone(&limiter), Arc::clone(&limits));
                tokio::spawn(async move {
                    let (d, r) = limiter.reserve(&limits, "k", "acme", est(100, 300)).await;
                    tokio::task::yield_now().await;
                    match (d, r) {
                        (Decision::Admit(_), Some(r)) => {
                            let used = 50 + i % 300;
                            r.settle(used);
                            used
                        }
                        _ => 0,
                    }
                })
            })
            .collect();
        let mut total = 0;
        let mut passed = 0;
        for t in tasks {
            let u = t.await.unwrap();
            total += u;
            passed += u64::from(u > 0);
        }
        assert!((25..256).contains(&passed), "admitted {passed}");
        assert!(total <= 10_000);
        assert_eq!(
            u64::from(used(&limiter, 1)),
            total,
            "settled exactly to what was used"
        );
        clock.advance(2_000 + bucket_width_ms(2));
        assert_eq!(used(&limiter, 1), 0);
        let (d, _) = limiter.reserve(&limits, "k", "acme", est(100, 300)).await;
        assert!(admitted(&d));
    }
}
