//! The store, every test on SQLite and on PostgreSQL (a throw-away server
//! the tests start): round trip of every entity, migrations, several writers
//! at once (threads and processes), ExpectRevision, and durability under
//! SIGKILL; SQLite's file mode; PostgreSQL URLs and connection errors; the
//! mapping both share (`store/mapping.rs`: stores made by earlier builds,
//! checked integers); and `serve` replicas sharing one PostgreSQL registry
//! (`store/replicas.rs`).

#[path = "store/audit.rs"]
mod audit;
#[path = "store/backend.rs"]
mod backend;
mod common;
#[path = "store/mapping.rs"]
mod mapping;
#[path = "support/postgres.rs"]
mod pg;
#[path = "support/redis.rs"]
mod redis_server;
#[path = "store/replicas.rs"]
mod replicas;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use backend::{Backend, Kind, on_both};
use common::{Env, bin, wait_for};
use maasctl::domain::*;
use maasctl::store::{self, Location, SqliteStore, Store, catalog};

const PATIENCE: Duration = Duration::from_secs(60);

/// Who the tests' own changes are recorded as.
pub fn by() -> Origin {
    Origin::user("tester", Channel::Cli)
}

/// Timestamps come from the clock; compare everything else.
fn without_times(mut r: Registry) -> Registry {
    for w in r.workspaces.values_mut() {
        w.created = 0;
    }
    for k in r.keys.values_mut() {
        k.created = 0;
        k.revoked = k.revoked.map(|_| 1);
    }
    for m in r.models.values_mut() {
        m.created = 0;
        m.updated = 0;
    }
    r
}

/// Changes touching every entity and every field.
fn everything() -> Vec<Change> {
    let mut weighted = ModelSpec {
        name: "DeepSeek-V3".into(),
        cluster: "east".into(),
        model_id: "deepseek-chat".into(),
        endpoints: vec![
            Endpoint::new("https://api.deepseek.com"),
            Endpoint::new("http://10.1.2.3:8000/v1"),
        ],
        policy: Policy::Weighted,
        tags: vec!["chat".into(), "moe".into()],
        fallbacks: Vec::new(),
        // Stored as an integer; NULL is the default (schema 8).
        completion_cap: Some(2048),
    };
    weighted.endpoints[0].api_key = Some(Secret::new("sk-upstream-aaaaaaaaaaaa1111"));
    weighted.endpoints[0].api_key_ref = Some("env:DEEPSEEK_API_KEY".into());
    weighted.endpoints[0].weight = Some(70);
    weighted.endpoints[1].weight = Some(30);
    weighted.endpoints[1].probe = Probe::None;
    weighted.endpoints[1].disabled = true;
    weighted.endpoints[1].ca_file = Some("/etc/maasctl/ca.pem".into());
    let plain = ModelSpec {
        name: "Own-1".into(),
        cluster: Cluster::DEFAULT.into(),
        model_id: "own".into(),
        endpoints: vec![Endpoint::new("http://own.example")],
        policy: Policy::Random,
        tags: vec![],
        // Stored as a list of names (schema 7).
        fallbacks: vec!["DeepSeek-V3".into()],
        completion_cap: None,
    };
    let key = |id: &str, ws: &str, name: &str| Change::CreateKey {
        id: id.into(),
        workspace: ws.into(),
        name: name.into(),
        secret_hash: secret::hash_secret(id),
        secret_hint: "9z9z".into(),
    };
    vec![
        Change::AddMarket(MarketEntry {
            name: "Own-1".into(),
            provider: "Acme".into(),
            tags: vec!["chat".into(), "in-house".into()],
            description: "A fine-tune".into(),
            published: false,
            input_price: None,
            output_price: None,
        }),
        Change::SetPublished {
            name: "Own-1".into(),
            published: true,
        },
        Change::AddCluster(Cluster {
            name: "east".into(),
            entry_address: "https://gw.east.example.com".into(),
        }),
        Change::AddWorkspace {
            name: "acme".into(),
            description: "Acme Corp".into(),
        },
        Change::AddWorkspace {
            name: "beta".into(),
            description: String::new(),
        },
        key("key_00000001", "acme", "backend"),
        key("key_00000002", "acme", "ci"),
        key("key_00000003", "beta", "old"),
        Change::RevokeKey {
            id: "key_00000003".into(),
        },
        Change::CreateModel(weighted),
        Change::CreateModel(plain),
        Change::SetEnabled {
            name: "DeepSeek-V3".into(),
            enabled: true,
        },
        Change::AddRule {
            model: "DeepSeek-V3".into(),
            spec: RuleSpec {
                target: RuleTarget::ApiKey,
                workspace: "acme".into(),
                key_id: Some("key_00000002".into()),
                limit: 60,
                duration_secs: 60,
                unit: Default::default(),
            },
        },
        Change::AddRule {
            model: "DeepSeek-V3".into(),
            spec: RuleSpec {
                target: RuleTarget::Workspace,
                workspace: "acme".into(),
                key_id: None,
                limit: 1000,
                duration_secs: 3600,
                unit: Default::default(),
            },
        },
        Change::AddRule {
            model: "Own-1".into(),
            spec: RuleSpec {
                target: RuleTarget::Workspace,
                workspace: "beta".into(),
                key_id: None,
                limit: 1,
                duration_secs: 1,
                // Schema 4: a token rule round trips on both backends.
                unit: RuleUnit::Tokens,
            },
        },
    ]
}

on_both! {
fn every_entity_round_trips(b) {
    let s = b.open();
    let mut expected = catalog::baseline();
    expected.apply_all(everything(), 0).unwrap();
    let applied = s.apply(everything(), &by()).unwrap();
    assert_eq!(applied.revision, 1);
    assert_eq!(s.revision().unwrap(), 1);
    assert_eq!(
        without_times(s.load().unwrap()),
        without_times(expected.clone())
    );
    drop(s);
    let again = b.open();
    assert_eq!(
        without_times(again.load().unwrap()),
        without_times(expected.clone())
    );

    // A rename whose new name sorts before the old one moves the rule rows.
    let mut spec = expected.models["Own-1"].spec.clone();
    let rename = vec![
        Change::AddMarket(MarketEntry {
            name: "Aardvark".into(),
            provider: "Acme".into(),
            tags: vec![],
            description: String::new(),
            published: true,
            input_price: None,
            output_price: None,
        }),
        Change::UpdateModel {
            name: "Own-1".into(),
            spec: {
                spec.name = "Aardvark".into();
                spec
            },
        },
        Change::UpdateWorkspace {
            name: "beta".into(),
            description: "renamed things".into(),
        },
        Change::DeleteRule {
            model: "DeepSeek-V3".into(),
            id: 2,
        },
    ];
    expected.apply_all(rename.clone(), 0).unwrap();
    again.apply(rename, &by()).unwrap();
    drop(again);
    let third = b.open();
    let loaded = third.load().unwrap();
    assert_eq!(loaded.models["Aardvark"].rules[0].id, 3);
    assert_eq!(without_times(loaded), without_times(expected));
    b.assert_intact();
}
}

on_both! {
fn refused_and_unchanged_batches_leave_the_store_as_it_was(b) {
    let s = b.open();
    s.apply(everything(), &by()).unwrap();
    let before = s.load().unwrap();
    let e = s
        .apply(vec![
            Change::AddWorkspace {
                name: "new".into(),
                description: String::new(),
            },
            Change::DeleteWorkspace {
                name: "acme".into(),
            },
        ], &by())
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("name: workspace 'acme' is used by model DeepSeek-V3 rule #1"),
        "{e}"
    );
    assert_eq!(s.load().unwrap(), before);
    let same = s
        .apply(vec![Change::SetEnabled {
            name: "DeepSeek-V3".into(),
            enabled: true,
        }], &by())
        .unwrap();
    assert_eq!(same.outcomes, vec![Outcome::Unchanged]);
    assert_eq!(same.revision, before.revision);
    assert_eq!(s.revision().unwrap(), before.revision);
}
}

on_both! {
fn gateway_reports_round_trip_without_moving_the_revision(b) {
    let s = b.open();
    let report = GatewayReport {
        id: "host:1:127.0.0.1:8080".into(),
        cluster: Some("east".into()),
        listen: "127.0.0.1:8080".into(),
        applied_revision: 0,
        started_ms: now_ms(),
        heartbeat_ms: now_ms(),
        limiter: LimiterMode::Local,
        endpoints: vec![EndpointHealth {
            model: "DeepSeek-V3".into(),
            index: 0,
            url: "https://api.deepseek.com".into(),
            state: EndpointState::Down,
            reason: Some("connection refused".into()),
            since_ms: Some(1),
            until_ms: None,
            requests_1m: 0,
        }],
        admin: Some("http://127.0.0.1:9090".into()),
    };
    s.put_report(&report).unwrap();
    let mut newer = report.clone();
    newer.applied_revision = 3;
    s.put_report(&newer).unwrap();
    assert_eq!(s.reports().unwrap(), vec![newer]);
    assert_eq!(s.revision().unwrap(), 0);
    s.remove_report(&report.id).unwrap();
    assert!(s.reports().unwrap().is_empty());
}
}

/// A report of gateway `id` with its heartbeat at `heartbeat_ms`.
fn report_at(id: &str, heartbeat_ms: i64) -> GatewayReport {
    GatewayReport {
        id: id.into(),
        cluster: None,
        listen: format!("{id}:8080"),
        applied_revision: 0,
        started_ms: heartbeat_ms - 60_000,
        heartbeat_ms,
        limiter: LimiterMode::Local,
        endpoints: vec![],
        admin: None,
    }
}

on_both! {
/// A report lives `STALE_MS` after its heartbeat (the clock is injected:
/// `reports_at`, and the heartbeats written). Older, it is listed nowhere,
/// and the next report any gateway writes deletes it.
fn expired_gateway_reports_are_neither_listed_nor_kept(b) {
    let s = b.open();
    let ttl = GatewayReport::STALE_MS;
    let now = 1_750_000_000_000;
    let stored = || {
        b.raw_query(
            "SELECT id FROM gateway_reports ORDER BY id",
            "SELECT id FROM gateway_reports ORDER BY id",
        )
    };
    let ids = |reports: Vec<GatewayReport>| -> Vec<String> {
        reports.into_iter().map(|r| r.id).collect()
    };
    // A gateway that died: its last report is one millisecond past the TTL.
    s.put_report(&report_at("dead", now - ttl - 1)).unwrap();
    assert_eq!(ids(s.reports_at(now - 1).unwrap()), ["dead"]);
    assert!(s.reports_at(now).unwrap().is_empty(), "expired, not listed");
    // A gateway whose last heartbeat is exactly the TTL old is still live.
    s.put_report(&report_at("edge", now - ttl)).unwrap();
    assert_eq!(ids(s.reports_at(now).unwrap()), ["edge"]);
    assert_eq!(stored(), "dead\nedge", "nothing was expired at edge's heartbeat");
    // A live gateway's report deletes what expired by its heartbeat.
    s.put_report(&report_at("live", now)).unwrap();
    assert_eq!(stored(), "edge\nlive", "the dead gateway's report is gone");
    assert_eq!(ids(s.reports_at(now).unwrap()), ["edge", "live"]);
    assert_eq!(ids(s.reports_at(now + 1).unwrap()), ["live"]);
    s.put_report(&report_at("live", now + 1)).unwrap();
    assert_eq!(stored(), "live");
    s.remove_report("live").unwrap();

    // `reports()` is `reports_at` the wall clock, and what the CLI shows:
    // a gateway gone a minute ago (its report still stored: no gateway
    // wrote since) is counted nowhere, so its model is `offline`.
    let env = &b.env;
    env.ok(&["market", "add", "M", "--provider", "p"]);
    env.ok(&["market", "publish", "M"]);
    env.ok(&["model", "create", "--name", "M", "--model-id", "m", "--endpoint", "http://m.example"]);
    env.ok(&["model", "enable", "M"]);
    let model_status = || env.json(&["model", "list"])[0]["gateway_status"].clone();
    let local_gateways = || {
        env.json(&["cluster", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "local")
            .unwrap()["gateways"]
            .clone()
    };
    let wall = now_ms();
    let mut gone = report_at("gone", wall - 60_000);
    gone.applied_revision = s.revision().unwrap();
    s.put_report(&gone).unwrap();
    assert_eq!(stored(), "gone");
    assert!(s.reports().unwrap().is_empty());
    assert_eq!(model_status(), "offline");
    assert_eq!(local_gateways(), 0);
    let mut here = report_at("here", now_ms());
    here.applied_revision = gone.applied_revision;
    s.put_report(&here).unwrap();
    assert_eq!(ids(s.reports().unwrap()), ["here"]);
    assert_eq!(stored(), "here", "a minute-old report is deleted");
    assert_eq!(model_status(), "pending", "a live gateway that lists no route for M");
    assert_eq!(local_gateways(), 1);
}
}

/// The TTL is five of the heartbeats a gateway writes by default.
#[test]
fn a_report_lives_five_heartbeats() {
    let heartbeat = maasctl::gateway::GatewayConfig::default().report_interval;
    assert_eq!(heartbeat.as_millis(), GatewayReport::HEARTBEAT_MS as u128);
    assert_eq!(GatewayReport::STALE_MS, 5 * GatewayReport::HEARTBEAT_MS);
}

on_both! {
/// An empty database (SQLite: an empty file, as `touch` leaves it) is a new
/// store: migrated to the current schema and seeded, at revision 0.
fn a_new_store_is_migrated_and_seeded(b) {
    if b.kind == Kind::Sqlite {
        std::fs::write(b.env.db(), b"").unwrap();
    }
    let s = b.open();
    assert_eq!(b.schema_version(), b.current_schema());
    let reg = s.load().unwrap();
    assert_eq!(reg.revision, 0);
    assert_eq!(reg.next_rule_id, 1);
    assert_eq!(reg.market, catalog::baseline().market);
    assert_eq!(reg.clusters, catalog::baseline().clusters);
    assert_eq!(reg.clusters["local"].entry_address, catalog::DEFAULT_ENTRY);
    // Opening again neither migrates nor seeds twice.
    drop(s);
    assert_eq!(b.open().load().unwrap(), reg);
}
}

#[test]
fn a_new_sqlite_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let fresh = Env::new();
    let nested = fresh.data_dir().join("a/b");
    let s2 = SqliteStore::open_dir(&nested).unwrap();
    s2.apply(everything(), &by()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&nested.join("maasctl.db")), 0o600);
    assert_eq!(mode(&nested.join("maasctl.db-wal")), 0o600);
    assert_eq!(mode(&nested), 0o700);
}

on_both! {
fn an_older_schema_is_migrated_keeping_its_data(b) {
    b.open().apply(everything(), &by()).unwrap();
    // Turn the store back into a schema-1 store: without what migrations 2
    // (api_key_ref), 3 (audit trail, history, admin tokens), 4 (rule
    // unit), 5 (endpoint drain), 6 (usage ledger, market prices), 7
    // (model fallbacks), 8 (budgets), 9 (model completion cap) and 10 (probe
    // leases) added.
    const LATER_TABLES: &str =
        "DROP TABLE audit_entities; DROP TABLE audit; DROP TABLE revisions; DROP TABLE admin_tokens; DROP TABLE usage_ledger; DROP TABLE budgets; DROP TABLE probe_leases;";
    const PRICES: &str =
        "ALTER TABLE market DROP COLUMN input_price; ALTER TABLE market DROP COLUMN output_price;";
    b.raw_sql(
        &format!("ALTER TABLE endpoints DROP COLUMN api_key_ref; ALTER TABLE endpoints DROP COLUMN drain; ALTER TABLE rules DROP COLUMN unit; ALTER TABLE models DROP COLUMN fallbacks; ALTER TABLE models DROP COLUMN completion_cap; {PRICES} {LATER_TABLES} PRAGMA user_version = 1;"),
        &format!("ALTER TABLE endpoints DROP COLUMN api_key_ref; ALTER TABLE endpoints DROP COLUMN drain; ALTER TABLE rules DROP COLUMN unit; ALTER TABLE models DROP COLUMN fallbacks; ALTER TABLE models DROP COLUMN completion_cap; {PRICES} {LATER_TABLES} DROP FUNCTION maasctl_audit_append_only(); UPDATE maasctl_schema SET version = 1"),
    );
    let s = b.open();
    assert_eq!(b.schema_version(), b.current_schema());
    // History starts at the migration: changes from then on are audited.
    assert!(s.audit(&AuditQuery::default()).unwrap().is_empty());
    s.apply(vec![Change::SetEnabled { name: "DeepSeek-V3".into(), enabled: false }], &by())
        .unwrap();
    assert_eq!(s.audit(&AuditQuery::default()).unwrap().len(), 1);
    let m = &s.load().unwrap().models["DeepSeek-V3"];
    assert_eq!(
        m.spec.endpoints[0].api_key.as_ref().unwrap().expose(),
        "sk-upstream-aaaaaaaaaaaa1111"
    );
    assert_eq!(m.spec.endpoints[0].api_key_ref, None);
    assert_eq!(m.rules.len(), 2);
    // Rules written before schema 4 count requests.
    assert!(m.rules.iter().all(|r| r.spec.unit == RuleUnit::Requests));
    // Models stored before schema 7 have no fallbacks.
    assert!(s.load().unwrap().models["Own-1"].spec.fallbacks.is_empty());
    // Models stored before schema 8 have no completion cap (the default).
    assert_eq!(m.spec.completion_cap, None);
}
}

on_both! {
fn a_newer_schema_is_refused(b) {
    drop(b.open());
    b.set_schema_version(99);
    let e = b.try_open().err().expect("refused").to_string();
    assert!(
        e.contains("has schema version 99, newer than this maasctl knows"),
        "{e}"
    );
    let line = b.env.fails(&["model", "list"]);
    assert!(line.starts_with("storage: the "), "{line}");
    assert!(
        line.contains("schema version 99, newer than this maasctl knows") && line.ends_with("upgrade maasctl"),
        "{line}"
    );
}
}

#[test]
fn store_urls() {
    let dir = std::path::Path::new("/data");
    assert_eq!(
        Location::parse(None, dir).unwrap(),
        Location::Sqlite("/data/maasctl.db".into())
    );
    assert_eq!(
        Location::parse(Some("sqlite:///tmp/x.db"), dir).unwrap(),
        Location::Sqlite("/tmp/x.db".into())
    );
    assert_eq!(
        Location::parse(Some("sqlite:rel.db"), dir).unwrap(),
        Location::Sqlite("rel.db".into())
    );
    for url in [
        "postgres://app:s3cret@db.example:6432/registry",
        "postgresql://app@db.example:6432/registry?password=s3cret",
    ] {
        let Location::Postgres(t) = Location::parse(Some(url), dir).unwrap() else {
            panic!("{url} is a PostgreSQL location")
        };
        assert_eq!(t.shown(), "postgres://app@db.example:6432/registry");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
    let e = Location::parse(Some("postgres://app:s3cret@db:port/x"), dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "storage: store URL 'postgres://app:***@db:port/x' is not a valid PostgreSQL URL"
        ),
        "{e}"
    );
    let e = Location::parse(Some("mysql://db"), dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store URL 'mysql://db' is not supported; use sqlite:PATH"),
        "{e}"
    );

    let env = Env::new();
    let elsewhere = env.data_dir().join("other.db");
    let url = format!("sqlite:{}", elsewhere.display());
    env.ok(&["--store", &url, "workspace", "create", "acme"]);
    assert!(elsewhere.exists() && !env.db().exists());
    let via_env = env
        .cmd()
        .env("MAASCTL_STORE", &url)
        .args(["workspace", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&via_env.stdout).contains("acme"));
    // PostgreSQL: the CLI names the server and database it could not use,
    // never the password.
    let db = pg::db();
    let missing = db
        .url()
        .replace("postgres@", "postgres:hunter2@")
        .replace(&db.name, "no_such_db");
    let with_password = db.url().replace("postgres@", "postgres:hunter2@");
    let opened = store::open(Some(&with_password), env.data_dir()).unwrap();
    assert_eq!(
        opened.describe(),
        db.url(),
        "describe() leaves the password out"
    );
    let line = env.fails(&["--store", &missing, "model", "list"]);
    let shown = missing.replace(":hunter2", "");
    assert_eq!(
        line,
        format!(
            "storage: cannot connect to PostgreSQL {shown}: FATAL: database \"no_such_db\" does not exist"
        )
    );
    let line = env.fails(&["--store", "mysql://db", "model", "list"]);
    assert!(
        line.starts_with("storage: store URL 'mysql://db' is not supported"),
        "{line}"
    );
}

on_both! {
/// Threads with their own connections write, report and read at once: no
/// "database is locked" (or lost update) reaches any caller.
fn concurrent_connections_in_one_process(b) {
    drop(b.open());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = b.open();
            std::thread::spawn(move || {
                for i in 0..25 {
                    s.apply(vec![Change::AddWorkspace {
                        name: format!("t{t}-{i}"),
                        description: String::new(),
                    }], &by())
                    .unwrap();
                    let mut r = GatewayReport {
                        id: format!("gw{t}"),
                        cluster: None,
                        listen: String::new(),
                        applied_revision: s.revision().unwrap(),
                        started_ms: 0,
                        heartbeat_ms: now_ms(),
                        limiter: LimiterMode::Local,
                        endpoints: vec![],
                        admin: None,
                    };
                    s.put_report(&r).unwrap();
                    r.heartbeat_ms += 1;
                    s.put_report(&r).unwrap();
                    s.load().unwrap();
                    s.reports().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer thread failed");
    }
    let reg = b.open().load().unwrap();
    assert_eq!(reg.workspaces.len(), 100);
    assert_eq!(reg.revision, 100);
}
}

on_both! {
/// Many `maasctl` processes write the same (new) store at once: all succeed,
/// every change is there, and the new store was seeded exactly once.
fn concurrent_cli_processes(b) {
    let env = &b.env;
    for round in 0..3 {
        let children: Vec<_> = (0..12)
            .map(|i| {
                let mut c = env.cmd();
                match i % 3 {
                    0 => c.args(["workspace", "create", &format!("ws-{round}-{i}")]),
                    1 => c.args([
                        "market",
                        "add",
                        &format!("m-{round}-{i}"),
                        "--provider",
                        "p",
                    ]),
                    _ => c.args(["model", "list"]),
                };
                (
                    i,
                    c.stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        for (i, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round} process {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let reg = b.open().load().unwrap();
    for round in 0..3 {
        for i in (0..12).filter(|i| i % 3 == 0) {
            assert!(reg.workspaces.contains_key(&format!("ws-{round}-{i}")));
        }
        for i in (0..12).filter(|i| i % 3 == 1) {
            assert!(reg.market.contains_key(&format!("m-{round}-{i}")));
        }
    }
    assert_eq!(reg.revision, 24);
    let mut market = catalog::baseline().market;
    market.retain(|name, _| !reg.market.contains_key(name));
    assert!(market.is_empty(), "catalog entries missing: {market:?}");
    assert_eq!(reg.market.len(), catalog::baseline().market.len() + 12);
}
}

on_both! {
/// Many processes add a rule to the same model at once: each one's
/// read-modify-write of the model sees the previous one's (no lost update,
/// no id handed out twice).
fn concurrent_read_modify_writes_lose_nothing(b) {
    let env = &b.env;
    env.ok(&["workspace", "create", "acme"]);
    env.ok(&[
        "model", "create", "--name", "DeepSeek-V3", "--model-id", "deepseek-chat",
        "--endpoint", "https://api.deepseek.com",
    ]);
    let before = b.open().revision().unwrap();
    let children: Vec<_> = (1..=12)
        .map(|i| {
            env.cmd()
                .args(["rule", "add", "--model", "DeepSeek-V3", "--workspace", "acme"])
                .args(["--limit", &i.to_string(), "--duration", "60"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let reg = b.open().load().unwrap();
    let rules = &reg.models["DeepSeek-V3"].rules;
    let limits: BTreeSet<u32> = rules.iter().map(|r| r.spec.limit).collect();
    let ids: BTreeSet<u64> = rules.iter().map(|r| r.id).collect();
    assert_eq!(limits, (1..=12).collect(), "every process's rule is there");
    assert_eq!(ids, (1..=12).collect(), "ids handed out once each");
    assert_eq!(reg.revision, before + 12);
    assert_eq!(reg.next_rule_id, 13);
}
}

on_both! {
/// `ExpectRevision` first in a batch: applied when the registry is still
/// there, refused (changing nothing) when anyone changed it since, and of
/// two writers that loaded the same revision exactly one wins.
fn expect_revision_refuses_stale_batches(b) {
    let s = b.open();
    let rev = s.revision().unwrap();
    let ws = |name: &str| Change::AddWorkspace {
        name: name.into(),
        description: String::new(),
    };
    let applied = s
        .apply(vec![Change::ExpectRevision { revision: rev }, ws("first")], &by())
        .unwrap();
    assert_eq!(applied.revision, rev + 1);
    let e = s
        .apply(vec![Change::ExpectRevision { revision: rev }, ws("stale")], &by())
        .unwrap_err();
    match &e {
        store::StoreError::Domain(d) => assert!(d.is_stale_revision(), "{e}"),
        other => panic!("not a domain refusal: {other}"),
    }
    assert!(e.to_string().contains(&format!("revision {rev} is now {}", rev + 1)), "{e}");
    let reg = s.load().unwrap();
    assert!(!reg.workspaces.contains_key("stale"));
    assert_eq!(reg.revision, rev + 1);

    // Writers with their own connections race from the same revision.
    let now = reg.revision;
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let (s, start) = (b.open(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                s.apply(vec![
                    Change::ExpectRevision { revision: now },
                    Change::AddWorkspace {
                        name: format!("racer-{i}"),
                        description: String::new(),
                    },
                ], &by())
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, store::StoreError::Domain(d) if d.is_stale_revision()), "{r}");
    }
    let reg = s.load().unwrap();
    assert_eq!(reg.revision, now + 1);
    assert_eq!(reg.workspaces.keys().filter(|n| n.starts_with("racer-")).count(), 1);
}
}

on_both! {
/// A writer (a shell loop running `maasctl workspace create`, printing
/// `done NAME` after each success) is SIGKILLed with its whole process group
/// at a random moment, 20 times. Every change reported done must be there,
/// every revision must have its audit entry and journal and none more (the
/// change and its record commit together), and the store must pass its
/// integrity check.
fn durability_under_sigkill(b) {
    let mut reported = BTreeSet::new();
    for round in 0..20 {
        let script = format!(
            r#"i=0; while :; do i=$((i+1)); "$BIN" workspace create "r{round}-$i" >/dev/null || exit 1; echo "done r{round}-$i"; done"#
        );
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("BIN", bin())
            .env("MAASCTL_DATA_DIR", b.env.data_dir())
            .env("MAASCTL_STORE", b.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so one kill takes the shell and the
            // maasctl it is running.
            .process_group(0)
            .spawn()
            .expect("spawn writer");
        let pgid = child.id() as i32;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let a random number of writes complete, then kill at a random
        // point of the next one: somewhere within one write's typical
        // duration, measured on the writes seen (the delay picks the moment;
        // nothing waits on it).
        let want = fastrand::usize(1..4);
        let mut seen = 0;
        let started = std::time::Instant::now();
        wait_for("writes to complete", PATIENCE, || {
            while let Ok(line) = rx.try_recv() {
                reported.insert(line.strip_prefix("done ").expect("done line").to_string());
                seen += 1;
            }
            (seen >= want).then_some(())
        });
        let per_write = started.elapsed() / seen as u32;
        std::thread::sleep(per_write.mul_f64(fastrand::f64()));
        // SAFETY: plain syscall on a process group we created.
        assert_eq!(unsafe { libc::killpg(pgid, libc::SIGKILL) }, 0);
        child.wait().unwrap();
        reader.join().unwrap();
        // Everything printed before the kill was reported done.
        for line in rx.try_iter() {
            reported.insert(line.strip_prefix("done ").expect("done line").to_string());
        }
        b.assert_intact();
        audit::assert_recorded_with_revisions(&*b.open());
        let reg = b.open().load().unwrap();
        let missing: Vec<_> = reported
            .iter()
            .filter(|n| !reg.workspaces.contains_key(*n))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: reported done but missing: {missing:?}"
        );
    }
    assert!(reported.len() >= 20);
}
}

/// The PostgreSQL store runs its connection on a thread of its own, so a
/// caller on a tokio worker thread (no `spawn_blocking`) cannot make it
/// panic, and neither can dropping it there.
#[tokio::test(flavor = "current_thread")]
async fn postgres_store_calls_work_from_async_code() {
    let db = pg::db();
    let s = store::PostgresStore::connect(&db.url()).unwrap();
    s.apply(
        vec![Change::AddWorkspace {
            name: "acme".into(),
            description: String::new(),
        }],
        &by(),
    )
    .unwrap();
    assert_eq!(s.revision().unwrap(), 1);
    assert!(s.load().unwrap().workspaces.contains_key("acme"));
    drop(s);
    let again = tokio::task::spawn_blocking(move || store::PostgresStore::connect(&db.url()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revision().unwrap(), 1);
}

on_both! {
/// Shared probes (docs/gateway.md, "Probes"): one holder wins a free
/// lease, the other reads it with the holder's result; once it expires the
/// other can take it, keeping the last result.
fn a_probe_lease_has_one_holder_per_interval_and_shares_its_result(b) {
    use maasctl::domain::ProbeResult;
    use maasctl::store::mapping::{claim_probe, put_probe_result};
    let (s1, s2) = (b.open(), b.open());
    let l = s1.probe_lease("k", claim_probe("k", "a", 1_000, 1_200)).unwrap().unwrap();
    assert_eq!((l.holder.as_str(), l.expires_ms, l.last), ("a", 1_200, None));
    let l = s2.probe_lease("k", claim_probe("k", "b", 1_100, 1_300)).unwrap().unwrap();
    assert_eq!((l.holder.as_str(), l.expires_ms), ("a", 1_200), "held: b does not get it");
    let failed = ProbeResult { ok: false, reason: "probe GET /models answered HTTP 503".into(), at_ms: 1_050 };
    s1.probe_lease("k", put_probe_result("k", &failed)).unwrap();
    let l = s2.probe_lease("k", claim_probe("k", "b", 1_150, 1_350)).unwrap().unwrap();
    assert_eq!((l.holder.as_str(), l.last.as_ref()), ("a", Some(&failed)));
    let l = s2.probe_lease("k", claim_probe("k", "b", 1_200, 1_400)).unwrap().unwrap();
    assert_eq!((l.holder.as_str(), l.expires_ms, l.last), ("b", 1_400, Some(failed)), "expired: b takes it");
    assert!(s1.probe_lease("other", vec![]).unwrap().is_none());
}
}
