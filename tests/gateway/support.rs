//! Shared helpers: a temp store seeded through the `Store` API, a gateway
//! started on a free port with short intervals, mock upstreams, an HTTP
//! client, and polling helpers (tests wait for conditions, never sleep).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maasctl::demo::upstream::{MockConfig, MockUpstream};
use maasctl::domain::secret::{hash_secret, secret_hint};
use maasctl::domain::{
    Change, Endpoint, MarketEntry, ModelSpec, Policy, RuleSpec, RuleTarget, RuleUnit,
};
use maasctl::gateway::{Gateway, GatewayConfig, GatewayHandle, StatsSnapshot};
use maasctl::store::{SqliteStore, Store};
use serde_json::{Value, json};

/// Generous deadline for anything the tests wait for.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Poll `f` until it returns `Some`, or panic with `what` after the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store in a temp dir (with the default catalog and the `local` cluster).
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).expect("open store"));
        Self { dir, store }
    }

    pub fn apply(&self, changes: Vec<Change>) {
        self.store
            .apply(
                changes,
                &maasctl::domain::Origin::user("tester", maasctl::domain::Channel::Cli),
            )
            .expect("registry change applies");
    }

    /// A workspace (if new) and a key in it; returns (key id, secret).
    pub fn key(&self, workspace: &str, name: &str) -> (String, String) {
        let reg = self.store.load().unwrap();
        if !reg.workspaces.contains_key(workspace) {
            self.apply(vec![Change::AddWorkspace {
                name: workspace.into(),
                description: String::new(),
            }]);
        }
        let secret = maasctl::domain::secret::generate_secret();
        let id = maasctl::domain::secret::generate_key_id();
        self.apply(vec![Change::CreateKey {
            id: id.clone(),
            workspace: workspace.into(),
            name: name.into(),
            secret_hash: hash_secret(&secret),
            secret_hint: secret_hint(&secret),
        }]);
        (id, secret)
    }

    /// A published marketplace entry and an enabled model in `cluster`.
    pub fn model_in(
        &self,
        cluster: &str,
        name: &str,
        model_id: &str,
        endpoints: Vec<Endpoint>,
        policy: Policy,
    ) {
        let reg = self.store.load().unwrap();
        let mut changes = Vec::new();
        if !reg.market.contains_key(name) {
            changes.push(Change::AddMarket(MarketEntry {
                name: name.into(),
                provider: "Test Provider".into(),
                tags: vec![],
                description: String::new(),
                published: true,
                input_price: None,
                output_price: None,
            }));
        }
        changes.push(Change::CreateModel(ModelSpec {
            name: name.into(),
            cluster: cluster.into(),
            model_id: model_id.into(),
            endpoints,
            policy,
            tags: vec![],
            fallbacks: Vec::new(),
            completion_cap: None,
        }));
        changes.push(Change::SetEnabled {
            name: name.into(),
            enabled: true,
        });
        self.apply(changes);
    }

    pub fn model(&self, name: &str, model_id: &str, endpoints: Vec<Endpoint>, policy: Policy) {
        self.model_in("local", name, model_id, endpoints, policy)
    }

    pub fn revision(&self) -> u64 {
        self.store.revision().unwrap()
    }

    /// A rule on `model` counting `limit` `unit`s a minute for the key
    /// `key_id` of workspace `acme`.
    pub fn key_rule(&self, model: &str, key_id: &str, limit: u32, unit: RuleUnit) {
        self.apply(vec![Change::AddRule {
            model: model.into(),
            spec: RuleSpec {
                target: RuleTarget::ApiKey,
                workspace: "acme".into(),
                key_id: Some(key_id.into()),
                limit,
                duration_secs: 60,
                unit,
            },
        }]);
    }
}

/// Short intervals so tests converge fast.
pub fn fast_config() -> GatewayConfig {
    GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        reload_poll: Duration::from_millis(50),
        report_interval: Duration::from_millis(200),
        stats_interval: Duration::from_millis(50),
        probe_interval: Duration::from_millis(100),
        cooldown: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        upstream_timeout: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(5),
        ..GatewayConfig::default()
    }
}

/// A gateway over a test store plus an HTTP client.
pub struct Gw {
    pub handle: Option<GatewayHandle>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Gw {
    pub async fn start(ts: &TestStore, cfg: GatewayConfig) -> Self {
        let store: Arc<dyn Store> = ts.store.clone();
        let handle = tokio::task::spawn_blocking(move || Gateway::start(cfg, store))
            .await
            .unwrap()
            .expect("gateway starts");
        let base = format!("http://{}", handle.local_addr());
        Self {
            handle: Some(handle),
            base,
            http: client(),
        }
    }

    pub fn handle(&self) -> &GatewayHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST a JSON body with a bearer key.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request reaches the gateway")
    }

    pub async fn chat(&self, key: &str, model: &str) -> reqwest::Response {
        self.post("/v1/chat/completions", key, &chat_body(model))
            .await
    }

    /// Wait until the published counters satisfy `pred`.
    pub async fn wait_stats(
        &self,
        what: &str,
        pred: impl Fn(&StatsSnapshot) -> bool,
    ) -> Arc<StatsSnapshot> {
        let mut rx = self.handle().stats();
        let start = Instant::now();
        loop {
            let cur = rx.borrow_and_update().clone();
            if pred(&cur) {
                return cur;
            }
            let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!(
                    "timed out waiting for counters: {what}; last: {}",
                    serde_json::to_string_pretty(&*cur).unwrap()
                )
            });
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }

    /// Wait until the gateway serves the store's current revision.
    pub async fn wait_applied(&self, ts: &TestStore) {
        let rev = ts.revision();
        wait_for("the gateway to apply the latest revision", || async {
            (self.handle().applied_revision() >= rev).then_some(())
        })
        .await;
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

pub async fn mock(label: &str) -> MockUpstream {
    mock_with(MockConfig {
        label: label.into(),
        ..MockConfig::default()
    })
    .await
}

pub async fn mock_with(cfg: MockConfig) -> MockUpstream {
    MockUpstream::start(cfg)
        .await
        .expect("mock upstream starts")
}

pub fn ep(url: &str) -> Endpoint {
    Endpoint::new(url)
}

pub fn weighted(url: &str, w: u32) -> Endpoint {
    Endpoint {
        weight: Some(w),
        ..Endpoint::new(url)
    }
}

/// A loopback URL where nothing listens (the port was just released).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

/// The `error` object of an OpenAI-shaped error answer, with its status.
pub async fn error_of(res: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.expect("error body is JSON");
    let err = body
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("not an OpenAI error body: {body}"));
    for field in ["message", "type", "code"] {
        assert!(err.get(field).is_some(), "error body lacks {field}: {body}");
    }
    (status, headers, err)
}

/// Which mock answered a chat completion ("Hello from <label>").
pub async fn answered_by(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .trim_start_matches("Hello from ")
        .to_string()
}

/// A test CA and a certificate for 127.0.0.1/localhost signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn test_pki(dir: &std::path::Path) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "maasctl test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&leaf_key, &ca).unwrap();
    let pki = TestPki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap();
    std::fs::write(&pki.cert_file, &pki.cert_pem).unwrap();
    std::fs::write(&pki.key_file, &pki.key_pem).unwrap();
    pki
}

/// The `Content-Length` of an HTTP head (its lines, status line first).
pub fn content_length_of(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    })
}

/// A gateway (`cfg`) over a store with one model `m` (upstream model
/// `m-up`) on one mock upstream and a key of workspace `acme`: the store,
/// the gateway, the mock and the key's secret.
pub async fn one_model(cfg: GatewayConfig) -> (TestStore, Gw, MockUpstream, String) {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "m-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, cfg).await;
    (ts, gw, m, key)
}
