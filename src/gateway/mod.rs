//! The OpenAI-compatible gateway and its counters (`docs/gateway.md`; the request path file by file in `docs/architecture.md`).
//!
//! ```text
//! Gateway::start(cfg, store)
//!   ├─ worker threads (one per core): accept from one shared socket (each connection
//!   │    placed on the worker serving the fewest), current-thread
//!   │    runtime, own upstream pools; each connection's task (server::driver)
//!   │    reads a head → proxy::on_head, the body → proxy::on_body
//!   └─ control thread: reload on revision change, report, probe, publish stats
//! ```
//!
//! Embedding (the console, tests): `Gateway::start` is synchronous (it
//! loads the registry, binds and spawns its threads, then returns);
//! `GatewayHandle::stats()` is a `watch` of counter snapshots;
//! `GatewayHandle::shutdown().await` (or `shutdown_blocking()`) stops it
//! gracefully. Dropping the handle also stops it, without waiting.
//!
//! The folders follow a request: [`server`] accepts and speaks HTTP/1.1
//! to the caller, [`proxy`] runs the phases (authenticate → find `model`
//! → route → [`limiter`] → forward), [`upstream`] reaches the endpoint (balancer, pools, h1 codec,
//! TLS, health), [`telemetry`] counts and publishes. [`snapshot`] is what
//! the request path reads; [`control`] is everything off it.

pub mod budget;
pub mod config;
pub mod control;
pub mod limiter;
pub mod proxy;
pub mod server;
pub mod snapshot;
pub mod telemetry;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use tokio::sync::watch;

pub use config::{GatewayConfig, ListenerTls, RateLimitHeaders};
pub use telemetry::events::{RequestEvent, TailPage};
pub use telemetry::stats::{EndpointStats, Event, EventKind, RuleStats, StatsSnapshot, Totals};

use crate::domain::now_ms;
use crate::store::{Store, StoreError};
use control::Control;
use limiter::Limiter;
use proxy::{GatewayState, Worker};
use snapshot::Builder;
use telemetry::conns::ConnCounters;
use telemetry::events::Events;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot load the registry: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener TLS: {0}")]
    Tls(String),
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    #[error("cannot start the gateway's threads: {0}")]
    Thread(std::io::Error),
}

/// Starts gateways.
pub struct Gateway;

impl Gateway {
    /// Load the registry, bind the listeners and start the worker and
    /// control threads. Blocking (a store read and binds): call it at
    /// start-up or from `spawn_blocking`.
    pub fn start(cfg: GatewayConfig, store: Arc<dyn Store>) -> Result<GatewayHandle, GatewayError> {
        check(&cfg)?;
        let tls = match &cfg.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(
                server::tls::server_config(&t.cert, &t.key).map_err(GatewayError::Tls)?,
            )),
            None => None,
        };
        let limiter = cfg.limiter.clone().unwrap_or_else(Limiter::local);
        let events = Arc::new(Events::default());
        let mut builder = Builder::new(
            cfg.workers,
            cfg.cluster.clone(),
            cfg.ca_file.clone(),
            cfg.connect_timeout,
            limiter.clone(),
            events.clone(),
        );
        let registry = store.load()?;
        let snap = builder.build(&registry);
        let listeners =
            server::bind(cfg.listen, cfg.workers).map_err(|source| GatewayError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listeners[0].local_addr().map_err(GatewayError::Thread)?;
        let (metrics_listener, metrics_addr) = bind_metrics(cfg.metrics_listen)?;
        let listen = addr.to_string();

        let started_ms = now_ms();
        let (stats_tx, stats_rx) = watch::channel(Arc::new(StatsSnapshot {
            taken_ms: started_ms,
            started_ms,
            listen: listen.clone(),
            revision: snap.revision,
            limiter: limiter.mode(),
            ..Default::default()
        }));
        let shared = Arc::new(GatewayState {
            cfg: cfg.clone(),
            snapshot: ArcSwap::from_pointee(snap),
            limiter,
            events,
            stats: stats_rx.clone(),
            budgets: budget::Gate::default(),
            conns: ConnCounters::new(
                server::limits::connection_cap(cfg.max_connections),
                cfg.workers,
            ),
        });
        let (stop_workers, workers_rx) = watch::channel(false);
        let (stop_control, control_rx) = watch::channel(false);
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(GatewayError::Thread)
        };

        let mut handle = GatewayHandle {
            addr,
            metrics_addr,
            stats: stats_rx,
            shared: shared.clone(),
            stop_workers,
            stop_control,
            workers: Vec::new(),
            control: None,
        };
        let registry = Arc::new(server::Registry::new(cfg.workers));
        let (handoff, inboxes) = server::Handoff::new(cfg.workers);
        for ((id, listener), inbox) in listeners.into_iter().enumerate().zip(inboxes) {
            let rt = runtime()?;
            let worker = Arc::new(Worker {
                id,
                shared: shared.clone(),
            });
            let (tls, stop, grace) = (tls.clone(), workers_rx.clone(), cfg.shutdown_grace);
            let peers = server::Peers {
                registry: registry.clone(),
                handoff: handoff.clone(),
                inbox,
            };
            let t = std::thread::Builder::new()
                .name(format!("gateway-worker-{id}"))
                .spawn(move || {
                    rt.block_on(server::run_worker(
                        worker, listener, tls, peers, stop, grace,
                    ))
                })
                .map_err(GatewayError::Thread)?;
            handle.workers.push(t);
        }
        if let Some(l) = metrics_listener {
            let rt = runtime()?;
            let (shared, stop) = (shared.clone(), workers_rx.clone());
            let t = std::thread::Builder::new()
                .name("gateway-metrics".into())
                .spawn(move || rt.block_on(server::metrics::serve(l, shared, stop)))
                .map_err(GatewayError::Thread)?;
            handle.workers.push(t);
        }
        let control = Control {
            shared,
            builder,
            store,
            stats_tx,
            report_id: format!("{}:{}:{listen}", hostname(), std::process::id()),
            listen,
            started_ms,
        };
        let rt = runtime()?;
        let t = std::thread::Builder::new()
            .name("gateway-control".into())
            .spawn(move || rt.block_on(control.run(control_rx)))
            .map_err(GatewayError::Thread)?;
        handle.control = Some(t);
        Ok(handle)
    }
}

/// Refuse a configuration that cannot work, naming the setting.
fn check(cfg: &GatewayConfig) -> Result<(), GatewayError> {
    if cfg.workers == 0 {
        return Err(GatewayError::Config("workers must be at least 1".into()));
    }
    if cfg.body_limit == 0 {
        return Err(GatewayError::Config(
            "the body size limit must be at least 1 byte".into(),
        ));
    }
    if cfg.max_connections == Some(0) {
        return Err(GatewayError::Config(
            "the connection cap (max connections) must be at least 1".into(),
        ));
    }
    for (name, d) in [
        ("reload poll", cfg.reload_poll),
        ("report interval", cfg.report_interval),
        ("stats interval", cfg.stats_interval),
        ("probe interval", cfg.probe_interval),
        ("body timeout", cfg.body_timeout),
        ("head timeout", cfg.head_timeout),
        ("connect timeout", cfg.connect_timeout),
        ("upstream timeout", cfg.upstream_timeout),
    ] {
        if d.is_zero() {
            return Err(GatewayError::Config(format!(
                "the {name} must be longer than 0"
            )));
        }
    }
    Ok(())
}

/// The `--metrics-listen` listener and its address, when asked for.
fn bind_metrics(
    addr: Option<SocketAddr>,
) -> Result<(Option<std::net::TcpListener>, Option<SocketAddr>), GatewayError> {
    let Some(a) = addr else {
        return Ok((None, None));
    };
    let l = server::metrics::bind(a).map_err(|source| GatewayError::Bind { addr: a, source })?;
    let bound = l.local_addr().map_err(GatewayError::Thread)?;
    Ok((Some(l), Some(bound)))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A running gateway.
pub struct GatewayHandle {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stats: watch::Receiver<Arc<StatsSnapshot>>,
    shared: Arc<GatewayState>,
    stop_workers: watch::Sender<bool>,
    stop_control: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// The address it listens on (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counter snapshots, published a few times a second when something changed.
    pub fn stats(&self) -> watch::Receiver<Arc<StatsSnapshot>> {
        self.stats.clone()
    }

    /// Where `/metrics` is served without a token (`--metrics-listen`), as bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The registry revision the gateway is serving.
    pub fn applied_revision(&self) -> u64 {
        self.shared.snapshot.load().revision
    }

    /// A cloneable read-only view for the admin API.
    /// Its events (the live tail reads the request events through it).
    pub fn events(&self) -> Arc<Events> {
        self.shared.events.clone()
    }

    pub fn view(&self) -> GatewayView {
        GatewayView {
            addr: self.addr,
            stats: self.stats.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Stop gracefully: stop accepting, let requests in flight finish (up
    /// to `shutdown_grace`), publish the final counters, remove the report.
    pub async fn shutdown(self) {
        let _ = tokio::task::spawn_blocking(move || self.shutdown_blocking()).await;
    }

    /// [`shutdown`](Self::shutdown) for synchronous callers.
    pub fn shutdown_blocking(mut self) {
        let _ = self.stop_workers.send(true);
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
        let _ = self.stop_control.send(true);
        if let Some(t) = self.control.take() {
            let _ = t.join();
        }
    }
}

/// What the admin API reads of a running gateway: its address, counters
/// and the limiter's view of a key. Cloneable and read-only, so it can live
/// in the admin server's handlers while the [`GatewayHandle`] keeps the
/// gateway's lifetime.
#[derive(Clone)]
pub struct GatewayView {
    addr: SocketAddr,
    stats: watch::Receiver<Arc<StatsSnapshot>>,
    shared: Arc<GatewayState>,
}

impl GatewayView {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster it serves (`None`: every model).
    pub fn cluster(&self) -> Option<&str> {
        self.shared.cfg.cluster.as_deref()
    }

    /// Whether the listener serves TLS.
    pub fn tls(&self) -> bool {
        self.shared.cfg.tls.is_some()
    }

    pub fn stats(&self) -> watch::Receiver<Arc<StatsSnapshot>> {
        self.stats.clone()
    }

    /// `/metrics` in Prometheus text (the admin API's `/admin/v1/metrics`).
    pub fn metrics(&self) -> String {
        proxy::metrics_text(&self.shared)
    }

    /// The live tail: the newest `limit` request events after `since`.
    pub fn tail(&self, since: u64, limit: usize) -> TailPage {
        self.shared.events.requests.since(since, limit)
    }

    pub fn applied_revision(&self) -> u64 {
        self.shared.snapshot.load().revision
    }

    /// The limiter's view of `key_id` (of `workspace`) on `model`: which
    /// rules apply, how full they are, which would reject the next request.
    /// Counts nothing. `None` when this gateway does not serve the model
    /// (unknown, disabled, or entered in a cluster it does not serve).
    pub async fn explain(
        &self,
        model: &str,
        key_id: &str,
        workspace: &str,
    ) -> Option<limiter::Explanation> {
        let snap = self.shared.snapshot.load_full();
        let snapshot::RouteRef::Serve(i) = snap.route(model)? else {
            return None;
        };
        let limits = &snap.routes[*i].limits;
        Some(self.shared.limiter.explain(limits, key_id, workspace).await)
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        let _ = self.stop_workers.send(true);
        let _ = self.stop_control.send(true);
    }
}
