//! Fabricated registries and counters for the console's snapshot tests and
//! render benchmark: deterministic (fixed clock, fixed ids), no store, no
//! gateway. Included by `tests/tui.rs` and `benches/render.rs` with
//! `#[path]` (not part of the library).

#![allow(dead_code)] // each includer uses its own subset

use std::sync::Arc;

use maasctl::client::{GatewayHeader, GatewayState, RegistryView};
use maasctl::domain::secret::hash_secret;
use maasctl::domain::*;
use maasctl::gateway::{EndpointStats, Event, EventKind, RuleStats, StatsSnapshot, Totals};
use maasctl::tui::app::App;
use maasctl::tui::theme::Theme;

/// The fixtures' clock: 2025-06-15 15:06:40 UTC.
pub const NOW_MS: i64 = 1_750_000_000_000;
const NOW: i64 = NOW_MS / 1000;
/// The gateway address the fixtures show.
pub const LISTEN: &str = "127.0.0.1:8080";

fn market(name: &str, provider: &str, tags: &[&str], published: bool) -> Change {
    Change::AddMarket(MarketEntry {
        name: name.into(),
        provider: provider.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        description: format!("{name} by {provider}."),
        published,
        input_price: None,
        output_price: None,
    })
}

fn key(id: &str, ws: &str, name: &str) -> Change {
    let secret = format!("sk-fixture-secret-{id}");
    Change::CreateKey {
        id: id.into(),
        workspace: ws.into(),
        name: name.into(),
        secret_hash: hash_secret(&secret),
        secret_hint: secret[secret.len() - 4..].to_string(),
    }
}

fn ep(url: &str, key: Option<&str>, weight: Option<u32>) -> Endpoint {
    Endpoint {
        api_key: key.map(Secret::new),
        weight,
        ..Endpoint::new(url)
    }
}

fn model(name: &str, id: &str, policy: Policy, endpoints: Vec<Endpoint>, tags: &[&str]) -> Change {
    Change::CreateModel(ModelSpec {
        name: name.into(),
        cluster: Cluster::DEFAULT.into(),
        model_id: id.into(),
        endpoints,
        policy,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        fallbacks: Vec::new(),
        completion_cap: None,
    })
}

/// Four named models (two enabled, one disabled, one on an unpublished
/// entry), workspaces, keys, rules, plus `extra` generated models.
pub fn registry(extra: usize) -> Registry {
    let mut reg = Registry::with_default_cluster(&format!("http://{LISTEN}"));
    let mut changes = vec![
        market("DeepSeek-V3", "DeepSeek", &["chat", "moe"], true),
        market("DeepSeek-R1", "DeepSeek", &["reasoning"], true),
        market("Qwen2.5-72B-Instruct", "Alibaba Cloud", &["chat"], true),
        market("Llama-3.3-70B-Instruct", "Meta", &["chat"], false),
        market("Mistral-Large-2411", "Mistral AI", &["chat"], true),
        Change::AddCluster(Cluster {
            name: "cn-east".into(),
            entry_address: "https://gw.cn-east.example.com".into(),
        }),
        Change::AddWorkspace {
            name: "acme".into(),
            description: "Acme production apps".into(),
        },
        Change::AddWorkspace {
            name: "research".into(),
            description: "Notebooks".into(),
        },
        key("key_0000a001", "acme", "prod"),
        key("key_0000a002", "acme", "batch"),
        key("key_0000b001", "research", "notebook"),
        Change::RevokeKey {
            id: "key_0000a002".into(),
        },
        model(
            "DeepSeek-V3",
            "deepseek-chat",
            Policy::Weighted,
            vec![
                ep(
                    "http://127.0.0.1:9101/v1",
                    Some("sk-upstream-secret-7f3a"),
                    Some(70),
                ),
                ep("http://127.0.0.1:9102/v1", None, Some(30)),
            ],
            &["chat", "moe"],
        ),
        model(
            "Qwen2.5-72B-Instruct",
            "qwen2.5-72b-instruct",
            Policy::RoundRobin,
            vec![
                ep("http://127.0.0.1:9103/v1", None, None),
                ep("http://127.0.0.1:9104/v1", None, None),
            ],
            &["chat"],
        ),
        model(
            "DeepSeek-R1",
            "deepseek-reasoner",
            Policy::Random,
            vec![ep("http://127.0.0.1:9105/v1", None, None)],
            &["reasoning"],
        ),
        model(
            "Llama-3.3-70B-Instruct",
            "llama-3.3-70b",
            Policy::RoundRobin,
            vec![ep("http://127.0.0.1:9106/v1", None, None)],
            &[],
        ),
        Change::SetEnabled {
            name: "DeepSeek-V3".into(),
            enabled: true,
        },
        Change::SetEnabled {
            name: "Qwen2.5-72B-Instruct".into(),
            enabled: true,
        },
        Change::AddRule {
            model: "DeepSeek-V3".into(),
            spec: RuleSpec {
                target: RuleTarget::ApiKey,
                workspace: "acme".into(),
                key_id: Some("key_0000a001".into()),
                limit: 10,
                duration_secs: 1,
                unit: Default::default(),
            },
        },
        Change::AddRule {
            model: "DeepSeek-V3".into(),
            spec: RuleSpec {
                target: RuleTarget::Workspace,
                workspace: "research".into(),
                key_id: None,
                limit: 600,
                duration_secs: 60,
                unit: Default::default(),
            },
        },
    ];
    for i in 0..extra {
        let name = format!("model-{i:05}");
        changes.push(market(&name, "Fixture", &["gen"], true));
        changes.push(model(
            &name,
            &format!("upstream-{i:05}"),
            Policy::RoundRobin,
            vec![ep(
                &format!("http://10.0.{}.{}:8000/v1", i / 250, i % 250),
                None,
                None,
            )],
            &["gen"],
        ));
        changes.push(Change::SetEnabled {
            name,
            enabled: true,
        });
    }
    reg.apply_all(changes, NOW)
        .expect("fixture registry is valid");
    reg
}

/// What the embedded gateway reports: every enabled model routed, one of
/// Qwen's endpoints down.
pub fn reports(reg: &Registry) -> Vec<GatewayReport> {
    let mut endpoints = Vec::new();
    for m in reg.models.values().filter(|m| m.enabled) {
        for (i, e) in m.spec.endpoints.iter().enumerate() {
            let down = m.spec.name == "Qwen2.5-72B-Instruct" && i == 1;
            endpoints.push(EndpointHealth {
                model: m.spec.name.clone(),
                index: i,
                url: e.url.clone(),
                state: if down {
                    EndpointState::Down
                } else {
                    EndpointState::Healthy
                },
                reason: down.then(|| "connection refused".to_string()),
                since_ms: down.then_some(NOW_MS - 30_000),
                until_ms: None,
                requests_1m: 0,
            });
        }
    }
    vec![GatewayReport {
        id: format!("fixture:1:{LISTEN}"),
        cluster: None,
        listen: LISTEN.into(),
        applied_revision: reg.revision,
        started_ms: NOW_MS - 600_000,
        heartbeat_ms: NOW_MS - 1000,
        limiter: LimiterMode::Local,
        endpoints,
        admin: None,
    }]
}

fn totals(requests: u64, throttled: u64, errors: u64) -> Totals {
    Totals {
        requests,
        success: requests - throttled - errors,
        throttled,
        upstream_errors: errors,
        prompt_tokens: requests * 20,
        completion_tokens: requests * 50,
        latency_p50_ms: 120.0,
        latency_p99_ms: 950.0,
        ..Default::default()
    }
}

/// Counters at `NOW_MS - 1000 * (steps_back)`: traffic grows steadily, so
/// two snapshots a second apart give fixed rates (DeepSeek-V3 12 req/s,
/// 3 throttled/s; Qwen 5 req/s, 1 error/s).
pub fn stats(reg: &Registry, steps_back: u64) -> StatsSnapshot {
    let t = 100 - steps_back;
    let mut s = StatsSnapshot {
        taken_ms: NOW_MS - 1000 * steps_back as i64,
        listen: LISTEN.into(),
        revision: reg.revision,
        limiter: LimiterMode::Local,
        ..Default::default()
    };
    s.models
        .insert("DeepSeek-V3".into(), totals(12 * t, 3 * t, 0));
    s.models
        .insert("Qwen2.5-72B-Instruct".into(), totals(5 * t, 0, t));
    s.keys
        .insert("key_0000a001".into(), totals(13 * t, 3 * t, t));
    s.keys.insert("key_0000b001".into(), totals(4 * t, 0, 0));
    s.workspaces.insert("acme".into(), totals(13 * t, 3 * t, t));
    s.workspaces.insert("research".into(), totals(4 * t, 0, 0));
    let eps = [
        ("DeepSeek-V3", 0, 6 * t, EndpointState::Healthy, None),
        ("DeepSeek-V3", 1, 3 * t, EndpointState::Healthy, None),
        (
            "Qwen2.5-72B-Instruct",
            0,
            4 * t,
            EndpointState::Healthy,
            None,
        ),
        (
            "Qwen2.5-72B-Instruct",
            1,
            t,
            EndpointState::Down,
            Some("connection refused"),
        ),
    ];
    for (m, i, req, state, reason) in eps {
        let model = &reg.models[m];
        s.endpoints.push(EndpointStats {
            model: m.into(),
            index: i,
            url: model.spec.endpoints[i].url.clone(),
            weight: model.spec.endpoints[i].weight,
            state,
            reason: reason.map(str::to_string),
            since_ms: reason.map(|_| NOW_MS - 30_000),
            totals: totals(req, 0, 0),
        });
    }
    s.gateway = totals(17 * t, 3 * t, t);
    s.rules.push(RuleStats {
        rule_id: 1,
        model: "DeepSeek-V3".into(),
        subject: "key_0000a001".into(),
        limit: 10,
        duration_secs: 1,
        admitted: 9 * t,
        throttled: 3 * t,
        used: 10,
        reset_ms: 400,
    });
    s.events = vec![
        Event {
            seq: 1,
            at_ms: NOW_MS - 2000,
            kind: EventKind::UpstreamError,
            model: Some("Qwen2.5-72B-Instruct".into()),
            key_id: Some("key_0000a001".into()),
            message: "upstream http://127.0.0.1:9104/v1 refused the connection".into(),
        },
        Event {
            seq: 2,
            at_ms: NOW_MS - 1000,
            kind: EventKind::Throttled,
            model: Some("DeepSeek-V3".into()),
            key_id: Some("key_0000a001".into()),
            message: "rule #1 (api-key key_0000a001: 10 per 1s)".into(),
        },
    ];
    s
}

/// A console over the fixture registry with `extra` generated models,
/// after two counter snapshots a second apart (so rates show), as the
/// embedded gateway at [`LISTEN`] would feed it.
pub fn app(extra: usize, theme: Theme) -> App {
    app_with(registry(extra), theme)
}

/// [`app`] over a registry the test changed (e.g. a rule's unit).
pub fn app_with(reg: Registry, theme: Theme) -> App {
    let view = Arc::new(RegistryView {
        reports: Arc::new(reports(&reg)),
        registry: Arc::new(reg),
    });
    let gateway = GatewayHeader {
        listen: Some(LISTEN.into()),
        state: GatewayState::Running,
    };
    let mut app = App::new(theme, view.clone(), gateway, NOW_MS, None);
    for back in [2, 1, 0] {
        app.on_stats(Arc::new(stats(&view.registry, back)));
    }
    app
}

/// One batch applied to `reg` as the store would, and its audit entry
/// (the domain's own diff, secrets masked).
fn audited(
    reg: &mut Registry,
    id: u64,
    at_ms: i64,
    actor: Actor,
    channel: Channel,
    changes: Vec<Change>,
) -> AuditEntry {
    let before = reg.clone();
    let summary = summarize(&changes);
    let (_, touched) = reg
        .apply_all(changes, at_ms / 1000)
        .expect("fixture change is valid");
    AuditEntry {
        id,
        at_ms,
        actor,
        channel,
        revision: Some(reg.revision),
        summary,
        changes: audit::registry_changes(&before, reg, &touched),
    }
}

/// The fixture registry as three more revisions left it, and the audit
/// trail of all of them, oldest first: the seed (revision 1, `maas` via
/// the demo), a model edit in the console (2), an admin token made through
/// the admin API (no revision), a key revoked and a rule changed by the CLI
/// (3).
pub fn audit_trail() -> (Registry, Vec<AuditEntry>) {
    let seeded = registry(0);
    let mut reg = Registry::with_default_cluster(&format!("http://{LISTEN}"));
    let seed = AuditEntry {
        id: 1,
        at_ms: NOW_MS - 86_400_000,
        actor: Actor::user("maas"),
        channel: Channel::Demo,
        revision: Some(1),
        summary: "apply -f seed.yaml".into(),
        changes: audit::registry_changes(&reg, &seeded, &audit::whole(&seeded)),
    };
    reg = seeded;
    let mut spec = reg.models["DeepSeek-V3"].spec.clone();
    spec.model_id = "deepseek-v3".into();
    let edit = audited(
        &mut reg,
        2,
        NOW_MS - 3_600_000,
        Actor::user("alice"),
        Channel::Console,
        vec![Change::UpdateModel {
            name: "DeepSeek-V3".into(),
            spec,
        }],
    );
    let token = AuditEntry {
        id: 3,
        at_ms: NOW_MS - 1_800_000,
        actor: Actor::token("bootstrap"),
        channel: Channel::AdminApi,
        revision: None,
        summary: "create-token grafana".into(),
        changes: vec![
            audit::entity_change(
                "token/grafana".into(),
                None,
                Some(audit::token_fields("read", "9f3c", None)),
            )
            .expect("created"),
        ],
    };
    let mut rule = reg.models["DeepSeek-V3"].rules[0].clone();
    rule.spec.limit = 20;
    let revoke = audited(
        &mut reg,
        4,
        NOW_MS - 60_000,
        Actor::user("bob"),
        Channel::Cli,
        vec![
            Change::UpdateRule {
                model: "DeepSeek-V3".into(),
                id: rule.id,
                spec: rule.spec,
            },
            Change::RevokeKey {
                id: "key_0000a001".into(),
            },
        ],
    );
    (reg, vec![seed, edit, token, revoke])
}

/// The model of [`routing_app`]: eight weighted endpoints, one in each
/// state the gateway reports, falling back to DeepSeek-V3 then Qwen.
pub const ROUTED: &str = "Mixtral-8x22B";

/// Each endpoint of [`ROUTED`]: (state, weight, reason, tries in the last
/// minute, in flight).
pub const ROUTED_STATES: [(EndpointState, u32, Option<&str>, u64, u64); 8] = [
    (EndpointState::Healthy, 30, None, 600, 2),
    (EndpointState::Unknown, 10, None, 0, 0),
    (
        EndpointState::Down,
        10,
        Some("5 of 8 tries failed in 10s: connection refused"),
        40,
        0,
    ),
    (
        EndpointState::HalfOpen,
        10,
        Some("trial after 30s out"),
        10,
        1,
    ),
    (
        EndpointState::Cooling,
        10,
        Some("upstream answered 429"),
        150,
        0,
    ),
    (EndpointState::Draining, 10, None, 200, 3),
    (EndpointState::Drained, 10, None, 0, 0),
    (EndpointState::Disabled, 10, None, 0, 0),
];

/// The fixture registry plus [`ROUTED`] (enabled).
pub fn routing_registry() -> Registry {
    let mut reg = registry(0);
    let endpoints = ROUTED_STATES
        .iter()
        .enumerate()
        .map(|(i, (state, weight, ..))| Endpoint {
            drain: matches!(state, EndpointState::Draining | EndpointState::Drained),
            disabled: *state == EndpointState::Disabled,
            ..ep(
                &format!("http://10.0.0.{}:8000/v1", i + 1),
                None,
                Some(*weight),
            )
        })
        .collect();
    let spec = ModelSpec {
        name: ROUTED.into(),
        cluster: Cluster::DEFAULT.into(),
        model_id: "mixtral-8x22b".into(),
        endpoints,
        policy: Policy::Weighted,
        tags: vec!["moe".into()],
        fallbacks: vec!["DeepSeek-V3".into(), "Qwen2.5-72B-Instruct".into()],
        completion_cap: None,
    };
    reg.apply_all(
        vec![
            market(ROUTED, "Mistral", &["moe"], true),
            Change::CreateModel(spec),
            Change::SetEnabled {
                name: ROUTED.into(),
                enabled: true,
            },
        ],
        NOW,
    )
    .expect("routing fixture is valid");
    reg
}

/// A console over [`routing_registry`]: the gateway reports each of
/// [`ROUTED`]'s endpoints in its state (the cooling one until 12 s from
/// now), with the last minute's tries; the live counters agree.
pub fn routing_app(theme: Theme) -> App {
    let reg = routing_registry();
    let mut reports = reports(&reg);
    for (i, (state, _, reason, requests_1m, _)) in ROUTED_STATES.iter().enumerate() {
        let h = reports[0]
            .endpoints
            .iter_mut()
            .find(|e| e.model == ROUTED && e.index == i)
            .expect("the routed model is reported");
        h.state = *state;
        h.reason = reason.map(str::to_string);
        h.since_ms = reason.map(|_| NOW_MS - 30_000);
        h.until_ms = (*state == EndpointState::Cooling).then_some(NOW_MS + 12_000);
        h.requests_1m = *requests_1m;
    }
    let view = Arc::new(RegistryView {
        reports: Arc::new(reports),
        registry: Arc::new(reg),
    });
    let gateway = GatewayHeader {
        listen: Some(LISTEN.into()),
        state: GatewayState::Running,
    };
    let mut app = App::new(theme, view.clone(), gateway, NOW_MS, None);
    for back in [2, 1, 0] {
        let mut s = stats(&view.registry, back);
        let t = 100 - back;
        for (i, (state, _, reason, requests_1m, in_flight)) in ROUTED_STATES.iter().enumerate() {
            let e = &view.registry.models[ROUTED].spec.endpoints[i];
            s.endpoints.push(EndpointStats {
                model: ROUTED.into(),
                index: i,
                url: e.url.clone(),
                weight: e.weight,
                state: *state,
                reason: reason.map(str::to_string),
                since_ms: reason.map(|_| NOW_MS - 30_000),
                totals: Totals {
                    in_flight: *in_flight,
                    // No answer, no latency.
                    latency_p50_ms: if *requests_1m > 0 { 120.0 } else { 0.0 },
                    latency_p99_ms: if *requests_1m > 0 { 950.0 } else { 0.0 },
                    ..totals(requests_1m / 60 * t, 0, 0)
                },
            });
        }
        let all: u64 = ROUTED_STATES.iter().map(|e| e.3 / 60).sum();
        s.models.insert(ROUTED.into(), totals(all * t, 0, 0));
        app.on_stats(Arc::new(s));
    }
    app
}
