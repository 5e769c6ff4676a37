//! Probes (docs/gateway.md, "Probes"): they never call a route that spends
//! tokens, a configured health path is used, and replicas sharing a store
//! probe each endpoint once per interval together.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use maasctl::domain::{Change, EndpointState, Policy, Probe};
use maasctl::gateway::{Gateway, GatewayConfig};
use maasctl::store::{SqliteStore, Store};
use parking_lot::Mutex;

use crate::support::*;

/// An upstream on loopback that records every request it receives and
/// answers 503 to everything while "down".
struct Recorder {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Method, String)>>>,
    /// When each GET (probe) arrived.
    gets: Arc<Mutex<Vec<Instant>>>,
}

impl Recorder {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gets = Arc::new(Mutex::new(Vec::new()));
        let (u, s, g) = (up.clone(), seen.clone(), gets.clone());
        tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    return;
                };
                let (u, s, g) = (u.clone(), s.clone(), g.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: Request<hyper::body::Incoming>| {
                            let (u, s, g) = (u.clone(), s.clone(), g.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let _ = body.collect().await;
                                if parts.method == Method::GET {
                                    g.lock().push(Instant::now());
                                }
                                s.lock()
                                    .push((parts.method.clone(), parts.uri.path().to_string()));
                                let (status, text) = if !u.load(SeqCst) {
                                    (503, r#"{"error":{"message":"down"}}"#.to_string())
                                } else if parts.method == Method::GET {
                                    (200, r#"{"object":"list","data":[]}"#.to_string())
                                } else {
                                    (200, r#"{"id":"c","object":"chat.completion","created":0,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#.to_string())
                                };
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(text)))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            up,
            seen,
            gets,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, SeqCst);
    }

    fn seen(&self) -> Vec<(Method, String)> {
        self.seen.lock().clone()
    }

    /// GET requests (only probes send them) since the record was cleared.
    fn probes(&self) -> usize {
        self.seen
            .lock()
            .iter()
            .filter(|(m, _)| m == Method::GET)
            .count()
    }

    fn clear(&self) {
        self.seen.lock().clear();
        self.gets.lock().clear();
    }

    /// The shortest time between two probes.
    fn closest_probes(&self) -> Option<Duration> {
        let t = self.gets.lock();
        t.windows(2).map(|w| w[1] - w[0]).min()
    }
}

/// Probes every 100 ms; an ejected endpoint is due at each.
fn probe_config() -> GatewayConfig {
    GatewayConfig {
        eject_min_failures: 2,
        cooldown: Duration::from_millis(50),
        cooldown_max: Duration::from_millis(50),
        ..fast_config()
    }
}

fn state_of(gw: &Gw) -> Option<EndpointState> {
    let s = gw.handle().stats();
    let s = s.borrow();
    s.endpoints.first().map(|e| e.state)
}

/// Send chats until the gateway ejects the endpoint; returns how many.
async fn eject(gw: &Gw, key: &str, model: &str) -> usize {
    let mut sent = 0;
    wait_for("the endpoint to be ejected", || {
        sent += 1;
        async {
            let _ = gw.chat(key, model).await;
            (state_of(gw) == Some(EndpointState::Down)).then_some(())
        }
    })
    .await;
    sent
}

/// Eject, let it be probed (failing) a few times, heal, and bring it back
/// through half-open; returns the requests the upstream saw.
async fn eject_and_heal(probe: Probe) -> Vec<(Method, String)> {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let up = Recorder::start().await;
    let mut e = ep(&up.base_url());
    e.probe = probe;
    ts.model("p", "x", vec![e], Policy::RoundRobin);
    let gw = Gw::start(&ts, probe_config()).await;
    up.set_up(false);
    let chats = eject(&gw, &key, "p").await;
    wait_for("failed probes while down", || async {
        (up.probes() >= 3).then_some(())
    })
    .await;
    assert_eq!(
        state_of(&gw),
        Some(EndpointState::Down),
        "failed probes keep it out"
    );
    up.set_up(true);
    gw.wait_stats("half-open after a successful probe", |s| {
        s.endpoints[0].state == EndpointState::HalfOpen
    })
    .await;
    assert_eq!(gw.chat(&key, "p").await.status(), 200, "the trial");
    gw.wait_stats("back in rotation after the trial", |s| {
        s.endpoints[0].state == EndpointState::Healthy
    })
    .await;
    let seen = up.seen();
    let posts = seen.iter().filter(|(m, _)| m == Method::POST).count();
    assert!(
        posts <= chats + 1,
        "only callers' requests are POSTs: {posts} POSTs for {} chats",
        chats + 1
    );
    gw.stop().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_never_send_a_completion_and_bring_the_endpoint_back_through_half_open() {
    let seen = eject_and_heal(Probe::Models).await;
    let gets: Vec<_> = seen.iter().filter(|(m, _)| m == Method::GET).collect();
    assert!(gets.len() >= 3, "{seen:?}");
    for (m, path) in &seen {
        assert!(
            (m == Method::GET && path == "/v1/models")
                || (m == Method::POST && path == "/v1/chat/completions"),
            "unexpected {m} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_health_path_is_probed_on_the_endpoints_host() {
    let seen = eject_and_heal(Probe::Get("/health".into())).await;
    let gets: Vec<_> = seen
        .iter()
        .filter(|(m, _)| m == Method::GET)
        .map(|(_, p)| p.as_str())
        .collect();
    assert!(gets.len() >= 3, "{seen:?}");
    assert!(gets.iter().all(|p| *p == "/health"), "{gets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_would_spend_tokens_is_refused_naming_the_field() {
    for bad in [
        "/v1/chat/completions",
        "https://x.example/v1/completions/",
        "/embeddings?x=1",
    ] {
        let e = bad.parse::<Probe>().unwrap_err();
        assert!(e.contains("must not spend tokens"), "{bad}: {e}");
    }
    assert_eq!("/health".parse::<Probe>(), Ok(Probe::Get("/health".into())));
    assert_eq!("models".parse::<Probe>(), Ok(Probe::Models));
    // A manifest says it as a string, and export writes it back the same.
    let yaml = "models:\n- name: m\n  model_id: x\n  endpoints:\n  - url: http://h:8000/v1\n    probe: /health\n";
    let m: maasctl::domain::manifest::Manifest = serde_yaml_ng::from_str(yaml).unwrap();
    let out = serde_yaml_ng::to_string(&m).unwrap();
    assert!(out.contains("probe: /health"), "{out}");
    let bad = yaml.replace("/health", "/v1/embeddings");
    let err = serde_yaml_ng::from_str::<maasctl::domain::manifest::Manifest>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must not spend tokens"), "{err}");
    let ts = TestStore::new();
    let mut e = ep("http://127.0.0.1:9/v1");
    e.probe = Probe::Get("/v1/embeddings".into());
    let err = ts
        .store
        .apply(
            vec![Change::CreateModel(maasctl::domain::ModelSpec {
                name: "m".into(),
                cluster: "local".into(),
                model_id: "x".into(),
                endpoints: vec![e.clone()],
                policy: Policy::RoundRobin,
                tags: vec![],
                fallbacks: vec![],
                completion_cap: None,
            })],
            &maasctl::domain::Origin::user("t", maasctl::domain::Channel::Cli),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoints[0].probe") && err.contains("must not spend tokens"),
        "{err}"
    );
    e.probe = Probe::Get("http://other.example:9/health".into());
    let err = ts
        .store
        .apply(
            vec![Change::CreateModel(maasctl::domain::ModelSpec {
                name: "m".into(),
                cluster: "local".into(),
                model_id: "x".into(),
                endpoints: vec![e],
                policy: Policy::RoundRobin,
                tags: vec![],
                fallbacks: vec![],
                completion_cap: None,
            })],
            &maasctl::domain::Origin::user("t", maasctl::domain::Channel::Cli),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoints[0].probe") && err.contains("host"),
        "{err}"
    );
}

/// A second gateway over its own connection to the same SQLite file (as a
/// second process on the host would have).
async fn replica(ts: &TestStore, cfg: GatewayConfig) -> Gw {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(ts.dir.path()).unwrap());
    let handle = tokio::task::spawn_blocking(move || Gateway::start(cfg, store))
        .await
        .unwrap()
        .expect("replica starts");
    let base = format!("http://{}", handle.local_addr());
    Gw {
        handle: Some(handle),
        base,
        http: client(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_probe_a_down_endpoint_once_per_interval_together() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let up = Recorder::start().await;
    ts.model("p", "x", vec![ep(&up.base_url())], Policy::RoundRobin);
    let interval = Duration::from_millis(200);
    let cfg = || GatewayConfig {
        probe_interval: interval,
        ..probe_config()
    };
    let a = replica(&ts, cfg()).await;
    let b = replica(&ts, cfg()).await;
    up.set_up(false);
    eject(&a, &key, "p").await;
    eject(&b, &key, "p").await;
    // Let both settle into probing, then count over K intervals.
    wait_for("probes while down", || async {
        (up.probes() >= 4).then_some(())
    })
    .await;
    up.clear();
    let k = 15;
    let start = Instant::now();
    tokio::time::sleep(interval * k).await;
    let probes = up.probes();
    let elapsed = start.elapsed();
    let intervals = (elapsed.as_millis() / interval.as_millis()) as usize;
    eprintln!("{probes} probes in {intervals} intervals of {interval:?} over two replicas");
    assert!(
        probes <= intervals + 1,
        "{probes} probes in {intervals} intervals over two replicas (unshared would be {})",
        2 * intervals
    );
    // The lease (95% of an interval) keeps any two probes most of an
    // interval apart, and sharing does not stop the probing. A loaded
    // machine only delays ticks (fewer probes, wider gaps): these hold
    // however busy it is, where counting `intervals - 1` probes did not.
    let closest = up.closest_probes().expect("probes while down");
    assert!(
        closest >= interval / 2,
        "two probes {closest:?} apart, within one interval of {interval:?}"
    );
    assert!(
        probes * 2 >= intervals,
        "{probes} probes in {intervals} intervals: sharing stopped the probing"
    );
    assert_eq!(state_of(&a), Some(EndpointState::Down));
    assert_eq!(state_of(&b), Some(EndpointState::Down));
    // Healed: both go half-open (one probed, the other applied its
    // result), and each one's trial brings it back.
    up.set_up(true);
    for gw in [&a, &b] {
        gw.wait_stats("half-open on both replicas", |s| {
            s.endpoints[0].state == EndpointState::HalfOpen
        })
        .await;
    }
    for gw in [&a, &b] {
        assert_eq!(gw.chat(&key, "p").await.status(), 200);
        gw.wait_stats("healthy on both replicas", |s| {
            s.endpoints[0].state == EndpointState::Healthy
        })
        .await;
    }
    for (m, path) in up.seen() {
        assert!(
            (m == Method::GET && path == "/v1/models")
                || (m == Method::POST && path == "/v1/chat/completions"),
            "unexpected {m} {path}"
        );
    }
    a.stop().await;
    b.stop().await;
}
