//! SQLite backend: one file in the data directory, WAL, every change in one
//! `BEGIN IMMEDIATE` transaction, a busy timeout so a CLI and a running
//! console can write the same file at once. What is stored, and how, is the
//! shared [`mapping`]; this file opens the file, drives migrations and runs
//! the mapping's statements and queries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ToSql, TransactionBehavior, params_from_iter};

use super::migrations::MIGRATIONS;
use super::sql::{Query, Rows, Statement, Value, to_sqlite};
use super::{Applied, Store, StoreError, batch, mapping};
use crate::domain::history::Journal;
use crate::domain::token::{AdminTokenRecord, TokenChange};
use crate::domain::usage::{Retention, UsageRow};
use crate::domain::*;

/// The file name inside the data directory.
pub const DB_FILE: &str = "maasctl.db";

pub use super::catalog::DEFAULT_ENTRY;

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Open (creating if needed) `maasctl.db` in `data_dir`.
    pub fn open_dir(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&data_dir.join(DB_FILE))
    }

    /// Open (creating if needed) the database file at `path`, migrate it to
    /// the current schema and, when new, load the default catalog and the
    /// default cluster.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            create_private_dir(dir).map_err(|e| {
                backend(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        create_private_file(path)
            .map_err(|e| backend(format!("cannot create data file {}: {e}", path.display())))?;
        let conn = Connection::open(path)
            .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets readers (gateways polling the revision, consoles) run beside
        // a writer; FULL makes every commit durable before it is reported.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(backend(format!(
                "{} could not switch to WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        // Room for every statement the mapping generates.
        conn.set_prepared_statement_cache_capacity(64);
        let mut conn = conn;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// SQLite's own integrity check (`ok` when intact).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .lock()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Create the data file with mode 0600 before SQLite opens it (SQLite gives
/// its -wal and -shm files the same mode).
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub use super::migrations::SCHEMA_VERSION;

/// Bring the file to [`SCHEMA_VERSION`] in one `IMMEDIATE` transaction (two
/// processes opening a new file at once migrate and seed it once), seeding a
/// new file only after every migration ran, so the seed is written with the
/// schema this build knows. Refuses a file from a newer maasctl.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // The common case, an up-to-date file, needs no write lock.
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(backend(format!(
            "the data file has schema version {version}, newer than this maasctl knows ({SCHEMA_VERSION}); upgrade maasctl"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let version = usize::try_from(version)
        .map_err(|_| backend(format!("the data file has schema version {version}")))?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(&to_sqlite(m.portable))
            .and_then(|()| tx.execute_batch(m.sqlite))
            .map_err(|e| backend(format!("schema migration {}: {e}", i + 1)))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    if version == 0 {
        execute(&tx, &mapping::seed()?)?;
    }
    tx.commit()?;
    Ok(())
}

// ---- the shared mapping on SQLite ----------------------------------------

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Int(v) => ToSqlOutput::Owned(SqlValue::Integer(*v)),
            // SQLite has no booleans: 0 and 1, as rusqlite always stored them.
            Value::Bool(v) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*v))),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

/// Run `statements` in order (inside the caller's transaction).
fn execute(conn: &Connection, statements: &[Statement]) -> Result<(), StoreError> {
    for s in statements {
        conn.prepare_cached(&to_sqlite(&s.sql))?
            .execute(params_from_iter(&s.params))?;
    }
    Ok(())
}

/// Run one query, every column of every row as a [`Value`].
fn fetch(conn: &Connection, q: &Query) -> Result<Rows, StoreError> {
    let mut st = conn.prepare_cached(&to_sqlite(&q.sql))?;
    let mut rows = st.query(params_from_iter(&q.params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut values = Vec::with_capacity(q.columns.len());
        for (i, column) in q.columns.iter().enumerate() {
            values.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
                    backend(format!(
                        "corrupt row in table {}, column {column}: text is not UTF-8",
                        q.table.name
                    ))
                })?),
                other => {
                    return Err(backend(format!(
                        "corrupt row in table {}, column {column}: unexpected {}",
                        q.table.name,
                        other.data_type()
                    )));
                }
            });
        }
        out.push(values);
    }
    q.rows(out)
}

/// Read the whole registry (inside the caller's transaction).
fn load(conn: &Connection) -> Result<Registry, StoreError> {
    let rows = mapping::load_queries()
        .iter()
        .map(|q| fetch(conn, q))
        .collect::<Result<Vec<_>, _>>()?;
    mapping::registry(&rows)
}

impl SqliteStore {
    /// Run `statements` in one `IMMEDIATE` transaction.
    fn write(&self, statements: &[Statement]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        execute(&tx, statements)?;
        tx.commit()?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Registry, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let reg = load(&tx)?;
        tx.commit()?;
        Ok(reg)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        mapping::revision(&fetch(&self.conn.lock(), &mapping::revision_query())?)
    }

    fn apply(&self, changes: Vec<Change>, origin: &Origin) -> Result<Applied, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let planned = batch::plan(load(&tx)?, changes, origin, now_ms())?;
        // Nothing changed: nothing is written, the revision stays.
        if !planned.statements.is_empty() {
            execute(&tx, &planned.statements)?;
            tx.commit()?;
        }
        Ok(planned.applied)
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        mapping::audit_entries(&fetch(&self.conn.lock(), &mapping::audit_query(query))?)
    }

    fn journals(&self, after: u64) -> Result<Vec<(u64, Journal)>, StoreError> {
        mapping::journals(&fetch(&self.conn.lock(), &mapping::journals_query(after))?)
    }

    fn tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        mapping::tokens(&fetch(
            &self.conn.lock(),
            &Query::all(&mapping::ADMIN_TOKENS),
        )?)
    }

    fn change_token(
        &self,
        change: TokenChange,
        origin: &Origin,
    ) -> Result<AdminTokenRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tokens = mapping::tokens(&fetch(&tx, &Query::all(&mapping::ADMIN_TOKENS))?)?;
        let (written, statements) = batch::plan_token(&tokens, &change, origin, now_ms())?;
        execute(&tx, &statements)?;
        tx.commit()?;
        Ok(written)
    }

    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError> {
        self.write(&mapping::put_report(report)?)
    }

    fn remove_report(&self, id: &str) -> Result<(), StoreError> {
        execute(&self.conn.lock(), &[mapping::remove_report(id)])
    }

    fn reports_at(&self, now_ms: i64) -> Result<Vec<GatewayReport>, StoreError> {
        mapping::reports(&fetch(&self.conn.lock(), &mapping::reports_query(now_ms))?)
    }

    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        self.write(&mapping::add_usage(rows)?)
    }

    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        mapping::usage_rows(&fetch(
            &self.conn.lock(),
            &mapping::usage_query(since_ms, until_ms),
        )?)
    }

    fn usage_totals(&self, since_ms: i64, split_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        mapping::usage_totals(&fetch(
            &self.conn.lock(),
            &mapping::usage_totals_query(since_ms, split_ms),
        )?)
    }

    fn usage_summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
        open_end: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        mapping::usage_rows(&fetch(
            &self.conn.lock(),
            &mapping::usage_summary_query(since_ms, until_ms, step_ms, open_end),
        )?)
    }

    fn compact_usage(&self, now_ms: i64, keep: &Retention) -> Result<(), StoreError> {
        self.write(&mapping::compact_usage(now_ms, keep))
    }

    fn probe_lease(
        &self,
        key: &str,
        write: Vec<Statement>,
    ) -> Result<Option<ProbeLease>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        execute(&tx, &write)?;
        let rows = fetch(&tx, &mapping::probe_lease_query(key))?;
        tx.commit()?;
        mapping::probe_lease(&rows)
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}
