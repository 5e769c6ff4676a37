//! Schema migrations with a version, and the seed of a new database.
//!
//! The version lives in its own table, `maasctl_schema`. A database is
//! brought up to date in one transaction holding an advisory lock, so two
//! processes (two `serve` replicas, a CLI) opening a new database at once
//! create the tables and seed the default catalog and cluster exactly once.

use tokio_postgres::{Client, Transaction};

use super::{Failure, rows};
use crate::domain::Touched;
use crate::store::{StoreError, catalog};

/// Schema migrations, in order; `maasctl_schema.version` is how many ran.
/// Migration N here and in the SQLite backend make the same change.
const MIGRATIONS: &[&str] = &[
    // 1: the registry.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('revision', 0), ('next_rule_id', 1);
    CREATE TABLE market (
        name        TEXT PRIMARY KEY,
        provider    TEXT NOT NULL,
        tags        TEXT NOT NULL,
        description TEXT NOT NULL,
        published   BOOLEAN NOT NULL
    );
    CREATE TABLE clusters (
        name          TEXT PRIMARY KEY,
        entry_address TEXT NOT NULL
    );
    CREATE TABLE workspaces (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        created     BIGINT NOT NULL
    );
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        workspace   TEXT NOT NULL REFERENCES workspaces(name),
        name        TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        secret_hint TEXT NOT NULL,
        created     BIGINT NOT NULL,
        revoked     BIGINT,
        UNIQUE (workspace, name)
    );
    CREATE TABLE models (
        name     TEXT PRIMARY KEY,
        cluster  TEXT NOT NULL REFERENCES clusters(name),
        model_id TEXT NOT NULL,
        policy   TEXT NOT NULL,
        tags     TEXT NOT NULL,
        enabled  BOOLEAN NOT NULL,
        created  BIGINT NOT NULL,
        updated  BIGINT NOT NULL,
        rev      BIGINT NOT NULL
    );
    CREATE TABLE endpoints (
        model    TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        url      TEXT NOT NULL,
        api_key  TEXT,
        weight   BIGINT,
        probe    TEXT NOT NULL,
        disabled BOOLEAN NOT NULL,
        ca_file  TEXT,
        PRIMARY KEY (model, position)
    );
    CREATE TABLE rules (
        id            BIGINT PRIMARY KEY,
        model         TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        position      BIGINT NOT NULL,
        target        TEXT NOT NULL,
        workspace     TEXT NOT NULL REFERENCES workspaces(name),
        key_id        TEXT REFERENCES api_keys(id),
        "limit"       BIGINT NOT NULL,
        duration_secs BIGINT NOT NULL
    );
    CREATE INDEX rules_by_model ON rules (model, position);
    CREATE TABLE gateway_reports (
        id           TEXT PRIMARY KEY,
        heartbeat_ms BIGINT NOT NULL,
        body         TEXT NOT NULL
    );
    "#,
    // 2: where an upstream key came from (env:VAR / file:PATH), for export.
    r#"
    ALTER TABLE endpoints ADD COLUMN api_key_ref TEXT;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock that serializes migrations ("maasctl" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_6161_7363_746c;

/// The schema version of the database (0: not a maasctl database yet).
pub async fn version(tx: &Transaction<'_>) -> Result<i64, Failure> {
    let exists: bool = tx
        .query_one("SELECT to_regclass('maasctl_schema') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    Ok(tx
        .query_opt("SELECT version FROM maasctl_schema", &[])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0))
}

fn too_new(version: i64, shown: &str) -> Failure {
    Failure::Store(StoreError::Backend(format!(
        "the PostgreSQL database {shown} has schema version {version}, newer than this maasctl knows ({SCHEMA_VERSION}); upgrade maasctl"
    )))
}

/// Bring the database to [`SCHEMA_VERSION`], seeding a new one after every
/// migration ran (so the seed is written with the schema this build knows).
/// Refuses a database from a newer maasctl.
pub async fn migrate(client: &mut Client, shown: &str) -> Result<(), Failure> {
    // The common case, an up-to-date database, takes no lock.
    {
        let tx = client.build_transaction().read_only(true).start().await?;
        let v = version(&tx).await?;
        if v > SCHEMA_VERSION {
            return Err(too_new(v, shown));
        }
        if v == SCHEMA_VERSION {
            return Ok(());
        }
    }
    // A session-level lock, taken before the transaction starts: a
    // transaction that began before another process created the tables
    // would not see them in its catalog lookups.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client, shown).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(client: &mut Client, shown: &str) -> Result<(), Failure> {
    let tx = client.transaction().await?;
    let v = version(&tx).await?;
    if v > SCHEMA_VERSION {
        return Err(too_new(v, shown));
    }
    if v == SCHEMA_VERSION {
        // Another process migrated it while this one waited for the lock.
        return Ok(());
    }
    if v == 0 {
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS maasctl_schema (version BIGINT NOT NULL);
             DELETE FROM maasctl_schema;
             INSERT INTO maasctl_schema (version) VALUES (0);",
        )
        .await?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
        tx.batch_execute(sql).await.map_err(|e| {
            Failure::Store(StoreError::Backend(format!(
                "schema migration {} of {shown}: {}",
                i + 1,
                super::describe_pg(&e)
            )))
        })?;
    }
    tx.execute("UPDATE maasctl_schema SET version = $1", &[&SCHEMA_VERSION])
        .await?;
    if v == 0 {
        seed(&tx).await?;
    }
    tx.commit().await.map_err(Failure::Commit)?;
    tracing::info!("migrated {shown} from schema version {v} to {SCHEMA_VERSION}");
    Ok(())
}

/// A new store: the default catalog and the default cluster.
async fn seed(tx: &Transaction<'_>) -> Result<(), Failure> {
    let reg = catalog::baseline();
    let touched = Touched {
        market: reg.market.keys().cloned().collect(),
        clusters: reg.clusters.keys().cloned().collect(),
        ..Default::default()
    };
    rows::persist(tx, &reg, &touched).await
}
