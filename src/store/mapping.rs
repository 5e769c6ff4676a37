//! The registry and the gateway reports as rows: one mapping, shared by the
//! SQLite and the PostgreSQL backend. It declares every table, turns
//! entities into [`Statement`]s and reads them back from [`Rows`], with
//! checked conversions both ways (a stored integer that does not fit its
//! field is a storage error naming table, row and column, on both
//! backends). The backends only run what it produces inside their own
//! transactions (see [`super::sql`] for the seam); they keep connection
//! handling, locking and migration driving.
//!
//! # How to add a table or a column
//!
//! 1. **Schema.** Append a migration to
//!    [`MIGRATIONS`](super::migrations::MIGRATIONS), written once in
//!    PostgreSQL spelling (`TEXT`, `BIGINT` for every integer, `BOOLEAN`;
//!    SQLite gets `INTEGER`). Never edit a migration that shipped. A column
//!    added to an existing table needs a value for the rows already there:
//!    nullable, or `NOT NULL DEFAULT …`.
//! 2. **Declaration.** Declare the table here as a [`Table`] static (or add
//!    the column's name to its `columns`): its key, the columns later
//!    upserts must not overwrite (`insert_only`), the order a full read
//!    returns. Reads, inserts, upserts and deletes are generated from it.
//! 3. **Mapping.** Write a row with a [`Record`] (`.text`, `.int`, `.bool`,
//!    `.json`, `opt_*`: a column left out or unknown is an error), read one
//!    with [`Row`] getters (`row.int::<u32>("limit")` refuses what does not
//!    fit a `u32`). Keep both next to the declaration, as below.
//! 4. **Plans.** A registry entity joins [`load_queries`], [`registry()`] and
//!    [`persist`]. Anything else (a usage ledger, an audit log, admin
//!    tokens) gets its own functions here returning `Vec<Statement>` to
//!    write and a [`Query`] (+ a decoder) to read, like the gateway reports
//!    at the end of this file; each backend's new `Store` method runs them
//!    in a transaction, one or two lines per backend. SQL the generated
//!    forms do not cover (a per-minute rollup's `ON CONFLICT … DO UPDATE
//!    SET n = t.n + excluded.n`, a range delete) goes in
//!    [`Statement::new`] / [`Query::new`], in the same portable spelling
//!    with `$1` placeholders.
//! 5. **Tests.** `tests/store.rs` writes each store test once with
//!    `on_both!`, which runs it on SQLite and on PostgreSQL.

use super::StoreError;
use super::sql::{Query, Record, Row, Rows, Statement, Table, Value};
use crate::domain::*;

/// Counters: the registry revision and the next rule id.
pub static META: Table = Table {
    name: "meta",
    columns: &["key", "value"],
    key: &["key"],
    insert_only: &[],
    order_by: &[],
};

pub static MARKET: Table = Table {
    name: "market",
    columns: &[
        "name",
        "provider",
        "tags",
        "description",
        "published",
        "input_price",
        "output_price",
    ],
    key: &["name"],
    insert_only: &[],
    order_by: &[],
};

pub static CLUSTERS: Table = Table {
    name: "clusters",
    columns: &["name", "entry_address"],
    key: &["name"],
    insert_only: &[],
    order_by: &[],
};

pub static WORKSPACES: Table = Table {
    name: "workspaces",
    columns: &["name", "description", "created"],
    key: &["name"],
    insert_only: &["created"],
    order_by: &[],
};

pub static API_KEYS: Table = Table {
    name: "api_keys",
    columns: &[
        "id",
        "workspace",
        "name",
        "secret_hash",
        "secret_hint",
        "created",
        "revoked",
    ],
    key: &["id"],
    insert_only: &["workspace", "secret_hash", "secret_hint", "created"],
    order_by: &[],
};

pub static MODELS: Table = Table {
    name: "models",
    columns: &[
        "name",
        "cluster",
        "model_id",
        "policy",
        "tags",
        "enabled",
        "created",
        "updated",
        "rev",
        "fallbacks",
        "completion_cap",
    ],
    key: &["name"],
    insert_only: &["created"],
    order_by: &[],
};

/// A model's endpoints, in its order (rewritten whole with the model).
pub static ENDPOINTS: Table = Table {
    name: "endpoints",
    columns: &[
        "model",
        "position",
        "url",
        "api_key",
        "api_key_ref",
        "weight",
        "probe",
        "disabled",
        "ca_file",
        "drain",
    ],
    key: &["model", "position"],
    insert_only: &[],
    order_by: &["model", "position"],
};

/// A model's rules, in its order, keyed by their registry-wide id
/// (rewritten whole with the model).
pub static RULES: Table = Table {
    name: "rules",
    columns: &[
        "id",
        "model",
        "position",
        "target",
        "workspace",
        "key_id",
        "limit",
        "duration_secs",
        "unit",
    ],
    key: &["id"],
    insert_only: &[],
    order_by: &["model", "position"],
};

/// Budgets (docs/usage.md, "Budgets"), by id.
pub static BUDGETS: Table = Table {
    name: "budgets",
    columns: &["id", "target", "subject", "unit", "amount", "period"],
    key: &["id"],
    insert_only: &[],
    order_by: &["id"],
};

/// One row per running gateway process: its last report, as JSON.
pub static GATEWAY_REPORTS: Table = Table {
    name: "gateway_reports",
    columns: &["id", "heartbeat_ms", "body"],
    key: &["id"],
    insert_only: &[],
    order_by: &["id"],
};

// ---- the registry -------------------------------------------------------

fn market_record(e: &MarketEntry) -> Record {
    Record::new(&MARKET)
        .text("name", &e.name)
        .text("provider", &e.provider)
        .json("tags", &e.tags)
        .text("description", &e.description)
        .bool("published", e.published)
        .opt_text("input_price", e.input_price.map(|p| p.to_string()))
        .opt_text("output_price", e.output_price.map(|p| p.to_string()))
}

fn price(r: &Row, column: &str) -> Result<Option<Price>, StoreError> {
    r.opt_text(column)?
        .map(|t| t.parse().map_err(|e: String| r.error(column, e)))
        .transpose()
}

fn market_entry(r: Row) -> Result<MarketEntry, StoreError> {
    Ok(MarketEntry {
        name: r.text("name")?,
        provider: r.text("provider")?,
        tags: r.json("tags")?,
        description: r.text("description")?,
        published: r.bool("published")?,
        input_price: price(&r, "input_price")?,
        output_price: price(&r, "output_price")?,
    })
}

fn cluster_record(c: &Cluster) -> Record {
    Record::new(&CLUSTERS)
        .text("name", &c.name)
        .text("entry_address", &c.entry_address)
}

fn cluster(r: Row) -> Result<Cluster, StoreError> {
    Ok(Cluster {
        name: r.text("name")?,
        entry_address: r.text("entry_address")?,
    })
}

fn workspace_record(w: &Workspace) -> Record {
    Record::new(&WORKSPACES)
        .text("name", &w.name)
        .text("description", &w.description)
        .int("created", w.created)
}

fn workspace(r: Row) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        name: r.text("name")?,
        description: r.text("description")?,
        created: r.int("created")?,
    })
}

fn key_record(k: &ApiKey) -> Record {
    Record::new(&API_KEYS)
        .text("id", &k.id)
        .text("workspace", &k.workspace)
        .text("name", &k.name)
        .text("secret_hash", &k.secret_hash)
        .text("secret_hint", &k.secret_hint)
        .int("created", k.created)
        .opt_int("revoked", k.revoked)
}

fn api_key(r: Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: r.text("id")?,
        workspace: r.text("workspace")?,
        name: r.text("name")?,
        secret_hash: r.text("secret_hash")?,
        secret_hint: r.text("secret_hint")?,
        created: r.int("created")?,
        revoked: r.opt_int("revoked")?,
    })
}

fn model_record(m: &Model) -> Record {
    let s = &m.spec;
    Record::new(&MODELS)
        .text("name", &s.name)
        .text("cluster", &s.cluster)
        .text("model_id", &s.model_id)
        .text("policy", s.policy.as_str())
        .json("tags", &s.tags)
        .bool("enabled", m.enabled)
        .int("created", m.created)
        .int("updated", m.updated)
        .int("rev", m.rev)
        .json("fallbacks", &s.fallbacks)
        .opt_int("completion_cap", s.completion_cap)
}

/// A model without its endpoints and rules (their rows come after).
fn model(r: Row) -> Result<Model, StoreError> {
    Ok(Model {
        spec: ModelSpec {
            name: r.text("name")?,
            cluster: r.text("cluster")?,
            model_id: r.text("model_id")?,
            endpoints: Vec::new(),
            policy: r.parse("policy")?,
            tags: r.json("tags")?,
            fallbacks: r.json("fallbacks")?,
            completion_cap: r.opt_int("completion_cap")?,
        },
        enabled: r.bool("enabled")?,
        rules: Vec::new(),
        created: r.int("created")?,
        updated: r.int("updated")?,
        rev: r.int("rev")?,
    })
}

fn endpoint_record(model: &str, position: usize, e: &Endpoint) -> Record {
    Record::new(&ENDPOINTS)
        .text("model", model)
        .int("position", position)
        .text("url", &e.url)
        .opt_text("api_key", e.api_key.as_ref().map(Secret::expose))
        .opt_text("api_key_ref", e.api_key_ref.as_deref())
        .opt_int("weight", e.weight)
        .text("probe", e.probe.as_str())
        .bool("disabled", e.disabled)
        .opt_text("ca_file", e.ca_file.as_deref())
        .bool("drain", e.drain)
}

fn endpoint(r: Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        url: r.text("url")?,
        api_key: r.opt_text("api_key")?.map(Secret::new),
        api_key_ref: r.opt_text("api_key_ref")?,
        weight: r.opt_int("weight")?,
        probe: r.parse("probe")?,
        disabled: r.bool("disabled")?,
        drain: r.bool("drain")?,
        ca_file: r.opt_text("ca_file")?,
    })
}

fn rule_record(model: &str, position: usize, rule: &Rule) -> Record {
    Record::new(&RULES)
        .int("id", rule.id)
        .text("model", model)
        .int("position", position)
        .text("target", rule.spec.target.as_str())
        .text("workspace", &rule.spec.workspace)
        .opt_text("key_id", rule.spec.key_id.as_deref())
        .int("limit", rule.spec.limit)
        .int("duration_secs", rule.spec.duration_secs)
        .text("unit", rule.spec.unit.as_str())
}

fn rule(r: Row) -> Result<Rule, StoreError> {
    Ok(Rule {
        id: r.int("id")?,
        spec: RuleSpec {
            target: r.parse("target")?,
            workspace: r.text("workspace")?,
            key_id: r.opt_text("key_id")?,
            limit: r.int("limit")?,
            duration_secs: r.int("duration_secs")?,
            unit: r.parse("unit")?,
        },
    })
}

fn budget_record(b: &budget::Budget) -> Record {
    Record::new(&BUDGETS)
        .text("id", &b.id)
        .text("target", b.spec.target.as_str())
        .text("subject", &b.spec.subject)
        .text("unit", b.spec.unit.as_str())
        .int("amount", b.spec.amount)
        .text("period", b.spec.period.as_str())
}

fn budget_row(r: Row) -> Result<budget::Budget, StoreError> {
    Ok(budget::Budget {
        id: r.text("id")?,
        spec: budget::BudgetSpec {
            target: r.parse("target")?,
            subject: r.text("subject")?,
            unit: r.parse("unit")?,
            amount: r.int("amount")?,
            period: r.parse("period")?,
        },
    })
}

fn meta_record(key: &str, value: u64) -> Record {
    Record::new(&META).text("key", key).int("value", value)
}

/// The reads that make up the registry, to run in one consistent snapshot
/// (PostgreSQL sends them pipelined).
pub fn load_queries() -> Vec<Query> {
    [
        &META,
        &MARKET,
        &CLUSTERS,
        &WORKSPACES,
        &API_KEYS,
        &MODELS,
        &ENDPOINTS,
        &RULES,
        &BUDGETS,
    ]
    .into_iter()
    .map(Query::all)
    .collect()
}

/// The registry from the rows [`load_queries`] read.
pub fn registry(rows: &[Rows]) -> Result<Registry, StoreError> {
    let of = |table: &Table| {
        rows.iter()
            .find(|r| r.table().name == table.name)
            .ok_or_else(|| StoreError::Backend(format!("table {} was not read", table.name)))
    };
    let mut reg = Registry::default();
    let (mut revision, mut next_rule_id) = (None, None);
    for r in of(&META)?.iter() {
        match r.text("key")?.as_str() {
            "revision" => revision = Some(r.int("value")?),
            "next_rule_id" => next_rule_id = Some(r.int("value")?),
            "next_budget_id" => reg.next_budget_id = r.int("value")?,
            _ => {}
        }
    }
    let missing = |key: &str| StoreError::Backend(format!("table meta has no row '{key}'"));
    reg.revision = revision.ok_or_else(|| missing("revision"))?;
    reg.next_rule_id = next_rule_id.ok_or_else(|| missing("next_rule_id"))?;
    for r in of(&MARKET)?.iter() {
        let e = market_entry(r)?;
        reg.market.insert(e.name.clone(), e);
    }
    for r in of(&CLUSTERS)?.iter() {
        let c = cluster(r)?;
        reg.clusters.insert(c.name.clone(), c);
    }
    for r in of(&WORKSPACES)?.iter() {
        let w = workspace(r)?;
        reg.workspaces.insert(w.name.clone(), w);
    }
    for r in of(&API_KEYS)?.iter() {
        let k = api_key(r)?;
        reg.keys.insert(k.id.clone(), k);
    }
    for r in of(&MODELS)?.iter() {
        let m = model(r)?;
        reg.models.insert(m.spec.name.clone(), m);
    }
    for r in of(&ENDPOINTS)?.iter() {
        let owner = r.text("model")?;
        let m = reg
            .models
            .get_mut(&owner)
            .ok_or_else(|| r.error("model", format!("endpoint of unknown model '{owner}'")))?;
        m.spec.endpoints.push(endpoint(r)?);
    }
    for r in of(&RULES)?.iter() {
        let owner = r.text("model")?;
        let m = reg
            .models
            .get_mut(&owner)
            .ok_or_else(|| r.error("model", format!("rule of unknown model '{owner}'")))?;
        m.rules.push(rule(r)?);
    }
    for r in of(&BUDGETS)?.iter() {
        let b = budget_row(r)?;
        reg.budgets.insert(b.id.clone(), b);
    }
    Ok(reg)
}

/// The statements writing what `touched` names: upsert what is in `reg`,
/// delete what is not, then the counters. Order respects the foreign keys:
/// parents are upserted before models and deleted after them.
pub fn persist(reg: &Registry, touched: &Touched) -> Result<Vec<Statement>, StoreError> {
    let mut out = Vec::new();
    for e in touched.market.iter().filter_map(|n| reg.market.get(n)) {
        out.push(Statement::upsert(market_record(e))?);
    }
    for c in touched.clusters.iter().filter_map(|n| reg.clusters.get(n)) {
        out.push(Statement::upsert(cluster_record(c))?);
    }
    for w in touched
        .workspaces
        .iter()
        .filter_map(|n| reg.workspaces.get(n))
    {
        out.push(Statement::upsert(workspace_record(w))?);
    }
    for k in touched.keys.iter().filter_map(|id| reg.keys.get(id)) {
        out.push(Statement::upsert(key_record(k))?);
    }
    // Models in two passes: first clear every touched model's rows, then
    // write them back. A rename moves rule rows (keyed by their
    // registry-wide id) from the old name to the new one, so they must be
    // gone before any are re-inserted, whatever order the names sort in.
    for name in &touched.models {
        out.push(Statement::delete(&ENDPOINTS, "model", name));
        out.push(Statement::delete(&RULES, "model", name));
        if !reg.models.contains_key(name) {
            out.push(Statement::delete(&MODELS, "name", name));
        }
    }
    for m in touched.models.iter().filter_map(|n| reg.models.get(n)) {
        out.push(Statement::upsert(model_record(m))?);
        for (i, e) in m.spec.endpoints.iter().enumerate() {
            out.push(Statement::insert(endpoint_record(&m.spec.name, i, e))?);
        }
        for (i, r) in m.rules.iter().enumerate() {
            out.push(Statement::insert(rule_record(&m.spec.name, i, r))?);
        }
    }
    let gone = |names: &std::collections::BTreeSet<String>, present: &dyn Fn(&str) -> bool| {
        names
            .iter()
            .filter(|n| !present(n))
            .cloned()
            .collect::<Vec<_>>()
    };
    for b in touched.budgets.iter().filter_map(|id| reg.budgets.get(id)) {
        out.push(Statement::upsert(budget_record(b))?);
    }
    for id in gone(&touched.budgets, &|b| reg.budgets.contains_key(b)) {
        out.push(Statement::delete(&BUDGETS, "id", &id));
    }
    for id in gone(&touched.keys, &|k| reg.keys.contains_key(k)) {
        out.push(Statement::delete(&API_KEYS, "id", &id));
    }
    for name in gone(&touched.workspaces, &|n| reg.workspaces.contains_key(n)) {
        out.push(Statement::delete(&WORKSPACES, "name", &name));
    }
    for name in gone(&touched.clusters, &|n| reg.clusters.contains_key(n)) {
        out.push(Statement::delete(&CLUSTERS, "name", &name));
    }
    for name in gone(&touched.market, &|n| reg.market.contains_key(n)) {
        out.push(Statement::delete(&MARKET, "name", &name));
    }
    out.push(Statement::upsert(meta_record("revision", reg.revision))?);
    out.push(Statement::upsert(meta_record(
        "next_rule_id",
        reg.next_rule_id.max(1),
    ))?);
    if !touched.budgets.is_empty() {
        out.push(Statement::upsert(meta_record(
            "next_budget_id",
            reg.next_budget_id.max(1),
        ))?);
    }
    Ok(out)
}

/// What a new store is seeded with: the default catalog and the default
/// cluster, written after every migration ran.
pub fn seed() -> Result<Vec<Statement>, StoreError> {
    let reg = super::catalog::baseline();
    let touched = Touched {
        market: reg.market.keys().cloned().collect(),
        clusters: reg.clusters.keys().cloned().collect(),
        ..Default::default()
    };
    persist(&reg, &touched)
}

/// The registry revision: one row read (gateways poll it).
pub fn revision_query() -> Query {
    Query::new(
        &META,
        &["key", "value"],
        r#"SELECT "key", "value" FROM "meta" WHERE "key" = 'revision'"#,
        Vec::new(),
    )
}

/// The revision [`revision_query`] read.
pub fn revision(rows: &Rows) -> Result<u64, StoreError> {
    rows.iter()
        .next()
        .ok_or_else(|| StoreError::Backend("table meta has no row 'revision'".into()))?
        .int("value")
}

// ---- gateway reports ----------------------------------------------------

/// Write a gateway's report (replacing its previous one) and delete every
/// report that had expired ([`GatewayReport::STALE_MS`]) by this one's
/// heartbeat: live gateways write every couple of seconds, so the reports
/// of dead ones do not accumulate.
pub fn put_report(report: &GatewayReport) -> Result<Vec<Statement>, StoreError> {
    let body = serde_json::to_string(report)
        .map_err(|e| StoreError::Backend(format!("cannot write a gateway report: {e}")))?;
    let record = Record::new(&GATEWAY_REPORTS)
        .text("id", &report.id)
        .int("heartbeat_ms", report.heartbeat_ms)
        .text("body", body);
    Ok(vec![
        Statement::upsert(record)?,
        Statement::new(
            r#"DELETE FROM "gateway_reports" WHERE "heartbeat_ms" < $1"#,
            vec![Value::Int(live_since(report.heartbeat_ms))],
        ),
    ])
}

/// The oldest heartbeat still live at `now_ms`.
fn live_since(now_ms: i64) -> i64 {
    now_ms.saturating_sub(GatewayReport::STALE_MS)
}

/// Remove one gateway's report (it stopped cleanly).
pub fn remove_report(id: &str) -> Statement {
    Statement::delete(&GATEWAY_REPORTS, "id", id)
}

/// The reports live at `now_ms` (as [`GatewayReport::is_fresh`] counts
/// them); expired ones still stored are left out.
pub fn reports_query(now_ms: i64) -> Query {
    Query::new(
        &GATEWAY_REPORTS,
        GATEWAY_REPORTS.columns,
        r#"SELECT "id", "heartbeat_ms", "body" FROM "gateway_reports"
           WHERE "heartbeat_ms" >= $1 ORDER BY "id""#,
        vec![Value::Int(live_since(now_ms))],
    )
}

/// The reports [`reports_query`] read, skipping (with a warning) any this
/// build cannot read: a report from another maasctl version never fails the
/// caller.
pub fn reports(rows: &Rows) -> Result<Vec<GatewayReport>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.iter() {
        match serde_json::from_str(&r.text("body")?) {
            Ok(report) => out.push(report),
            Err(e) => tracing::warn!("ignoring unreadable gateway report: {e}"),
        }
    }
    Ok(out)
}

// ---- the usage ledger (docs/usage.md) -----------------------------------

/// Per (span, bucket, key, model) usage; gateways add to rows, never set
/// them, so replicas writing the same bucket add up.
pub static USAGE: Table = Table {
    name: "usage_ledger",
    columns: &[
        "span",
        "bucket_ms",
        "key_id",
        "workspace",
        "model",
        "requests",
        "ok",
        "throttled",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cost_nanos",
    ],
    key: &["span", "bucket_ms", "key_id", "model"],
    insert_only: &["workspace"],
    order_by: &[],
};

/// The counted columns (every column after `model`).
const USAGE_SUMS: &[&str] = &[
    "requests",
    "ok",
    "throttled",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
];

/// `ON CONFLICT (key) DO UPDATE SET n = usage_ledger.n + excluded.n, …`.
fn usage_add_clause() -> String {
    let set: Vec<String> = USAGE_SUMS
        .iter()
        .map(|c| format!("\"{c}\" = \"usage_ledger\".\"{c}\" + excluded.\"{c}\""))
        .collect();
    format!(
        " ON CONFLICT (\"span\", \"bucket_ms\", \"key_id\", \"model\") DO UPDATE SET {}",
        set.join(", ")
    )
}

/// Add `rows` to the ledger (each to its bucket, created when new).
///
/// Each row is added at its span and at every coarser one (a minute delta
/// to its minute, its hour and its UTC day), in the same transaction, so a
/// report reads whole days and hours from few rows (docs/usage.md).
pub fn add_usage(rows: &[usage::UsageRow]) -> Result<Vec<Statement>, StoreError> {
    let sql = format!("{}{}", USAGE.insert_sql(), usage_add_clause());
    let spans = [usage::Span::Minute, usage::Span::Hour, usage::Span::Day];
    rows.iter()
        .flat_map(|r| {
            spans
                .into_iter()
                .filter(move |s| *s >= r.span)
                .map(move |s| (r, s))
        })
        .map(|(r, span)| {
            let u = &r.usage;
            let record = Record::new(&USAGE)
                .text("span", span.as_str())
                .int("bucket_ms", usage::floor(r.bucket_ms, span.ms()))
                .text("key_id", &r.key_id)
                .text("workspace", &r.workspace)
                .text("model", &r.model)
                .int("requests", u.requests)
                .int("ok", u.ok)
                .int("throttled", u.throttled)
                .int("errors", u.errors)
                .int("prompt_tokens", u.prompt_tokens)
                .int("completion_tokens", u.completion_tokens)
                .int("cost_nanos", u.cost_nanos);
            Ok(Statement::new(sql.clone(), record.finish()?))
        })
        .collect()
}

/// The ledger's columns, quoted and comma-separated.
fn usage_cols() -> String {
    USAGE
        .columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `SELECT` of one piece of a plan: its rows, every column. Literal
/// integers and span names only.
fn piece_sql(p: &usage::Piece) -> String {
    let mut sql = format!(
        "SELECT {} FROM \"usage_ledger\" WHERE \"span\" = '{}' AND \"bucket_ms\" >= {} AND \"bucket_ms\" < {}",
        usage_cols(),
        p.span.as_str(),
        p.from_ms,
        p.until_ms
    );
    if let Some(f) = p.unless_finer {
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM \"usage_ledger\" \"f\" WHERE \"f\".\"span\" = '{}' AND \"f\".\"bucket_ms\" >= {} AND \"f\".\"bucket_ms\" < {})",
            f.as_str(),
            p.from_ms,
            p.from_ms.saturating_add(p.span.ms())
        ));
    }
    sql
}

/// The pieces [`usage::plan`] reads `ranges` in: several adjoining ranges,
/// each planned on its own (so no row read spans a range's edge);
/// `open_end` applies to the last one.
fn plan_ranges(ranges: &[(i64, i64)], open_end: bool) -> Vec<usage::Piece> {
    ranges
        .iter()
        .enumerate()
        .flat_map(|(i, (since, until))| {
            usage::plan(*since, *until, open_end && i + 1 == ranges.len())
        })
        .collect()
}

/// `pieces`' rows as a `FROM` source: `(… UNION ALL …) AS "u"`.
fn union_of(pieces: &[usage::Piece]) -> String {
    let parts: Vec<String> = pieces.iter().map(piece_sql).collect();
    format!("({}) AS \"u\"", parts.join(" UNION ALL "))
}

/// The ledger rows of `[since_ms, until_ms)` as [`usage::plan`] reads
/// them (each delta once, at the coarsest span that fits), as a `FROM`
/// source.
fn planned(since_ms: i64, until_ms: i64, open_end: bool) -> String {
    union_of(&plan_ranges(&[(since_ms, until_ms)], open_end))
}

/// The rows whose bucket starts in `[since_ms, until_ms)`, each delta once
/// ([`usage::plan`]: days, hours at the ends, minutes inside the end hours).
pub fn usage_query(since_ms: i64, until_ms: i64) -> Query {
    let cols = usage_cols();
    Query::new(
        &USAGE,
        USAGE.columns,
        format!(
            "SELECT {cols} FROM {} ORDER BY \"bucket_ms\", \"key_id\", \"model\", \"span\"",
            planned(since_ms, until_ms, false)
        ),
        vec![],
    )
}

/// The rows of [`usage_query`] summed per (key, model, bucket of
/// `step_ms`), each dated by its earliest row (so it stays in the range and
/// in its step): one row per group and step instead of one per minute.
/// With `open_end`, the end is read from its hour or day row
/// ([`usage::plan`]).
///
/// Only the pieces finer than the step are summed (`GROUP BY`); rows of
/// the step's own span (a daily report's day rows) are already one per
/// (key, model, step) and are handed over as they are: grouping them would
/// sort them all for nothing (it was most of a 30-day report's time). The
/// rows come in no particular order; a report adds them up.
pub fn usage_summary_query(since_ms: i64, until_ms: i64, step_ms: i64, open_end: bool) -> Query {
    let sums: Vec<String> = USAGE_SUMS
        .iter()
        .map(|c| format!("CAST(SUM(\"{c}\") AS BIGINT) AS \"{c}\""))
        .collect();
    let step = step_ms.max(1);
    let (whole, finer): (Vec<usage::Piece>, Vec<usage::Piece>) =
        plan_ranges(&[(since_ms, until_ms)], open_end)
            .into_iter()
            .partition(|p| p.span.ms() >= step);
    let mut parts = Vec::new();
    if !finer.is_empty() {
        parts.push(format!(
            "SELECT MIN(\"span\") AS \"span\", MIN(\"bucket_ms\") AS \"bucket_ms\", \"key_id\", \
             MIN(\"workspace\") AS \"workspace\", \"model\", {sums} FROM {src} \
             GROUP BY \"key_id\", \"model\", \"bucket_ms\" - (\"bucket_ms\" % {step})",
            sums = sums.join(", "),
            src = union_of(&finer),
        ));
    }
    parts.extend(whole.iter().map(piece_sql));
    Query::new(&USAGE, USAGE.columns, parts.join(" UNION ALL "), vec![])
}

/// The rows [`usage_query`] read.
pub fn usage_rows(rows: &Rows) -> Result<Vec<usage::UsageRow>, StoreError> {
    rows.iter()
        .map(|r| {
            let span = r.text("span")?;
            Ok(usage::UsageRow {
                span: usage::Span::parse(&span)
                    .ok_or_else(|| r.error("span", format!("unknown span '{span}'")))?,
                bucket_ms: r.int("bucket_ms")?,
                key_id: r.text("key_id")?,
                workspace: r.text("workspace")?,
                model: r.text("model")?,
                usage: usage::Usage {
                    requests: r.int("requests")?,
                    ok: r.int("ok")?,
                    throttled: r.int("throttled")?,
                    errors: r.int("errors")?,
                    prompt_tokens: r.int("prompt_tokens")?,
                    completion_tokens: r.int("completion_tokens")?,
                    cost_nanos: r.int("cost_nanos")?,
                },
            })
        })
        .collect()
}

/// What [`usage_totals_query`] reads.
const TOTALS: &[&str] = &[
    "key_id",
    "workspace",
    "bucket_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
];

/// Per (key, workspace), the sums from `since_ms` on, in two parts: before
/// `split_ms` (reported at `since_ms`) and from it (at `split_ms`).
pub fn usage_totals_query(since_ms: i64, split_ms: i64) -> Query {
    let sum = |c: &str| format!("CAST(SUM(\"{c}\") AS BIGINT)");
    Query::new(
        &USAGE,
        TOTALS,
        format!(
            "SELECT \"key_id\", \"workspace\", CASE WHEN \"bucket_ms\" >= $2 THEN $2 ELSE $1 END, {}, {}, {} FROM {} GROUP BY \"key_id\", \"workspace\", 3",
            sum("prompt_tokens"),
            sum("completion_tokens"),
            sum("cost_nanos"),
            union_of(&plan_ranges(
                &[
                    (since_ms, split_ms.max(since_ms)),
                    (split_ms.max(since_ms), i64::MAX)
                ],
                false
            ))
        ),
        vec![Value::Int(since_ms), Value::Int(split_ms)],
    )
}

/// The rows [`usage_totals_query`] read, as minute rows with only the
/// token and cost sums (and no model).
pub fn usage_totals(rows: &Rows) -> Result<Vec<usage::UsageRow>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(usage::UsageRow {
                span: usage::Span::Minute,
                bucket_ms: r.int("bucket_ms")?,
                key_id: r.text("key_id")?,
                workspace: r.text("workspace")?,
                model: String::new(),
                usage: usage::Usage {
                    prompt_tokens: r.int("prompt_tokens")?,
                    completion_tokens: r.int("completion_tokens")?,
                    cost_nanos: r.int("cost_nanos")?,
                    ..Default::default()
                },
            })
        })
        .collect()
}

/// Age the ledger at `now_ms`: minute rows past their retention and hour
/// rows past theirs are deleted (every delta is also in its hour and day
/// rows, written with it); day rows are kept.
pub fn compact_usage(now_ms: i64, keep: &usage::Retention) -> Vec<Statement> {
    let (minutes_before, hours_before) = keep.cutoffs(now_ms);
    [
        (usage::Span::Minute, minutes_before),
        (usage::Span::Hour, hours_before),
    ]
    .into_iter()
    .map(|(span, before)| {
        Statement::new(
            r#"DELETE FROM "usage_ledger" WHERE "span" = $1 AND "bucket_ms" < $2"#,
            vec![Value::Text(span.as_str().into()), Value::Int(before)],
        )
    })
    .collect()
}

// ---- operations: the audit trail, the history, admin tokens -------------

/// The audit trail: one row per committed change (append-only: the
/// migration's triggers refuse updates and deletes on both backends).
pub static AUDIT: Table = Table {
    name: "audit",
    columns: &[
        "id",
        "at_ms",
        "actor_kind",
        "actor",
        "channel",
        "revision",
        "summary",
        "changes",
    ],
    key: &["id"],
    insert_only: &[],
    order_by: &["id"],
};

/// Which entities each audit entry changed (`kind/name`), for filtering.
pub static AUDIT_ENTITIES: Table = Table {
    name: "audit_entities",
    columns: &["entity", "audit_id"],
    key: &["entity", "audit_id"],
    insert_only: &[],
    order_by: &["audit_id"],
};

/// What each of the newest revisions did to each entity (diff, rollback).
pub static REVISIONS: Table = Table {
    name: "revisions",
    columns: &["revision", "journal"],
    key: &["revision"],
    insert_only: &[],
    order_by: &["revision"],
};

/// Named admin tokens (hashes only).
pub static ADMIN_TOKENS: Table = Table {
    name: "admin_tokens",
    columns: &[
        "name",
        "role",
        "secret_hash",
        "secret_hint",
        "created",
        "revoked",
    ],
    key: &["name"],
    insert_only: &["role", "secret_hash", "secret_hint", "created"],
    order_by: &["name"],
};

fn to_json(what: &str, v: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot write {what}: {e}")))
}

/// Append `entry` to the audit trail (its `id` is ignored: the row gets the
/// next one, assigned inside the writer's transaction, which holds the
/// store's write lock), with the entities it changed.
pub fn append_audit(entry: &AuditEntry) -> Result<Vec<Statement>, StoreError> {
    let mut values = Record::new(&AUDIT)
        .int("id", 0)
        .int("at_ms", entry.at_ms)
        .text(
            "actor_kind",
            match entry.actor.kind {
                ActorKind::User => "user",
                ActorKind::Token => "token",
            },
        )
        .text("actor", &entry.actor.name)
        .text("channel", entry.channel.as_str())
        .opt_int("revision", entry.revision)
        .text("summary", &entry.summary)
        .text("changes", to_json("an audit entry", &entry.changes)?)
        .finish()?;
    values.remove(0);
    let next_id = r#"(SELECT COALESCE(MAX("id"), 0) + 1 FROM "audit")"#;
    let mut out = vec![Statement::new(
        format!(
            r#"INSERT INTO "audit" ("id", "at_ms", "actor_kind", "actor", "channel", "revision", "summary", "changes") VALUES ({next_id}, $1, $2, $3, $4, $5, $6, $7)"#
        ),
        values,
    )];
    let entities: std::collections::BTreeSet<&str> =
        entry.changes.iter().map(|c| c.entity.as_str()).collect();
    for e in entities {
        out.push(Statement::new(
            r#"INSERT INTO "audit_entities" ("entity", "audit_id") VALUES ($1, (SELECT MAX("id") FROM "audit"))"#,
            vec![Value::Text(e.into())],
        ));
    }
    Ok(out)
}

/// The audit entries `q` asks for, newest first (the caller reverses).
pub fn audit_query(q: &AuditQuery) -> Query {
    let mut sql = String::from(
        r#"SELECT "id", "at_ms", "actor_kind", "actor", "channel", "revision", "summary", "changes" FROM "audit" WHERE "at_ms" >= $1"#,
    );
    let mut params = vec![Value::Int(q.since_ms.unwrap_or(i64::MIN))];
    if q.revisions_only {
        sql.push_str(r#" AND "revision" IS NOT NULL"#);
    }
    if let Some(e) = &q.entity {
        params.push(Value::Text(e.clone()));
        sql.push_str(&format!(
            r#" AND "id" IN (SELECT "audit_id" FROM "audit_entities" WHERE "entity" = ${})"#,
            params.len()
        ));
    }
    sql.push_str(r#" ORDER BY "id" DESC"#);
    if let Some(n) = q.limit {
        params.push(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" LIMIT ${}", params.len()));
    }
    Query::new(&AUDIT, AUDIT.columns, sql, params)
}

/// The entries [`audit_query`] read, oldest first.
pub fn audit_entries(rows: &Rows) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.iter() {
        let kind = match r.text("actor_kind")?.as_str() {
            "user" => ActorKind::User,
            "token" => ActorKind::Token,
            other => return Err(r.error("actor_kind", format!("'{other}' is not user or token"))),
        };
        out.push(AuditEntry {
            id: r.int("id")?,
            at_ms: r.int("at_ms")?,
            actor: Actor {
                kind,
                name: r.text("actor")?,
            },
            channel: r.parse("channel")?,
            revision: r.opt_int("revision")?,
            summary: r.text("summary")?,
            changes: r.json("changes")?,
        });
    }
    out.reverse();
    Ok(out)
}

/// Record revision `revision`'s journal, and forget the journals that fell
/// out of the history kept ([`history::KEEP`] revisions).
pub fn record_journal(
    revision: u64,
    journal: &history::Journal,
) -> Result<Vec<Statement>, StoreError> {
    let record = Record::new(&REVISIONS)
        .int("revision", revision)
        .text("journal", to_json("the history", journal)?);
    let oldest_kept = revision.saturating_sub(history::KEEP - 1);
    Ok(vec![
        Statement::insert(record)?,
        Statement::new(
            r#"DELETE FROM "revisions" WHERE "revision" < $1"#,
            vec![Value::Int(i64::try_from(oldest_kept).unwrap_or(i64::MAX))],
        ),
    ])
}

/// The journals of the revisions after `after`, newest first.
pub fn journals_query(after: u64) -> Query {
    Query::new(
        &REVISIONS,
        REVISIONS.columns,
        r#"SELECT "revision", "journal" FROM "revisions" WHERE "revision" > $1 ORDER BY "revision" DESC"#,
        vec![Value::Int(i64::try_from(after).unwrap_or(i64::MAX))],
    )
}

/// The journals [`journals_query`] read.
pub fn journals(rows: &Rows) -> Result<Vec<(u64, history::Journal)>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.int("revision")?, r.json("journal")?)))
        .collect()
}

fn token_record(t: &token::AdminTokenRecord) -> Record {
    Record::new(&ADMIN_TOKENS)
        .text("name", &t.name)
        .text("role", t.role.as_str())
        .text("secret_hash", &t.secret_hash)
        .text("secret_hint", &t.secret_hint)
        .int("created", t.created)
        .opt_int("revoked", t.revoked)
}

/// Write an admin token (created, or revoked).
pub fn put_token(t: &token::AdminTokenRecord) -> Result<Statement, StoreError> {
    Statement::upsert(token_record(t))
}

/// The admin tokens [`Query::all`] of [`ADMIN_TOKENS`] read.
pub fn tokens(rows: &Rows) -> Result<Vec<token::AdminTokenRecord>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(token::AdminTokenRecord {
                name: r.text("name")?,
                role: r.parse("role")?,
                secret_hash: r.text("secret_hash")?,
                secret_hint: r.text("secret_hint")?,
                created: r.int("created")?,
                revoked: r.opt_int("revoked")?,
            })
        })
        .collect()
}

// ---- shared probes (docs/gateway.md, "Probes") ---------------------------

/// Per endpoint key: who probes it until when, and the last result.
pub static PROBE_LEASES: Table = Table {
    name: "probe_leases",
    columns: &["key", "holder", "expires_ms", "result", "reason", "at_ms"],
    key: &["key"],
    insert_only: &[],
    order_by: &[],
};

/// Take the lease of `key` for `holder` until `until_ms`, only if it is
/// free (none, or expired at `now_ms`): one conditional upsert, atomic on
/// both backends.
pub fn claim_probe(key: &str, holder: &str, now_ms: i64, until_ms: i64) -> Vec<Statement> {
    vec![Statement::new(
        r#"INSERT INTO "probe_leases" ("key", "holder", "expires_ms") VALUES ($1, $2, $3)
           ON CONFLICT ("key") DO UPDATE SET "holder" = excluded."holder",
               "expires_ms" = excluded."expires_ms"
           WHERE "probe_leases"."expires_ms" <= $4"#,
        vec![
            Value::Text(key.into()),
            Value::Text(holder.into()),
            Value::Int(until_ms),
            Value::Int(now_ms),
        ],
    )]
}

/// Record a probe's result for every replica to read.
pub fn put_probe_result(key: &str, result: &ProbeResult) -> Vec<Statement> {
    vec![Statement::new(
        r#"UPDATE "probe_leases" SET "result" = $2, "reason" = $3, "at_ms" = $4 WHERE "key" = $1"#,
        vec![
            Value::Text(key.into()),
            Value::Text(if result.ok { "ok" } else { "failed" }.into()),
            Value::Text(result.reason.clone()),
            Value::Int(result.at_ms),
        ],
    )]
}

/// The lease of `key`.
pub fn probe_lease_query(key: &str) -> Query {
    Query::new(
        &PROBE_LEASES,
        PROBE_LEASES.columns,
        r#"SELECT "key", "holder", "expires_ms", "result", "reason", "at_ms"
           FROM "probe_leases" WHERE "key" = $1"#,
        vec![Value::Text(key.into())],
    )
}

/// The lease [`probe_lease_query`] read (none: never claimed).
pub fn probe_lease(rows: &Rows) -> Result<Option<ProbeLease>, StoreError> {
    let Some(r) = rows.iter().next() else {
        return Ok(None);
    };
    let last = match (r.opt_text("result")?, r.opt_int::<i64>("at_ms")?) {
        (Some(result), Some(at_ms)) => Some(ProbeResult {
            ok: result == "ok",
            reason: r.opt_text("reason")?.unwrap_or_default(),
            at_ms,
        }),
        _ => None,
    };
    Ok(Some(ProbeLease {
        holder: r.text("holder")?,
        expires_ms: r.int("expires_ms")?,
        last,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared column is written by its record (a record missing one
    /// fails `finish`), for a registry holding every kind of entity.
    #[test]
    fn every_column_is_written() {
        let mut reg = super::super::catalog::baseline();
        reg.apply_all(
            vec![
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
                Change::CreateKey {
                    id: "key_1".into(),
                    workspace: "acme".into(),
                    name: "ci".into(),
                    secret_hash: secret::hash_secret("sk-1"),
                    secret_hint: "1234".into(),
                },
                Change::CreateModel(ModelSpec {
                    name: "M".into(),
                    cluster: Cluster::DEFAULT.into(),
                    model_id: "m".into(),
                    endpoints: vec![Endpoint::new("http://u.example")],
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
                        limit: 1,
                        duration_secs: 1,
                        unit: Default::default(),
                    },
                },
                Change::AddBudget(budget::BudgetSpec {
                    target: RuleTarget::Workspace,
                    subject: "acme".into(),
                    unit: budget::BudgetUnit::Tokens,
                    amount: 1000,
                    period: budget::BudgetPeriod::Day,
                }),
            ],
            0,
        )
        .unwrap();
        let touched = Touched {
            market: reg.market.keys().cloned().collect(),
            clusters: reg.clusters.keys().cloned().collect(),
            workspaces: reg.workspaces.keys().cloned().collect(),
            keys: reg.keys.keys().cloned().collect(),
            models: reg.models.keys().cloned().collect(),
            budgets: reg.budgets.keys().cloned().collect(),
        };
        let statements = persist(&reg, &touched).unwrap();
        for table in [
            &META,
            &MARKET,
            &CLUSTERS,
            &WORKSPACES,
            &API_KEYS,
            &MODELS,
            &ENDPOINTS,
            &RULES,
            &BUDGETS,
        ] {
            let insert = table.insert_sql();
            assert!(
                statements.iter().any(|s| s.sql.starts_with(&insert)),
                "no row written to {}",
                table.name
            );
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused_both_ways() {
        let q = Query::all(&RULES);
        let rows = q
            .rows(vec![vec![
                Value::Int(7),
                Value::Text("M".into()),
                Value::Int(0),
                Value::Text("workspace".into()),
                Value::Text("acme".into()),
                Value::Null,
                Value::Int(1 << 40),
                Value::Int(60),
                Value::Text("requests".into()),
            ]])
            .unwrap();
        let e = rule(rows.iter().next().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage: corrupt row in table rules (id 7), column limit: 1099511627776 is out of range for u32"
        );
        let reg = Registry {
            revision: u64::MAX,
            ..Default::default()
        };
        let e = persist(&reg, &Touched::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage: cannot write table meta, column value: 18446744073709551615 is too large to store"
        );
    }
}
