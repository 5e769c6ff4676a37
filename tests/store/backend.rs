//! The store a test runs on — SQLite or PostgreSQL — and what tests need to
//! reach around the `Store` trait (raw schema edits, integrity), so each
//! store test is written once and run on both.

use std::sync::Arc;

use crate::common::Env;
use crate::pg::{self, PgDb};
use maasctl::store::{self, PostgresStore, SqliteStore, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A new, empty store of one kind, and the CLI bound to it.
pub struct Backend {
    pub kind: Kind,
    /// `maasctl` with this store (`MAASCTL_STORE` for PostgreSQL; the data
    /// directory's default file for SQLite).
    pub env: Env,
    pg: Option<PgDb>,
}

impl Backend {
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => Self {
                kind,
                env: Env::new(),
                pg: None,
            },
            Kind::Postgres => {
                let db = pg::db();
                Self {
                    kind,
                    env: Env::new().var("MAASCTL_STORE", &db.url()),
                    pg: Some(db),
                }
            }
        }
    }

    /// The store URL (`--store` / `MAASCTL_STORE`).
    pub fn url(&self) -> String {
        match &self.pg {
            Some(db) => db.url(),
            None => format!("sqlite:{}", self.env.db().display()),
        }
    }

    pub fn try_open(&self) -> Result<Arc<dyn Store>, StoreError> {
        store::open(Some(&self.url()), self.env.data_dir())
    }

    #[track_caller]
    pub fn open(&self) -> Arc<dyn Store> {
        self.try_open().expect("open store")
    }

    pub fn schema_version(&self) -> i64 {
        match &self.pg {
            Some(db) => PostgresStore::connect(&db.url())
                .and_then(|s| s.schema_version())
                .expect("schema version"),
            None => SqliteStore::open(&self.env.db())
                .and_then(|s| s.schema_version())
                .expect("schema version"),
        }
    }

    /// The schema version this build writes, for this backend.
    pub fn current_schema(&self) -> i64 {
        match self.kind {
            Kind::Sqlite => store::sqlite::SCHEMA_VERSION,
            Kind::Postgres => store::postgres::SCHEMA_VERSION,
        }
    }

    /// Edit the store behind maasctl's back: `sqlite` or `postgres` SQL.
    pub fn raw_sql(&self, sqlite: &str, postgres: &str) {
        match &self.pg {
            Some(db) => {
                db.sql(postgres);
            }
            None => rusqlite::Connection::open(self.env.db())
                .and_then(|c| c.execute_batch(sqlite))
                .expect("raw SQL on the SQLite file"),
        }
    }

    /// Run `sql` (both dialects' common text) behind maasctl's back; the
    /// database's refusal as an error.
    pub fn try_raw_sql(&self, sql: &str) -> Result<(), String> {
        match &self.pg {
            Some(db) => db.try_sql(sql).map(drop),
            None => rusqlite::Connection::open(self.env.db())
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
        }
    }

    /// Read the store behind maasctl's back: one line per row, columns
    /// joined by `|` (as `psql -A -t` prints them).
    pub fn raw_query(&self, sqlite: &str, postgres: &str) -> String {
        match &self.pg {
            Some(db) => db.sql(postgres),
            None => {
                let c = rusqlite::Connection::open(self.env.db()).expect("open the SQLite file");
                let mut st = c.prepare(sqlite).expect("raw query on the SQLite file");
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| {
                                Ok(match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Null => String::new(),
                                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                                    rusqlite::types::ValueRef::Text(t)
                                    | rusqlite::types::ValueRef::Blob(t) => {
                                        String::from_utf8_lossy(t).into_owned()
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                            .map(|cols| cols.join("|"))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .expect("raw query on the SQLite file");
                rows.join("\n")
            }
        }
    }

    /// Set the schema version as a newer (or older) maasctl would have left it.
    pub fn set_schema_version(&self, v: i64) {
        self.raw_sql(
            &format!("PRAGMA user_version = {v};"),
            &format!("UPDATE maasctl_schema SET version = {v}"),
        );
    }

    /// The store's own consistency check: SQLite's integrity check; on
    /// PostgreSQL (which keeps its own pages safe) every row a child table
    /// points at exists and the meta rows are there.
    #[track_caller]
    pub fn assert_intact(&self) {
        match &self.pg {
            Some(db) => {
                let orphans = db.sql(
                    "SELECT (SELECT count(*) FROM endpoints e WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.name = e.model))
                          + (SELECT count(*) FROM rules r WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.name = r.model))
                          + (SELECT count(*) FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.name = k.workspace))",
                );
                assert_eq!(orphans, "0", "rows pointing at nothing");
                assert_eq!(db.sql("SELECT count(*) FROM meta"), "2");
            }
            None => {
                let s = SqliteStore::open(&self.env.db()).expect("open");
                assert_eq!(s.integrity_check().unwrap(), "ok");
            }
        }
    }
}

/// Write a store test once, run it on both backends: `on_both! { fn name(b)
/// { … } }` makes the tests `name::sqlite` and `name::postgres`.
macro_rules! on_both {
    ($(#[doc = $doc:literal])* fn $name:ident($b:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($b: &Backend) $body

            #[test]
            fn sqlite() {
                run(&Backend::new(Kind::Sqlite))
            }

            #[test]
            fn postgres() {
                run(&Backend::new(Kind::Postgres))
            }
        }
    };
}
pub(crate) use on_both;
