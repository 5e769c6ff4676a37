//! The request path's pieces, one by one: reading `model`, auth + routing
//! lookups, the balancer's pick, counting, and the usage scanner.
//!
//! `cargo bench --bench gateway`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use maasctl::domain::secret::{hash_secret, secret_hint};
use maasctl::domain::{Change, Endpoint, MarketEntry, ModelSpec, Policy, Registry};
use maasctl::gateway::limiter::Limiter;
use maasctl::gateway::limiter::estimate::prompt_tokens;
use maasctl::gateway::proxy::extract::extract_model;
use maasctl::gateway::snapshot::{Builder, RouteRef};
use maasctl::gateway::telemetry::counters::{Counters, RequestOutcome};
use maasctl::gateway::telemetry::events::Events;
use maasctl::gateway::telemetry::usage::UsageScanner;
use maasctl::gateway::upstream::balancer::{Avail, Balancer};
use sha2::{Digest, Sha256};

const CHAT: &[u8] = br#"{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}"#;

fn big_chat() -> Vec<u8> {
    let msgs: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!({"role": "user", "content": format!("message {i} with \"quotes\" and {{braces}} ").repeat(8)}))
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"messages": msgs, "temperature": 0.2, "model": "bench-model"}),
    )
    .unwrap()
}

fn extraction(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract_model");
    g.throughput(Throughput::Bytes(CHAT.len() as u64));
    g.bench_function("small_chat", |b| {
        b.iter(|| extract_model(black_box(CHAT)).unwrap().span)
    });
    let big = big_chat();
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("chat_with_200_messages", |b| {
        b.iter(|| extract_model(black_box(&big)).unwrap().span)
    });
    g.bench_function("serde_json_value_for_comparison", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(black_box(&big)).unwrap()["model"]
                .is_string()
        })
    });
    g.finish();
}

/// The prompt estimate of token rules (`limiter::estimate`): one pass over
/// the whole body, on every request of a model with a token rule.
fn prompt_estimate(c: &mut Criterion) {
    let mut g = c.benchmark_group("prompt_estimate");
    g.throughput(Throughput::Bytes(CHAT.len() as u64));
    g.bench_function("small_chat", |b| b.iter(|| prompt_tokens(black_box(CHAT))));
    let big = big_chat();
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("chat_with_200_messages", |b| {
        b.iter(|| prompt_tokens(black_box(&big)))
    });
    g.finish();
}

/// A registry with `models` enabled models and `keys` keys.
fn registry(models: usize, keys: usize) -> (Registry, Vec<String>) {
    let mut reg = Registry::with_default_cluster("http://127.0.0.1:8080");
    let mut changes = vec![Change::AddWorkspace {
        name: "acme".into(),
        description: String::new(),
    }];
    let mut secrets = Vec::new();
    for i in 0..keys {
        let secret = format!("sk-bench-secret-{i:08}-padding-padding");
        changes.push(Change::CreateKey {
            id: format!("key_{i:08x}"),
            workspace: "acme".into(),
            name: format!("k{i}"),
            secret_hash: hash_secret(&secret),
            secret_hint: secret_hint(&secret),
        });
        secrets.push(secret);
    }
    for i in 0..models {
        let name = format!("model-{i}");
        changes.push(Change::AddMarket(MarketEntry {
            name: name.clone(),
            provider: "p".into(),
            tags: vec![],
            description: String::new(),
            published: true,
            input_price: None,
            output_price: None,
        }));
        changes.push(Change::CreateModel(ModelSpec {
            name: name.clone(),
            cluster: "local".into(),
            model_id: format!("upstream-{i}"),
            endpoints: vec![Endpoint::new("http://127.0.0.1:9/v1")],
            policy: Policy::RoundRobin,
            tags: vec![],
            fallbacks: Vec::new(),
            completion_cap: None,
        }));
        changes.push(Change::SetEnabled {
            name,
            enabled: true,
        });
    }
    reg.apply_all(changes, 0).unwrap();
    (reg, secrets)
}

fn routing(c: &mut Criterion) {
    let (reg, secrets) = registry(500, 2000);
    let mut builder = Builder::new(
        2,
        None,
        None,
        Duration::from_secs(1),
        Limiter::local(),
        Arc::new(Events::default()),
    );
    let snap = builder.build(&reg);
    let mut g = c.benchmark_group("routing");
    g.bench_function("auth_sha256_and_key_lookup_2000_keys", |b| {
        let secret = secrets[1234].as_bytes();
        b.iter(|| {
            let hash: [u8; 32] = Sha256::digest(black_box(secret)).into();
            snap.key(&hash).unwrap()
        })
    });
    g.bench_function("model_lookup_500_models", |b| {
        b.iter(|| matches!(snap.route(black_box("model-321")), Some(RouteRef::Serve(_))))
    });
    g.finish();
}

fn balancing(c: &mut Criterion) {
    let mut g = c.benchmark_group("balancer_pick");
    let healthy = |_: usize| Avail::Healthy;
    let rr = Balancer::new(Policy::RoundRobin, &[1, 1, 1]);
    g.bench_function("round_robin_3", |b| b.iter(|| rr.pick(3, healthy)));
    let random = Balancer::new(Policy::Random, &[1, 1, 1]);
    g.bench_function("random_3", |b| b.iter(|| random.pick(3, healthy)));
    let w = Balancer::new(Policy::Weighted, &[70, 20, 10]);
    g.bench_function("weighted_3", |b| b.iter(|| w.pick(3, healthy)));
    let one_down = |i: usize| if i == 0 { Avail::Down } else { Avail::Healthy };
    g.bench_function("weighted_3_one_down", |b| b.iter(|| w.pick(3, one_down)));
    g.finish();
}

fn counting(c: &mut Criterion) {
    let subjects: Vec<Counters> = (0..5).map(|_| Counters::new(2)).collect();
    c.bench_function("count_one_request_5_subjects", |b| {
        b.iter(|| {
            for s in &subjects {
                s.start(0);
                s.outcome(0, RequestOutcome::Success);
                s.tokens(0, 11, 7);
                s.latency(0, Duration::from_micros(black_box(850)));
                s.finish(0);
            }
        })
    });
}

fn usage_scan(c: &mut Criterion) {
    let body = br#"{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;
    let mut g = c.benchmark_group("usage_scan");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("chat_completion_310b", |b| {
        b.iter(|| {
            let mut s = UsageScanner::default();
            s.feed(black_box(body));
            s.completion
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    extraction,
    prompt_estimate,
    routing,
    balancing,
    counting,
    usage_scan
);
criterion_main!(benches);
