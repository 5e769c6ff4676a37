//! The schema's history, shared by both backends: one migration per schema
//! version, in the portable DDL of [`super::sql`] (PostgreSQL spelling:
//! `BIGINT`, `BOOLEAN`, `TEXT`; the SQLite backend writes `INTEGER` for the
//! first two, exactly the types its files have always had).
//!
//! Append only: a migration that shipped has run on databases out there and
//! must never change. Each backend records how many ran (SQLite: `PRAGMA
//! user_version`; PostgreSQL: the `maasctl_schema` table) and runs the rest
//! in one transaction when it opens a store. See [`super::mapping`] for how
//! to add a table or a column.

/// Schema migrations, in order; the schema version is how many ran.
pub const MIGRATIONS: &[&str] = &[
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
