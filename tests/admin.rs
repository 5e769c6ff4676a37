//! The admin API over real HTTP on loopback: auth, every route (happy path
//! and an error each), refused changes with their field errors, key
//! creation, secrets that never leave the server, upstream keys kept or
//! replaced by a remote console's edit, the stats stream, the remote client
//! through an outage — and, with the real binary, `maasctl serve`'s admin
//! listener and `maasctl rule explain` against it.

#[allow(dead_code)]
#[path = "gateway/support.rs"]
mod support;

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maasctl::admin::{AdminHandle, AdminListener, AdminToken, TokenSource};
use maasctl::client::api::AdminApi;
use maasctl::client::events::EventReader;
use maasctl::client::remote::RemoteClient;
use maasctl::client::{Client, ClientError, GatewayState};
use maasctl::domain::{Change, Endpoint, ErrorKind, Policy, RuleSpec, RuleTarget, Secret};
use maasctl::gateway::StatsSnapshot;
use maasctl::logging::LogRing;
use maasctl::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{DEADLINE, Gw, TestStore, fast_config, mock, wait_for};

/// The upstream key stored for model `M`: it must never appear in an answer.
const RAW_KEY: &str = "sk-upstream-RAW-never-leaves-9f1c";
const TOKEN: &str = "maasadm_test-token-0123456789";

/// A gateway over a test store with its admin API on a free port.
struct Admin {
    ts: TestStore,
    gw: Gw,
    admin: Option<AdminHandle>,
    addr: SocketAddr,
    url: String,
    http: reqwest::Client,
    logs: LogRing,
    upstream: maasctl::demo::upstream::MockUpstream,
    /// Key `ci` of workspace `acme`: (id, secret).
    key: (String, String),
}

impl Admin {
    /// Model `M` (enabled, one endpoint with [`RAW_KEY`]) and key `acme/ci`.
    async fn start() -> Self {
        let ts = TestStore::new();
        let upstream = mock("admin").await;
        let key = ts.key("acme", "ci");
        let mut ep = Endpoint::new(upstream.base_url());
        ep.api_key = Some(Secret::new(RAW_KEY));
        ts.model("M", "m-upstream", vec![ep], Policy::RoundRobin);
        let listener = bind("127.0.0.1:0".parse().unwrap());
        let (addr, url) = (listener.local_addr(), listener.url());
        let gw = Gw::start(
            &ts,
            maasctl::gateway::GatewayConfig {
                admin: Some(url.clone()),
                ..fast_config()
            },
        )
        .await;
        let logs = LogRing::new(500);
        let admin = serve(listener, &ts, &gw, &logs);
        gw.wait_applied(&ts).await;
        Self {
            ts,
            gw,
            admin: Some(admin),
            addr,
            url,
            http: support::client(),
            logs,
            upstream,
            key,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
    }

    /// Status and JSON body of a call with the token.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        answer(r.send().await.expect("admin API answers")).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    fn api(&self) -> AdminApi {
        AdminApi::new(&self.url, TOKEN).unwrap()
    }

    /// Admit `n` chat requests of key `ci` on `M`.
    async fn traffic(&self, n: usize) {
        for _ in 0..n {
            let res = self.gw.chat(&self.key.1, "M").await;
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    }
}

fn bind(addr: SocketAddr) -> AdminListener {
    AdminListener::bind(addr, AdminToken::new(TOKEN, TokenSource::Env)).expect("admin binds")
}

fn serve(listener: AdminListener, ts: &TestStore, gw: &Gw, logs: &LogRing) -> AdminHandle {
    let store: Arc<dyn Store> = ts.store.clone();
    listener
        .serve(store, gw.handle().view(), logs.clone())
        .expect("admin serves")
}

async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, v)
}

/// A log line as the server's tracing would push it.
fn line(message: &str) -> maasctl::logging::LogLine {
    maasctl::logging::LogLine {
        at_ms: maasctl::domain::now_ms(),
        level: tracing::Level::WARN,
        target: "test".into(),
        message: message.into(),
    }
}

/// Wait until the registry a client follows holds workspace `name`.
async fn until_workspace(
    reg: &mut tokio::sync::watch::Receiver<Arc<maasctl::client::RegistryView>>,
    name: &str,
    what: &str,
) {
    tokio::time::timeout(DEADLINE, async {
        while !reg
            .borrow_and_update()
            .registry
            .workspaces
            .contains_key(name)
        {
            reg.changed().await.unwrap();
        }
    })
    .await
    .expect(what);
}

/// Who the tests' own store changes are recorded as.
fn tester() -> maasctl::domain::Origin {
    maasctl::domain::Origin::user("tester", maasctl::domain::Channel::Cli)
}

/// `(kind, first field)` of an error body.
fn error_of(v: &Value) -> (&str, &str) {
    (
        v["error"]["kind"].as_str().unwrap_or_default(),
        v["error"]["errors"][0]["field"]
            .as_str()
            .unwrap_or_default(),
    )
}

mod auth_and_routes {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_is_required_and_compared_whole() {
        let a = Admin::start().await;
        let (s, v) = answer(
            a.http
                .get(format!("{}/admin/v1/healthz", a.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (200, Some("ok")),
            "healthz is public"
        );

        for (auth, problem) in [
            (None, "missing"),
            (Some("Bearer wrong"), "not valid"),
            (
                Some(&format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
                "not valid",
            ),
            (Some(&format!("Bearer {TOKEN}x")), "not valid"),
            (Some(&format!("Basic {TOKEN}")), "not valid"),
        ] {
            for path in ["/admin/v1/info", "/admin/v1/registry", "/admin/v1/nope"] {
                let mut r = a.http.get(format!("{}{path}", a.url));
                if let Some(h) = auth {
                    r = r.header("authorization", h);
                }
                let res = r.send().await.unwrap();
                assert_eq!(
                    res.headers()["www-authenticate"],
                    "Bearer realm=\"maasctl-admin\""
                );
                let (s, v) = answer(res).await;
                assert_eq!(s, 401, "{path} with {auth:?}: {v}");
                assert_eq!(error_of(&v), ("unauthorized", "Authorization"));
                assert!(
                    v["error"]["message"].as_str().unwrap().contains(problem),
                    "{v}"
                );
            }
        }
        let (s, _) = a.get("/admin/v1/info").await;
        assert_eq!(s, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_answers_and_names_bad_input() {
        let a = Admin::start().await;
        let gw_addr = a.gw.handle().local_addr().to_string();

        // Unknown route, wrong method.
        let (s, v) = a.get("/admin/v1/nope").await;
        assert_eq!((s, error_of(&v)), (404, ("no-route", "path")), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GET /admin/v1/registry")
        );
        let (s, v) = a.call(Method::POST, "/admin/v1/stats", None).await;
        assert_eq!(
            (s, error_of(&v)),
            (405, ("method-not-allowed", "method")),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("use GET"),
            "{v}"
        );

        // info
        let (s, v) = a.get("/admin/v1/info").await;
        assert_eq!(s, 200);
        assert_eq!(v["gateway"]["listen"], gw_addr.as_str());
        assert_eq!(v["admin"], a.url.as_str());

        // revision
        let (s, v) = a.get("/admin/v1/revision").await;
        assert_eq!((s, v["revision"].as_u64()), (200, Some(a.ts.revision())));

        // registry: ETag, then 304 while unchanged, 200 once it moves.
        let res = a
            .req(Method::GET, "/admin/v1/registry")
            .send()
            .await
            .unwrap();
        let tag = res.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(tag, format!("\"{}\"", a.ts.revision()));
        let (s, v) = answer(res).await;
        assert_eq!(s, 200);
        assert!(v["models"]["M"].is_object(), "{v}");
        let res = a
            .req(Method::GET, "/admin/v1/registry")
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/apply",
                Some(json!([{"op": "add-workspace", "name": "ops", "description": ""}])),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["revision"].as_u64(), Some(a.ts.revision()));
        let res = a
            .req(Method::GET, "/admin/v1/registry")
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(answer(res).await.1["workspaces"]["ops"].is_object());

        // apply: bad JSON, unknown operation (named by its place in the
        // batch), nothing to do.
        for (body, field, expect) in [
            ("[{", "body", "expected a JSON array of changes"),
            (r#"[{"op":"fly"}]"#, "body[0]", "unknown variant `fly`"),
            (
                r#"{"op":"add-workspace"}"#,
                "body",
                "expected a JSON array of changes",
            ),
            ("[]", "body", "no changes given"),
        ] {
            let res = a
                .req(Method::POST, "/admin/v1/apply")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let (s, v) = answer(res).await;
            assert_eq!(
                (s, error_of(&v)),
                (400, ("bad-request", field)),
                "{body}: {v}"
            );
            assert!(
                v["error"]["message"].as_str().unwrap().contains(expect),
                "{v}"
            );
        }

        // keys: a bad body, an unknown workspace.
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(json!({"workspace": "acme"})),
            )
            .await;
        assert_eq!((s, error_of(&v)), (400, ("bad-request", "body")), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("name"),
            "{v}"
        );
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(json!({"workspace": "nowhere", "name": "x"})),
            )
            .await;
        assert_eq!((s, error_of(&v)), (404, ("not-found", "workspace")), "{v}");

        // reports: this gateway's, naming this admin API.
        let url = a.url.clone();
        wait_for("the gateway report with the admin address", || {
            let a = &a;
            let url = url.clone();
            async move {
                let (s, v) = a.get("/admin/v1/reports").await;
                assert_eq!(s, 200);
                v.as_array()?
                    .iter()
                    .any(|r| r["admin"] == url.as_str())
                    .then_some(())
            }
        })
        .await;

        // stats
        a.traffic(1).await;
        a.gw.wait_stats("one request counted", |s| s.gateway.requests >= 1)
            .await;
        let (s, v) = a.get("/admin/v1/stats").await;
        assert_eq!(s, 200);
        assert_eq!(v["listen"], gw_addr.as_str());
        let snap: StatsSnapshot = serde_json::from_value(v).unwrap();
        assert!(snap.models["M"].requests >= 1);

        // logs: the ring's lines, numbered; `after` pages; a bad cursor.
        // (No tracing subscriber here: lines are pushed; the binary test
        // sees real ones.)
        for i in 1..=3 {
            a.logs.push(line(&format!("line {i}")));
        }
        let (s, v) = a.get("/admin/v1/logs").await;
        assert_eq!(s, 200);
        let lines = v["lines"].as_array().unwrap();
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["line 1", "line 2", "line 3"]);
        assert_eq!(v["newest"].as_u64(), Some(3));
        let (_, v) = a.get("/admin/v1/logs?after=2").await;
        assert_eq!(v["lines"][0]["seq"].as_u64(), Some(3));
        assert_eq!(v["lines"][0]["level"], "WARN");
        let (_, v) = a.get("/admin/v1/logs?after=3").await;
        assert_eq!(v["lines"], json!([]));
        let (s, v) = a.get("/admin/v1/logs?after=soon").await;
        assert_eq!(
            (s, error_of(&v)),
            (400, ("bad-request", "query.after")),
            "{v}"
        );

        // explain: missing and unknown parts are named.
        let (s, v) = a.get("/admin/v1/explain?key=ci").await;
        assert_eq!(
            (s, error_of(&v)),
            (400, ("bad-request", "query.model")),
            "{v}"
        );
        let (s, v) = a.get("/admin/v1/explain?model=M").await;
        assert_eq!(
            (s, error_of(&v)),
            (400, ("bad-request", "query.key")),
            "{v}"
        );
        let (s, v) = a.get("/admin/v1/explain?model=Nope&key=ci").await;
        assert_eq!((s, error_of(&v)), (404, ("not-found", "model")), "{v}");
        let (s, v) = a.get("/admin/v1/explain?model=M&key=nobody").await;
        assert_eq!((s, error_of(&v)), (404, ("not-found", "key")), "{v}");
        let (s, v) = a.get("/admin/v1/explain?model=M&key=ci").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["key_id"], a.key.0.as_str());
        assert_eq!(v["gateway"], gw_addr.as_str());
        assert_eq!(v["live"]["rules"], json!([]), "no rules: nothing limits ci");
    }

    /// The report of a gateway that died (last heartbeat a minute ago) is
    /// not served by `/admin/v1/reports`, and the live gateway's next
    /// heartbeat deletes it from the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reports_of_a_dead_gateway_expire() {
        use maasctl::domain::{GatewayReport, LimiterMode, now_ms};
        let a = Admin::start().await;
        let died_ms = now_ms() - 60_000;
        let dead = GatewayReport {
            id: "dead-host:1:10.0.0.9:8080".into(),
            cluster: None,
            listen: "10.0.0.9:8080".into(),
            applied_revision: a.ts.revision(),
            started_ms: died_ms - 3_600_000,
            heartbeat_ms: died_ms,
            limiter: LimiterMode::Local,
            endpoints: vec![],
            admin: None,
        };
        a.ts.store.put_report(&dead).unwrap();
        let gw_addr = a.gw.handle().local_addr().to_string();
        wait_for("only the live gateway's report is served", || {
            let (a, gw_addr) = (&a, gw_addr.clone());
            async move {
                let (s, v) = a.get("/admin/v1/reports").await;
                assert_eq!(s, 200);
                let listed: Vec<&str> = v
                    .as_array()?
                    .iter()
                    .filter_map(|r| r["listen"].as_str())
                    .collect();
                assert!(!listed.contains(&"10.0.0.9:8080"), "{v}");
                (listed == [gw_addr.as_str()]).then_some(())
            }
        })
        .await;
        // Still stored, it would be listed as of its own heartbeat.
        let st = a.ts.store.clone();
        wait_for("the dead gateway's report deleted", || {
            let (st, id) = (st.clone(), dead.id.clone());
            async move {
                let stored = st.reports_at(died_ms).unwrap();
                stored.iter().all(|r| r.id != id).then_some(())
            }
        })
        .await;
    }

    /// A misspelt field is refused (400) naming it and the object it is
    /// in, never dropped: a batch with one changes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_fields_are_refused_and_named() {
        let a = Admin::start().await;
        let before = a.ts.revision();
        let rule = json!({"target": "workspace", "workspace": "acme", "limit": 5,
            "duration_secs": 60, "duration": 10});
        let cases = [
            (
                json!([{"op": "add-workspace", "name": "ops", "description": ""},
                       {"op": "add-rule", "model": "M", "spec": rule}]),
                "body[1].spec",
                "unknown field `duration`, expected one of `target`, `workspace`, `key_id`, `limit`, `duration_secs`",
            ),
            (
                json!([{"op": "set-enabled", "name": "M", "enabled": true, "enable": false}]),
                "body[0]",
                "unknown field `enable`, expected `name` or `enabled`",
            ),
            (
                json!([{"op": "set-enabled", "name": "M", "enable": false}]),
                "body[0]",
                "unknown field `enable`",
            ),
            (
                json!([{"op": "create-model", "name": "GLM-4.5", "cluster": "local",
                        "model_id": "glm", "endpoints": [{"url": "http://127.0.0.1:9", "weigth": 3}]}]),
                "body[0].endpoints[0]",
                "unknown field `weigth`",
            ),
            (
                json!([{"op": "update-market", "name": "GLM-4.5",
                        "entry": {"name": "GLM-4.5", "provider": "Zhipu", "publish": true}}]),
                "body[0].entry",
                "unknown field `publish`",
            ),
        ];
        for (body, field, problem) in cases {
            let (s, v) = a
                .call(Method::POST, "/admin/v1/apply", Some(body.clone()))
                .await;
            assert_eq!(
                (s, error_of(&v)),
                (400, ("bad-request", field)),
                "{body}: {v}"
            );
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("{field}: {problem}")),
                "{body}: {message}"
            );
        }
        assert_eq!(a.ts.revision(), before, "nothing was applied");
        let reg = a.ts.store.load().unwrap();
        assert!(!reg.workspaces.contains_key("ops"));
        assert!(reg.models["M"].rules.is_empty());
        assert!(reg.models["M"].enabled);

        // POST /keys is as strict.
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(json!({"workspace": "acme", "name": "ci2", "scope": "all"})),
            )
            .await;
        assert_eq!((s, error_of(&v)), (400, ("bad-request", "body")), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown field `scope`"),
            "{v}"
        );
        assert!(
            a.ts.store
                .load()
                .unwrap()
                .find_key(Some("acme"), "ci2")
                .is_none()
        );
    }

    /// The field limits (docs/limits.md) hold over the API: a 10 MB
    /// description is refused with the field and the limit, not stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_limits_hold_over_the_api() {
        let a = Admin::start().await;
        let before = a.ts.revision();
        let huge = "d".repeat(10 << 20);
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/apply",
                Some(json!([{"op": "add-workspace", "name": "ops", "description": huge}])),
            )
            .await;
        assert_eq!((s, error_of(&v)), (400, ("invalid", "description")));
        assert_eq!(
            v["error"]["message"],
            "description: 10485760 characters is over the limit of 1024"
        );
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/apply",
                Some(json!([{"op": "update-workspace", "name": "acme", "description": "d".repeat(1025)}])),
            )
            .await;
        assert_eq!((s, error_of(&v)), (400, ("invalid", "description")), "{v}");
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(json!({"workspace": "acme", "name": "k".repeat(100)})),
            )
            .await;
        assert_eq!((s, error_of(&v)), (400, ("invalid", "name")), "{v}");
        assert_eq!(
            v["error"]["message"],
            "name: 100 characters is over the limit of 64"
        );
        // The remote console gets the same refusal.
        let remote = RemoteClient::connect(a.api(), None).await.unwrap();
        let refused = remote
            .apply(vec![Change::AddWorkspace {
                name: "ops".into(),
                description: "d".repeat(2000),
            }])
            .await;
        match refused {
            Err(ClientError::Domain(d)) => assert_eq!(
                d.to_string(),
                "description: 2000 characters is over the limit of 1024"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.ts.revision(), before, "nothing was stored");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_changes_keep_their_kind_status_and_fields() {
        let a = Admin::start().await;
        a.ts.apply(vec![Change::SetPublished {
            name: "GLM-4.5".into(),
            published: false,
        }]);
        let before = a.ts.revision();
        let bad_url = json!([{"op": "create-model", "name": "DeepSeek-V3", "cluster": "local",
            "model_id": "x", "endpoints": [{"url": "localhost:1"}]}]);
        let cases = [
            (
                bad_url,
                400,
                "invalid",
                "endpoints[0].url",
                ErrorKind::Invalid,
            ),
            (
                json!([{"op": "set-enabled", "name": "Nope", "enabled": true}]),
                404,
                "not-found",
                "model",
                ErrorKind::NotFound,
            ),
            (
                json!([{"op": "add-workspace", "name": "acme", "description": ""}]),
                409,
                "conflict",
                "name",
                ErrorKind::Conflict,
            ),
            (
                json!([
                    {"op": "create-model", "name": "GLM-4.5", "cluster": "local", "model_id": "glm",
                     "endpoints": [{"url": "http://127.0.0.1:9"}]},
                    {"op": "set-enabled", "name": "GLM-4.5", "enabled": true}
                ]),
                422,
                "refused",
                "status",
                ErrorKind::Refused,
            ),
        ];
        let remote = RemoteClient::connect(a.api(), None).await.unwrap();
        for (body, status, kind, field, domain_kind) in cases {
            let (s, v) = a
                .call(Method::POST, "/admin/v1/apply", Some(body.clone()))
                .await;
            assert_eq!((s, error_of(&v)), (status, (kind, field)), "{body}: {v}");
            // The remote console gets the registry's own error back.
            let changes: Vec<Change> = serde_json::from_value(body).unwrap();
            match remote.apply(changes).await {
                Err(ClientError::Domain(d)) => {
                    assert_eq!(d.kind, domain_kind);
                    assert!(d.for_field(field).is_some(), "{d}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(a.ts.revision(), before, "nothing refused was saved");
        assert!(!a.ts.store.load().unwrap().models.contains_key("GLM-4.5"));
    }

    /// A POST declaring a body over the limit is refused with 413 at once
    /// (a short client timeout proves it), without waiting for the body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_declared_body_is_refused_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let a = Admin::start().await;
        for declared in [(16u64 << 20) + 1, 999_999_999_999] {
            let mut s = tokio::net::TcpStream::connect(a.addr).await.unwrap();
            let head = format!(
                "POST /admin/v1/apply HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            // The whole answer (head and its JSON body) within 2 s; the
            // connection itself lingers a moment to drain a body that may
            // still come, so read the answer, not to the end.
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(2), async {
                let mut buf = [0u8; 4096];
                while !got.ends_with(b"}") && !got.ends_with(b"}\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(
                        n > 0,
                        "closed before the whole answer: {:?}",
                        String::from_utf8_lossy(&got)
                    );
                    got.extend_from_slice(&buf[..n]);
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no answer within 2 s to content-length {declared}"));
            let answer = String::from_utf8_lossy(&got);
            assert!(
                answer.starts_with("HTTP/1.1 413"),
                "content-length {declared}: {answer}"
            );
            assert!(answer.contains("\"body\""), "names the body: {answer}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }

    /// `/metrics` lives behind the admin token (any role: a read token is
    /// enough), not on the callers' port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_are_served_behind_the_token() {
        let a = Admin::start().await;
        a.traffic(3).await;
        let read = maasctl::ops::tokens::create(
            &*a.ts.store,
            &tester(),
            maasctl::ops::tokens::NewToken {
                name: "scraper".into(),
                role: maasctl::domain::token::Role::Read,
            },
        )
        .unwrap()
        .secret;
        let url = format!("{}/admin/v1/metrics", a.url);
        let anonymous = a.http.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let line = "maasctl_requests_total{scope=\"gateway\"} 3";
        let text = wait_for("the 3 requests in /admin/v1/metrics", || async {
            let res = a.http.get(&url).bearer_auth(&read).send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain; version=0.0.4")
            );
            let text = res.text().await.unwrap();
            text.contains(line).then_some(text)
        })
        .await;
        assert!(text.contains("maasctl_connections_open"), "{text}");
        let on_gateway = a.gw.http.get(a.gw.url("/metrics")).send().await.unwrap();
        assert_eq!(on_gateway.status(), 404);
    }
}

mod secrets {
    use super::*;

    /// Who the racing writer is.
    fn origin() -> maasctl::domain::Origin {
        maasctl::domain::Origin::user("racer", maasctl::domain::Channel::Cli)
    }

    /// The test store, where another writer gets in right after the next
    /// load the admin API makes, once one is queued.
    struct RacingStore {
        inner: Arc<maasctl::store::SqliteStore>,
        next: std::sync::Mutex<Option<Vec<Change>>>,
    }

    impl Store for RacingStore {
        fn load(&self) -> Result<maasctl::domain::Registry, maasctl::store::StoreError> {
            let reg = self.inner.load()?;
            if let Some(c) = self.next.lock().unwrap().take() {
                self.inner.apply(c, &origin())?;
            }
            Ok(reg)
        }
        fn revision(&self) -> Result<u64, maasctl::store::StoreError> {
            self.inner.revision()
        }
        fn apply(
            &self,
            changes: Vec<Change>,
            origin: &maasctl::domain::Origin,
        ) -> Result<maasctl::store::Applied, maasctl::store::StoreError> {
            self.inner.apply(changes, origin)
        }
        fn audit(
            &self,
            q: &maasctl::domain::AuditQuery,
        ) -> Result<Vec<maasctl::domain::AuditEntry>, maasctl::store::StoreError> {
            self.inner.audit(q)
        }
        fn journals(
            &self,
            after: u64,
        ) -> Result<Vec<(u64, maasctl::domain::history::Journal)>, maasctl::store::StoreError>
        {
            self.inner.journals(after)
        }
        fn tokens(
            &self,
        ) -> Result<Vec<maasctl::domain::token::AdminTokenRecord>, maasctl::store::StoreError>
        {
            self.inner.tokens()
        }
        fn change_token(
            &self,
            change: maasctl::domain::token::TokenChange,
            origin: &maasctl::domain::Origin,
        ) -> Result<maasctl::domain::token::AdminTokenRecord, maasctl::store::StoreError> {
            self.inner.change_token(change, origin)
        }

        fn put_report(
            &self,
            r: &maasctl::domain::GatewayReport,
        ) -> Result<(), maasctl::store::StoreError> {
            self.inner.put_report(r)
        }
        fn remove_report(&self, id: &str) -> Result<(), maasctl::store::StoreError> {
            self.inner.remove_report(id)
        }
        fn reports_at(
            &self,
            now_ms: i64,
        ) -> Result<Vec<maasctl::domain::GatewayReport>, maasctl::store::StoreError> {
            self.inner.reports_at(now_ms)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// Masks in an edit are resolved against the revision the edit is
    /// applied to: a key rotated between the server's load and its write is
    /// not put back by a remote edit that still carries the old key's mask.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_rotated_while_an_edit_is_applied_is_not_put_back() {
        const ROTATED: &str = "sk-upstream-ROTATED-meanwhile-7d2e";
        let a = Admin::start().await;
        let racing = Arc::new(RacingStore {
            inner: a.ts.store.clone(),
            next: Default::default(),
        });
        let listener = bind("127.0.0.1:0".parse().unwrap());
        let url = listener.url();
        let _admin = listener
            .serve(racing.clone(), a.gw.handle().view(), a.logs.clone())
            .expect("admin serves");
        let call = |method: Method, body: Option<Value>| {
            let mut r = a
                .http
                .request(
                    method,
                    format!(
                        "{url}/admin/v1/{}",
                        if body.is_some() { "apply" } else { "registry" }
                    ),
                )
                .bearer_auth(TOKEN);
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send()
        };
        // The console's edit: the model as read (key masked), tagged.
        let tagged = |reg: &Value| {
            let m: maasctl::domain::Model =
                serde_json::from_value(reg["models"]["M"].clone()).unwrap();
            let mut spec = m.spec;
            spec.tags = vec!["chat".into()];
            json!([{"op": "update-model", "name": "M", "spec": spec}])
        };
        let (_, reg) = answer(call(Method::GET, None).await.unwrap()).await;
        let edit = tagged(&reg);
        let mut rotated = a.ts.store.load().unwrap().models["M"].spec.clone();
        rotated.endpoints[0].api_key = Some(Secret::new(ROTATED));
        *racing.next.lock().unwrap() = Some(vec![Change::UpdateModel {
            name: "M".into(),
            spec: rotated,
        }]);
        let (s, v) = answer(call(Method::POST, Some(edit)).await.unwrap()).await;
        assert_eq!(
            (s, error_of(&v)),
            (400, ("invalid", "endpoints[0].api_key")),
            "{v}"
        );
        let stored = || a.ts.store.load().unwrap().models["M"].spec.clone();
        assert_eq!(
            stored().endpoints[0].api_key.as_ref().unwrap().expose(),
            ROTATED
        );
        assert!(stored().tags.is_empty());
        // Read again and sent again: the rotated key's mask keeps it.
        let (_, reg) = answer(call(Method::GET, None).await.unwrap()).await;
        let (s, v) = answer(call(Method::POST, Some(tagged(&reg))).await.unwrap()).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            stored().endpoints[0].api_key.as_ref().unwrap().expose(),
            ROTATED
        );
        assert_eq!(stored().tags, ["chat"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_secret_is_given_once_and_works() {
        let a = Admin::start().await;
        let (s, v) = a
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(json!({"workspace": "acme", "name": "batch"})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (id, secret) = (
            v["id"].as_str().unwrap().to_string(),
            v["secret"].as_str().unwrap().to_string(),
        );
        assert!(secret.starts_with("sk-") && secret.len() == 46, "{secret}");
        // It calls the gateway.
        a.gw.wait_applied(&a.ts).await;
        let res = a.gw.chat(&secret, "M").await;
        assert_eq!(res.status(), 200);
        // It is never shown again, nor its hash.
        let stored = a.ts.store.load().unwrap().keys[&id].clone();
        for path in [
            "/admin/v1/registry",
            "/admin/v1/logs",
            "/admin/v1/stats",
            "/admin/v1/reports",
        ] {
            let text = a
                .req(Method::GET, path)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(!text.contains(&secret), "{path} shows the secret");
            assert!(!text.contains(&stored.secret_hash), "{path} shows the hash");
        }
        let (_, reg) = a.get("/admin/v1/registry").await;
        assert_eq!(reg["keys"][&id]["secret_hint"], stored.secret_hint.as_str());
        assert!(
            reg["keys"][&id].get("secret_hash").is_none(),
            "{}",
            reg["keys"][&id]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upstream_keys_never_leave_the_server() {
        let a = Admin::start().await;
        a.ts.apply(vec![Change::AddRule {
            model: "M".into(),
            spec: RuleSpec {
                target: RuleTarget::ApiKey,
                workspace: "acme".into(),
                key_id: Some(a.key.0.clone()),
                limit: 100,
                duration_secs: 60,
                unit: Default::default(),
            },
        }]);
        a.gw.wait_applied(&a.ts).await;
        a.traffic(2).await;
        let mut bodies = Vec::new();
        for path in [
            "/admin/v1/info",
            "/admin/v1/revision",
            "/admin/v1/registry",
            "/admin/v1/reports",
            "/admin/v1/stats",
            "/admin/v1/logs",
            "/admin/v1/explain?model=M&key=ci",
            "/admin/v1/nope",
        ] {
            bodies.push(
                a.req(Method::GET, path)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
        }
        // The stream's first event.
        let mut res = a
            .req(Method::GET, "/admin/v1/stats/stream")
            .send()
            .await
            .unwrap();
        let mut reader = EventReader::default();
        let first = loop {
            let chunk = res.chunk().await.unwrap().expect("an event");
            if let Some(e) = reader.push(&chunk).pop() {
                break e;
            }
        };
        bodies.push(first);
        drop(res);
        // Edits through the wire: kept (masked) and a refused mask.
        let (_, reg) = a.get("/admin/v1/registry").await;
        let spec = reg["models"]["M"].clone();
        let edit = |spec: &Value| {
            json!([{"op": "update-model", "name": "M", "spec": {
                "name": "M", "cluster": "local", "model_id": spec["model_id"],
                "endpoints": spec["endpoints"], "policy": spec["policy"], "tags": ["edited"]}}])
        };
        let res = a
            .req(Method::POST, "/admin/v1/apply")
            .json(&edit(&spec))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        bodies.push(res.text().await.unwrap());
        let mut wrong = spec.clone();
        wrong["endpoints"][0]["api_key"] = json!("sk-…0000");
        let (s, v) = a
            .call(Method::POST, "/admin/v1/apply", Some(edit(&wrong)))
            .await;
        assert_eq!(
            (s, error_of(&v)),
            (400, ("invalid", "endpoints[0].api_key")),
            "{v}"
        );
        bodies.push(v.to_string());

        for b in &bodies {
            assert!(
                !b.contains(RAW_KEY),
                "the upstream key left the server: {b}"
            );
        }
        assert_eq!(
            spec["endpoints"][0]["api_key"], "sk-…9f1c",
            "masked, with a hint"
        );
        let stored = a.ts.store.load().unwrap();
        assert_eq!(
            stored.models["M"].spec.endpoints[0]
                .api_key
                .as_ref()
                .unwrap()
                .expose(),
            RAW_KEY,
            "the kept key is the real one"
        );
        assert_eq!(stored.models["M"].spec.tags, ["edited"]);
    }

    /// The remote console's own edit form, through the wire: not retyping
    /// the key keeps it; typing one stores it; the gateway uses each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remote_form_edits_keep_or_replace_the_upstream_key() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        use maasctl::tui::app::App;
        use maasctl::tui::ids::ViewId;
        use maasctl::tui::theme::Theme;

        let a = Admin::start().await;
        let remote = RemoteClient::connect(a.api(), None).await.unwrap();
        let mut app = App::new(
            Theme::colored(),
            remote.registry().borrow().clone(),
            remote.gateway().borrow().clone(),
            maasctl::domain::now_ms(),
            None,
        );
        let key = |c: KeyCode| KeyEvent::new(c, KeyModifiers::NONE);
        let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        let stored_key = |a: &Admin| {
            a.ts.store.load().unwrap().models["M"].spec.endpoints[0]
                .api_key
                .as_ref()
                .map(|k| k.expose().to_string())
        };
        let upstream_saw = |a: &Admin| {
            a.upstream
                .seen()
                .last()
                .and_then(|s| s.authorization().map(str::to_string))
        };
        async fn save(app: &mut App, remote: &RemoteClient, ctrl_s: KeyEvent) {
            app.on_key(ctrl_s);
            let requests = app.take_requests();
            assert_eq!(requests.len(), 1, "the form saves");
            for r in requests {
                let reply = r.run(remote).await;
                assert!(reply.result.is_ok(), "{:?}", reply.result);
                app.on_reply(reply);
            }
        }

        // Edit the model ID only.
        app.jump(ViewId::Models);
        assert!(app.select(ViewId::Models, "M"));
        app.on_key(key(KeyCode::Char('e')));
        let form = app.form_mut().expect("the edit form");
        form.focus_on("model_id");
        app.on_key(key(KeyCode::Char('2')));
        save(&mut app, &remote, ctrl_s).await;
        let reg = a.ts.store.load().unwrap();
        assert_eq!(reg.models["M"].spec.model_id, "m-upstream2");
        assert_eq!(stored_key(&a).as_deref(), Some(RAW_KEY), "kept");
        a.gw.wait_applied(&a.ts).await;
        a.traffic(1).await;
        assert_eq!(upstream_saw(&a), Some(format!("Bearer {RAW_KEY}")));

        // Wait for the console to see the new revision, then type a new key.
        let rev = reg.revision;
        let mut rx = remote.registry();
        tokio::time::timeout(DEADLINE, async {
            while rx.borrow_and_update().registry.revision < rev {
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("the remote console sees the change");
        app.on_registry(rx.borrow().clone());
        app.on_key(key(KeyCode::Char('e')));
        app.form_mut().unwrap().focus_on("endpoints[0].api_key");
        for c in "sk-typed-anew-remotely-77".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        save(&mut app, &remote, ctrl_s).await;
        assert_eq!(stored_key(&a).as_deref(), Some("sk-typed-anew-remotely-77"));
        a.gw.wait_applied(&a.ts).await;
        a.traffic(1).await;
        assert_eq!(
            upstream_saw(&a).as_deref(),
            Some("Bearer sk-typed-anew-remotely-77")
        );
    }
}

mod streams {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stats_stream_pushes_changed_snapshots_at_most_ten_a_second() {
        let a = Admin::start().await;
        let mut res = a
            .req(Method::GET, "/admin/v1/stats/stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut reader = EventReader::default();
        let mut next = async || -> StatsSnapshot {
            loop {
                let chunk = tokio::time::timeout(DEADLINE, res.chunk())
                    .await
                    .expect("an event in time")
                    .unwrap()
                    .expect("the stream goes on");
                if let Some(e) = reader.push(&chunk).into_iter().last() {
                    return serde_json::from_str(&e).unwrap();
                }
            }
        };
        let first = next().await;
        let before = first.models.get("M").map_or(0, |t| t.requests);

        // Steady traffic for a while: snapshots change, but at most 10/s
        // arrive (the gateway samples every 50 ms in these tests).
        let caller = {
            let (gw_base, secret) = (a.gw.base.clone(), a.key.1.clone());
            tokio::spawn(async move {
                let http = support::client();
                loop {
                    let _ = http
                        .post(format!("{gw_base}/v1/chat/completions"))
                        .bearer_auth(&secret)
                        .json(&support::chat_body("M"))
                        .send()
                        .await;
                }
            })
        };
        let start = Instant::now();
        let mut events = 0u32;
        let mut last = first;
        while start.elapsed() < Duration::from_secs(2) {
            last = next().await;
            events += 1;
        }
        let elapsed = start.elapsed();
        caller.abort();
        assert!(
            last.models["M"].requests > before,
            "a changed snapshot arrived after traffic"
        );
        let cap = (elapsed.as_millis() / 100) as u32 + 2;
        assert!(events <= cap, "{events} events in {elapsed:?}");
        assert!(events >= 2, "snapshots kept coming: {events}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_remote_client_mirrors_the_server_and_rides_out_an_outage() {
        let mut a = Admin::start().await;
        // A wrong token or address fails at once, with the reason.
        let wrong = AdminApi::new(&a.url, "nope").unwrap();
        let e = RemoteClient::connect(wrong, None).await.err().unwrap();
        assert!(
            e.contains("Authorization") && e.contains("not valid"),
            "{e}"
        );
        let nowhere = AdminApi::new(support::dead_url().trim_end_matches("/v1"), TOKEN).unwrap();
        let e = RemoteClient::connect(nowhere, None).await.err().unwrap();
        assert!(e.contains("cannot reach the admin API"), "{e}");

        let ring = LogRing::new(100);
        let remote = RemoteClient::connect(a.api(), Some(ring.clone()))
            .await
            .unwrap();
        let gw_addr = a.gw.handle().local_addr().to_string();
        let mut gateway = remote.gateway();
        assert_eq!(gateway.borrow().listen.as_deref(), Some(gw_addr.as_str()));
        assert_eq!(gateway.borrow().state, GatewayState::Running);
        assert!(remote.registry().borrow().registry.models.contains_key("M"));

        // Changes go through and come back; counters follow the stream;
        // the server's log lines reach the console's ring.
        remote
            .apply(vec![Change::AddWorkspace {
                name: "remote-made".into(),
                description: String::new(),
            }])
            .await
            .unwrap();
        let mut reg = remote.registry();
        until_workspace(&mut reg, "remote-made", "the registry follows").await;
        let created = remote
            .create_key("remote-made".into(), "k".into())
            .await
            .unwrap();
        assert!(a.ts.store.load().unwrap().keys.contains_key(&created.id));
        // Recorded as the token's, through the console; the console can
        // read the trail and knows its role.
        assert_eq!(remote.role(), maasctl::domain::token::Role::Admin);
        let trail = remote
            .audit(maasctl::domain::AuditQuery {
                entity: Some("workspace/remote-made".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(trail.len(), 1, "{trail:?}");
        assert_eq!(trail[0].actor.to_string(), "token:bootstrap");
        assert_eq!(trail[0].channel, maasctl::domain::Channel::Console);
        a.traffic(3).await;
        let mut stats = remote.stats();
        tokio::time::timeout(DEADLINE, async {
            while stats
                .borrow_and_update()
                .models
                .get("M")
                .is_none_or(|t| t.requests < 3)
            {
                stats.changed().await.unwrap();
            }
        })
        .await
        .expect("counters follow");
        a.logs.push(line("made remotely"));
        wait_for("the server's log lines in the console's ring", || {
            let ring = ring.clone();
            async move {
                let (lines, _) = ring.window(0, 1000);
                lines
                    .iter()
                    .any(|l| l.target == "server:test" && l.message == "made remotely")
                    .then_some(())
            }
        })
        .await;

        // The server goes away: disconnected, retrying — not an error exit.
        a.admin.take().unwrap().shutdown().await;
        let down = tokio::time::timeout(DEADLINE, async {
            loop {
                if let GatewayState::Failed(e) = &gateway.borrow_and_update().state {
                    return e.clone();
                }
                gateway.changed().await.unwrap();
            }
        })
        .await
        .expect("the console learns the server is gone");
        assert!(down.starts_with("disconnected, retrying"), "{down}");
        let err = remote.apply(vec![]).await;
        assert!(
            matches!(err, Err(ClientError::Other(ref m)) if m.contains("cannot reach")),
            "{err:?}"
        );

        // Back on the same address: running again, changes flow again.
        a.admin = Some(serve(bind(a.addr), &a.ts, &a.gw, &a.logs));
        tokio::time::timeout(DEADLINE, async {
            while gateway.borrow_and_update().state != GatewayState::Running {
                gateway.changed().await.unwrap();
            }
        })
        .await
        .expect("the console recovers");
        a.ts.apply(vec![Change::AddWorkspace {
            name: "after-outage".into(),
            description: String::new(),
        }]);
        until_workspace(&mut reg, "after-outage", "the registry follows again").await;
        a.traffic(1).await;
        tokio::time::timeout(DEADLINE, async {
            while stats
                .borrow_and_update()
                .models
                .get("M")
                .is_none_or(|t| t.requests < 4)
            {
                stats.changed().await.unwrap();
            }
        })
        .await
        .expect("the stream is back");
    }
}

/// The real binary: `maasctl serve`'s admin listener and token, and
/// `maasctl rule explain` against it.
mod binary {
    use super::*;
    use common::Env;
    use maasctl::store::SqliteStore;
    use std::os::unix::fs::PermissionsExt;

    use common::Serve;

    fn store(env: &Env) -> SqliteStore {
        SqliteStore::open_dir(env.data_dir()).unwrap()
    }

    async fn get(url: &str, token: &str) -> (u16, Value) {
        answer(
            support::client()
                .get(format!("{url}/admin/v1/info"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_prints_where_the_token_is_never_the_token() {
        let env = Env::new();
        let serve = Serve::start(&env, &["--admin-listen", "127.0.0.1:0"]);
        let admin = serve.admin();
        let path = env.data_dir().join("admin.token");
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is private");
        let line = serve.line("admin API listening on");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert_eq!(get(&admin, &token).await.0, 200);
        assert_eq!(get(&admin, "wrong").await.0, 401);
        // The report in the store names the admin API.
        let st = store(&env);
        common::wait_until("the report naming the admin API", DEADLINE, || {
            st.reports()
                .unwrap()
                .iter()
                .any(|r| r.admin.as_deref() == Some(admin.as_str()))
        });
        // Its log lines are served (tracing feeds the ring).
        let http = support::client();
        let res = http
            .post(format!("{admin}/admin/v1/apply"))
            .bearer_auth(&token)
            .json(&json!([{"op": "add-workspace", "name": "from-admin", "description": ""}]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = http
            .get(format!("{admin}/admin/v1/logs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let logs = res.text().await.unwrap();
        assert!(
            logs.contains("admin API: applied add-workspace from-admin"),
            "{logs}"
        );
        let out = serve.stop();
        assert!(out.iter().all(|l| !l.contains(&token)), "{out:?}");

        // Restarted: the same token file is used again.
        let serve = Serve::start(&env, &["--admin-listen", "127.0.0.1:0"]);
        assert_eq!(get(&serve.admin(), &token).await.0, 200);
        drop(serve);

        // From the environment: no file is needed.
        let env2 = Env::new().var("MAASCTL_ADMIN_TOKEN", "from-env-token-42");
        let serve = Serve::start(&env2, &["--admin-listen", "127.0.0.1:0"]);
        assert!(
            serve
                .line("admin API")
                .contains("token from $MAASCTL_ADMIN_TOKEN")
        );
        assert_eq!(get(&serve.admin(), "from-env-token-42").await.0, 200);
        assert!(!env2.data_dir().join("admin.token").exists());
        drop(serve);

        // Off: no admin API, none in the report.
        let env3 = Env::new();
        let serve = Serve::start(&env3, &["--admin-listen", "off"]);
        let st = store(&env3);
        common::wait_until("a report", DEADLINE, || !st.reports().unwrap().is_empty());
        assert!(st.reports().unwrap().iter().all(|r| r.admin.is_none()));
        let out = serve.stop();
        assert!(out.iter().all(|l| !l.contains("admin API")), "{out:?}");

        // A bad address is named.
        let out = env3.run(&["serve", "--admin-listen", "9090"]);
        let err = common::expect_one_line_error(&["serve"], out, 2);
        assert!(
            err.contains("--admin-listen") && err.contains("or off"),
            "{err}"
        );
    }

    /// A model with a mock upstream, key `ci`, and two rules on it.
    async fn seeded(env: &Env) -> (maasctl::demo::upstream::MockUpstream, String, u64, u64) {
        let up = mock("explain").await;
        let st = store(env);
        st.apply(
            vec![Change::AddWorkspace {
                name: "acme".into(),
                description: String::new(),
            }],
            &tester(),
        )
        .unwrap();
        let (change, key) = maasctl::domain::new_key("acme".into(), "ci".into());
        st.apply(
            vec![
                change,
                Change::CreateModel(maasctl::domain::ModelSpec {
                    name: "DeepSeek-V3".into(),
                    cluster: "local".into(),
                    model_id: "deepseek-chat".into(),
                    endpoints: vec![Endpoint::new(up.base_url())],
                    policy: Policy::RoundRobin,
                    tags: vec![],
                    fallbacks: Vec::new(),
                    completion_cap: None,
                }),
                Change::SetEnabled {
                    name: "DeepSeek-V3".into(),
                    enabled: true,
                },
            ],
            &tester(),
        )
        .unwrap();
        let rule = |target, key_id: Option<String>, limit| Change::AddRule {
            model: "DeepSeek-V3".into(),
            spec: RuleSpec {
                target,
                workspace: "acme".into(),
                key_id,
                limit,
                duration_secs: 300,
                unit: Default::default(),
            },
        };
        let applied = st
            .apply(
                vec![
                    rule(RuleTarget::ApiKey, Some(key.id.clone()), 4),
                    rule(RuleTarget::Workspace, None, 10),
                ],
                &tester(),
            )
            .unwrap();
        let ids: Vec<u64> = applied
            .outcomes
            .iter()
            .map(|o| match o {
                maasctl::domain::Outcome::RuleCreated { id } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        (up, key.secret, ids[0], ids[1])
    }

    fn explain_json(env: &Env, extra: &[&str]) -> Value {
        let mut args = vec!["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"];
        args.extend(extra);
        env.json(&args)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rule_explain_shows_the_gateways_live_counts() {
        let env = Env::new();
        let (_up, secret, key_rule, ws_rule) = seeded(&env).await;

        // No gateway: the rules from the registry, said to have no live counts.
        let out = env.ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
        assert!(out.contains("no live counts: no gateway running"), "{out}");
        assert!(
            out.contains(&format!("#{key_rule}")) && out.contains(&format!("#{ws_rule}")),
            "{out}"
        );
        let v = explain_json(&env, &[]);
        assert_eq!(v["live"], Value::Null);
        assert_eq!(v["rules"].as_array().unwrap().len(), 2);

        let serve = Serve::start(&env, &["--admin-listen", "127.0.0.1:0"]);
        let gw = serve.gateway();
        let admin = serve.admin();
        let http = support::client();
        let call = || {
            http.post(format!("{gw}/v1/chat/completions"))
                .bearer_auth(&secret)
                .json(&support::chat_body("DeepSeek-V3"))
                .send()
        };
        // Half of the key's rule used.
        for _ in 0..2 {
            let res = call().await.unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
        // The gateway's report may land a moment after its port answers.
        let v = wait_for("explain naming the live gateway", || {
            let v = explain_json(&env, &[]);
            async move { (!v["gateway"].is_null()).then_some(v) }
        })
        .await;
        assert_eq!(v["gateway"], gw.trim_start_matches("http://"));
        let rules = v["live"]["rules"].as_array().unwrap();
        let by_id = |id: u64| rules.iter().find(|r| r["rule_id"] == id).unwrap().clone();
        assert_eq!(
            (
                by_id(key_rule)["used"].as_u64(),
                by_id(key_rule)["limit"].as_u64()
            ),
            (Some(2), Some(4))
        );
        assert_eq!(
            (
                by_id(ws_rule)["used"].as_u64(),
                by_id(ws_rule)["limit"].as_u64()
            ),
            (Some(2), Some(10))
        );
        assert_eq!(v["live"]["rejected_by"], Value::Null);
        let table = env.ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
        assert!(table.contains("live counts from the gateway at"), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("#{key_rule} ")))
            .unwrap();
        assert!(row.contains("2/4") && row.contains("ok, 2 left"), "{row}");
        assert!(table.contains("next request: admitted"), "{table}");

        // Full: the key's rule would reject the next request.
        for _ in 0..2 {
            assert_eq!(call().await.unwrap().status(), 200);
        }
        assert_eq!(call().await.unwrap().status(), 429);
        let table = env.ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
        assert!(
            table.contains(&format!("next request: rejected by rule #{key_rule}")),
            "{table}"
        );
        // --connect names the server explicitly (with the token file).
        let token = env.data_dir().join("admin.token");
        let other = Env::new();
        let v = other.json(&[
            "rule",
            "explain",
            "--model",
            "DeepSeek-V3",
            "--key",
            "ci",
            "--workspace",
            "acme",
            "--connect",
            &admin,
            "--admin-token-file",
            token.to_str().unwrap(),
        ]);
        assert_eq!(v["live"]["rejected_by"].as_u64(), Some(key_rule));
        assert!(!other.db().exists(), "--connect needs no local store");
        // Errors name the part.
        let err = env.fails(&[
            "rule",
            "explain",
            "--model",
            "DeepSeek-V3",
            "--key",
            "nobody",
        ]);
        assert!(err.starts_with("key: no API key"), "{err}");
        let err = other.fails(&[
            "rule",
            "explain",
            "--model",
            "Nope",
            "--key",
            "ci",
            "--connect",
            &admin,
            "--admin-token-file",
            token.to_str().unwrap(),
        ]);
        assert!(err.starts_with("model: no model named 'Nope'"), "{err}");
        let err = other.fails(&[
            "rule",
            "explain",
            "--model",
            "M",
            "--key",
            "ci",
            "--connect",
            &admin,
        ]);
        assert!(err.contains("no admin token"), "{err}");

        // Stopped: back to the registry alone.
        serve.stop();
        let out = env.ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
        assert!(out.contains("no live counts: no gateway running"), "{out}");
    }
}

/// Reports written before the admin address existed still parse.
#[test]
fn old_reports_without_an_admin_address_parse() {
    let old = r#"{"id":"h:1:127.0.0.1:8080","cluster":null,"listen":"127.0.0.1:8080",
        "applied_revision":3,"started_ms":1,"heartbeat_ms":2,"limiter":"local","endpoints":[]}"#;
    let r: maasctl::domain::GatewayReport = serde_json::from_str(old).unwrap();
    assert_eq!(r.admin, None);
    let back = serde_json::to_string(&r).unwrap();
    assert!(!back.contains("admin"), "{back}");
}

/// The OpenAPI document (`docs/openapi.json`) against the server: every
/// route of the route table is in it with the role it needs, and nothing
/// else; every error kind is in its error schema; real answers — errors of
/// every route, and a success of each — match what it says.
mod openapi {
    use super::*;
    use maasctl::admin::PREFIX;
    use maasctl::admin::error::AdminErrorKind;
    use maasctl::admin::routes::{Access, ROUTES};

    fn doc() -> Value {
        serde_json::from_str(include_str!("../docs/openapi.json")).expect("the document is JSON")
    }

    /// `v` against `schema`: the JSON Schema subset the document uses
    /// (`$ref`, `type`, `properties`, `required`, `additionalProperties`,
    /// `items`, `enum`, `const`, `oneOf`). The error names the place.
    fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        if let Some(r) = schema["$ref"].as_str() {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local $ref");
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "{at}: no schema {name}");
            return check(doc, target, v, at);
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                other => panic!("{at}: type {other}"),
            };
            let fits = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                other => panic!("{at}: type {other}"),
            });
            if !fits {
                return Err(format!("{at}: {v} is not {types:?}"));
            }
        }
        if let Some(e) = schema["enum"].as_array()
            && !e.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
        if let Some(c) = schema.get("const")
            && c != v
        {
            return Err(format!("{at}: {v} is not {c}"));
        }
        if let Some(options) = schema["oneOf"].as_array() {
            let fits = options
                .iter()
                .filter(|o| check(doc, o, v, at).is_ok())
                .count();
            if fits != 1 {
                return Err(format!("{at}: {v} fits {fits} of oneOf"));
            }
        }
        if let Some(obj) = v.as_object() {
            let props = schema["properties"].as_object();
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing {r}"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(doc, s, val, &format!("{at}.{k}"))?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(format!("{at}: {k} is not in the document"));
                        }
                        Some(s @ Value::Object(_)) => check(doc, s, val, &format!("{at}.{k}"))?,
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
            for (i, item) in list.iter().enumerate() {
                check(doc, items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn role(access: Access) -> &'static str {
        match access {
            Access::Public => "public",
            Access::Read => "read",
            Access::Admin => "admin",
        }
    }

    /// Every route and method of the server is documented, with its role,
    /// and the document has no other; every error kind is in `Error`.
    #[test]
    fn the_document_lists_exactly_the_routes_the_server_has() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        let mut documented = Vec::new();
        for (path, ops) in d["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let role = op["x-maasctl-role"]
                    .as_str()
                    .unwrap_or("(none)")
                    .to_string();
                documented.push((method.to_uppercase(), path.clone(), role));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String, String)> = ROUTES
            .iter()
            .map(|r| {
                let role = role(r.access).to_string();
                (r.method.to_string(), format!("{PREFIX}{}", r.path), role)
            })
            .collect();
        served.sort();
        assert_eq!(
            served, documented,
            "routes served vs documented (method, path, role)"
        );

        // The query parameters each route reads are the documented ones
        // (the server refuses any other).
        for r in ROUTES.iter() {
            let op = &d["paths"][format!("{PREFIX}{}", r.path)][r.method.as_str().to_lowercase()];
            let mut documented: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            documented.sort();
            let mut served = r.params().to_vec();
            served.sort();
            assert_eq!(
                served, documented,
                "query parameters of {} {}",
                r.method, r.path
            );
        }

        let kinds = d["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["kind"]["enum"].clone();
        let all: Vec<Value> = AdminErrorKind::ALL
            .iter()
            .map(|k| serde_json::to_value(k).unwrap())
            .collect();
        assert_eq!(kinds, json!(all), "error kinds served vs documented");
    }

    /// One call's answer: its status must be documented for the operation
    /// and its body must match the schema there.
    #[track_caller]
    fn documented(d: &Value, method: &str, path: &str, status: u16, body: &Value) {
        let op = &d["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        let res = &op["responses"][status.to_string()];
        assert!(
            res.is_object(),
            "{method} {path} answered {status}, which is not documented: {body}"
        );
        if let Some(schema) = res["content"]["application/json"].get("schema") {
            if let Err(e) = check(d, schema, body, "body") {
                panic!("{method} {path} {status} does not match the document: {e}\n{body}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_answers_match_the_document() {
        let d = doc();
        let a = Admin::start().await;
        let read = maasctl::ops::tokens::create(
            &*a.ts.store,
            &tester(),
            maasctl::ops::tokens::NewToken {
                name: "watcher".into(),
                role: maasctl::domain::token::Role::Read,
            },
        )
        .unwrap()
        .secret;
        let send = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
            let mut r = a
                .http
                .request(method.parse().unwrap(), format!("{}{path}", a.url));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            r
        };
        // Every route: without a token, with a bad channel header, and
        // (changing routes) with a read token.
        for r in ROUTES.iter() {
            let (m, p) = (r.method.as_str(), format!("{PREFIX}{}", r.path));
            if r.access == Access::Public {
                let (s, v) = answer(send(m, &p, None, None).send().await.unwrap()).await;
                documented(&d, m, &p, s, &v);
                continue;
            }
            let (s, v) = answer(send(m, &p, None, None).send().await.unwrap()).await;
            assert_eq!(s, 401, "{m} {p}");
            documented(&d, m, &p, s, &v);
            let res = send(m, &p, Some(TOKEN), None)
                .header("x-maasctl-channel", "carrier-pigeon")
                .send()
                .await
                .unwrap();
            let (s, v) = answer(res).await;
            assert_eq!(
                (s, error_of(&v)),
                (400, ("bad-request", "header x-maasctl-channel")),
                "{m} {p}"
            );
            documented(&d, m, &p, s, &v);
            if r.access == Access::Admin {
                let (s, v) = answer(send(m, &p, Some(&read), None).send().await.unwrap()).await;
                assert_eq!((s, error_of(&v)), (403, ("forbidden", "role")), "{m} {p}");
                documented(&d, m, &p, s, &v);
            }
        }
        // A success of each (the stream's headers only), and the errors
        // their handlers give.
        let calls: Vec<(&str, &str, Option<Value>, u16)> = vec![
            ("GET", "/admin/v1/info", None, 200),
            ("GET", "/admin/v1/revision", None, 200),
            ("GET", "/admin/v1/registry", None, 200),
            ("GET", "/admin/v1/reports", None, 200),
            ("GET", "/admin/v1/stats", None, 200),
            ("GET", "/admin/v1/explain?model=M&key=ci", None, 200),
            ("GET", "/admin/v1/explain?model=M", None, 400),
            ("GET", "/admin/v1/explain?model=nope&key=ci", None, 404),
            ("GET", "/admin/v1/logs?after=0", None, 200),
            ("GET", "/admin/v1/logs?after=x", None, 400),
            ("GET", "/admin/v1/tail?since=0", None, 200),
            ("GET", "/admin/v1/tail?since=x", None, 400),
            // A misspelt or unknown parameter is refused, not ignored.
            ("GET", "/admin/v1/usage?sinse=7d", None, 400),
            ("GET", "/admin/v1/stats?verbose=1", None, 400),
            ("POST", "/admin/v1/apply?dry_run=true", Some(json!([])), 400),
            (
                "POST",
                "/admin/v1/apply",
                Some(json!([{"op": "add-workspace", "name": "doc", "description": ""}])),
                200,
            ),
            (
                "POST",
                "/admin/v1/apply",
                Some(json!([{"op": "add-workspace", "name": "doc", "description": ""}])),
                409,
            ),
            (
                "POST",
                "/admin/v1/apply",
                Some(json!([{"op": "delete-model", "name": "nope"}])),
                404,
            ),
            (
                "POST",
                "/admin/v1/apply",
                Some(json!([{"op": "set-published", "name": "M", "published": false}])),
                422,
            ),
            ("POST", "/admin/v1/apply", Some(json!([{"op": "fly"}])), 400),
            (
                "POST",
                "/admin/v1/keys",
                Some(json!({"workspace": "acme", "name": "k2"})),
                201,
            ),
            (
                "POST",
                "/admin/v1/keys",
                Some(json!({"workspace": "nope", "name": "k2"})),
                404,
            ),
            ("GET", "/admin/v1/audit?limit=5", None, 200),
            ("GET", "/admin/v1/budgets", None, 200),
            ("GET", "/admin/v1/audit?entity=nope", None, 400),
            ("GET", "/admin/v1/history", None, 200),
            ("GET", "/admin/v1/history?limit=x", None, 400),
            ("GET", "/admin/v1/history/registry?revision=1", None, 200),
            ("GET", "/admin/v1/history/registry?revision=999", None, 404),
            ("GET", "/admin/v1/history/registry", None, 400),
            (
                "POST",
                "/admin/v1/rollback",
                Some(json!({"revision": 1, "dry_run": true})),
                200,
            ),
            (
                "POST",
                "/admin/v1/rollback",
                Some(json!({"revision": 999})),
                404,
            ),
            (
                "POST",
                "/admin/v1/rollback",
                Some(json!({"revison": 1})),
                400,
            ),
            (
                "POST",
                "/admin/v1/manifest",
                Some(json!({"manifest": {"workspaces": [{"name": "m"}]}, "dry_run": true})),
                200,
            ),
            (
                "POST",
                "/admin/v1/manifest",
                Some(json!({"manifest": {"workspaces": [{"name": ""}]}})),
                400,
            ),
            (
                "POST",
                "/admin/v1/tokens",
                Some(json!({"name": "t2", "role": "read"})),
                201,
            ),
            (
                "POST",
                "/admin/v1/tokens",
                Some(json!({"name": "t2", "role": "read"})),
                409,
            ),
            (
                "POST",
                "/admin/v1/tokens",
                Some(json!({"name": "t3", "role": "root"})),
                400,
            ),
            ("GET", "/admin/v1/tokens", None, 200),
            (
                "POST",
                "/admin/v1/tokens/revoke",
                Some(json!({"name": "t2"})),
                200,
            ),
            (
                "POST",
                "/admin/v1/tokens/revoke",
                Some(json!({"name": "nope"})),
                404,
            ),
        ];
        for (m, p, body, want) in calls {
            let (s, v) = answer(send(m, p, Some(TOKEN), body).send().await.unwrap()).await;
            assert_eq!(s, want, "{m} {p}: {v}");
            documented(&d, m, p.split('?').next().unwrap(), s, &v);
        }
        let (_, v) = answer(
            send(
                "GET",
                "/admin/v1/usage?since=7d&sinse=7d",
                Some(TOKEN),
                None,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(error_of(&v), ("bad-request", "query.sinse"), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .ends_with("this route takes since, until, by"),
            "{v}"
        );
        let too_big = vec![b' '; (16 << 20) + 1];
        let res = a
            .req(Method::POST, "/admin/v1/apply")
            .body(too_big)
            .send()
            .await
            .unwrap();
        let (s, v) = answer(res).await;
        assert_eq!(s, 413);
        documented(&d, "POST", "/admin/v1/apply", s, &v);
        let res = a
            .req(Method::GET, "/admin/v1/stats/stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(d["paths"]["/admin/v1/stats/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object());
        // Unknown paths and other methods: the one error shape.
        let error = json!({"$ref": "#/components/schemas/Error"});
        for (m, p, want) in [
            ("GET", "/admin/v1/nope", 404),
            ("DELETE", "/admin/v1/registry", 405),
        ] {
            let (s, v) = answer(send(m, p, Some(TOKEN), None).send().await.unwrap()).await;
            assert_eq!(s, want, "{m} {p}");
            check(&d, &error, &v, "body").unwrap_or_else(|e| panic!("{m} {p}: {e}"));
        }
    }
}
