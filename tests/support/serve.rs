//! `maasctl serve` as a child process over a temp store, with its log
//! captured, plus the store seeding and HTTP helpers the end-to-end rate
//! limit tests need.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maasctl::demo::upstream::{MockConfig, MockUpstream};
use maasctl::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
use maasctl::domain::{Change, Endpoint, MarketEntry, ModelSpec, Policy, RuleSpec, RuleTarget};
use maasctl::store::{SqliteStore, Store};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A temp store with a model `m` served by a mock upstream.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub upstream: MockUpstream,
}

impl Site {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).expect("open store"));
        let upstream = MockUpstream::start(MockConfig {
            label: "mock".into(),
            ..MockConfig::default()
        })
        .await
        .expect("mock upstream starts");
        let site = Self {
            dir,
            store,
            upstream,
        };
        site.apply(vec![
            Change::AddMarket(MarketEntry {
                name: "m".into(),
                provider: "Test".into(),
                tags: vec![],
                description: String::new(),
                published: true,
                input_price: None,
                output_price: None,
            }),
            Change::CreateModel(ModelSpec {
                name: "m".into(),
                cluster: "local".into(),
                model_id: "upstream-m".into(),
                endpoints: vec![Endpoint::new(site.upstream.base_url())],
                policy: Policy::RoundRobin,
                tags: vec![],
                fallbacks: Vec::new(),
                completion_cap: None,
            }),
            Change::SetEnabled {
                name: "m".into(),
                enabled: true,
            },
        ]);
        site
    }

    pub fn apply(&self, changes: Vec<Change>) {
        self.store
            .apply(
                changes,
                &maasctl::domain::Origin::user("tester", maasctl::domain::Channel::Cli),
            )
            .expect("registry change applies");
    }

    /// A key in `workspace` (created if new): (id, secret).
    pub fn key(&self, workspace: &str) -> (String, String) {
        if !self
            .store
            .load()
            .unwrap()
            .workspaces
            .contains_key(workspace)
        {
            self.apply(vec![Change::AddWorkspace {
                name: workspace.into(),
                description: String::new(),
            }]);
        }
        let (id, secret) = (generate_key_id(), generate_secret());
        self.apply(vec![Change::CreateKey {
            id: id.clone(),
            workspace: workspace.into(),
            name: format!("k{}", &id[4..]),
            secret_hash: hash_secret(&secret),
            secret_hint: secret_hint(&secret),
        }]);
        (id, secret)
    }

    /// Add a rule to model `m`; returns its id.
    pub fn rule(
        &self,
        workspace: &str,
        key_id: Option<&str>,
        limit: u32,
        duration_secs: u32,
    ) -> u64 {
        let target = if key_id.is_some() {
            RuleTarget::ApiKey
        } else {
            RuleTarget::Workspace
        };
        self.apply(vec![Change::AddRule {
            model: "m".into(),
            spec: RuleSpec {
                target,
                workspace: workspace.into(),
                key_id: key_id.map(str::to_owned),
                limit,
                duration_secs,
                unit: Default::default(),
            },
        }]);
        let reg = self.store.load().unwrap();
        reg.models["m"].rules.iter().map(|r| r.id).max().unwrap()
    }

    pub fn revision(&self) -> u64 {
        self.store.revision().unwrap()
    }
}

/// A running `maasctl serve`; killed on drop.
pub struct Serve {
    child: Child,
    pub base: String,
    /// `http://ADDR/metrics` when started with `--metrics-listen`.
    pub metrics: Option<String>,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// Start `maasctl --data-dir <dir> serve --listen 127.0.0.1:0 <extra>`
    /// and wait for the address it prints.
    pub async fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_maasctl"))
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .args(["--admin-listen", "off"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("maasctl runs");
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(DEADLINE, out.next_line())
            .await
            .expect("serve prints its address")
            .unwrap()
            .unwrap_or_else(|| panic!("serve exited: {}", log.lock().unwrap()));
        let base = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let mut metrics = None;
        if extra.contains(&"--metrics-listen") {
            let line = tokio::time::timeout(DEADLINE, out.next_line())
                .await
                .expect("serve prints its metrics address")
                .unwrap()
                .unwrap_or_default();
            metrics = line
                .strip_prefix("maasctl metrics listening on ")
                .map(str::to_owned);
            assert!(metrics.is_some(), "unexpected second line: {line}");
        }
        Self {
            child,
            base,
            metrics,
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `/healthz` as JSON.
    pub async fn health(&self, http: &reqwest::Client) -> serde_json::Value {
        http.get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz answers")
            .json()
            .await
            .expect("healthz is JSON")
    }

    /// Wait until `/healthz` reports the limiter `mode`.
    pub async fn wait_limiter(&self, http: &reqwest::Client, mode: &str) {
        let start = Instant::now();
        loop {
            let h = self.health(http).await;
            if h["limiter"] == mode {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "limiter still {} (want {mode}); log:\n{}",
                h["limiter"],
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until it serves `revision` (its report in the store says so).
    pub async fn wait_revision(&self, site: &Site, revision: u64) {
        let start = Instant::now();
        let listen = self.base.trim_start_matches("http://").to_owned();
        while !site
            .store
            .reports()
            .unwrap()
            .iter()
            .any(|r| r.listen == listen && r.applied_revision >= revision)
        {
            assert!(
                start.elapsed() < DEADLINE,
                "revision {revision} not applied"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POST a chat completion for model `m`; the status.
pub async fn chat(http: &reqwest::Client, base: &str, secret: &str) -> u16 {
    http.post(format!("{base}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("request to {base} failed: {e}"))
}
