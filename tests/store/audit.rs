//! The audit trail and the history on both stores: every kind of change
//! writes exactly one entry (actor, channel, entity, before/after per
//! field, secrets masked) in the same transaction as the change; refused
//! and empty changes write none; the trail is append-only; the registry at
//! any kept revision is rebuilt exactly; rollback never brings a key back
//! to life.

use serde_json::{Value, json};

use crate::backend::{Backend, Kind, on_both};
use crate::by;
use maasctl::domain::audit::EntityAction;
use maasctl::domain::token::{Role, TokenChange, new_token};
use maasctl::domain::*;

const UPSTREAM_KEY: &str = "sk-upstream-never-in-the-trail-4f2a";
const OTHER_KEY: &str = "sk-upstream-another-key-same-4f2a";

fn market(published: bool, provider: &str) -> MarketEntry {
    MarketEntry {
        name: "Own-1".into(),
        provider: provider.into(),
        tags: vec![],
        description: String::new(),
        published,
        input_price: None,
        output_price: None,
    }
}

fn spec(model_id: &str, key: &str) -> ModelSpec {
    let mut ep = Endpoint::new("https://up.example");
    ep.api_key = Some(Secret::new(key));
    ModelSpec {
        name: "Own-1".into(),
        cluster: "east".into(),
        model_id: model_id.into(),
        endpoints: vec![ep],
        policy: Policy::RoundRobin,
        tags: vec![],
        fallbacks: Vec::new(),
        completion_cap: None,
    }
}

fn rule(limit: u32) -> RuleSpec {
    RuleSpec {
        target: RuleTarget::ApiKey,
        workspace: "acme".into(),
        key_id: Some("key_00000001".into()),
        limit,
        duration_secs: 60,
        unit: Default::default(),
    }
}

/// One step: a batch, who makes it, and what its entry must say about one
/// entity (a field, its value before and after; `None`: absent).
struct Step {
    changes: Vec<Change>,
    origin: Origin,
    entity: &'static str,
    action: EntityAction,
    field: (&'static str, Option<Value>, Option<Value>),
}

fn step(
    changes: Vec<Change>,
    origin: Origin,
    entity: &'static str,
    action: EntityAction,
    field: (&'static str, Option<Value>, Option<Value>),
) -> Step {
    Step {
        changes,
        origin,
        entity,
        action,
        field,
    }
}

/// Create, edit and delete of every entity, enable and disable, endpoints,
/// rules and keys, each by someone else through something else.
fn steps() -> Vec<Step> {
    use EntityAction::*;
    let alice = || Origin::user("alice", Channel::Cli);
    let ci = || Origin::token("ci", Channel::AdminApi);
    let bob = || Origin::user("bob", Channel::Console);
    let remote_cli = || Origin::token("ops", Channel::Cli);
    let s = |v: &str| Some(json!(v));
    vec![
        step(
            vec![Change::AddMarket(market(false, "Acme"))],
            alice(),
            "market/Own-1",
            Created,
            ("provider", None, s("Acme")),
        ),
        step(
            vec![Change::UpdateMarket {
                name: "Own-1".into(),
                entry: market(false, "Acme2"),
            }],
            ci(),
            "market/Own-1",
            Updated,
            ("provider", s("Acme"), s("Acme2")),
        ),
        step(
            vec![Change::SetPublished {
                name: "Own-1".into(),
                published: true,
            }],
            bob(),
            "market/Own-1",
            Updated,
            ("published", Some(json!(false)), Some(json!(true))),
        ),
        step(
            vec![Change::AddCluster(Cluster {
                name: "east".into(),
                entry_address: "https://e.example".into(),
            })],
            remote_cli(),
            "cluster/east",
            Created,
            ("entry_address", None, s("https://e.example")),
        ),
        step(
            vec![Change::UpdateCluster {
                name: "east".into(),
                cluster: Cluster {
                    name: "east".into(),
                    entry_address: "https://e2.example".into(),
                },
            }],
            alice(),
            "cluster/east",
            Updated,
            (
                "entry_address",
                s("https://e.example"),
                s("https://e2.example"),
            ),
        ),
        step(
            vec![Change::AddWorkspace {
                name: "acme".into(),
                description: String::new(),
            }],
            ci(),
            "workspace/acme",
            Created,
            ("description", s(""), None).swap_created(),
        ),
        step(
            vec![Change::UpdateWorkspace {
                name: "acme".into(),
                description: "Acme Corp".into(),
            }],
            bob(),
            "workspace/acme",
            Updated,
            ("description", s(""), s("Acme Corp")),
        ),
        step(
            vec![Change::CreateKey {
                id: "key_00000001".into(),
                workspace: "acme".into(),
                name: "ci".into(),
                secret_hash: secret::hash_secret("sk-platform-secret-9z9z"),
                secret_hint: "9z9z".into(),
            }],
            remote_cli(),
            "key/key_00000001",
            Created,
            ("secret", None, s("sk-…9z9z")),
        ),
        step(
            vec![Change::CreateModel(spec("own", UPSTREAM_KEY))],
            alice(),
            "model/Own-1",
            Created,
            ("endpoints[0].api_key", None, s("sk-…4f2a")),
        ),
        step(
            vec![Change::UpdateModel {
                name: "Own-1".into(),
                spec: spec("own-2", UPSTREAM_KEY),
            }],
            ci(),
            "model/Own-1",
            Updated,
            ("model_id", s("own"), s("own-2")),
        ),
        step(
            vec![Change::SetEnabled {
                name: "Own-1".into(),
                enabled: true,
            }],
            bob(),
            "model/Own-1",
            Updated,
            ("enabled", Some(json!(false)), Some(json!(true))),
        ),
        step(
            vec![Change::SetEndpointDisabled {
                model: "Own-1".into(),
                index: 0,
                disabled: true,
            }],
            remote_cli(),
            "model/Own-1",
            Updated,
            (
                "endpoints[0].disabled",
                Some(json!(false)),
                Some(json!(true)),
            ),
        ),
        step(
            vec![Change::AddRule {
                model: "Own-1".into(),
                spec: rule(10),
            }],
            alice(),
            "model/Own-1",
            Updated,
            ("rules[#1].limit", None, Some(json!(10))),
        ),
        step(
            vec![Change::UpdateRule {
                model: "Own-1".into(),
                id: 1,
                spec: rule(20),
            }],
            ci(),
            "model/Own-1",
            Updated,
            ("rules[#1].limit", Some(json!(10)), Some(json!(20))),
        ),
        step(
            vec![Change::DeleteRule {
                model: "Own-1".into(),
                id: 1,
            }],
            bob(),
            "model/Own-1",
            Updated,
            ("rules[#1].limit", Some(json!(20)), None),
        ),
        step(
            vec![Change::UpdateModel {
                name: "Own-1".into(),
                spec: spec("own-2", OTHER_KEY),
            }],
            remote_cli(),
            "model/Own-1",
            Updated,
            (
                "endpoints[0].api_key",
                s("sk-…4f2a"),
                s("sk-…4f2a (another key)"),
            ),
        ),
        step(
            vec![Change::RevokeKey {
                id: "key_00000001".into(),
            }],
            alice(),
            "key/key_00000001",
            Updated,
            ("revoked", None, None).any_after(),
        ),
        step(
            vec![Change::DeleteKey {
                id: "key_00000001".into(),
            }],
            ci(),
            "key/key_00000001",
            Deleted,
            ("name", s("ci"), None),
        ),
        step(
            vec![Change::SetEnabled {
                name: "Own-1".into(),
                enabled: false,
            }],
            bob(),
            "model/Own-1",
            Updated,
            ("enabled", Some(json!(true)), Some(json!(false))),
        ),
        step(
            vec![Change::DeleteModel {
                name: "Own-1".into(),
            }],
            remote_cli(),
            "model/Own-1",
            Deleted,
            ("model_id", s("own-2"), None),
        ),
        step(
            vec![Change::DeleteWorkspace {
                name: "acme".into(),
            }],
            alice(),
            "workspace/acme",
            Deleted,
            ("description", s("Acme Corp"), None),
        ),
        step(
            vec![Change::DeleteCluster {
                name: "east".into(),
            }],
            ci(),
            "cluster/east",
            Deleted,
            ("entry_address", s("https://e2.example"), None),
        ),
        step(
            vec![Change::DeleteMarket {
                name: "Own-1".into(),
            }],
            bob(),
            "market/Own-1",
            Deleted,
            ("provider", s("Acme2"), None),
        ),
    ]
}

/// Field expectations that are not a plain before/after.
trait FieldExpect {
    /// An empty string is a value: created with it.
    fn swap_created(self) -> Self;
    /// Any value after (a time).
    fn any_after(self) -> Self;
}

impl FieldExpect for (&'static str, Option<Value>, Option<Value>) {
    fn swap_created(self) -> Self {
        (self.0, None, self.1)
    }
    fn any_after(self) -> Self {
        (self.0, None, Some(Value::Null))
    }
}

on_both! {
/// Every kind of change writes exactly one entry, with its actor, channel,
/// revision, entity and the field before and after; a refused change and
/// a change that changes nothing write none; no secret is ever in it.
fn every_kind_of_change_writes_exactly_one_audit_entry(b) {
    let s = b.open();
    let mut seen = 0;
    for (i, st) in steps().into_iter().enumerate() {
        let applied = s.apply(st.changes.clone(), &st.origin).unwrap_or_else(|e| panic!("step {i}: {e}"));
        let trail = s.audit(&AuditQuery::default()).unwrap();
        assert_eq!(trail.len(), seen + 1, "step {i}: one entry per change");
        seen += 1;
        let e = trail.last().unwrap();
        assert_eq!(e.revision, Some(applied.revision), "step {i}");
        assert_eq!((&e.actor, e.channel), (&st.origin.actor, st.origin.channel), "step {i}");
        assert_eq!(e.summary, summarize(&st.changes), "step {i}");
        let c = e.changes.iter().find(|c| c.entity == st.entity).unwrap_or_else(|| panic!("step {i}: {e:?}"));
        assert_eq!(c.action, st.action, "step {i}: {c:?}");
        let (name, before, after) = &st.field;
        let f = c.fields.iter().find(|f| f.field == *name).unwrap_or_else(|| panic!("step {i}: no field {name} in {c:?}"));
        assert_eq!(&f.before, before, "step {i}: {f:?}");
        match after {
            Some(Value::Null) => assert!(f.after.is_some(), "step {i}: {f:?}"),
            other => assert_eq!(&f.after, other, "step {i}: {f:?}"),
        }
        // A model's bookkeeping is not a change an operator made.
        assert!(c.fields.iter().all(|f| !["updated", "created", "rev"].contains(&f.field.as_str())), "{c:?}");

        // Refused, or asking for what is already so: no entry.
        let refused = s.apply(vec![Change::DeleteWorkspace { name: "nobody".into() }], &st.origin);
        assert!(refused.is_err());
        let unchanged = s.apply(vec![Change::ExpectRevision { revision: applied.revision }], &st.origin).unwrap();
        assert_eq!(unchanged.revision, applied.revision);
        assert_eq!(s.audit(&AuditQuery::default()).unwrap().len(), seen, "step {i}: refused or empty changes write nothing");
    }
    let text = serde_json::to_string(&s.audit(&AuditQuery::default()).unwrap()).unwrap();
    for secret in [UPSTREAM_KEY, OTHER_KEY, &secret::hash_secret("sk-platform-secret-9z9z")] {
        assert!(!text.contains(secret), "a secret in the audit trail: {secret}");
    }
    b.assert_intact();
}
}

on_both! {
/// `apply -f`'s whole batch is one entry naming every entity it changed;
/// admin tokens are audited too (outside the registry: no revision);
/// queries filter by time, entity and revisions, newest `limit` first.
fn batches_tokens_and_queries(b) {
    let s = b.open();
    let m: manifest::Manifest = serde_yaml_ng::from_str(
        "workspaces:\n  - name: acme\n  - name: beta\nclusters:\n  - name: east\n    entry_address: https://e.example\n",
    )
    .unwrap();
    let plan = manifest::plan(&s.load().unwrap(), &m, &|r| Err(format!("{r} unset"))).unwrap();
    let applied = s
        .apply(plan.changes, &Origin::user("alice", Channel::Apply).with_note("apply -f ops.yaml"))
        .unwrap();
    let trail = s.audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].summary, "apply -f ops.yaml");
    assert_eq!(trail[0].channel, Channel::Apply);
    let entities: Vec<&str> = trail[0].changes.iter().map(|c| c.entity.as_str()).collect();
    assert_eq!(entities, ["cluster/east", "workspace/acme", "workspace/beta"]);

    let (create, made) = new_token("watcher".into(), Role::Read);
    let t = s.change_token(create, &Origin::user("alice", Channel::Cli)).unwrap();
    assert_eq!(t.secret_hash, secret::hash_secret(&made.secret));
    s.change_token(TokenChange::Revoke { name: "watcher".into() }, &Origin::token("bootstrap", Channel::Cli)).unwrap();
    let e = s.change_token(TokenChange::Revoke { name: "nobody".into() }, &by()).unwrap_err();
    assert!(e.to_string().contains("no admin token named 'nobody'"), "{e}");
    assert_eq!(s.revision().unwrap(), applied.revision, "tokens are not registry revisions");
    let tokens = s.tokens().unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].revoked.is_some());
    let trail = s.audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail.len(), 3);
    assert_eq!(trail[1].revision, None);
    assert_eq!(trail[1].changes[0].entity, "token/watcher");
    assert_eq!(trail[1].summary, "create-token watcher (read)");
    assert_eq!(trail[2].summary, "revoke-token watcher");
    assert!(!serde_json::to_string(&trail).unwrap().contains(&made.secret));
    assert!(!serde_json::to_string(&trail).unwrap().contains(&t.secret_hash));

    let q = |q: AuditQuery| s.audit(&q).unwrap().iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(q(AuditQuery { entity: Some("token/watcher".into()), ..Default::default() }), [2, 3]);
    assert_eq!(q(AuditQuery { entity: Some("workspace/beta".into()), ..Default::default() }), [1]);
    assert_eq!(q(AuditQuery { entity: Some("workspace/BETA".into()), ..Default::default() }), Vec::<u64>::new());
    assert_eq!(q(AuditQuery { revisions_only: true, ..Default::default() }), [1]);
    assert_eq!(q(AuditQuery { limit: Some(2), ..Default::default() }), [2, 3]);
    let last = s.audit(&AuditQuery::default()).unwrap()[2].at_ms;
    assert_eq!(q(AuditQuery { since_ms: Some(last + 1), ..Default::default() }), Vec::<u64>::new());
    assert_eq!(q(AuditQuery { since_ms: Some(last), ..Default::default() }).last(), Some(&3));
}
}

on_both! {
/// The trail cannot be edited or cut, even behind maasctl's back.
fn the_audit_trail_is_append_only(b) {
    let s = b.open();
    s.apply(vec![Change::AddWorkspace { name: "acme".into(), description: String::new() }], &by()).unwrap();
    for sql in [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "DELETE FROM audit_entities",
        "UPDATE audit_entities SET entity = 'workspace/other'",
    ] {
        let e = b.try_raw_sql(sql);
        assert!(e.as_ref().is_err_and(|e| e.contains("append-only")), "{sql}: {e:?}");
    }
    if b.kind == Kind::Postgres {
        let e = b.try_raw_sql("TRUNCATE audit_entities, audit");
        assert!(e.as_ref().is_err_and(|e| e.contains("append-only")), "{e:?}");
    }
    let trail = s.audit(&AuditQuery::default()).unwrap();
    assert_eq!((trail.len(), trail[0].actor.name.as_str()), (1, "tester"));
    assert_eq!(s.audit(&AuditQuery { entity: Some("workspace/acme".into()), ..Default::default() }).unwrap().len(), 1);
}
}

on_both! {
/// The registry at every revision the history keeps is rebuilt exactly as
/// it was; one older than that is refused, naming the oldest that can be.
fn the_registry_at_any_kept_revision_is_rebuilt(b) {
    let s = b.open();
    let mut snapshots = vec![s.load().unwrap()];
    for (i, st) in steps().into_iter().enumerate() {
        s.apply(st.changes, &st.origin).unwrap_or_else(|e| panic!("step {i}: {e}"));
        snapshots.push(s.load().unwrap());
    }
    // The rule-id counter never goes back (ids are never reused): the
    // rebuilt registry keeps today's.
    let counter = s.load().unwrap().next_rule_id;
    let same_counter = |r: &Registry| Registry { next_rule_id: counter, ..r.clone() };
    for (rev, then) in snapshots.iter().enumerate() {
        assert_eq!(s.registry_at(rev as u64).unwrap(), same_counter(then), "revision {rev}");
    }
    let e = s.registry_at(snapshots.len() as u64).unwrap_err().to_string();
    assert!(e.contains("there is no revision"), "{e}");
    // The journals up to 3 gone (as if older than the history kept).
    b.raw_sql("DELETE FROM revisions WHERE revision <= 3", "DELETE FROM revisions WHERE revision <= 3");
    assert_eq!(s.registry_at(3).unwrap(), same_counter(&snapshots[3]));
    let e = s.registry_at(2).unwrap_err().to_string();
    assert!(e.contains("revision 2 is older than the history this store keeps") && e.contains("the oldest revision that can be rebuilt is 3"), "{e}");
}
}

on_both! {
/// Rollback makes a new revision whose registry is the earlier one —
/// rules with their ids, endpoints with their upstream keys — except that
/// no platform key comes back to life: revoked since stays revoked,
/// deleted since comes back revoked, created since is deleted.
fn rollback_restores_the_registry_but_never_a_key(b) {
    let s = b.open();
    let by_alice = Origin::user("alice", Channel::Cli);
    let key = |id: &str, name: &str| Change::CreateKey {
        id: id.into(),
        workspace: "acme".into(),
        name: name.into(),
        secret_hash: secret::hash_secret(id),
        secret_hint: "1234".into(),
    };
    s.apply(vec![
        Change::AddMarket(market(true, "Acme")),
        Change::AddCluster(Cluster { name: "east".into(), entry_address: "https://e.example".into() }),
        Change::AddWorkspace { name: "acme".into(), description: String::new() },
        key("key_00000001", "ci"),
        key("key_00000002", "old"),
        key("key_00000003", "gone"),
        Change::CreateModel(spec("own", UPSTREAM_KEY)),
        Change::AddRule { model: "Own-1".into(), spec: rule(10) },
        Change::AddRule { model: "Own-1".into(), spec: RuleSpec { key_id: Some("key_00000003".into()), ..rule(5) } },
        Change::SetEnabled { name: "Own-1".into(), enabled: true },
    ], &by_alice).unwrap();
    let first = s.load().unwrap();
    s.apply(vec![Change::RevokeKey { id: "key_00000002".into() }], &by_alice).unwrap();
    s.apply(vec![Change::DeleteRule { model: "Own-1".into(), id: 2 }, Change::DeleteKey { id: "key_00000003".into() }], &by_alice).unwrap();
    s.apply(vec![key("key_00000004", "new"), Change::UpdateRule { model: "Own-1".into(), id: 1, spec: rule(99) }], &by_alice).unwrap();
    s.apply(vec![Change::DeleteModel { name: "Own-1".into() }, Change::DeleteCluster { name: "east".into() }], &by_alice).unwrap();
    let now = s.load().unwrap();

    let earlier = s.registry_at(first.revision).unwrap();
    assert_eq!(earlier, first);
    let restore = Change::Restore { revision: first.revision, registry: Box::new(earlier) };
    let applied = s.apply(vec![restore.clone()], &Origin::token("ops", Channel::Cli)).unwrap();
    assert_eq!(applied.revision, now.revision + 1);
    let after = s.load().unwrap();
    // Everything as it was, rule ids and upstream keys included …
    assert_eq!(after.models["Own-1"].rules, first.models["Own-1"].rules);
    assert_eq!(after.models["Own-1"].spec, first.models["Own-1"].spec);
    assert!(after.models["Own-1"].enabled);
    assert_eq!((&after.clusters, &after.market, &after.workspaces), (&first.clusters, &first.market, &first.workspaces));
    // … but the keys: active as it was, revoked since stays revoked,
    // deleted since is back revoked, created since is gone.
    assert_eq!(after.keys["key_00000001"], first.keys["key_00000001"]);
    assert_eq!(after.keys["key_00000002"], now.keys["key_00000002"]);
    assert!(after.keys["key_00000002"].is_revoked());
    assert!(after.keys["key_00000003"].is_revoked());
    assert!(!after.keys.contains_key("key_00000004"));
    let e = &s.audit(&AuditQuery::default()).unwrap().last().cloned().unwrap();
    assert_eq!(e.summary, "rollback to revision 1");
    assert_eq!(e.actor.to_string(), "token:ops");
    // Rolling back to where it is changes nothing and records nothing.
    let same = s.apply(vec![Change::Restore { revision: applied.revision, registry: Box::new(after.clone()) }], &by()).unwrap();
    assert_eq!(same.outcomes, vec![Outcome::Unchanged]);
    assert_eq!(s.revision().unwrap(), applied.revision);
    b.assert_intact();
}
}

/// Each revision of the store has its audit entry and its journal, and no
/// entry or journal names a revision the registry never reached: a change
/// and its record were committed together (or neither).
#[track_caller]
pub fn assert_recorded_with_revisions(s: &dyn maasctl::store::Store) {
    let rev = s.revision().unwrap();
    let audited: Vec<u64> = s
        .audit(&AuditQuery {
            revisions_only: true,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .filter_map(|e| e.revision)
        .collect();
    assert_eq!(
        audited,
        (1..=rev).collect::<Vec<_>>(),
        "audit entries per revision"
    );
    let journaled: Vec<u64> = s
        .journals(0)
        .unwrap()
        .iter()
        .map(|(r, _)| *r)
        .rev()
        .collect();
    assert_eq!(
        journaled,
        (1..=rev).collect::<Vec<_>>(),
        "journals per revision"
    );
}
