//! The schema's history, shared by both backends: one migration per schema
//! version, in the portable DDL of [`super::sql`] (PostgreSQL spelling:
//! `BIGINT`, `BOOLEAN`, `TEXT`; the SQLite backend writes `INTEGER` for the
//! first two, exactly the types its files have always had).
//!
//! A guard only one dialect can spell (the audit trail's append-only
//! triggers) goes in the migration's `sqlite` / `postgres` part, run right
//! after its portable part in the same transaction.
//!
//! Append only: a migration that shipped has run on databases out there and
//! must never change. Each backend records how many ran (SQLite: `PRAGMA
//! user_version`; PostgreSQL: the `maasctl_schema` table) and runs the rest
//! in one transaction when it opens a store. See [`super::mapping`] for how
//! to add a table or a column.

/// One schema version's DDL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// In the portable spelling, run by both backends.
    pub portable: &'static str,
    /// Run by the SQLite backend only, after `portable`.
    pub sqlite: &'static str,
    /// Run by the PostgreSQL backend only, after `portable`.
    pub postgres: &'static str,
}

impl Migration {
    /// A migration both backends run as it is.
    pub const fn portable(sql: &'static str) -> Self {
        Self {
            portable: sql,
            sqlite: "",
            postgres: "",
        }
    }
}

/// The message both backends' guards give when something tries to change
/// or remove an audit entry.
pub const APPEND_ONLY: &str = "the audit trail is append-only";

/// Schema migrations, in order; the schema version is how many ran.
pub const MIGRATIONS: &[Migration] = &[
    // 1: the registry.
    Migration::portable(
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
    ),
    // 2: where an upstream key came from (env:VAR / file:PATH), for export.
    Migration::portable(
        r#"
    ALTER TABLE endpoints ADD COLUMN api_key_ref TEXT;
    "#,
    ),
    // 3: operations: the audit trail (append-only, with the entities each
    // entry changed, for filtering), the history's journals (what each
    // revision did to each entity, for diff and rollback; the newest ones
    // kept), named admin tokens with a role.
    Migration {
        portable: r#"
    CREATE TABLE audit (
        id         BIGINT PRIMARY KEY,
        at_ms      BIGINT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor      TEXT NOT NULL,
        channel    TEXT NOT NULL,
        revision   BIGINT UNIQUE,
        summary    TEXT NOT NULL,
        changes    TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit (at_ms);
    CREATE TABLE audit_entities (
        entity   TEXT NOT NULL,
        audit_id BIGINT NOT NULL REFERENCES audit(id),
        PRIMARY KEY (entity, audit_id)
    );
    CREATE TABLE revisions (
        revision BIGINT PRIMARY KEY,
        journal  TEXT NOT NULL
    );
    CREATE TABLE admin_tokens (
        name        TEXT PRIMARY KEY,
        role        TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        secret_hint TEXT NOT NULL,
        created     BIGINT NOT NULL,
        revoked     BIGINT
    );
    "#,
        sqlite: r#"
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_entities_no_update BEFORE UPDATE ON audit_entities
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_entities_no_delete BEFORE DELETE ON audit_entities
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
        postgres: r#"
    CREATE FUNCTION maasctl_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        RAISE EXCEPTION 'the audit trail is append-only';
    END
    $f$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION maasctl_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION maasctl_audit_append_only();
    CREATE TRIGGER audit_entities_no_change BEFORE UPDATE OR DELETE ON audit_entities
        FOR EACH ROW EXECUTE FUNCTION maasctl_audit_append_only();
    CREATE TRIGGER audit_entities_no_truncate BEFORE TRUNCATE ON audit_entities
        FOR EACH STATEMENT EXECUTE FUNCTION maasctl_audit_append_only();
    "#,
    },
    // 4: what a rate-limit rule counts (docs/rate-limits.md, "Token rules");
    // rules written before it count requests.
    Migration::portable(
        r#"
    ALTER TABLE rules ADD COLUMN unit TEXT NOT NULL DEFAULT 'requests';
    "#,
    ),
    // 5: an endpoint can be drained (docs/gateway.md, "Drain"); existing
    // endpoints are not.
    Migration::portable(
        r#"
    ALTER TABLE endpoints ADD COLUMN drain BOOLEAN NOT NULL DEFAULT FALSE;
    "#,
    ),
    // 6: the usage ledger (docs/usage.md): per (span, bucket, key, model),
    // added to by every gateway; minute rows age into hour and day rows.
    // Marketplace list prices (USD per 1M tokens, as decimal text) for its cost.
    Migration::portable(
        r#"
    ALTER TABLE market ADD COLUMN input_price TEXT;
    ALTER TABLE market ADD COLUMN output_price TEXT;
    CREATE TABLE usage_ledger (
        span              TEXT NOT NULL,
        bucket_ms         BIGINT NOT NULL,
        key_id            TEXT NOT NULL,
        workspace         TEXT NOT NULL,
        model             TEXT NOT NULL,
        requests          BIGINT NOT NULL,
        ok                BIGINT NOT NULL,
        throttled         BIGINT NOT NULL,
        errors            BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nanos        BIGINT NOT NULL,
        PRIMARY KEY (span, bucket_ms, key_id, model)
    );
    CREATE INDEX usage_ledger_by_time ON usage_ledger (bucket_ms);
    "#,
    ),
    // 7: a model's fallback models, in order, as a JSON list of names
    // (docs/gateway.md, "Fallback models"); existing models have none.
    Migration::portable(
        r#"
    ALTER TABLE models ADD COLUMN fallbacks TEXT NOT NULL DEFAULT '[]';
    "#,
    ),
    // 8: budgets (docs/usage.md, "Budgets"): a token or cost allowance per
    // workspace or key per UTC day or month; amount in tokens or
    // nano-dollars. The next id is meta 'next_budget_id' (1 when absent).
    Migration::portable(
        r#"
    CREATE TABLE budgets (
        id      TEXT PRIMARY KEY,
        target  TEXT NOT NULL,
        subject TEXT NOT NULL,
        unit    TEXT NOT NULL,
        amount  BIGINT NOT NULL,
        period  TEXT NOT NULL
    );
    "#,
    ),
    // 9: a model's default completion cap for token rules
    // (docs/rate-limits.md, "Token rules"); NULL (existing models) is the
    // default, 4096.
    Migration::portable(
        r#"
    ALTER TABLE models ADD COLUMN completion_cap BIGINT;
    "#,
    ),
    // 10: shared probes (docs/gateway.md, "Probes"): per endpoint (URL,
    // probe and key fingerprint hashed), which replica probes it until
    // when, and the last result every replica applies.
    Migration::portable(
        r#"
    CREATE TABLE probe_leases (
        key        TEXT NOT NULL PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        result     TEXT,
        reason     TEXT,
        at_ms      BIGINT
    );
    "#,
    ),
    // 11: ledger rollups (docs/usage.md, "Retention"): every delta is now
    // written at the minute, hour and day spans at once. Backfill: until
    // now an hour row held only minutes aged out (deleted) and a day row
    // only hours aged out, so each delta was in exactly one row; adding
    // the minutes to their hours, then the hours to their days, makes
    // every hour row the sum of its minutes and every day row the sum of
    // its hours.
    Migration::portable(
        r#"
    INSERT INTO usage_ledger (span, bucket_ms, key_id, workspace, model, requests, ok, throttled, errors, prompt_tokens, completion_tokens, cost_nanos)
    SELECT 'hour', bucket_ms - (bucket_ms % 3600000), key_id, MIN(workspace), model,
           SUM(requests), SUM(ok), SUM(throttled), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nanos)
    FROM usage_ledger WHERE span = 'minute'
    GROUP BY bucket_ms - (bucket_ms % 3600000), key_id, model
    ON CONFLICT (span, bucket_ms, key_id, model) DO UPDATE SET
        requests = usage_ledger.requests + excluded.requests, ok = usage_ledger.ok + excluded.ok, throttled = usage_ledger.throttled + excluded.throttled, errors = usage_ledger.errors + excluded.errors, prompt_tokens = usage_ledger.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_ledger.completion_tokens + excluded.completion_tokens, cost_nanos = usage_ledger.cost_nanos + excluded.cost_nanos;
    INSERT INTO usage_ledger (span, bucket_ms, key_id, workspace, model, requests, ok, throttled, errors, prompt_tokens, completion_tokens, cost_nanos)
    SELECT 'day', bucket_ms - (bucket_ms % 86400000), key_id, MIN(workspace), model,
           SUM(requests), SUM(ok), SUM(throttled), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nanos)
    FROM usage_ledger WHERE span = 'hour'
    GROUP BY bucket_ms - (bucket_ms % 86400000), key_id, model
    ON CONFLICT (span, bucket_ms, key_id, model) DO UPDATE SET
        requests = usage_ledger.requests + excluded.requests, ok = usage_ledger.ok + excluded.ok, throttled = usage_ledger.throttled + excluded.throttled, errors = usage_ledger.errors + excluded.errors, prompt_tokens = usage_ledger.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_ledger.completion_tokens + excluded.completion_tokens, cost_nanos = usage_ledger.cost_nanos + excluded.cost_nanos;
    "#,
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
