//! Shared mode against a real redis-server: replicas together admit exactly
//! the limit, several rules stay atomic, Redis dying and coming back never
//! fails a request, keys expire — through the library, and end to end over
//! HTTP through real `maasctl serve` processes (module `end_to_end`).

#[path = "support/limits.rs"]
mod limits;
#[path = "support/redis.rs"]
mod redis_server;
#[path = "support/serve.rs"]
mod serve_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use limits::{key_rule, model, workspace_rule};
use maasctl::domain::{LimiterMode, Rule};
use maasctl::gateway::limiter::{
    Clock, Decision, Limiter, ManualClock, ModelLimits, SharedConfig, bucket_width_ms,
};
use redis_server::RedisServer;

/// Quick heartbeats and retries so transitions show within a test; a
/// generous request timeout so a busy machine does not fall back by itself.
fn config() -> SharedConfig {
    SharedConfig {
        timeout: Duration::from_secs(2),
        heartbeat: Duration::from_millis(200),
        retry: Duration::from_millis(100),
        ..SharedConfig::default()
    }
}

async fn replica(url: &str) -> Arc<Limiter> {
    let l = Limiter::shared(url, config())
        .await
        .expect("shared limiter");
    assert_eq!(
        l.mode(),
        LimiterMode::Shared,
        "Redis is up: the first connection succeeds"
    );
    l
}

/// Poll `cond` every 20 ms until true, failing after 30 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn admitted(d: &Decision) -> bool {
    matches!(d, Decision::Admit(_))
}

/// 256 concurrent requests spread over `replicas` (round robin) and `keys`.
async fn burst(
    replicas: &[(Arc<Limiter>, Arc<ModelLimits>)],
    keys: &[&'static str],
) -> Vec<(&'static str, bool)> {
    let tasks: Vec<_> = (0..256)
        .map(|i| {
            let (limiter, limits) = replicas[i % replicas.len()].clone();
            let key = keys[(i / replicas.len()) % keys.len()];
            tokio::spawn(async move { (key, admitted(&limiter.check(&limits, key, "acme").await)) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn compiled(replicas: &[&Arc<Limiter>], rules: &[Rule]) -> Vec<(Arc<Limiter>, Arc<ModelLimits>)> {
    replicas
        .iter()
        .map(|l| {
            (
                Arc::clone(l),
                Arc::new(l.compile(&model("m", rules.to_vec()))),
            )
        })
        .collect()
}

/// The Lua windows are a second implementation of the same algorithm:
/// driven through the same instants (a manual clock instead of Redis TIME),
/// with random rules, limit edits and arrival patterns, they must decide
/// exactly like the in-process windows — whose properties tests/limiter.rs
/// checks — down to the rule named, retry-after and reset.
#[tokio::test]
async fn redis_windows_decide_exactly_like_local_windows() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let local = Limiter::with_clock(clock.clone());
    let shared = Limiter::shared(
        &redis.url(),
        SharedConfig {
            clock: Some(clock.clone()),
            ..config()
        },
    )
    .await
    .unwrap();
    let keys = [("key_a", "acme"), ("key_b", "acme"), ("key_c", "other")];
    for seed in 0..60u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut rules = Vec::new();
        for (i, (key, ws)) in keys.iter().enumerate() {
            if rng.bool() {
                let (l, d) = (rng.u32(1..=12), rng.u32(1..=4));
                rules.push(key_rule(seed * 10 + i as u64, ws, key, l, d));
            }
        }
        if rng.bool() {
            rules.push(workspace_rule(
                seed * 10 + 9,
                "acme",
                rng.u32(1..=20),
                rng.u32(1..=4),
            ));
        }
        let mut both = [
            local.compile(&model("m", rules.clone())),
            shared.compile(&model("m", rules.clone())),
        ];
        for step in 0..300 {
            clock.advance(match rng.u8(0..10) {
                0..=3 => 0,
                4..=7 => rng.u64(1..80),
                8 => rng.u64(80..1_500),
                _ => rng.u64(1_500..5_000),
            });
            if !rules.is_empty() && rng.u8(0..30) == 0 {
                let i = rng.usize(..rules.len());
                rules[i].spec.limit = rng.u32(1..=12);
                both = [
                    local.compile(&model("m", rules.clone())),
                    shared.compile(&model("m", rules.clone())),
                ];
            }
            let (key, ws) = keys[rng.usize(..keys.len())];
            let want = local.check(&both[0], key, ws).await;
            let got = shared.check(&both[1], key, ws).await;
            assert_eq!(shared.mode(), LimiterMode::Shared);
            assert_eq!(
                got,
                want,
                "seed {seed} step {step} at {} ({key})",
                clock.now_ms()
            );
        }
        let (le, se) = (
            local.explain(&both[0], "key_a", "acme").await,
            shared.explain(&both[1], "key_a", "acme").await,
        );
        assert_eq!(se.rules, le.rules, "seed {seed}: explain");
    }
    let totals = |l: &Limiter| {
        l.stats()
            .iter()
            .map(|s| (s.rule_id, s.admitted, s.throttled))
            .collect::<Vec<_>>()
    };
    assert_eq!(totals(&shared), totals(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_together_admit_exactly_the_limit() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    let set = compiled(&[&a, &b], &[key_rule(1, "acme", "key_a", 50, 2)]);
    let start = Instant::now();
    let results = burst(&set, &["key_a"]).await;
    assert_eq!(
        (a.mode(), b.mode()),
        (LimiterMode::Shared, LimiterMode::Shared),
        "the burst was decided by Redis"
    );
    assert_eq!(results.iter().filter(|r| r.1).count(), 50);
    let (sa, sb) = (&a.stats()[0], &b.stats()[0]);
    assert_eq!(sa.admitted + sb.admitted, 50);
    assert_eq!(sa.throttled + sb.throttled, 206);
    assert_eq!(
        (sa.admitted + sa.throttled, sb.admitted + sb.throttled),
        (128, 128),
        "each replica decided its half"
    );
    assert_eq!(
        (sa.used, sa.limit),
        (50, 50),
        "stats show the shared window"
    );
    // Room again once the window rolled, never before D.
    let deadline = start + Duration::from_secs(30);
    while !admitted(&a.check(&set[0].1, "key_a", "acme").await) {
        assert!(Instant::now() < deadline, "no room 30 s after the burst");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_rules_are_checked_and_counted_in_one_atomic_step() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    let keys = ["key_a", "key_b", "key_c", "key_d"];
    let mut rules: Vec<Rule> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| key_rule(i as u64 + 1, "acme", k, 20, 30))
        .collect();
    rules.push(workspace_rule(9, "acme", 50, 30));
    let set = compiled(&[&a, &b], &rules);
    let results = burst(&set, &keys).await;
    assert_eq!(
        (a.mode(), b.mode()),
        (LimiterMode::Shared, LimiterMode::Shared)
    );
    assert_eq!(results.iter().filter(|r| r.1).count(), 50);
    // Explain on either replica reads the shared windows.
    let mut key_sum = 0;
    for key in keys {
        let e = a.explain(&set[0].1, key, "acme").await;
        assert_eq!(e.limiter, LimiterMode::Shared);
        let own = e.rules.iter().find(|r| r.subject == key).unwrap();
        let ws = e.rules.iter().find(|r| r.rule_id == 9).unwrap();
        let got = results.iter().filter(|r| r.0 == key && r.1).count() as u32;
        assert_eq!(own.used, got, "a rejected request is counted nowhere");
        assert!(got <= 20);
        assert_eq!(ws.used, 50);
        assert!(ws.full && e.rejected_by.is_some());
        key_sum += got;
    }
    assert_eq!(key_sum, 50);
    let throttled: u64 = a
        .stats()
        .iter()
        .chain(b.stats().iter())
        .map(|s| s.throttled)
        .sum();
    assert_eq!(throttled, 206);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_falls_back_to_shares_and_back_up_shares_again() {
    let mut redis = RedisServer::start();
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    wait_until("both replicas see each other", || {
        a.live_replicas() == Some(2) && b.live_replicas() == Some(2)
    })
    .await;
    let rules = [
        key_rule(1, "acme", "key_a", 10, 60),
        key_rule(2, "acme", "key_load", 1_000_000, 60),
    ];
    let set = compiled(&[&a, &b], &rules);
    for (l, limits) in &set {
        for _ in 0..2 {
            assert!(admitted(&l.check(limits, "key_a", "acme").await));
        }
    }
    // Steady background traffic over both replicas through the outage.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load = {
        let (set, stop, served) = (set.clone(), stop.clone(), served.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (l, limits) = &set[i % 2];
                assert!(
                    admitted(&l.check(limits, "key_load", "acme").await),
                    "the load key is never limited"
                );
                served.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let progress = |served: &AtomicU64| {
        let from = served.load(Ordering::Relaxed);
        move |s: &AtomicU64| s.load(Ordering::Relaxed) >= from + 20
    };

    redis.kill();
    wait_until("both replicas fell back", || {
        a.mode() == LimiterMode::LocalFallback && b.mode() == LimiterMode::LocalFallback
    })
    .await;
    let moved = progress(&served);
    wait_until("requests flow without Redis", || moved(&served)).await;
    // Each replica now enforces limit / 2 = 5 on its own, counting what it
    // admitted while shared (2 each): 3 more each, then 429.
    for (l, limits) in &set {
        for _ in 0..3 {
            assert!(admitted(&l.check(limits, "key_a", "acme").await));
        }
        let Decision::Reject(r) = l.check(limits, "key_a", "acme").await else {
            panic!("a fallen-back replica admitted more than its share");
        };
        assert_eq!(r.limit, 5);
        let e = l.explain(limits, "key_a", "acme").await;
        assert_eq!(e.limiter, LimiterMode::LocalFallback);
        assert_eq!((e.rules[0].used, e.rules[0].limit), (5, 5));
    }

    redis.restart();
    wait_until("both replicas share again", || {
        a.mode() == LimiterMode::Shared && b.mode() == LimiterMode::Shared
    })
    .await;
    let moved = progress(&served);
    wait_until("requests flow after Redis is back", || moved(&served)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("no request of the load failed");
    // The restarted Redis kept nothing: the shared window starts empty and
    // the two replicas together admit exactly 10 again.
    let results = burst(&set, &["key_a"]).await;
    assert_eq!(results.iter().filter(|r| r.1).count(), 10);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_means_local_fallback_until_it_appears() {
    let mut redis = RedisServer::start();
    redis.kill();
    let l = Limiter::shared(&redis.url(), config())
        .await
        .expect("an unreachable Redis is not an error");
    assert_eq!(l.mode(), LimiterMode::LocalFallback);
    let limits = l.compile(&model("m", vec![key_rule(1, "acme", "key_a", 2, 60)]));
    assert!(admitted(&l.check(&limits, "key_a", "acme").await));
    assert!(admitted(&l.check(&limits, "key_a", "acme").await));
    assert!(!admitted(&l.check(&limits, "key_a", "acme").await));
    redis.restart();
    wait_until("the limiter connects", || l.mode() == LimiterMode::Shared).await;
    assert!(
        admitted(&l.check(&limits, "key_a", "acme").await),
        "the shared window is fresh"
    );
}

#[tokio::test]
async fn a_malformed_url_is_refused() {
    let err = Limiter::shared("http://nowhere", config())
        .await
        .unwrap_err();
    assert!(err.contains("invalid Redis URL 'http://nowhere/'"), "{err}");
}

#[tokio::test]
async fn window_keys_expire_when_their_requests_leave_the_window() {
    let redis = RedisServer::start();
    let l = replica(&redis.url()).await;
    let limits = l.compile(&model("m", vec![workspace_rule(4, "acme", 10, 3)]));
    assert!(admitted(&l.check(&limits, "key_a", "acme").await));
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("maasctl:rl:4:workspace:acme")
        .query(&mut conn)
        .unwrap();
    let most = (3_000 + bucket_width_ms(3)) as i64;
    assert!(ttl > 0 && ttl <= most, "PTTL {ttl} not in (0, {most}]");
    let replicas: i64 = redis::cmd("ZCARD")
        .arg("maasctl:rl:replicas")
        .query(&mut conn)
        .unwrap();
    assert_eq!(replicas, 1);
    drop(l);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = redis::cmd("ZCARD")
            .arg("maasctl:rl:replicas")
            .query(&mut conn)
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a dropped limiter stays registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Through `maasctl serve` over HTTP, as an operator runs it.
mod end_to_end {
    use super::*;
    use maasctl::domain::{Change, RuleSpec, RuleTarget};
    use serve_support::{DEADLINE, Serve, Site, chat, http};

    /// Send `n` requests at once, spread over `bases`; the statuses.
    async fn clients(n: usize, bases: &[&str], secret: &str) -> Vec<u16> {
        let http = http();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (http, base, secret) = (
                    http.clone(),
                    bases[i % bases.len()].to_owned(),
                    secret.to_owned(),
                );
                tokio::spawn(async move { chat(&http, &base, &secret).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_serve_processes_behind_one_redis_admit_exactly_the_limit() {
        let redis = RedisServer::start();
        let site = Site::new().await;
        let (key_id, secret) = site.key("acme");
        let rule = site.rule("acme", Some(&key_id), 50, 60);
        let url = redis.url();
        let args = ["--redis-url", url.as_str(), "--redis-timeout", "2s"];
        let (a, b) = (
            Serve::start(site.dir.path(), &args).await,
            Serve::start(site.dir.path(), &args).await,
        );
        let http = http();
        a.wait_limiter(&http, "shared").await;
        b.wait_limiter(&http, "shared").await;

        let statuses = clients(256, &[&a.base, &b.base], &secret).await;
        let count = |code| statuses.iter().filter(|s| **s == code).count();
        assert_eq!(
            (count(200), count(429)),
            (50, 206),
            "statuses: {statuses:?}"
        );
        assert_eq!(
            site.upstream.hits(),
            50,
            "only admitted requests reach the upstream"
        );
        for s in [&a, &b] {
            assert_eq!(s.health(&http).await["limiter"], "shared", "{}", s.log());
        }
        let res = http
            .post(format!("{}/v1/chat/completions", b.base))
            .bearer_auth(&secret)
            .json(&serde_json::json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["x-ratelimit-limit"], "50");
        let body: serde_json::Value = res.json().await.unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("rule #{rule}")) && msg.contains(&key_id),
            "{msg}"
        );
    }

    /// Steady traffic over two replicas while Redis is killed and restarted:
    /// every request is answered 200, both replicas report local fallback in
    /// /healthz and their log (once per transition), then shared again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_redis_outage_under_load_fails_no_request_and_is_reported() {
        let mut redis = RedisServer::start();
        let site = Site::new().await;
        let (key_id, secret) = site.key("acme");
        site.rule("acme", Some(&key_id), 1_000_000, 60);
        let url = redis.url();
        let args = [
            "--redis-url",
            url.as_str(),
            "--redis-timeout",
            "1s",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        let (a, b) = (
            Serve::start(site.dir.path(), &args).await,
            Serve::start(site.dir.path(), &args).await,
        );
        let http = http();
        a.wait_limiter(&http, "shared").await;
        b.wait_limiter(&http, "shared").await;

        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let load: Vec<_> = (0..8)
            .map(|i| {
                let bases = [a.base.clone(), b.base.clone()];
                let (http, secret, stop, ok, failures) = (
                    http.clone(),
                    secret.clone(),
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                );
                tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        match chat(&http, &bases[n % 2], &secret).await {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            other => {
                                failures.lock().unwrap().push(other);
                                0
                            }
                        };
                        n += 1;
                    }
                })
            })
            .collect();
        let more = |n: u64| {
            let target = ok.load(Ordering::Relaxed) + n;
            let ok = ok.clone();
            async move {
                wait_until("requests keep being served", || {
                    ok.load(Ordering::Relaxed) >= target
                })
                .await
            }
        };
        more(50).await;

        redis.kill();
        let outage = Instant::now();
        a.wait_limiter(&http, "local-fallback").await;
        b.wait_limiter(&http, "local-fallback").await;
        // Serve through an outage spanning several reconnection attempts
        // (every 250 ms), which must not log again.
        while outage.elapsed() < Duration::from_secs(2) {
            more(10).await;
        }
        // The counters snapshot (hence /metrics and the console) says so too.
        let start = Instant::now();
        loop {
            let metrics = http
                .get(a.metrics.as_deref().expect("--metrics-listen"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metrics.contains("limiter=\"local-fallback\"") {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "/metrics never reported the fallback:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        redis.restart();
        a.wait_limiter(&http, "shared").await;
        b.wait_limiter(&http, "shared").await;
        more(50).await;
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.await.unwrap();
        }
        assert_eq!(
            *failures.lock().unwrap(),
            Vec::<u16>::new(),
            "requests failed during the outage"
        );

        for s in [&a, &b] {
            // Logged once per transition: reachable (start), unreachable, reachable again.
            let log = s.log();
            let transitions: Vec<char> = log
                .lines()
                .filter_map(|l| {
                    if l.contains("Redis unreachable") {
                        Some('U')
                    } else if l.contains("Redis reachable") {
                        Some('R')
                    } else {
                        None
                    }
                })
                .collect();
            assert!(
                transitions.len() >= 3
                    && transitions.starts_with(&['R', 'U'])
                    && transitions.ends_with(&['R']),
                "{log}"
            );
            assert!(
                transitions.windows(2).all(|w| w[0] != w[1]),
                "a transition logged twice:\n{log}"
            );
            assert!(!log.contains("ERROR"), "{log}");
        }
    }

    /// Requests refused before the limiter (a revoked key: 401) consume no
    /// quota; rule edits apply without restart and keep the history;
    /// deleting the rule frees the workspace at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_keys_count_nowhere_and_rule_changes_apply_live() {
        let site = Site::new().await;
        let (k1, s1) = site.key("acme");
        let (_, s2) = site.key("acme");
        let rule = site.rule("acme", None, 3, 600);
        let gw = Serve::start(site.dir.path(), &[]).await;
        let http = http();
        assert_eq!(gw.health(&http).await["limiter"], "local");
        assert_eq!(chat(&http, &gw.base, &s1).await, 200);
        site.apply(vec![Change::RevokeKey { id: k1.clone() }]);
        gw.wait_revision(&site, site.revision()).await;
        for _ in 0..5 {
            assert_eq!(chat(&http, &gw.base, &s1).await, 401);
        }
        assert_eq!(chat(&http, &gw.base, &s2).await, 200);
        assert_eq!(chat(&http, &gw.base, &s2).await, 200);
        assert_eq!(
            chat(&http, &gw.base, &s2).await,
            429,
            "3 admitted: the revoked key's 401s counted nowhere"
        );

        let spec = |limit| RuleSpec {
            target: RuleTarget::Workspace,
            workspace: "acme".into(),
            key_id: None,
            limit,
            duration_secs: 600,
            unit: Default::default(),
        };
        site.apply(vec![Change::UpdateRule {
            model: "m".into(),
            id: rule,
            spec: spec(5),
        }]);
        gw.wait_revision(&site, site.revision()).await;
        assert_eq!(chat(&http, &gw.base, &s2).await, 200);
        assert_eq!(chat(&http, &gw.base, &s2).await, 200);
        assert_eq!(
            chat(&http, &gw.base, &s2).await,
            429,
            "raised to 5 with 3 already counted: 2 more"
        );

        site.apply(vec![Change::DeleteRule {
            model: "m".into(),
            id: rule,
        }]);
        gw.wait_revision(&site, site.revision()).await;
        for _ in 0..10 {
            assert_eq!(chat(&http, &gw.base, &s2).await, 200);
        }
    }
}
