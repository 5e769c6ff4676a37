//! Every rule the registry enforces, one failing input each, with the field
//! and the words of the refusal; and the declarative plan/export.

use super::manifest::{self, ApplyAction, Manifest};
use super::*;

const KEY_A: &str = "key_aaaa0001";
const KEY_B: &str = "key_bbbb0001";

fn entry(name: &str, published: bool) -> MarketEntry {
    MarketEntry {
        name: name.into(),
        provider: "Test".into(),
        tags: vec![],
        description: String::new(),
        published,
        input_price: None,
        output_price: None,
    }
}

fn spec(name: &str, urls: &[&str]) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        cluster: Cluster::DEFAULT.into(),
        model_id: "upstream-id".into(),
        endpoints: urls.iter().map(|u| Endpoint::new(*u)).collect(),
        policy: Policy::RoundRobin,
        tags: vec![],
        fallbacks: Vec::new(),
        completion_cap: None,
    }
}

fn key(id: &str, workspace: &str, name: &str) -> Change {
    Change::CreateKey {
        id: id.into(),
        workspace: workspace.into(),
        name: name.into(),
        secret_hash: secret::hash_secret(id),
        secret_hint: "abcd".into(),
    }
}

fn rule(target: RuleTarget, workspace: &str, key: Option<&str>, limit: u32, dur: u32) -> RuleSpec {
    RuleSpec {
        target,
        workspace: workspace.into(),
        key_id: key.map(str::to_string),
        limit,
        duration_secs: dur,
        unit: Default::default(),
    }
}

/// Marketplace `Pub` (published) and `Unpub`, workspaces acme and beta with
/// one key each, model `Pub` with rule #1 on acme's key.
fn fixture() -> Registry {
    let mut r = Registry::with_default_cluster("http://127.0.0.1:8080");
    r.apply_all(
        vec![
            Change::AddMarket(entry("Pub", true)),
            Change::AddMarket(entry("Unpub", false)),
            Change::AddWorkspace {
                name: "acme".into(),
                description: String::new(),
            },
            Change::AddWorkspace {
                name: "beta".into(),
                description: String::new(),
            },
            key(KEY_A, "acme", "bot"),
            key(KEY_B, "beta", "bot"),
            Change::CreateModel(spec("Pub", &["https://a.example"])),
            Change::AddRule {
                model: "Pub".into(),
                spec: rule(RuleTarget::ApiKey, "acme", Some(KEY_A), 10, 60),
            },
        ],
        1,
    )
    .expect("fixture applies");
    r
}

/// Apply `c` to the fixture: it must be refused with exactly one error on
/// `field` whose problem contains `words`, and change nothing.
#[track_caller]
fn refused(c: Change, field: &str, words: &str) -> DomainError {
    refused_in(fixture(), c, field, words)
}

#[track_caller]
fn refused_in(mut r: Registry, c: Change, field: &str, words: &str) -> DomainError {
    let before = r.clone();
    let e = r.apply_all(vec![c], 2).expect_err("must be refused");
    assert_eq!(r, before, "a refused change must change nothing");
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].field, field, "{e}");
    assert!(e.errors[0].problem.contains(words), "{e}");
    e
}

#[test]
fn empty_names_are_refused() {
    let empty = "must not be empty";
    refused(
        Change::AddWorkspace {
            name: "".into(),
            description: String::new(),
        },
        "name",
        empty,
    );
    refused(
        Change::AddCluster(Cluster {
            name: " ".into(),
            entry_address: "http://x".into(),
        }),
        "name",
        empty,
    );
    refused(Change::AddMarket(entry("", true)), "name", empty);
    refused(Change::CreateModel(spec("", &["http://x"])), "name", empty);
    refused(key("key_cccc0001", "acme", ""), "name", empty);
    refused(
        Change::AddWorkspace {
            name: "has space".into(),
            description: String::new(),
        },
        "name",
        "contains a space",
    );
}

#[test]
fn duplicate_names_are_refused() {
    refused(
        Change::AddWorkspace {
            name: "acme".into(),
            description: String::new(),
        },
        "name",
        "a workspace named 'acme' already exists",
    );
    refused(
        Change::AddCluster(Cluster {
            name: "local".into(),
            entry_address: "http://x".into(),
        }),
        "name",
        "a cluster named 'local' already exists",
    );
    refused(
        Change::AddMarket(entry("Pub", true)),
        "name",
        "a marketplace entry named 'Pub' already exists",
    );
    refused(
        Change::CreateModel(spec("Pub", &["http://x"])),
        "name",
        "a model named 'Pub' already exists",
    );
    refused(
        key("key_cccc0001", "acme", "bot"),
        "name",
        "workspace 'acme' already has a key named 'bot'",
    );
}

#[test]
fn endpoint_urls_must_parse_and_be_http() {
    refused(
        Change::CreateModel(spec("Unpub", &["not a url"])),
        "endpoints[0].url",
        "'not a url' is not a valid URL",
    );
    refused(
        Change::CreateModel(spec(
            "Unpub",
            &["https://ok.example", "ftp://files.example"],
        )),
        "endpoints[1].url",
        "scheme 'ftp' is not supported; use http or https",
    );
    refused(
        Change::CreateModel(spec("Unpub", &[])),
        "endpoints",
        "at least one endpoint is required",
    );
}

/// `n` characters, the first a two-byte one: limits count characters.
fn text(n: usize) -> String {
    format!("é{}", "a".repeat(n - 1))
}

/// `change(max)` is accepted (unless `at_max_ok` is false: a reference that
/// names nothing) and `change(max + 1)` refused on `field` with exactly the
/// limit's words.
#[track_caller]
fn limited(field: &str, limit: limits::Limit, at_max_ok: bool, change: impl Fn(usize) -> Change) {
    let max = limit.max;
    if at_max_ok {
        fixture()
            .apply_all(vec![change(max)], 2)
            .unwrap_or_else(|e| panic!("{field} at its limit of {max}: {e}"));
    }
    let e = refused(change(max + 1), field, "");
    assert_eq!(
        e.errors[0].problem,
        format!("{} {} is over the limit of {max}", max + 1, limit.unit)
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
}

fn model_with(f: impl Fn(&mut ModelSpec)) -> Change {
    let mut s = spec("Unpub", &["https://a.example"]);
    f(&mut s);
    Change::CreateModel(s)
}

#[test]
fn workspace_market_and_key_fields_have_limits_named_in_the_error() {
    use limits::*;
    let ws = |name: String, description: String| Change::AddWorkspace { name, description };
    limited("name", NAME, true, |n| ws(text(n), String::new()));
    limited("description", DESCRIPTION, true, |n| {
        ws("new".into(), text(n))
    });
    limited("description", DESCRIPTION, true, |n| {
        Change::UpdateWorkspace {
            name: "acme".into(),
            description: text(n),
        }
    });
    let market = |f: &dyn Fn(&mut MarketEntry)| {
        let mut e = entry("New", true);
        f(&mut e);
        Change::AddMarket(e)
    };
    limited("description", DESCRIPTION, true, |n| {
        market(&|e| e.description = text(n))
    });
    limited("provider", PROVIDER, true, |n| {
        market(&|e| e.provider = text(n))
    });
    limited("tags", TAGS, true, |n| {
        market(&|e| e.tags = (0..n).map(|i| format!("t{i}")).collect())
    });
    limited("tags[0]", TAG, true, |n| {
        market(&|e| e.tags = vec![text(n)])
    });
    limited("name", NAME, true, |n| {
        key("key_cccc0001", "acme", &text(n))
    });
    limited("id", KEY_ID, true, |n| {
        key(&format!("key_{}", "a".repeat(n - 4)), "acme", "new")
    });
    limited("secret_hint", SECRET_HINT, true, |n| {
        let Change::CreateKey {
            id,
            workspace,
            name,
            secret_hash,
            ..
        } = key("key_cccc0001", "acme", "new")
        else {
            unreachable!()
        };
        Change::CreateKey {
            id,
            workspace,
            name,
            secret_hash,
            secret_hint: "x".repeat(n),
        }
    });
}

#[test]
fn model_cluster_and_rule_fields_have_limits_too() {
    use limits::*;
    limited("tags[0]", TAG, true, |n| {
        model_with(|s| s.tags = vec![text(n)])
    });
    let cluster = |name: String, entry_address: String| {
        Change::AddCluster(Cluster {
            name,
            entry_address,
        })
    };
    limited("name", NAME, true, |n| cluster(text(n), "http://e".into()));
    limited("entry_address", URL, true, |n| {
        cluster(
            "eu".into(),
            format!("http://e.example/{}", "a".repeat(n - 17)),
        )
    });
    limited("endpoints[0].url", URL, true, |n| {
        model_with(|s| s.endpoints[0].url = format!("http://a.example/{}", "a".repeat(n - 17)))
    });
    limited("model_id", MODEL_ID, true, |n| {
        model_with(|s| s.model_id = "m".repeat(n))
    });
    limited("cluster", NAME, false, |n| {
        model_with(|s| s.cluster = text(n))
    });
    limited("endpoints", ENDPOINTS, true, |n| {
        model_with(|s| {
            s.endpoints = (0..n)
                .map(|i| Endpoint::new(format!("http://e{i}.example")))
                .collect()
        })
    });
    limited("endpoints[0].api_key", UPSTREAM_KEY, true, |n| {
        model_with(|s| s.endpoints[0].api_key = Some(Secret::new("k".repeat(n))))
    });
    limited("endpoints[0].api_key_ref", PATH, true, |n| {
        model_with(|s| {
            s.endpoints[0].api_key = Some(Secret::new("sk-x"));
            s.endpoints[0].api_key_ref = Some(format!("env:{}", "A".repeat(n - 4)));
        })
    });
    limited("endpoints[0].ca_file", PATH, true, |n| {
        model_with(|s| s.endpoints[0].ca_file = Some(format!("/{}", "a".repeat(n - 1))))
    });
    limited("workspace", NAME, false, |n| {
        add_rule(rule(RuleTarget::Workspace, &text(n), None, 5, 60))
    });
    limited("key", KEY_ID, false, |n| {
        add_rule(rule(
            RuleTarget::ApiKey,
            "acme",
            Some(&"k".repeat(n)),
            5,
            60,
        ))
    });
}

#[test]
fn a_huge_value_gets_one_short_error() {
    let huge = "a".repeat(10 << 20);
    let e = refused(
        Change::AddWorkspace {
            name: "big".into(),
            description: huge.clone(),
        },
        "description",
        "",
    );
    assert_eq!(
        e.to_string(),
        "description: 10485760 characters is over the limit of 1024"
    );
    // A name too long to exist is cut where a refusal quotes it.
    let e = refused(
        Change::SetEnabled {
            name: huge.clone(),
            enabled: true,
        },
        "model",
        "",
    );
    assert_eq!(
        e.errors[0].problem,
        format!("no model named '{}…'", &huge[..64])
    );
    let e = refused(
        Change::CreateModel(spec(&huge, &["http://a"])),
        "name",
        "10485760 characters is over the limit of 64",
    );
    assert!(e.to_string().len() < 100, "{e}");
}

#[test]
fn the_limits_table_is_the_documented_one() {
    let doc = include_str!("../../docs/limits.md");
    for l in limits::LIMITS {
        let row = format!("| {} | {} {} |", l.what, l.max, l.unit);
        assert!(doc.contains(&row), "docs/limits.md lacks the row {row}");
    }
    let rows = doc
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| what") && !l.starts_with("| -"))
        .count();
    assert_eq!(
        rows,
        limits::LIMITS.len(),
        "docs/limits.md has rows the table does not"
    );
}

fn weighted(weights: &[Option<u32>], policy: Policy) -> Change {
    let mut s = spec("Unpub", &["http://a", "http://b"]);
    s.policy = policy;
    for (e, w) in s.endpoints.iter_mut().zip(weights) {
        e.weight = *w;
    }
    Change::CreateModel(s)
}

#[test]
fn weights_sum_to_100_under_weighted_only() {
    refused(
        weighted(&[Some(60), Some(30)], Policy::Weighted),
        "weight",
        "endpoint weights sum to 90; under the weighted policy they must sum to exactly 100",
    );
    refused(
        weighted(&[Some(100), None], Policy::Weighted),
        "endpoints[1].weight",
        "is required under the weighted policy",
    );
    refused(
        weighted(&[Some(50), None], Policy::RoundRobin),
        "endpoints[0].weight",
        "weights are only used by the weighted policy (policy is round-robin)",
    );
    let mut r = fixture();
    r.apply_all(vec![weighted(&[Some(70), Some(30)], Policy::Weighted)], 2)
        .expect("70 + 30 is fine");
}

fn add_rule(spec: RuleSpec) -> Change {
    Change::AddRule {
        model: "Pub".into(),
        spec,
    }
}

#[test]
fn rule_limit_and_duration_are_at_least_1() {
    refused(
        add_rule(rule(RuleTarget::Workspace, "acme", None, 0, 60)),
        "limit",
        "0 is less than 1",
    );
    refused(
        add_rule(rule(RuleTarget::Workspace, "acme", None, 5, 0)),
        "duration",
        "0 is less than 1 second",
    );
}

#[test]
fn rule_workspace_and_key_must_exist_and_belong_together() {
    refused(
        add_rule(rule(RuleTarget::Workspace, "nope", None, 5, 60)),
        "workspace",
        "no workspace named 'nope'",
    );
    refused(
        add_rule(rule(
            RuleTarget::ApiKey,
            "acme",
            Some("key_missing1"),
            5,
            60,
        )),
        "key",
        "no API key with id 'key_missing1'",
    );
    refused(
        add_rule(rule(RuleTarget::ApiKey, "acme", Some(KEY_B), 5, 60)),
        "key",
        "key 'key_bbbb0001' belongs to workspace 'beta', not 'acme'",
    );
    refused(
        add_rule(rule(RuleTarget::ApiKey, "acme", None, 5, 60)),
        "key",
        "is required when the target is api-key",
    );
    refused(
        add_rule(rule(RuleTarget::Workspace, "acme", Some(KEY_A), 5, 60)),
        "key",
        "must be left out when the target is workspace",
    );
    let mut r = fixture();
    r.apply_all(vec![Change::RevokeKey { id: KEY_B.into() }], 2)
        .unwrap();
    refused_in(
        r,
        add_rule(rule(RuleTarget::ApiKey, "beta", Some(KEY_B), 5, 60)),
        "key",
        "key 'key_bbbb0001' is revoked",
    );
}

#[test]
fn enabling_needs_a_published_entry() {
    let mut r = fixture();
    r.apply_all(vec![Change::CreateModel(spec("Unpub", &["http://x"]))], 2)
        .unwrap();
    let e = refused_in(
        r.clone(),
        Change::SetEnabled {
            name: "Unpub".into(),
            enabled: true,
        },
        "status",
        "model 'Unpub' cannot be enabled: marketplace entry 'Unpub' is not published",
    );
    assert_eq!(e.kind, ErrorKind::Refused);
    // And an enabled model keeps its entry published.
    r.apply_all(
        vec![Change::SetEnabled {
            name: "Pub".into(),
            enabled: true,
        }],
        3,
    )
    .unwrap();
    refused_in(
        r,
        Change::SetPublished {
            name: "Pub".into(),
            published: false,
        },
        "published",
        "model 'Pub' is enabled and needs this entry published; disable the model first",
    );
}

#[test]
fn models_need_a_marketplace_entry_and_a_known_cluster() {
    refused(
        Change::CreateModel(spec("Nowhere", &["http://x"])),
        "name",
        "'Nowhere' is not in the marketplace",
    );
    let mut s = spec("Unpub", &["http://x"]);
    s.cluster = "mars".into();
    refused(Change::CreateModel(s), "cluster", "no cluster named 'mars'");
}

#[test]
fn deleting_what_rules_use_names_the_rules() {
    refused(
        Change::DeleteWorkspace {
            name: "acme".into(),
        },
        "name",
        "workspace 'acme' is used by model Pub rule #1 (api-key key_aaaa0001: 10 per 60s); delete those rules first",
    );
    refused(
        Change::DeleteKey { id: KEY_A.into() },
        "key",
        "key 'key_aaaa0001' is used by model Pub rule #1 (api-key key_aaaa0001: 10 per 60s); delete those rules first",
    );
    refused(
        Change::DeleteWorkspace {
            name: "beta".into(),
        },
        "name",
        "workspace 'beta' still has active keys (key_bbbb0001); revoke them first",
    );
    refused(
        Change::DeleteCluster {
            name: "local".into(),
        },
        "name",
        "'local' is the default cluster; it cannot be deleted",
    );
}

#[test]
fn a_failing_batch_changes_nothing_and_unchanged_batches_keep_the_revision() {
    let mut r = fixture();
    let before = r.clone();
    let e = r
        .apply_all(
            vec![
                Change::AddWorkspace {
                    name: "gamma".into(),
                    description: String::new(),
                },
                add_rule(rule(RuleTarget::Workspace, "gamma", None, 0, 1)),
            ],
            2,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "limit: 0 is less than 1; a rule admits at least 1 request"
    );
    // A token rule's message speaks of tokens.
    let tokens = RuleSpec {
        unit: crate::domain::RuleUnit::Tokens,
        ..rule(RuleTarget::Workspace, "gamma", None, 0, 1)
    };
    let errs = crate::domain::registry::rule::validate(&tokens);
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["limit: 0 is less than 1; a rule admits at least 1 token"]
    );
    assert_eq!(r, before);
    let (outcomes, touched) = r
        .apply_all(
            vec![Change::SetEnabled {
                name: "Pub".into(),
                enabled: false,
            }],
            2,
        )
        .unwrap();
    assert_eq!(outcomes, vec![Outcome::Unchanged]);
    assert!(touched.is_empty());
    assert_eq!(r.revision, before.revision);
}

#[test]
fn expect_revision_refuses_a_stale_batch() {
    let mut r = fixture();
    let rev = r.revision;
    r.apply_all(vec![Change::ExpectRevision { revision: rev }], 2)
        .unwrap();
    let e = refused_in(
        r,
        Change::ExpectRevision { revision: rev - 1 },
        "revision",
        "the registry changed",
    );
    assert!(e.is_stale_revision());
}

#[test]
fn renaming_a_model_keeps_its_rules_and_bumps_its_rev() {
    let mut r = fixture();
    let mut s = r.models["Pub"].spec.clone();
    r.apply_all(vec![Change::AddMarket(entry("A-first", true))], 2)
        .unwrap();
    s.name = "A-first".into();
    r.apply_all(
        vec![Change::UpdateModel {
            name: "Pub".into(),
            spec: s,
        }],
        3,
    )
    .unwrap();
    assert!(!r.models.contains_key("Pub"));
    let m = &r.models["A-first"];
    assert_eq!(m.rules[0].id, 1);
    assert_eq!(m.rev, r.revision);
}

// ---- manifest: plan and export ----

fn reads(r: &str) -> Result<String, String> {
    match r {
        "env:UP_KEY" => Ok("sk-upstream-secret-0001".into()),
        "env:BENCH_SECRET" => Ok("sk-imported-benchmark-secret".into()),
        _ => Err(format!("{r} is not set")),
    }
}

fn unreadable(r: &str) -> Result<String, String> {
    Err(format!("{r} is not set"))
}

const MANIFEST: &str = r#"
market:
  - name: Own-7B
    provider: Acme
    published: true
clusters:
  - name: east
    entry_address: https://gw.east.example.com
workspaces:
  - name: team
    keys:
      - name: ci
      - name: bench
        secret: env:BENCH_SECRET
models:
  - name: Own-7B
    cluster: east
    model_id: own-7b
    policy: weighted
    enabled: true
    endpoints:
      - url: https://a.example
        api_key: env:UP_KEY
        weight: 60
      - url: https://b.example
        weight: 40
    rules:
      - target: api-key
        workspace: team
        key: ci
        limit: 5
        duration: 1
      - target: workspace
        workspace: team
        limit: 100
        duration: 60
"#;

fn manifest(s: &str) -> Manifest {
    serde_yaml_ng::from_str(s).expect("test manifest parses")
}

fn applied(reg: &mut Registry, m: &Manifest) -> manifest::Plan {
    let plan = manifest::plan(reg, m, &reads).expect("plans");
    reg.apply_all(plan.changes.clone(), 5)
        .expect("the plan applies");
    plan
}

#[test]
fn plan_creates_everything_then_nothing() {
    let mut reg = fixture();
    let m = manifest(MANIFEST);
    let plan = applied(&mut reg, &m);
    assert!(
        plan.report.iter().all(|r| r.action == ApplyAction::Created),
        "{:?}",
        plan.report
    );
    assert_eq!(plan.report.len(), 6);
    // The generated secret is handed back once; the imported one is not.
    assert_eq!(plan.secrets.len(), 1);
    assert_eq!(plan.secrets[0].name, "ci");
    let ci = &reg.keys[&plan.secrets[0].id];
    assert_eq!(ci.secret_hash, secret::hash_secret(&plan.secrets[0].secret));
    let bench = reg.keys.values().find(|k| k.name == "bench").unwrap();
    assert_eq!(
        bench.secret_hash,
        secret::hash_secret("sk-imported-benchmark-secret")
    );
    let model = &reg.models["Own-7B"];
    assert!(model.enabled);
    assert_eq!(
        model.spec.endpoints[0].api_key.as_ref().unwrap().expose(),
        "sk-upstream-secret-0001"
    );
    assert_eq!(
        model.spec.endpoints[0].api_key_ref.as_deref(),
        Some("env:UP_KEY")
    );
    assert_eq!(model.rules[0].spec.key_id.as_deref(), Some(ci.id.as_str()));

    let rev = reg.revision;
    // Again, even where references cannot be read now: nothing to do.
    let again = manifest::plan(&reg, &m, &unreadable).unwrap();
    assert!(again.is_noop(), "{:?}", again.changes);
    assert!(
        again
            .report
            .iter()
            .all(|r| r.action == ApplyAction::Unchanged)
    );
    assert_eq!(reg.revision, rev);

    // Export gives the file back (the key's import reference is not kept).
    let mut expected = m.clone();
    expected.workspaces[0].keys[1].secret = None;
    expected.workspaces[0]
        .keys
        .sort_by(|a, b| a.name.cmp(&b.name));
    let base = fixture();
    let mut exported = manifest::export(&reg, Some(&base));
    exported.workspaces.retain(|w| w.name == "team");
    exported.models.retain(|m| m.name == "Own-7B");
    exported.market.retain(|e| e.name == "Own-7B");
    assert_eq!(exported, expected);
}

#[test]
fn rules_are_matched_by_subject_and_updated_in_place() {
    let mut reg = fixture();
    applied(&mut reg, &manifest(MANIFEST));
    let ids: Vec<u64> = reg.models["Own-7B"].rules.iter().map(|r| r.id).collect();
    let changed = MANIFEST
        .replace("limit: 5", "limit: 7")
        .replace("duration: 60", "duration: 30");
    let plan = applied(&mut reg, &manifest(&changed));
    let model = plan.report.iter().find(|r| r.kind == "model").unwrap();
    assert_eq!(model.action, ApplyAction::Changed);
    assert_eq!(model.details, vec!["rules: 2 changed".to_string()]);
    let rules = &reg.models["Own-7B"].rules;
    assert_eq!(rules.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!((rules[0].spec.limit, rules[1].spec.duration_secs), (7, 30));
    // Dropping a rule from the file deletes it (a model is declared whole).
    let fewer = changed.replace(
        "      - target: workspace\n        workspace: team\n        limit: 100\n        duration: 30\n",
        "",
    );
    applied(&mut reg, &manifest(&fewer));
    assert_eq!(reg.models["Own-7B"].rules.len(), 1);
}

#[test]
fn plan_errors_name_the_field_in_the_file() {
    let reg = fixture();
    let check = |text: &str, field: &str, words: &str| {
        let e = manifest::plan(&reg, &manifest(text), &reads).expect_err(text);
        assert_eq!(e.errors[0].field, field, "{e}");
        assert!(e.errors[0].problem.contains(words), "{e}");
    };
    check(
        &MANIFEST.replace("weight: 40", "weight: 30"),
        "models[0].weight",
        "sum to 90",
    );
    check(
        &MANIFEST.replace("url: https://b.example", "url: ftp://b.example"),
        "models[0].endpoints[1].url",
        "scheme 'ftp'",
    );
    check(
        &MANIFEST.replace("limit: 5", "limit: 0"),
        "models[0].rules[0].limit",
        "0 is less than 1",
    );
    check(
        &MANIFEST.replace("key: ci", "key: nobody"),
        "models[0].rules[0].key",
        "workspace 'team' has no key named 'nobody'",
    );
    check(
        &MANIFEST.replace("api_key: env:UP_KEY", "api_key: sk-literal-1234567890"),
        "models[0].endpoints[0].api_key",
        "not the key itself",
    );
    check(
        &MANIFEST.replace("env:UP_KEY", "env:UNSET_VAR"),
        "models[0].endpoints[0].api_key",
        "cannot read env:UNSET_VAR",
    );
    check(
        &MANIFEST.replace("published: true", "published: false"),
        "models[0].enabled",
        "marketplace entry 'Own-7B' is not published",
    );
    check(
        &format!("{MANIFEST}  - name: Own-7B\n    model_id: x\n"),
        "models[1].name",
        "'Own-7B' is declared twice (also models[0])",
    );
}

#[test]
fn revoking_is_declared_and_cannot_be_undone() {
    let mut reg = fixture();
    applied(&mut reg, &manifest(MANIFEST));
    let revoked = MANIFEST.replace(
        "      - name: ci\n",
        "      - name: ci\n        revoked: true\n",
    );
    let plan = applied(&mut reg, &manifest(&revoked));
    let k = plan.report.iter().find(|r| r.name == "team/ci").unwrap();
    assert_eq!(
        (k.action, k.details.clone()),
        (ApplyAction::Changed, vec!["revoked".to_string()])
    );
    let e = manifest::plan(&reg, &manifest(MANIFEST), &reads).unwrap_err();
    assert_eq!(e.errors[0].field, "workspaces[0].keys[0].revoked");
    assert!(
        e.errors[0]
            .problem
            .contains("is revoked and cannot be restored"),
        "{e}"
    );
}

#[test]
fn unpublishing_and_disabling_in_one_file_apply_in_order() {
    let mut reg = fixture();
    applied(&mut reg, &manifest(MANIFEST));
    let off = MANIFEST
        .replace("published: true", "published: false")
        .replace("enabled: true", "enabled: false");
    applied(&mut reg, &manifest(&off));
    assert!(!reg.models["Own-7B"].enabled);
    assert!(!reg.market["Own-7B"].published);
    // And back on: publish comes before enable.
    applied(&mut reg, &manifest(MANIFEST));
    assert!(reg.models["Own-7B"].enabled);
}

/// The fixture with models `A`, `B`, `C` (all published), `A` falling back
/// to `B`, `B` to `C`.
fn fallback_fixture() -> Registry {
    let mut r = fixture();
    let with = |name: &str, fallbacks: &[&str]| {
        let mut s = spec(name, &["https://x.example"]);
        s.fallbacks = fallbacks.iter().map(|f| f.to_string()).collect();
        Change::CreateModel(s)
    };
    r.apply_all(
        vec![
            Change::AddMarket(entry("A", true)),
            Change::AddMarket(entry("B", true)),
            Change::AddMarket(entry("C", true)),
            with("C", &[]),
            with("B", &["C"]),
            with("A", &["B"]),
        ],
        2,
    )
    .expect("fallback fixture applies");
    r
}

#[test]
fn fallbacks_must_exist_not_be_the_model_nor_make_a_cycle_nor_be_too_many() {
    let r = fallback_fixture();
    let with = |name: &str, fallbacks: &[&str]| {
        let mut s = r
            .model(name)
            .map_or_else(|_| spec(name, &["https://x.example"]), |m| m.spec.clone());
        s.fallbacks = fallbacks.iter().map(|f| f.to_string()).collect();
        Change::UpdateModel {
            name: name.into(),
            spec: s,
        }
    };
    refused_in(
        r.clone(),
        with("A", &["Nope"]),
        "fallbacks",
        "'Nope' is not a model",
    );
    refused_in(
        r.clone(),
        with("A", &["A"]),
        "fallbacks",
        "'A' is the model itself",
    );
    refused_in(
        r.clone(),
        with("A", &["B", "B"]),
        "fallbacks",
        "'B' is named twice",
    );
    refused_in(
        r.clone(),
        with("C", &["A"]),
        "fallbacks",
        "'A' would make a cycle: C -> A -> B -> C",
    );
    refused_in(
        r.clone(),
        with("Pub", &["A", "B", "C", "Pub"]),
        "fallbacks",
        "4 fallback models is over the limit of 3",
    );
    // A model named as a fallback is neither deleted nor renamed.
    let e = refused_in(
        r.clone(),
        Change::DeleteModel { name: "C".into() },
        "fallbacks",
        "it is a fallback of B",
    );
    assert!(e.to_string().contains("cannot be deleted"), "{e}");
    let mut renamed = r.model("B").unwrap().spec.clone();
    renamed.name = "Unpub".into();
    refused_in(
        r.clone(),
        Change::UpdateModel {
            name: "B".into(),
            spec: renamed,
        },
        "fallbacks",
        "cannot be renamed: it is a fallback of A",
    );
    // Fine: a chain, edited in place; deleting the head.
    let mut ok = r.clone();
    ok.apply_all(
        vec![
            with("Pub", &["A", "C"]),
            Change::DeleteModel { name: "Pub".into() },
        ],
        3,
    )
    .expect("valid fallbacks apply");
}

#[test]
fn a_file_may_name_a_fallback_it_declares_further_down_and_exports_it_back() {
    let mut reg = fixture();
    let text = r#"
market:
  - name: First
    provider: Acme
    published: true
  - name: Second
    provider: Acme
    published: true
models:
  - name: First
    model_id: first
    fallbacks: [Second]
    enabled: true
    endpoints:
      - url: https://a.example
  - name: Second
    model_id: second
    enabled: true
    endpoints:
      - url: https://b.example
"#;
    let m = manifest(text);
    applied(&mut reg, &m);
    assert_eq!(
        reg.models["First"].spec.fallbacks,
        vec!["Second".to_string()]
    );
    assert!(reg.models["First"].enabled);
    let again = manifest::plan(&reg, &m, &reads).unwrap();
    assert!(again.is_noop(), "{:?}", again.changes);
    let exported = manifest::export(&reg, Some(&fixture()));
    let first = exported.models.iter().find(|d| d.name == "First").unwrap();
    assert_eq!(first.fallbacks, vec!["Second".to_string()]);
    // A fallback that is nowhere is refused, naming the field.
    let bad = manifest(&text.replace("fallbacks: [Second]", "fallbacks: [Nope]"));
    let e = manifest::plan(&fixture(), &bad, &reads).expect_err("refused");
    assert!(
        e.to_string().contains("fallbacks") && e.to_string().contains("'Nope'"),
        "{e}"
    );
}
