//! The routing snapshot: an immutable view of the registry built for the
//! request path, swapped atomically when the store's revision moves.
//!
//! A request takes the current snapshot once and keeps it until its answer
//! is done, so a reload never changes a request midway and never drops one.
//! Lookups are hash-map reads (key hash → key, model name → route). What
//! must outlive a reload lives outside a snapshot and is reused by the
//! [`Builder`]: counters (cumulative since start), endpoint health (what the
//! gateway learned), connection pools (warm keep-alive connections), limiter
//! windows (in the limiter).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::HeaderValue;
use parking_lot::Mutex;

use crate::domain::{EndpointState, Model, Policy, Probe, Registry};
use crate::gateway::limiter::{DEFAULT_COMPLETION_CAP, Limiter, ModelLimits};
use crate::gateway::telemetry::counters::Counters;
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::ledger::{LedgerBook, UsageCell};
use crate::gateway::telemetry::stats::EventKind;
use crate::gateway::upstream::balancer::{Avail, Balancer};
use crate::gateway::upstream::health::{EjectRule, Health, Transition, Why};
use crate::gateway::upstream::tls;
use crate::gateway::upstream::{Upstream, UpstreamTarget};

/// Maps keyed by what the caller cannot choose the set of (SHA-256 digests,
/// registry model names) use the Fx hash: the maps are built by the
/// operator, so hash flooding has nothing to collide with.
type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// A platform key as the request path sees it.
#[derive(Debug)]
pub struct KeyRt {
    pub id: String,
    /// `id` again, shared: the live tail's event takes a reference, not a copy.
    pub tail_id: Arc<str>,
    /// Index into [`Snapshot::workspaces`].
    pub workspace: usize,
    pub revoked: bool,
    pub counters: Arc<Counters>,
}

#[derive(Debug)]
pub struct WorkspaceRt {
    pub name: String,
    pub counters: Arc<Counters>,
}

/// What a model name leads to.
#[derive(Debug)]
pub enum RouteRef {
    /// Served: index into [`Snapshot::routes`].
    Serve(usize),
    /// Known but disabled.
    Disabled,
    /// Entered in another cluster, served by another gateway at this access path.
    Elsewhere(String),
}

/// An enabled model this gateway serves.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// `name` again, shared, for the live tail's event.
    pub tail_name: Arc<str>,
    /// The model ID as a JSON string token (quotes included), spliced into bodies.
    pub model_id_json: Bytes,
    pub balancer: Balancer,
    pub endpoints: Vec<EndpointRt>,
    pub limits: ModelLimits,
    pub counters: Arc<Counters>,
    /// The usage ledger's cell of each key (index of [`Snapshot::key_list`]).
    pub usage: Box<[Arc<UsageCell>]>,
    /// The `x-maasctl-model` header of the answers this model gives.
    pub name_header: HeaderValue,
    /// The routes of the model's fallback models served here, in order
    /// (docs/gateway.md, "Fallback models").
    pub fallbacks: Vec<usize>,
    /// Tokens a token rule reserves for the completion when the request
    /// names no cap: the model's `completion_cap`, else
    /// [`DEFAULT_COMPLETION_CAP`] (docs/rate-limits.md, "Token rules").
    pub completion_cap: u64,
}

impl Route {
    /// Whether endpoint `i` may take a request now.
    #[inline]
    pub fn avail(&self, i: usize) -> Avail {
        let e = &self.endpoints[i];
        if e.drain || e.upstream.is_err() || self.balancer.weight(i) == 0 {
            return Avail::Never;
        }
        match e.health.state() {
            // Unknown (never contacted) is in rotation until evidence says otherwise.
            EndpointState::Healthy | EndpointState::Unknown => Avail::Healthy,
            // Half-open: one trial at a time.
            EndpointState::HalfOpen if e.health.in_rotation() => Avail::Healthy,
            // Ejected, or half-open with its trial in flight: last resort.
            EndpointState::HalfOpen | EndpointState::Down => Avail::Down,
            EndpointState::Cooling => Avail::Cooling,
            // (Draining and drained come from the route, not the health.)
            EndpointState::Disabled | EndpointState::Draining | EndpointState::Drained => {
                Avail::Never
            }
        }
    }

    /// When no endpoint is in rotation: the ejected one that failed least
    /// recently, which keeps serving (never all endpoints out at once).
    pub fn last_resort(&self) -> Option<usize> {
        let n = self.endpoints.len();
        if (0..n).any(|i| matches!(self.avail(i), Avail::Healthy | Avail::Cooling)) {
            return None;
        }
        (0..n)
            .filter(|&i| self.avail(i) == Avail::Down)
            .min_by_key(|&i| self.endpoints[i].health.last_failure())
    }

    /// Endpoint `i`'s state and why, as the report and the counters show it.
    pub fn health_of(&self, i: usize) -> (EndpointState, Why) {
        let e = &self.endpoints[i];
        if e.drain {
            // Drained by the operator: draining while requests are in flight.
            let n = e.counters.in_flight_now();
            let (state, reason) = if n > 0 {
                (
                    EndpointState::Draining,
                    format!("drained by the operator; {n} request(s) still in flight"),
                )
            } else {
                (
                    EndpointState::Drained,
                    "drained by the operator".to_string(),
                )
            };
            let why = Why {
                reason: Some(reason),
                ..Why::default()
            };
            return (state, why);
        }
        let h = &e.health;
        let (state, mut why) = (h.state(), h.why());
        if state == EndpointState::Down && self.last_resort() == Some(i) {
            let was = why.reason.take().unwrap_or_default();
            why.reason = Some(format!(
                "all endpoints out: serving through the least recently failed ({was})"
            ));
        }
        (state, why)
    }
}

/// One upstream endpoint of a route.
#[derive(Debug)]
pub struct EndpointRt {
    pub index: usize,
    pub url: String,
    /// `#index url`, shared, for the live tail's event.
    pub tail_label: Arc<str>,
    pub target: UpstreamTarget,
    /// `Bearer <endpoint key>`, marked sensitive; `None` strips the caller's header.
    pub auth: Option<HeaderValue>,
    pub weight: Option<u32>,
    pub probe: Probe,
    /// Drained by the operator: never picked; requests in flight finish.
    pub drain: bool,
    pub health: Arc<Health>,
    pub counters: Arc<Counters>,
    /// The connection pools, or why none could be made (a bad CA file).
    pub upstream: Result<Arc<Upstream>, String>,
}

/// Everything the request path reads, at one registry revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: u64,
    pub gateway: Arc<Counters>,
    keys: FastMap<[u8; 32], usize>,
    pub key_list: Vec<KeyRt>,
    pub workspaces: Vec<WorkspaceRt>,
    names: FastMap<Box<str>, RouteRef>,
    pub routes: Vec<Route>,
    /// `GET /v1/models`, rendered once per reload.
    pub models_body: Bytes,
    /// Where a finished request's event goes (the live tail).
    pub events: Arc<Events>,
    /// The registry's budgets (the control thread checks them; the
    /// request path reads `gateway::budget::Gate`).
    pub budgets: Arc<[crate::domain::budget::Budget]>,
}

impl Snapshot {
    #[inline]
    pub fn key(&self, hash: &[u8; 32]) -> Option<usize> {
        self.keys.get(hash).copied()
    }

    #[inline]
    pub fn route(&self, name: &str) -> Option<&RouteRef> {
        self.names.get(name)
    }
}

/// The snapshot as one worker thread holds it: an extra `Arc` layer whose
/// count only that thread touches, so taking the snapshot for a request
/// does not bounce the shared count between cores. Rebuilt when the
/// gateway swaps in a new snapshot.
#[derive(Debug)]
pub struct Local(Arc<Snapshot>);

impl std::ops::Deref for Local {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

thread_local! {
    static LOCAL: std::cell::RefCell<Option<Arc<Local>>> = const { std::cell::RefCell::new(None) };
}

impl Local {
    /// The current snapshot of `current`, through this thread's cache.
    pub fn current(current: &arc_swap::ArcSwap<Snapshot>) -> Arc<Local> {
        let now = current.load();
        LOCAL.with(|cache| {
            let mut cache = cache.borrow_mut();
            match &*cache {
                Some(l) if Arc::ptr_eq(&l.0, &now) => l.clone(),
                _ => {
                    let l = Arc::new(Local(arc_swap::Guard::into_inner(now)));
                    *cache = Some(l.clone());
                    l
                }
            }
        })
    }
}

/// Counters of models, keys and workspaces, kept for the gateway's lifetime
/// (a model disabled or deleted keeps the totals callers saw).
#[derive(Debug)]
pub struct CounterBook {
    shards: usize,
    pub gateway: Arc<Counters>,
    maps: Mutex<BookMaps>,
}

#[derive(Debug, Default)]
struct BookMaps {
    models: BTreeMap<String, Arc<Counters>>,
    keys: BTreeMap<String, Arc<Counters>>,
    workspaces: BTreeMap<String, Arc<Counters>>,
}

/// Which kind of subject.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Model,
    Key,
    Workspace,
}

impl CounterBook {
    pub fn new(shards: usize) -> Self {
        Self {
            shards,
            gateway: Arc::new(Counters::new(shards)),
            maps: Mutex::default(),
        }
    }

    fn get(&self, kind: Subject, name: &str) -> Arc<Counters> {
        let mut maps = self.maps.lock();
        let map = match kind {
            Subject::Model => &mut maps.models,
            Subject::Key => &mut maps.keys,
            Subject::Workspace => &mut maps.workspaces,
        };
        map.entry(name.to_string())
            .or_insert_with(|| Arc::new(Counters::new(self.shards)))
            .clone()
    }

    /// Every subject of a kind with its counters (for the sampler).
    pub fn all(&self, kind: Subject) -> Vec<(String, Arc<Counters>)> {
        let maps = self.maps.lock();
        let map = match kind {
            Subject::Model => &maps.models,
            Subject::Key => &maps.keys,
            Subject::Workspace => &maps.workspaces,
        };
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Identity of an endpoint across reloads.
type EndpointKey = (String, usize, String);

/// Identity of a connection pool: the origin and the CA files trusted
/// (with their modification time and size, so an edited CA file is re-read).
type PoolKey = (String, Option<(PathBuf, Option<(SystemTime, u64)>)>);

/// Builds snapshots, carrying over what must outlive a reload.
pub struct Builder {
    pub workers: usize,
    pub cluster: Option<String>,
    pub global_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub limiter: Arc<Limiter>,
    pub book: Arc<CounterBook>,
    pub ledger: Arc<LedgerBook>,
    pub events: Arc<Events>,
    health: HashMap<EndpointKey, Arc<Health>>,
    endpoint_counters: HashMap<EndpointKey, Arc<Counters>>,
    pools: HashMap<PoolKey, Result<Arc<Upstream>, String>>,
}

fn file_stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Builder {
    pub fn new(
        workers: usize,
        cluster: Option<String>,
        global_ca: Option<PathBuf>,
        connect_timeout: Duration,
        limiter: Arc<Limiter>,
        events: Arc<Events>,
    ) -> Self {
        Self {
            workers,
            cluster,
            global_ca,
            connect_timeout,
            limiter,
            book: Arc::new(CounterBook::new(workers)),
            ledger: Arc::default(),
            events,
            health: HashMap::new(),
            endpoint_counters: HashMap::new(),
            pools: HashMap::new(),
        }
    }

    fn serves(&self, m: &Model) -> bool {
        self.cluster.as_deref().is_none_or(|c| c == m.spec.cluster)
    }

    /// Build the snapshot of `reg`.
    pub fn build(&mut self, reg: &Registry) -> Snapshot {
        let mut workspaces = Vec::new();
        let mut ws_index = HashMap::new();
        for name in reg.workspaces.keys() {
            ws_index.insert(name.clone(), workspaces.len());
            workspaces.push(WorkspaceRt {
                name: name.clone(),
                counters: self.book.get(Subject::Workspace, name),
            });
        }
        let mut keys = FastMap::default();
        let mut key_list = Vec::new();
        for k in reg.keys.values() {
            let (Ok(bytes), Some(&ws)) = (hex::decode(&k.secret_hash), ws_index.get(&k.workspace))
            else {
                tracing::warn!(
                    "key {} has an unreadable hash or no workspace; it cannot authenticate",
                    k.id
                );
                continue;
            };
            let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            keys.insert(hash, key_list.len());
            key_list.push(KeyRt {
                id: k.id.clone(),
                tail_id: Arc::from(k.id.as_str()),
                workspace: ws,
                revoked: k.is_revoked(),
                counters: self.book.get(Subject::Key, &k.id),
            });
        }

        let ledger_keys: Vec<(&str, &str)> = key_list
            .iter()
            .map(|k| (k.id.as_str(), workspaces[k.workspace].name.as_str()))
            .collect();
        let mut names = FastMap::default();
        let mut routes = Vec::new();
        let mut live_rules = HashSet::new();
        let mut live_endpoints = HashSet::new();
        let mut live_pools = HashSet::new();
        let mut listed = Vec::new();
        for m in reg.models.values() {
            let name: Box<str> = m.spec.name.as_str().into();
            if !self.serves(m) {
                let path = reg
                    .clusters
                    .get(&m.spec.cluster)
                    .map(|c| c.access_path())
                    .unwrap_or_else(|| format!("the gateway of cluster '{}'", m.spec.cluster));
                names.insert(name, RouteRef::Elsewhere(path));
                continue;
            }
            if !m.enabled {
                names.insert(name, RouteRef::Disabled);
                continue;
            }
            live_rules.extend(m.rules.iter().map(|r| r.id));
            listed.push(serde_json::json!({
                "id": m.spec.name,
                "object": "model",
                "created": m.created,
                "owned_by": reg.market.get(&m.spec.name).map(|e| e.provider.as_str()).unwrap_or("maas"),
            }));
            names.insert(name, RouteRef::Serve(routes.len()));
            let mut route = self.route(m, &mut live_endpoints, &mut live_pools);
            route.usage = self.ledger.cells(&m.spec.name, &ledger_keys);
            routes.push(route);
        }
        self.ledger.set_prices(
            reg.market
                .iter()
                .filter_map(|(name, e)| Some((name.clone(), e.prices()?)))
                .collect(),
        );
        resolve_fallbacks(reg, &names, &mut routes);
        self.limiter.retain(&live_rules);
        self.health.retain(|k, _| live_endpoints.contains(k));
        self.endpoint_counters
            .retain(|k, _| live_endpoints.contains(k));
        self.pools.retain(|k, _| live_pools.contains(k));
        let models_body =
            serde_json::to_vec(&serde_json::json!({"object": "list", "data": listed}))
                .map(Bytes::from)
                .unwrap_or_default();
        Snapshot {
            budgets: reg.budgets.values().cloned().collect(),
            revision: reg.revision,
            gateway: self.book.gateway.clone(),
            keys,
            key_list,
            workspaces,
            names,
            routes,
            models_body,
            events: self.events.clone(),
        }
    }

    fn route(
        &mut self,
        m: &Model,
        live: &mut HashSet<EndpointKey>,
        live_pools: &mut HashSet<PoolKey>,
    ) -> Route {
        let weighted = m.spec.policy == Policy::Weighted;
        let weights: Vec<u32> = m
            .spec
            .endpoints
            .iter()
            .map(|e| if weighted { e.weight.unwrap_or(0) } else { 1 })
            .collect();
        let mut endpoints = Vec::with_capacity(m.spec.endpoints.len());
        for (index, ep) in m.spec.endpoints.iter().enumerate() {
            let key: EndpointKey = (m.spec.name.clone(), index, ep.url.clone());
            live.insert(key.clone());
            let health = self
                .health
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Health::new(ep.disabled)))
                .clone();
            health.set_disabled(ep.disabled);
            let counters = self
                .endpoint_counters
                .entry(key)
                .or_insert_with(|| Arc::new(Counters::new(self.workers)))
                .clone();
            let target = UpstreamTarget::parse(&ep.url);
            let upstream = match &target {
                Ok(t) => self.pool(t, ep.ca_file.as_deref().map(Path::new), live_pools),
                Err(e) => Err(e.clone()),
            };
            if let Err(reason) = &upstream
                && let Some(Transition::WentDown(r)) = health.eject(reason, &EjectRule::default())
            {
                self.events.push(
                    EventKind::EndpointDown,
                    Some(&m.spec.name),
                    None,
                    format!("endpoint {index} ({}) cannot be used: {r}", ep.url),
                );
            }
            let auth = ep.api_key.as_ref().and_then(|k| {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok()?;
                v.set_sensitive(true);
                Some(v)
            });
            endpoints.push(EndpointRt {
                index,
                url: ep.url.clone(),
                tail_label: Arc::from(format!("#{index} {}", ep.url)),
                // A URL that does not parse has no pool either: it is never picked.
                target: target.unwrap_or_else(|_| {
                    UpstreamTarget::parse("http://invalid.invalid").expect("static URL parses")
                }),
                auth,
                weight: ep.weight,
                probe: ep.probe.clone(),
                drain: ep.drain,
                health,
                counters,
                upstream,
            });
        }
        Route {
            name: m.spec.name.clone(),
            tail_name: Arc::from(m.spec.name.as_str()),
            model_id_json: Bytes::from(serde_json::to_vec(&m.spec.model_id).unwrap_or_default()),
            balancer: Balancer::new(m.spec.policy, &weights),
            endpoints,
            limits: self.limiter.compile(m),
            counters: self.book.get(Subject::Model, &m.spec.name),
            usage: Box::default(),
            name_header: HeaderValue::from_str(&m.spec.name)
                .unwrap_or_else(|_| HeaderValue::from_static("-")),
            fallbacks: Vec::new(),
            completion_cap: m
                .spec
                .completion_cap
                .map_or(DEFAULT_COMPLETION_CAP, u64::from),
        }
    }

    /// The pools for an origin and CA file, reused across reloads. A CA file
    /// is read even for a plain-http endpoint, so a wrong path shows up.
    fn pool(
        &mut self,
        t: &UpstreamTarget,
        ca: Option<&Path>,
        live: &mut HashSet<PoolKey>,
    ) -> Result<Arc<Upstream>, String> {
        let key: PoolKey = (t.origin(), ca.map(|p| (p.to_path_buf(), file_stamp(p))));
        live.insert(key.clone());
        if let Some(c) = self.pools.get(&key) {
            return c.clone();
        }
        let mut cas: Vec<&Path> = Vec::new();
        if let Some(g) = &self.global_ca {
            cas.push(g);
        }
        if let Some(c) = ca {
            cas.push(c);
        }
        let tls = if t.is_https() || ca.is_some() {
            tls::client_config(&cas).map(Some)
        } else {
            Ok(None)
        };
        let made = tls.and_then(|cfg| {
            Upstream::new(t, self.workers, cfg, self.connect_timeout).map(Arc::new)
        });
        self.pools.insert(key, made.clone());
        made
    }
}

/// Each route's fallback models as route indices: those served here
/// (enabled, this cluster); the others are skipped.
fn resolve_fallbacks(reg: &Registry, names: &FastMap<Box<str>, RouteRef>, routes: &mut [Route]) {
    for route in routes.iter_mut() {
        let Some(m) = reg.models.get(&route.name) else {
            continue;
        };
        route.fallbacks = m
            .spec
            .fallbacks
            .iter()
            .filter_map(|f| match names.get(f.as_str()) {
                Some(RouteRef::Serve(r)) => Some(*r),
                _ => None,
            })
            .collect();
    }
}
