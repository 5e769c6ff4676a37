//! The registry as rows: read it all, write what a batch touched. The same
//! tables and columns as the SQLite backend (tags as JSON text, endpoints
//! and rules in their model's order), so both stores hold the same thing.

use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::Failure;
use crate::domain::*;
use crate::store::StoreError;

fn corrupt(what: impl std::fmt::Display) -> Failure {
    Failure::Store(StoreError::Backend(what.to_string()))
}

fn json_list(s: &str) -> Result<Vec<String>, Failure> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("corrupt tag list {s:?}: {e}")))
}

fn parse_col<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, Failure> {
    s.parse().map_err(corrupt)
}

/// A stored number that must fit the entity's type.
fn num<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, Failure> {
    T::try_from(v).map_err(|_| corrupt(format!("corrupt {what}: {v} is out of range")))
}

fn to_i64(v: impl TryInto<i64>, what: &str) -> Result<i64, Failure> {
    v.try_into()
        .map_err(|_| corrupt(format!("{what} is too large to store")))
}

/// Read the whole registry inside `tx`. The queries go out pipelined: one
/// round trip's wait, not eight.
pub async fn load(tx: &Transaction<'_>) -> Result<Registry, Failure> {
    let (meta_rows, market, clusters, workspaces, keys, models, endpoints, rules) = futures_util::try_join!(
        tx.query("SELECT key, value FROM meta", &[]),
        tx.query(
            "SELECT name, provider, tags, description, published FROM market",
            &[]
        ),
        tx.query("SELECT name, entry_address FROM clusters", &[]),
        tx.query("SELECT name, description, created FROM workspaces", &[]),
        tx.query(
            "SELECT id, workspace, name, secret_hash, secret_hint, created, revoked FROM api_keys",
            &[]
        ),
        tx.query(
            "SELECT name, cluster, model_id, policy, tags, enabled, created, updated, rev FROM models",
            &[]
        ),
        tx.query(
            "SELECT model, url, api_key, weight, probe, disabled, ca_file, api_key_ref
             FROM endpoints ORDER BY model, position",
            &[]
        ),
        tx.query(
            r#"SELECT id, model, target, workspace, key_id, "limit", duration_secs
               FROM rules ORDER BY model, position"#,
            &[]
        ),
    )?;
    let mut reg = Registry::default();
    for r in meta_rows {
        let (key, value): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        match key.as_str() {
            "revision" => reg.revision = num(value, "revision")?,
            "next_rule_id" => reg.next_rule_id = num(value, "next_rule_id")?,
            _ => {}
        }
    }
    for r in market {
        let name: String = r.try_get(0)?;
        reg.market.insert(
            name.clone(),
            MarketEntry {
                name,
                provider: r.try_get(1)?,
                tags: json_list(r.try_get(2)?)?,
                description: r.try_get(3)?,
                published: r.try_get(4)?,
            },
        );
    }
    for r in clusters {
        let c = Cluster {
            name: r.try_get(0)?,
            entry_address: r.try_get(1)?,
        };
        reg.clusters.insert(c.name.clone(), c);
    }
    for r in workspaces {
        let w = Workspace {
            name: r.try_get(0)?,
            description: r.try_get(1)?,
            created: r.try_get(2)?,
        };
        reg.workspaces.insert(w.name.clone(), w);
    }
    for r in keys {
        let k = ApiKey {
            id: r.try_get(0)?,
            workspace: r.try_get(1)?,
            name: r.try_get(2)?,
            secret_hash: r.try_get(3)?,
            secret_hint: r.try_get(4)?,
            created: r.try_get(5)?,
            revoked: r.try_get(6)?,
        };
        reg.keys.insert(k.id.clone(), k);
    }
    for r in models {
        let name: String = r.try_get(0)?;
        reg.models.insert(
            name.clone(),
            Model {
                spec: ModelSpec {
                    name,
                    cluster: r.try_get(1)?,
                    model_id: r.try_get(2)?,
                    endpoints: Vec::new(),
                    policy: parse_col(r.try_get(3)?)?,
                    tags: json_list(r.try_get(4)?)?,
                },
                enabled: r.try_get(5)?,
                rules: Vec::new(),
                created: r.try_get(6)?,
                updated: r.try_get(7)?,
                rev: num(r.try_get(8)?, "model revision")?,
            },
        );
    }
    for r in endpoints {
        let model: String = r.try_get(0)?;
        let m = reg
            .models
            .get_mut(&model)
            .ok_or_else(|| corrupt(format!("endpoint of unknown model '{model}'")))?;
        m.spec.endpoints.push(Endpoint {
            url: r.try_get(1)?,
            api_key: r.try_get::<_, Option<String>>(2)?.map(Secret::new),
            api_key_ref: r.try_get(7)?,
            weight: r
                .try_get::<_, Option<i64>>(3)?
                .map(|w| num(w, "endpoint weight"))
                .transpose()?,
            probe: parse_col(r.try_get(4)?)?,
            disabled: r.try_get(5)?,
            ca_file: r.try_get(6)?,
        });
    }
    for r in rules {
        let model: String = r.try_get(1)?;
        let m = reg
            .models
            .get_mut(&model)
            .ok_or_else(|| corrupt(format!("rule of unknown model '{model}'")))?;
        m.rules.push(Rule {
            id: num(r.try_get(0)?, "rule id")?,
            spec: RuleSpec {
                target: parse_col(r.try_get(2)?)?,
                workspace: r.try_get(3)?,
                key_id: r.try_get(4)?,
                limit: num(r.try_get(5)?, "rule limit")?,
                duration_secs: num(r.try_get(6)?, "rule duration")?,
            },
        });
    }
    Ok(reg)
}

/// Write what `touched` names: upsert what is in `reg`, delete what is not.
/// Order respects the foreign keys: parents are upserted before models and
/// deleted after them (the same order as the SQLite backend).
pub async fn persist(
    tx: &Transaction<'_>,
    reg: &Registry,
    touched: &Touched,
) -> Result<(), Failure> {
    for name in &touched.market {
        if let Some(e) = reg.market.get(name) {
            let tags = serde_json::to_string(&e.tags).map_err(corrupt)?;
            tx.execute(
                "INSERT INTO market (name, provider, tags, description, published) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET provider = $2, tags = $3, description = $4, published = $5",
                &[&e.name, &e.provider, &tags, &e.description, &e.published],
            )
            .await?;
        }
    }
    for name in &touched.clusters {
        if let Some(c) = reg.clusters.get(name) {
            tx.execute(
                "INSERT INTO clusters (name, entry_address) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET entry_address = $2",
                &[&c.name, &c.entry_address],
            )
            .await?;
        }
    }
    for name in &touched.workspaces {
        if let Some(w) = reg.workspaces.get(name) {
            tx.execute(
                "INSERT INTO workspaces (name, description, created) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET description = $2",
                &[&w.name, &w.description, &w.created],
            )
            .await?;
        }
    }
    for id in &touched.keys {
        if let Some(k) = reg.keys.get(id) {
            tx.execute(
                "INSERT INTO api_keys (id, workspace, name, secret_hash, secret_hint, created, revoked)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET name = $3, revoked = $7",
                &[
                    &k.id,
                    &k.workspace,
                    &k.name,
                    &k.secret_hash,
                    &k.secret_hint,
                    &k.created,
                    &k.revoked,
                ],
            )
            .await?;
        }
    }
    // Models in two passes, as in SQLite: clear every touched model's rows
    // first, so a rename can move rule rows (keyed by their registry-wide
    // id) whatever order the names sort in.
    for name in &touched.models {
        tx.execute("DELETE FROM endpoints WHERE model = $1", &[name])
            .await?;
        tx.execute("DELETE FROM rules WHERE model = $1", &[name])
            .await?;
        if !reg.models.contains_key(name) {
            tx.execute("DELETE FROM models WHERE name = $1", &[name])
                .await?;
        }
    }
    for m in touched.models.iter().filter_map(|n| reg.models.get(n)) {
        write_model(tx, m).await?;
    }
    delete_missing(tx, "api_keys", "id", &touched.keys, |k| {
        reg.keys.contains_key(k)
    })
    .await?;
    delete_missing(tx, "workspaces", "name", &touched.workspaces, |n| {
        reg.workspaces.contains_key(n)
    })
    .await?;
    delete_missing(tx, "clusters", "name", &touched.clusters, |n| {
        reg.clusters.contains_key(n)
    })
    .await?;
    delete_missing(tx, "market", "name", &touched.market, |n| {
        reg.market.contains_key(n)
    })
    .await?;
    let revision = to_i64(reg.revision, "revision")?;
    let next_rule_id = to_i64(reg.next_rule_id.max(1), "next rule id")?;
    let set = "UPDATE meta SET value = $2 WHERE key = $1";
    tx.execute(set, &[&"revision", &revision]).await?;
    tx.execute(set, &[&"next_rule_id", &next_rule_id]).await?;
    Ok(())
}

/// Delete the rows of `table` whose `column` is one of `names` but no longer
/// `present` in the registry.
async fn delete_missing(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    names: &std::collections::BTreeSet<String>,
    present: impl Fn(&str) -> bool,
) -> Result<(), Failure> {
    let gone: Vec<&String> = names.iter().filter(|n| !present(n)).collect();
    if !gone.is_empty() {
        tx.execute(
            &format!("DELETE FROM {table} WHERE {column} = ANY($1)"),
            &[&gone],
        )
        .await?;
    }
    Ok(())
}

/// Upsert one model with its endpoints and rules (whose rows the caller cleared).
async fn write_model(tx: &Transaction<'_>, m: &Model) -> Result<(), Failure> {
    let s = &m.spec;
    let tags = serde_json::to_string(&s.tags).map_err(corrupt)?;
    let rev = to_i64(m.rev, "model revision")?;
    tx.execute(
        "INSERT INTO models (name, cluster, model_id, policy, tags, enabled, created, updated, rev)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET cluster = $2, model_id = $3, policy = $4, tags = $5,
             enabled = $6, updated = $8, rev = $9",
        &[
            &s.name,
            &s.cluster,
            &s.model_id,
            &s.policy.as_str(),
            &tags,
            &m.enabled,
            &m.created,
            &m.updated,
            &rev,
        ],
    )
    .await?;
    if !s.endpoints.is_empty() {
        let insert = tx
            .prepare(
                "INSERT INTO endpoints (model, position, url, api_key, api_key_ref, weight, probe, disabled, ca_file)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .await?;
        for (i, e) in s.endpoints.iter().enumerate() {
            let position = to_i64(i, "endpoint position")?;
            let weight = e.weight.map(i64::from);
            let params: [&(dyn ToSql + Sync); 9] = [
                &s.name,
                &position,
                &e.url,
                &e.api_key.as_ref().map(Secret::expose),
                &e.api_key_ref,
                &weight,
                &e.probe.as_str(),
                &e.disabled,
                &e.ca_file,
            ];
            tx.execute(&insert, &params).await?;
        }
    }
    if !m.rules.is_empty() {
        let insert = tx
            .prepare(
                r#"INSERT INTO rules (id, model, position, target, workspace, key_id, "limit", duration_secs)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
            )
            .await?;
        for (i, r) in m.rules.iter().enumerate() {
            let id = to_i64(r.id, "rule id")?;
            let position = to_i64(i, "rule position")?;
            let params: [&(dyn ToSql + Sync); 8] = [
                &id,
                &s.name,
                &position,
                &r.spec.target.as_str(),
                &r.spec.workspace,
                &r.spec.key_id,
                &i64::from(r.spec.limit),
                &i64::from(r.spec.duration_secs),
            ];
            tx.execute(&insert, &params).await?;
        }
    }
    Ok(())
}
