//! Schema migrations with a version, and the seed of a new database.
//!
//! The migrations themselves are shared with SQLite
//! ([`crate::store::migrations`]); PostgreSQL runs their text as it is.
//!
//! The version lives in its own table, `maasctl_schema`. A database is
//! brought up to date in one transaction holding an advisory lock, so two
//! processes (two `serve` replicas, a CLI) opening a new database at once
//! create the tables and seed the default catalog and cluster exactly once.

use tokio_postgres::{Client, Transaction};

use super::{Failure, rows};
use crate::store::StoreError;
use crate::store::mapping;
use crate::store::migrations::MIGRATIONS;

pub use crate::store::migrations::SCHEMA_VERSION;

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
    let done = usize::try_from(v).map_err(|_| {
        Failure::Store(StoreError::Backend(format!(
            "the PostgreSQL database {shown} has schema version {v}"
        )))
    })?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(done) {
        let ran = match tx.batch_execute(m.portable).await {
            Ok(()) => tx.batch_execute(m.postgres).await,
            Err(e) => Err(e),
        };
        ran.map_err(|e| {
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
        rows::execute(&tx, &mapping::seed()?).await?;
    }
    tx.commit().await.map_err(Failure::Commit)?;
    tracing::info!("migrated {shown} from schema version {v} to {SCHEMA_VERSION}");
    Ok(())
}
