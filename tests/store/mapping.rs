//! The mapping both backends share: stores made before it open unchanged,
//! new stores get the same schema as before, and stored integers that do
//! not fit their field are storage errors naming table, row and column.

use crate::backend::{Backend, Kind, on_both};
use maasctl::domain::*;

/// The tables and columns of the store, as the database describes them
/// (SQLite: the schema text it keeps; PostgreSQL: columns, constraints,
/// indexes), and its schema version.
fn schema(b: &Backend) -> String {
    let parts = [
        b.raw_query(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position",
        ),
        b.raw_query(
            "PRAGMA user_version",
            "SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2",
        ),
        b.raw_query(
            "SELECT 1",
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
             ORDER BY indexname",
        ),
        b.raw_query("SELECT 1", "SELECT version FROM maasctl_schema"),
    ];
    parts.join("\n--\n")
}

/// Rows as the build before the shared mapping wrote them (booleans as
/// SQLite's 0/1 and PostgreSQL's booleans, tags as JSON text).
const OLD_ROWS: &str = r#"
UPDATE meta SET value = 7 WHERE key = 'revision';
UPDATE meta SET value = 3 WHERE key = 'next_rule_id';
INSERT INTO market VALUES ('Own-1', 'Acme', '["chat"]', 'A fine-tune', TRUE);
INSERT INTO clusters VALUES ('local', 'http://127.0.0.1:8080');
INSERT INTO workspaces VALUES ('acme', 'Acme Corp', 1700000000);
INSERT INTO api_keys VALUES ('key_00000001', 'acme', 'ci', 'hash', '9z9z', 1700000001, 1700000009);
INSERT INTO models VALUES ('Own-1', 'local', 'own', 'weighted', '["chat"]', TRUE, 1700000002, 1700000003, 7);
INSERT INTO endpoints (model, position, url, api_key, weight, probe, disabled, ca_file, api_key_ref)
VALUES ('Own-1', 0, 'http://own.example', 'sk-x', 70, 'models', FALSE, NULL, 'env:X'),
       ('Own-1', 1, 'http://b.example', NULL, NULL, 'none', TRUE, '/ca.pem', NULL);
INSERT INTO rules VALUES (2, 'Own-1', 0, 'workspace', 'acme', NULL, 60, 60),
                         (1, 'Own-1', 1, 'api-key', 'acme', 'key_00000001', 5, 1);
"#;

/// The registry [`OLD_ROWS`] hold.
fn old_registry() -> Registry {
    let mut reg = Registry {
        revision: 7,
        next_rule_id: 3,
        ..Default::default()
    };
    reg.market.insert(
        "Own-1".into(),
        MarketEntry {
            name: "Own-1".into(),
            provider: "Acme".into(),
            tags: vec!["chat".into()],
            description: "A fine-tune".into(),
            published: true,
            input_price: None,
            output_price: None,
        },
    );
    reg.clusters.insert(
        "local".into(),
        Cluster {
            name: "local".into(),
            entry_address: "http://127.0.0.1:8080".into(),
        },
    );
    reg.workspaces.insert(
        "acme".into(),
        Workspace {
            name: "acme".into(),
            description: "Acme Corp".into(),
            created: 1_700_000_000,
        },
    );
    reg.keys.insert(
        "key_00000001".into(),
        ApiKey {
            id: "key_00000001".into(),
            workspace: "acme".into(),
            name: "ci".into(),
            secret_hash: "hash".into(),
            secret_hint: "9z9z".into(),
            created: 1_700_000_001,
            revoked: Some(1_700_000_009),
        },
    );
    let mut first = Endpoint::new("http://own.example");
    first.api_key = Some(Secret::new("sk-x"));
    first.api_key_ref = Some("env:X".into());
    first.weight = Some(70);
    let mut second = Endpoint::new("http://b.example");
    second.probe = Probe::None;
    second.disabled = true;
    second.ca_file = Some("/ca.pem".into());
    let rule = |id, target, key_id: Option<&str>, limit, duration_secs| Rule {
        id,
        spec: RuleSpec {
            target,
            workspace: "acme".into(),
            key_id: key_id.map(Into::into),
            limit,
            duration_secs,
            unit: Default::default(),
        },
    };
    reg.models.insert(
        "Own-1".into(),
        Model {
            spec: ModelSpec {
                name: "Own-1".into(),
                cluster: "local".into(),
                model_id: "own".into(),
                endpoints: vec![first, second],
                policy: Policy::Weighted,
                tags: vec!["chat".into()],
                fallbacks: Vec::new(),
                completion_cap: None,
            },
            enabled: true,
            rules: vec![
                rule(2, RuleTarget::Workspace, None, 60, 60),
                rule(1, RuleTarget::ApiKey, Some("key_00000001"), 5, 1),
            ],
            created: 1_700_000_002,
            updated: 1_700_000_003,
            rev: 7,
        },
    );
    reg
}

/// The schema's lines without the version numbers (and the `SELECT 1`
/// placeholders), as a set: what a migration must keep.
fn kept(schema: &str) -> std::collections::BTreeSet<String> {
    schema
        .lines()
        .filter(|l| !l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

on_both! {
/// A store at schema version 2 as the build before the shared mapping made
/// it (its migrations verbatim, rows as it wrote them) opens with only the
/// operations migration (3), the rule unit (4), the endpoint drain (5), the usage ledger (6), model fallbacks (7), budgets (8), the model completion cap (9), probe leases (10) and the ledger rollups (11): every table, column, constraint and index it
/// had stays as it was, it reads back every field and takes changes (now
/// audited); a new store gets exactly the schema it ends up with.
fn a_store_made_before_the_shared_mapping_keeps_everything_it_had(b) {
    let frozen = match b.kind {
        Kind::Sqlite => include_str!("schema_v2.sqlite.sql"),
        Kind::Postgres => include_str!("schema_v2.postgres.sql"),
    };
    b.raw_sql(frozen, frozen);
    b.raw_sql(OLD_ROWS, OLD_ROWS);
    let before = schema(b);
    let s = b.open();
    assert_eq!(b.schema_version(), 11);
    let migrated = schema(b);
    // SQLite's ALTER TABLE … ADD COLUMN appends the column to the stored
    // CREATE text: a line extended by `, <new column>` lost nothing.
    let after = kept(&migrated);
    let extended = |l: &String| {
        let stem = l.trim_end_matches(',');
        after
            .iter()
            .any(|m| m.len() > stem.len() && m.starts_with(stem) && m[stem.len()..].starts_with(", "))
    };
    let lost: Vec<_> = kept(&before)
        .difference(&after)
        .filter(|l| !extended(l))
        .cloned()
        .collect();
    assert!(lost.is_empty(), "the migration changed what schema 2 had: {lost:?}");
    assert_eq!(s.load().unwrap(), old_registry());
    let applied = s
        .apply(vec![
            Change::SetEnabled {
                name: "Own-1".into(),
                enabled: false,
            },
            Change::RevokeKey {
                id: "key_00000001".into(),
            },
        ], &crate::by())
        .unwrap();
    assert_eq!(applied.revision, 8);
    drop(s);
    let reg = b.open().load().unwrap();
    assert!(!reg.models["Own-1"].enabled);
    assert_eq!(reg.models["Own-1"].rules, old_registry().models["Own-1"].rules);
    assert_eq!(reg.next_rule_id, 3);
    assert_eq!(schema(b), migrated, "opening again changed the schema");
    let trail = b.open().audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![Some(8)]);
    b.assert_intact();

    let fresh = Backend::new(b.kind);
    drop(fresh.open());
    assert_eq!(schema(&fresh), migrated, "a new store's schema differs");
}
}

on_both! {
/// An integer that does not fit its field (edited behind maasctl's back,
/// or written by something else) is refused with an error naming the
/// table, the row and the column, by every call that reads it and by the
/// CLI; never cast into a different number.
fn out_of_range_integers_are_storage_errors(b) {
    let s = b.open();
    s.apply(vec![
        Change::AddMarket(MarketEntry {
            name: "M".into(),
            provider: "p".into(),
            tags: vec![],
            description: String::new(),
            published: true,
            input_price: None,
            output_price: None,
        }),
        Change::AddWorkspace {
            name: "acme".into(),
            description: String::new(),
        },
        Change::CreateModel(ModelSpec {
            name: "M".into(),
            cluster: Cluster::DEFAULT.into(),
            model_id: "m".into(),
            endpoints: vec![Endpoint::new("http://m.example")],
            policy: Policy::Random,
            tags: vec![],
            fallbacks: Vec::new(),
            completion_cap: None,
        }),
        Change::AddRule {
            model: "M".into(),
            spec: RuleSpec {
                target: RuleTarget::Workspace,
                workspace: "acme".into(),
                key_id: None,
                limit: 10,
                duration_secs: 60,
                unit: Default::default(),
            },
        },
    ], &crate::by())
    .unwrap();
    let sql = r#"UPDATE rules SET "limit" = 4294967296"#;
    b.raw_sql(sql, sql);
    let want = "storage: corrupt row in table rules (id 1), column limit: 4294967296 is out of range for u32";
    assert_eq!(s.load().unwrap_err().to_string(), want);
    let e = s
        .apply(vec![Change::SetEnabled {
            name: "M".into(),
            enabled: true,
        }], &crate::by())
        .unwrap_err();
    assert_eq!(e.to_string(), want);
    assert_eq!(b.env.fails(&["model", "list"]), want);

    let sql = "UPDATE rules SET \"limit\" = 10; UPDATE meta SET value = -1 WHERE key = 'revision'";
    b.raw_sql(sql, sql);
    let want = r#"storage: corrupt row in table meta (key "revision"), column value: -1 is out of range for u64"#;
    assert_eq!(s.revision().unwrap_err().to_string(), want);
    assert_eq!(s.load().unwrap_err().to_string(), want);

    let sql = "UPDATE meta SET value = 1 WHERE key = 'revision'; UPDATE models SET rev = -5";
    b.raw_sql(sql, sql);
    assert_eq!(
        s.load().unwrap_err().to_string(),
        r#"storage: corrupt row in table models (name "M"), column rev: -5 is out of range for u64"#
    );
}
}
