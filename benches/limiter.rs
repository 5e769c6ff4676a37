//! The limiter's cost on the request path (target: < 200 ns per check in
//! process with 10,000 rules over 100,000 keys loaded).
//!
//! One model holds 10,000 rules: 9,000 api-key rules on distinct keys and a
//! workspace rule on each of 1,000 workspaces; 100,000 keys (100 per
//! workspace) take turns so lookups miss the caches as in real traffic.
//! Limits are never reached (the bench measures admits, the common case).
//!
//! The in-process benches measure the benchmark thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on a shared machine, time
//! spent descheduled while other processes run is not the limiter's cost
//! (cache pollution by them still counts, as it would in production).
//!
//! `tokens/…`: the same rules counting tokens, one reservation and its
//! settlement per iteration (issue 12; target < 200 ns too).
//!
//! Set MAASCTL_BENCH_REDIS_URL=redis://127.0.0.1:6379/ to also measure a
//! shared-mode check (one round trip to that Redis, wall time).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use maasctl::domain::{Model, ModelSpec, Policy, Rule, RuleSpec, RuleTarget, RuleUnit};
use maasctl::gateway::limiter::{Decision, Estimate, Limiter, ModelLimits, SharedConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: usize = 100_000;
const WORKSPACES: usize = 1_000;
const KEY_RULES: usize = 9_000;

fn key(i: usize) -> (String, String) {
    (format!("key_{i:08x}"), format!("ws-{:04}", i % WORKSPACES))
}

fn rule(id: usize, target: RuleTarget, workspace: String, key_id: Option<String>) -> Rule {
    Rule {
        id: id as u64,
        spec: RuleSpec {
            target,
            workspace,
            key_id,
            limit: u32::MAX,
            duration_secs: 60,
            unit: Default::default(),
        },
    }
}

fn loaded_model() -> Model {
    // Keys 0..9000 have their own rule (spread over every workspace).
    let mut rules: Vec<Rule> = (0..KEY_RULES)
        .map(|i| {
            let (k, ws) = key(i);
            rule(i + 1, RuleTarget::ApiKey, ws, Some(k))
        })
        .collect();
    rules.extend((0..WORKSPACES).map(|w| {
        rule(
            KEY_RULES + w + 1,
            RuleTarget::Workspace,
            format!("ws-{w:04}"),
            None,
        )
    }));
    Model {
        spec: ModelSpec {
            name: "bench".into(),
            cluster: "local".into(),
            model_id: "bench".into(),
            endpoints: Vec::new(),
            policy: Policy::RoundRobin,
            tags: Vec::new(),
            fallbacks: Vec::new(),
            completion_cap: None,
        },
        enabled: true,
        rules,
        created: 0,
        updated: 0,
        rev: 1,
    }
}

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID unavailable");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanosecond values are formatted like wall time.
static NANOS: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        NANOS.formatter()
    }
}

/// A local check never waits: poll it once.
fn check_now(limiter: &Limiter, limits: &ModelLimits, key: &str, ws: &str) -> Decision {
    let mut fut = pin!(limiter.check(limits, key, ws));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(d) => d,
        Poll::Pending => unreachable!("a local check waited"),
    }
}

/// Benchmark checks cycling over `keys`.
fn bench_keys<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    name: &str,
    limiter: &Limiter,
    limits: &ModelLimits,
    keys: &[(String, String)],
) {
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            // A wrapping index, not `i % len`: a division would cost more than a lookup.
            let (k, ws) = &keys[i];
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            black_box(check_now(limiter, limits, black_box(k), black_box(ws)))
        })
    });
}

fn local(c: &mut Criterion<ThreadCpuTime>) {
    let limiter = Limiter::local();
    let limits = limiter.compile(&loaded_model());
    let mut order: Vec<usize> = (0..KEYS).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    let with_own: Vec<_> = order
        .iter()
        .filter(|&&i| i < KEY_RULES)
        .map(|&i| key(i))
        .collect();
    let ws_only: Vec<_> = order
        .iter()
        .filter(|&&i| i >= KEY_RULES)
        .map(|&i| key(i))
        .collect();
    let unlimited: Vec<_> = ws_only
        .iter()
        .map(|(k, _)| (k.clone(), "no-rules".to_owned()))
        .collect();
    bench_keys(c, "check/key+workspace rules", &limiter, &limits, &with_own);
    bench_keys(c, "check/workspace rule only", &limiter, &limits, &ws_only);
    bench_keys(c, "check/no matching rule", &limiter, &limits, &unlimited);
    // One key over and over: the limiter's own work with every line cached.
    bench_keys(
        c,
        "check/key+workspace rules, one hot key",
        &limiter,
        &limits,
        &with_own[..1],
    );
    c.bench_function("compile/10k rules", |b| {
        let model = loaded_model();
        b.iter(|| black_box(limiter.compile(&model)))
    });
}

fn shared(c: &mut Criterion) {
    let Ok(url) = std::env::var("MAASCTL_BENCH_REDIS_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limiter = rt
        .block_on(Limiter::shared(&url, SharedConfig::default()))
        .expect("shared limiter");
    let limits = limiter.compile(&loaded_model());
    let (k, ws) = key(1);
    c.bench_function("check/shared (Redis round trip)", |b| {
        b.iter(|| black_box(rt.block_on(limiter.check(&limits, &k, &ws))))
    });
}

/// A local reservation never waits either: poll it once.
fn reserve_now(
    limiter: &std::sync::Arc<Limiter>,
    limits: &ModelLimits,
    key: &str,
    ws: &str,
    est: Estimate,
) -> (Decision, Option<maasctl::gateway::limiter::Reservation>) {
    let mut fut = pin!(limiter.reserve(limits, key, ws, est));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(d) => d,
        Poll::Pending => unreachable!("a local reservation waited"),
    }
}

/// The same 10,000 rules counting tokens: one request's reservation
/// (prompt estimate + cap) then its settlement to the usage reported, as
/// the gateway does for a model with token rules (the estimate itself is
/// in `gateway`'s benches).
fn tokens(c: &mut Criterion<ThreadCpuTime>) {
    let limiter = Limiter::local();
    let mut model = loaded_model();
    for r in &mut model.rules {
        r.spec.unit = RuleUnit::Tokens;
    }
    let limits = limiter.compile(&model);
    let mut order: Vec<usize> = (0..KEYS).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    let with_own: Vec<_> = order
        .iter()
        .filter(|&&i| i < KEY_RULES)
        .map(|&i| key(i))
        .collect();
    let est = Estimate {
        prompt: 120,
        completion: 4096,
    };
    let mut i = 0;
    c.bench_function("tokens/reserve+settle, key+workspace token rules", |b| {
        b.iter(|| {
            let (k, ws) = &with_own[i];
            i = if i + 1 == with_own.len() { 0 } else { i + 1 };
            let (d, r) = reserve_now(&limiter, &limits, black_box(k), black_box(ws), est);
            black_box(&d);
            r.expect("a token rule matched").settle(black_box(300));
        })
    });
}

criterion_group! {
    name = in_process;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = local, tokens
}
criterion_group!(redis, shared);
criterion_main!(in_process, redis);
