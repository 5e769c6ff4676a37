-- The schema as maasctl made it before the backends shared one mapping
-- (commit c3b9015): migrations 1 and 2, verbatim (indentation included:
-- SQLite keeps the text). A store made by that build must open unchanged.

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
    
    ALTER TABLE endpoints ADD COLUMN api_key_ref TEXT;
    PRAGMA user_version = 2;
