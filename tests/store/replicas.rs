//! Scale-out on PostgreSQL: `maasctl serve` replicas (separate processes, on
//! ports the OS picked) sharing one registry. A change made with the CLI or
//! through one replica's admin API is served by every replica; each replica reports in; with Redis too, a
//! rule's limit holds exactly across replicas; a replica keeps serving
//! through a PostgreSQL restart and picks up changes once it is back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Env, wait_for, wait_until};
use crate::pg;
use crate::redis_server::RedisServer;
use maasctl::demo::upstream::{MockConfig, MockUpstream};

const PATIENCE: Duration = Duration::from_secs(30);

/// The admin API token of the replicas that run one.
const ADMIN_TOKEN: &str = "maasadm_test-token-for-the-replica-tests";

/// A `maasctl serve` process; killed on drop.
struct Serve {
    child: Child,
    /// Kept open: the process may still write to it.
    _stdout: BufReader<ChildStdout>,
    addr: String,
    log: PathBuf,
}

impl Serve {
    /// Start on a port the OS picks; return once it printed its address.
    fn start(env: &Env, name: &str) -> Self {
        Self::start_with(env, name, &[])
    }

    /// [`start`](Self::start) with more `serve` flags.
    fn start_with(env: &Env, name: &str, extra: &[&str]) -> Self {
        let log = env.data_dir().join(format!("serve-{name}.log"));
        let mut child = env
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            // No admin API unless asked for (its default port is fixed).
            .args(if extra.contains(&"--admin-listen") {
                &[][..]
            } else {
                &["--admin-listen", "off"][..]
            })
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn maasctl serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "serve {name} did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Self {
            child,
            _stdout: stdout,
            addr,
            log,
        }
    }

    /// What it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop cleanly (SIGTERM: it removes its report) and wait.
    fn stop(mut self) {
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "serve exited with {status}: {}",
            self.log()
        );
    }

    fn get(&self, path: &str, key: &str) -> (u16, String) {
        http(&self.addr, "GET", path, key, "")
    }

    fn chat(&self, key: &str, model: &str) -> (u16, String) {
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
        });
        http(
            &self.addr,
            "POST",
            "/v1/chat/completions",
            key,
            &body.to_string(),
        )
    }

    /// The model names `GET /v1/models` lists.
    fn models(&self, key: &str) -> Vec<String> {
        let (status, body) = self.get("/v1/models", key);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http(addr: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A mock upstream on a runtime of its own (the test itself is synchronous).
struct Upstream {
    mock: MockUpstream,
    _rt: tokio::runtime::Runtime,
}

impl Upstream {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mock = rt
            .block_on(MockUpstream::start(MockConfig::default()))
            .expect("mock upstream");
        Self { mock, _rt: rt }
    }
}

/// Workspace `acme` with a key, and model `DeepSeek-V3` (disabled) on
/// `upstream`. Returns the key's secret.
fn populate(env: &Env, upstream: &Upstream) -> String {
    env.ok(&["workspace", "create", "acme"]);
    let key = env.json(&["key", "create", "--workspace", "acme", "--name", "bot"]);
    env.ok(&[
        "model",
        "create",
        "--name",
        "DeepSeek-V3",
        "--model-id",
        "deepseek-chat",
        "--endpoint",
        &upstream.mock.base_url(),
    ]);
    key["secret"]
        .as_str()
        .expect("a new key's secret")
        .to_string()
}

/// How many gateways serving cluster `local` reported in lately (`cluster list`).
fn gateways(env: &Env) -> u64 {
    let clusters = env.json(&["cluster", "list"]);
    clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "local")
        .and_then(|c| c["gateways"].as_u64())
        .unwrap()
}

fn gateway_status(env: &Env, model: &str) -> String {
    let models = env.json(&["model", "list"]);
    models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .and_then(|m| m["gateway_status"].as_str())
        .unwrap()
        .to_string()
}

/// Poll every replica until `ok` holds for each; how long each took.
fn until_all(what: &str, replicas: &[&Serve], ok: impl Fn(&Serve) -> bool) -> Vec<Duration> {
    let start = Instant::now();
    replicas
        .iter()
        .map(|r| {
            wait_until(&format!("{what} on {}", r.addr), PATIENCE, || ok(r));
            start.elapsed()
        })
        .collect()
}

#[test]
fn two_replicas_serve_one_registry_and_both_report_in() {
    let db = pg::db();
    let env = Env::new()
        .var("MAASCTL_STORE", &db.url())
        .var("MAASCTL_ADMIN_TOKEN", ADMIN_TOKEN);
    let upstream = Upstream::start();
    let key = populate(&env, &upstream);
    // Replica a also runs the admin API (on a port the OS picks).
    let a = Serve::start_with(&env, "a", &["--admin-listen", "127.0.0.1:0"]);
    let b = Serve::start(&env, "b");
    assert_ne!(a.addr, b.addr);
    wait_until("both replicas report in", PATIENCE, || gateways(&env) == 2);
    let store = maasctl::store::open(Some(&db.url()), env.data_dir()).unwrap();
    let mut listens: Vec<String> = store
        .reports()
        .unwrap()
        .into_iter()
        .map(|r| r.listen)
        .collect();
    listens.sort();
    let mut want = vec![a.addr.clone(), b.addr.clone()];
    want.sort();
    assert_eq!(listens, want, "one report from each replica");
    assert_eq!(gateway_status(&env, "DeepSeek-V3"), "off");
    for r in [&a, &b] {
        assert_eq!(r.chat(&key, "DeepSeek-V3").0, 404);
    }

    // Enabled with the CLI: both replicas serve it.
    env.ok(&["model", "enable", "DeepSeek-V3"]);
    let took = until_all("the enabled model is listed", &[&a, &b], |r| {
        r.models(&key).contains(&"DeepSeek-V3".to_string())
    });
    eprintln!("enable served by both replicas after {took:?}");
    for r in [&a, &b] {
        let (status, body) = r.chat(&key, "DeepSeek-V3");
        assert_eq!(status, 200, "{}: {body}", r.addr);
    }
    assert!(upstream.mock.hits() >= 2);
    // Both applied it and say so: the model list derives `serving` from
    // both replicas' reports.
    wait_until("gateway status serving", PATIENCE, || {
        gateway_status(&env, "DeepSeek-V3") == "serving"
    });
    let rev = store.revision().unwrap();
    wait_until("both reports carry the revision", PATIENCE, || {
        let reports = store.reports().unwrap();
        reports.len() == 2 && reports.iter().all(|r| r.applied_revision == rev)
    });

    // A change made through one replica's admin API reaches both.
    let admin = store
        .reports()
        .unwrap()
        .into_iter()
        .find(|r| r.listen == a.addr)
        .and_then(|r| r.admin)
        .expect("replica a reports its admin API");
    let admin = admin.trim_start_matches("http://");
    let (status, body) = http(
        admin,
        "POST",
        "/admin/v1/apply",
        ADMIN_TOKEN,
        r#"[{"op":"set-enabled","name":"DeepSeek-V3","enabled":false}]"#,
    );
    assert_eq!(status, 200, "{body}");
    let took = until_all("the disabled model is refused", &[&a, &b], |r| {
        r.chat(&key, "DeepSeek-V3").0 == 404
    });
    eprintln!("disable through replica a's admin API in force on both after {took:?}");
    assert_eq!(gateway_status(&env, "DeepSeek-V3"), "off");

    // Another change (a key revoked) reaches both.
    let id = env.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["key", "revoke", &id]);
    let took = until_all("the revoked key is refused", &[&a, &b], |r| {
        r.chat(&key, "DeepSeek-V3").0 == 401
    });
    eprintln!("revocation in force on both replicas after {took:?}");

    // A replica that stops removes its report; the other still reports.
    b.stop();
    wait_until("one replica left", PATIENCE, || gateways(&env) == 1);
    assert_eq!(store.reports().unwrap()[0].listen, a.addr);
}

/// Two replicas sharing the registry in PostgreSQL and the rate-limit
/// windows in Redis: 200 concurrent requests spread over both, a rule of 50
/// per minute on the key: exactly 50 are admitted.
#[test]
fn replicas_sharing_postgresql_and_redis_hold_a_limit_exactly() {
    let db = pg::db();
    let redis = RedisServer::start();
    let env = Env::new().var("MAASCTL_STORE", &db.url());
    let upstream = Upstream::start();
    let key = populate(&env, &upstream);
    let id = env.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["model", "enable", "DeepSeek-V3"]);
    env.ok(&[
        "rule",
        "add",
        "--model",
        "DeepSeek-V3",
        "--workspace",
        "acme",
        "--key",
        &id,
        "--limit",
        "50",
        "--duration",
        "60",
    ]);
    let url = redis.url();
    let args = ["--redis-url", url.as_str(), "--redis-timeout", "2s"];
    let a = Serve::start_with(&env, "a", &args);
    let b = Serve::start_with(&env, "b", &args);
    let store = maasctl::store::open(Some(&db.url()), env.data_dir()).unwrap();
    let rev = store.revision().unwrap();
    wait_until(
        "both replicas report the rule applied, limits shared",
        PATIENCE,
        || {
            let reports = store.reports().unwrap();
            reports.len() == 2
                && reports.iter().all(|r| {
                    r.applied_revision == rev && r.limiter == maasctl::domain::LimiterMode::Shared
                })
        },
    );

    let addrs = [a.addr.clone(), b.addr.clone()];
    let start = std::sync::Arc::new(std::sync::Barrier::new(20));
    let clients: Vec<_> = (0..20)
        .map(|t| {
            let (addrs, key, start) = (addrs.clone(), key.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..10)
                    .map(|i| {
                        let body = r#"{"model":"DeepSeek-V3","messages":[]}"#;
                        let addr = &addrs[(t + i) % 2];
                        http(addr, "POST", "/v1/chat/completions", &key, body).0
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((count(200), count(429)), (50, 150), "{statuses:?}");
    assert_eq!(
        upstream.mock.hits(),
        50,
        "only admitted requests reach the upstream"
    );
}

#[test]
fn a_replica_keeps_serving_through_a_postgresql_restart() {
    let server = pg::PgServer::start();
    let db = server.create_db();
    let env = Env::new().var("MAASCTL_STORE", &db.url());
    let upstream = Upstream::start();
    let key = populate(&env, &upstream);
    env.ok(&["model", "enable", "DeepSeek-V3"]);
    let gw = Serve::start(&env, "gw");
    assert_eq!(gw.chat(&key, "DeepSeek-V3").0, 200);

    server.stop();
    // The gateway notices, says so, and keeps serving its last snapshot.
    wait_until("the gateway logs the store failure", PATIENCE, || {
        gw.log()
            .contains("cannot read the store's revision (still serving revision")
    });
    for _ in 0..20 {
        let (status, body) = gw.chat(&key, "DeepSeek-V3");
        assert_eq!(status, 200, "while PostgreSQL is down: {body}");
    }
    // The CLI names what it could not reach (never a password).
    let line = env.fails(&["model", "list"]);
    let shown = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        server.port(),
        db.name
    );
    assert!(
        line.starts_with(&format!("storage: cannot connect to PostgreSQL {shown}: ")),
        "{line}"
    );

    server.restart();
    // Back: a change made now is picked up.
    env.ok(&[
        "model",
        "create",
        "--name",
        "Qwen2.5-72B-Instruct",
        "--model-id",
        "qwen",
        "--endpoint",
        &upstream.mock.base_url(),
    ]);
    env.ok(&["model", "enable", "Qwen2.5-72B-Instruct"]);
    wait_until("the new model is served", PATIENCE, || {
        gw.chat(&key, "Qwen2.5-72B-Instruct").0 == 200
    });
    wait_for("the gateway reports in again", PATIENCE, || {
        (gateway_status(&env, "Qwen2.5-72B-Instruct") == "serving").then_some(())
    });
    let log = gw.log();
    assert!(log.contains("reconnected to PostgreSQL"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
