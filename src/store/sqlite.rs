//! SQLite backend: one file in the data directory, WAL, every change in one
//! `BEGIN IMMEDIATE` transaction, a busy timeout so a CLI and a running
//! console can write the same file at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::{Applied, Store, StoreError, catalog};
use crate::domain::*;

/// The file name inside the data directory.
pub const DB_FILE: &str = "maasctl.db";

pub use super::catalog::DEFAULT_ENTRY;

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Schema migrations, in order; `PRAGMA user_version` is how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the registry.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('revision', 0), ('next_rule_id', 1);
    CREATE TABLE market (
        name        TEXT PRIMARY KEY,
        provider    TEXT NOT NULL,
        tags        TEXT NOT NULL,
        description TEXT NOT NULL,
        published   INTEGER NOT NULL
    );
    CREATE TABLE clusters (
        name          TEXT PRIMARY KEY,
        entry_address TEXT NOT NULL
    );
    CREATE TABLE workspaces (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        created     INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        workspace   TEXT NOT NULL REFERENCES workspaces(name),
        name        TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        secret_hint TEXT NOT NULL,
        created     INTEGER NOT NULL,
        revoked     INTEGER,
        UNIQUE (workspace, name)
    );
    CREATE TABLE models (
        name     TEXT PRIMARY KEY,
        cluster  TEXT NOT NULL REFERENCES clusters(name),
        model_id TEXT NOT NULL,
        policy   TEXT NOT NULL,
        tags     TEXT NOT NULL,
        enabled  INTEGER NOT NULL,
        created  INTEGER NOT NULL,
        updated  INTEGER NOT NULL,
        rev      INTEGER NOT NULL
    );
    CREATE TABLE endpoints (
        model    TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        url      TEXT NOT NULL,
        api_key  TEXT,
        weight   INTEGER,
        probe    TEXT NOT NULL,
        disabled INTEGER NOT NULL,
        ca_file  TEXT,
        PRIMARY KEY (model, position)
    );
    CREATE TABLE rules (
        id            INTEGER PRIMARY KEY,
        model         TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
        position      INTEGER NOT NULL,
        target        TEXT NOT NULL,
        workspace     TEXT NOT NULL REFERENCES workspaces(name),
        key_id        TEXT REFERENCES api_keys(id),
        "limit"       INTEGER NOT NULL,
        duration_secs INTEGER NOT NULL
    );
    CREATE INDEX rules_by_model ON rules (model, position);
    CREATE TABLE gateway_reports (
        id           TEXT PRIMARY KEY,
        heartbeat_ms INTEGER NOT NULL,
        body         TEXT NOT NULL
    );
    "#,
    // 2: where an upstream key came from (env:VAR / file:PATH), for export.
    r#"
    ALTER TABLE endpoints ADD COLUMN api_key_ref TEXT;
    "#,
];

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

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| backend(format!("schema migration {}: {e}", i + 1)))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    if version == 0 {
        seed(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// A new store: the default catalog and the default cluster.
fn seed(tx: &Transaction) -> Result<(), StoreError> {
    let reg = catalog::baseline();
    let touched = Touched {
        market: reg.market.keys().cloned().collect(),
        clusters: reg.clusters.keys().cloned().collect(),
        ..Default::default()
    };
    persist(tx, &reg, &touched)
}

fn meta(tx: &Connection, key: &str) -> Result<u64, StoreError> {
    let v: i64 = tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?;
    Ok(v as u64)
}

fn json_list(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| backend(format!("corrupt tag list {s:?}: {e}")))
}

fn parse_col<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(backend)
}

/// Read the whole registry (inside the caller's transaction).
fn load(conn: &Connection) -> Result<Registry, StoreError> {
    let mut reg = Registry {
        revision: meta(conn, "revision")?,
        next_rule_id: meta(conn, "next_rule_id")?,
        ..Default::default()
    };
    {
        let mut st =
            conn.prepare("SELECT name, provider, tags, description, published FROM market")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        for row in rows {
            let (name, provider, tags, description, published) = row?;
            reg.market.insert(
                name.clone(),
                MarketEntry {
                    name,
                    provider,
                    tags: json_list(&tags)?,
                    description,
                    published,
                },
            );
        }
    }
    {
        let mut st = conn.prepare("SELECT name, entry_address FROM clusters")?;
        let rows = st.query_map([], |r| {
            Ok(Cluster {
                name: r.get(0)?,
                entry_address: r.get(1)?,
            })
        })?;
        for c in rows {
            let c = c?;
            reg.clusters.insert(c.name.clone(), c);
        }
    }
    {
        let mut st = conn.prepare("SELECT name, description, created FROM workspaces")?;
        let rows = st.query_map([], |r| {
            Ok(Workspace {
                name: r.get(0)?,
                description: r.get(1)?,
                created: r.get(2)?,
            })
        })?;
        for w in rows {
            let w = w?;
            reg.workspaces.insert(w.name.clone(), w);
        }
    }
    {
        let mut st = conn.prepare(
            "SELECT id, workspace, name, secret_hash, secret_hint, created, revoked FROM api_keys",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ApiKey {
                id: r.get(0)?,
                workspace: r.get(1)?,
                name: r.get(2)?,
                secret_hash: r.get(3)?,
                secret_hint: r.get(4)?,
                created: r.get(5)?,
                revoked: r.get(6)?,
            })
        })?;
        for k in rows {
            let k = k?;
            reg.keys.insert(k.id.clone(), k);
        }
    }
    {
        let mut st = conn.prepare(
            "SELECT name, cluster, model_id, policy, tags, enabled, created, updated, rev FROM models",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })?;
        for row in rows {
            let (name, cluster, model_id, policy, tags, enabled, created, updated, rev) = row?;
            reg.models.insert(
                name.clone(),
                Model {
                    spec: ModelSpec {
                        name,
                        cluster,
                        model_id,
                        endpoints: Vec::new(),
                        policy: parse_col(&policy)?,
                        tags: json_list(&tags)?,
                    },
                    enabled,
                    rules: Vec::new(),
                    created,
                    updated,
                    rev: rev as u64,
                },
            );
        }
    }
    {
        let mut st = conn.prepare(
            "SELECT model, url, api_key, weight, probe, disabled, ca_file, api_key_ref FROM endpoints ORDER BY model, position",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<u32>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        for row in rows {
            let (model, url, api_key, weight, probe, disabled, ca_file, api_key_ref) = row?;
            let m = reg
                .models
                .get_mut(&model)
                .ok_or_else(|| backend(format!("endpoint of unknown model '{model}'")))?;
            m.spec.endpoints.push(Endpoint {
                url,
                api_key: api_key.map(Secret::new),
                api_key_ref,
                weight,
                probe: parse_col(&probe)?,
                disabled,
                ca_file,
            });
        }
    }
    {
        let mut st = conn.prepare(
            r#"SELECT id, model, target, workspace, key_id, "limit", duration_secs FROM rules ORDER BY model, position"#,
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, u32>(6)?,
            ))
        })?;
        for row in rows {
            let (id, model, target, workspace, key_id, limit, duration_secs) = row?;
            let m = reg
                .models
                .get_mut(&model)
                .ok_or_else(|| backend(format!("rule of unknown model '{model}'")))?;
            m.rules.push(Rule {
                id: id as u64,
                spec: RuleSpec {
                    target: parse_col(&target)?,
                    workspace,
                    key_id,
                    limit,
                    duration_secs,
                },
            });
        }
    }
    Ok(reg)
}

/// Write what `touched` names: upsert what is in `reg`, delete what is not.
/// Order respects the foreign keys: parents are upserted before models and
/// deleted after them.
fn persist(tx: &Transaction, reg: &Registry, touched: &Touched) -> Result<(), StoreError> {
    for name in &touched.market {
        if let Some(e) = reg.market.get(name) {
            tx.execute(
                "INSERT INTO market (name, provider, tags, description, published) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET provider = ?2, tags = ?3, description = ?4, published = ?5",
                params![e.name, e.provider, serde_json::to_string(&e.tags).map_err(backend)?, e.description, e.published],
            )?;
        }
    }
    for name in &touched.clusters {
        if let Some(c) = reg.clusters.get(name) {
            tx.execute(
                "INSERT INTO clusters (name, entry_address) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET entry_address = ?2",
                params![c.name, c.entry_address],
            )?;
        }
    }
    for name in &touched.workspaces {
        if let Some(w) = reg.workspaces.get(name) {
            tx.execute(
                "INSERT INTO workspaces (name, description, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET description = ?2",
                params![w.name, w.description, w.created],
            )?;
        }
    }
    for id in &touched.keys {
        if let Some(k) = reg.keys.get(id) {
            tx.execute(
                "INSERT INTO api_keys (id, workspace, name, secret_hash, secret_hint, created, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET name = ?3, revoked = ?7",
                params![k.id, k.workspace, k.name, k.secret_hash, k.secret_hint, k.created, k.revoked],
            )?;
        }
    }
    // Models in two passes: first clear every touched model's rows, then
    // write them back. A rename moves rule rows (keyed by their registry-wide
    // id) from the old name to the new one, so they must be gone before any
    // are re-inserted, whatever order the names sort in.
    for name in &touched.models {
        tx.execute("DELETE FROM endpoints WHERE model = ?1", [name])?;
        tx.execute("DELETE FROM rules WHERE model = ?1", [name])?;
        if !reg.models.contains_key(name) {
            tx.execute("DELETE FROM models WHERE name = ?1", [name])?;
        }
    }
    for m in touched.models.iter().filter_map(|n| reg.models.get(n)) {
        write_model(tx, m)?;
    }
    for id in &touched.keys {
        if !reg.keys.contains_key(id) {
            tx.execute("DELETE FROM api_keys WHERE id = ?1", [id])?;
        }
    }
    for name in &touched.workspaces {
        if !reg.workspaces.contains_key(name) {
            tx.execute("DELETE FROM workspaces WHERE name = ?1", [name])?;
        }
    }
    for name in &touched.clusters {
        if !reg.clusters.contains_key(name) {
            tx.execute("DELETE FROM clusters WHERE name = ?1", [name])?;
        }
    }
    for name in &touched.market {
        if !reg.market.contains_key(name) {
            tx.execute("DELETE FROM market WHERE name = ?1", [name])?;
        }
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'revision'",
        [reg.revision as i64],
    )?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'next_rule_id'",
        [reg.next_rule_id.max(1) as i64],
    )?;
    Ok(())
}

/// Upsert one model with its endpoints and rules (whose rows the caller cleared).
fn write_model(tx: &Transaction, m: &Model) -> Result<(), StoreError> {
    let s = &m.spec;
    tx.execute(
        "INSERT INTO models (name, cluster, model_id, policy, tags, enabled, created, updated, rev)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(name) DO UPDATE SET cluster = ?2, model_id = ?3, policy = ?4, tags = ?5,
             enabled = ?6, updated = ?8, rev = ?9",
        params![
            s.name,
            s.cluster,
            s.model_id,
            s.policy.as_str(),
            serde_json::to_string(&s.tags).map_err(backend)?,
            m.enabled,
            m.created,
            m.updated,
            m.rev as i64
        ],
    )?;
    for (i, e) in s.endpoints.iter().enumerate() {
        tx.execute(
            "INSERT INTO endpoints (model, position, url, api_key, api_key_ref, weight, probe, disabled, ca_file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.name,
                i as i64,
                e.url,
                e.api_key.as_ref().map(Secret::expose),
                e.api_key_ref,
                e.weight,
                e.probe.as_str(),
                e.disabled,
                e.ca_file
            ],
        )?;
    }
    for (i, r) in m.rules.iter().enumerate() {
        tx.execute(
            r#"INSERT INTO rules (id, model, position, target, workspace, key_id, "limit", duration_secs)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"#,
            params![
                r.id as i64,
                s.name,
                i as i64,
                r.spec.target.as_str(),
                r.spec.workspace,
                r.spec.key_id,
                r.spec.limit,
                r.spec.duration_secs
            ],
        )?;
    }
    Ok(())
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
        meta(&self.conn.lock(), "revision")
    }

    fn apply(&self, changes: Vec<Change>) -> Result<Applied, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut reg = load(&tx)?;
        let (outcomes, touched) = reg.apply_all(changes, now_secs())?;
        if touched.is_empty() {
            // Nothing changed: leave the revision where it is.
            return Ok(Applied {
                revision: reg.revision,
                outcomes,
            });
        }
        persist(&tx, &reg, &touched)?;
        tx.commit()?;
        Ok(Applied {
            revision: reg.revision,
            outcomes,
        })
    }

    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError> {
        let body = serde_json::to_string(report).map_err(backend)?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO gateway_reports (id, heartbeat_ms, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET heartbeat_ms = ?2, body = ?3",
            params![report.id, report.heartbeat_ms, body],
        )?;
        // Forget gateways gone for more than an hour.
        tx.execute(
            "DELETE FROM gateway_reports WHERE heartbeat_ms < ?1",
            [report.heartbeat_ms - 3_600_000],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn remove_report(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .lock()
            .execute("DELETE FROM gateway_reports WHERE id = ?1", [id])?;
        Ok(())
    }

    fn reports(&self) -> Result<Vec<GatewayReport>, StoreError> {
        let conn = self.conn.lock();
        let mut st = conn.prepare("SELECT body FROM gateway_reports ORDER BY id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            let body = body?;
            match serde_json::from_str(&body) {
                Ok(r) => out.push(r),
                // A report from another maasctl version: skip, never fail the caller.
                Err(e) => tracing::warn!("ignoring unreadable gateway report: {e}"),
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}
