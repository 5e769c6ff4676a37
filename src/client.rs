//! The console's one seam to the platform.
//!
//! Views never call the store or the network: the console holds a
//! [`Client`] and reads the snapshots it publishes (registry + gateway
//! reports, counters, gateway state) from `watch` channels, and sends changes
//! through its async methods from background tasks. [`InProcessClient`] is
//! the embedded mode (store + embedded gateway handle in this process); a
//! remote client (admin API over HTTP) implements the same trait, so the
//! console cannot tell them apart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
use crate::domain::{Change, DomainError, GatewayReport, Registry};
use crate::gateway::StatsSnapshot;
use crate::store::{Applied, Store, StoreError};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Client>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the console knows of the registry: every entity at one revision,
/// and what the gateways last reported (the gateway status column).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryView {
    pub registry: Arc<Registry>,
    pub reports: Arc<Vec<GatewayReport>>,
}

/// Whether the gateway this console shows is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayState {
    /// Serving at `listen`.
    Running,
    /// The console was started without a gateway (`--no-gateway`).
    Off,
    /// It could not start or stopped with an error.
    Failed(String),
}

/// The header's gateway line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    /// The address it listens on (as bound: a `:0` port is resolved).
    pub listen: Option<String>,
    pub state: GatewayState,
}

impl GatewayInfo {
    pub fn off() -> Self {
        Self {
            listen: None,
            state: GatewayState::Off,
        }
    }
}

/// A created platform key: the secret is here once, never again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub secret: String,
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The registry refused the change (fields named).
    #[error("{0}")]
    Domain(DomainError),
    /// Storage or transport failed.
    #[error("{0}")]
    Other(String),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => ClientError::Domain(d),
            StoreError::Backend(s) => ClientError::Other(s),
        }
    }
}

/// The console's view of the platform. Snapshots come from `watch`
/// receivers (the latest value wins, readers never block writers); changes
/// are async calls returning owned data.
pub trait Client: Send + Sync + 'static {
    /// Registry snapshots: a new value whenever the revision or a gateway
    /// report moves.
    fn registry(&self) -> watch::Receiver<Arc<RegistryView>>;
    /// Gateway counters, cumulative; rates come from two snapshots.
    fn stats(&self) -> watch::Receiver<Arc<StatsSnapshot>>;
    /// The gateway's address and state, for the header.
    fn gateway(&self) -> watch::Receiver<GatewayInfo>;
    /// Apply a batch of changes atomically (the registry validates them).
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<Applied, ClientError>>;
    /// Create a platform key; the returned secret is shown once.
    fn create_key(
        &self,
        workspace: String,
        name: String,
    ) -> BoxFuture<'_, Result<CreatedKey, ClientError>>;
}

/// The embedded gateway as the in-process client sees it.
pub struct GatewayLink {
    pub listen: String,
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
}

/// Store + embedded gateway in this process.
pub struct InProcessClient {
    store: Arc<dyn Store>,
    registry: watch::Receiver<Arc<RegistryView>>,
    stats: watch::Receiver<Arc<StatsSnapshot>>,
    gateway: watch::Receiver<GatewayInfo>,
    /// Keeps the gateway watch alive when there is no gateway.
    _gateway_tx: watch::Sender<GatewayInfo>,
    _stats_tx: Option<watch::Sender<Arc<StatsSnapshot>>>,
    /// Wakes the refresher right after a change of ours.
    refresh: Arc<Notify>,
    refresher: JoinHandle<()>,
}

/// How often the refresher looks at the store for changes made elsewhere
/// (another console, the CLI) and for new gateway reports.
const POLL: Duration = Duration::from_millis(500);

impl InProcessClient {
    /// Load the registry once, then keep publishing it from a background
    /// task. `gateway` is the embedded gateway, `None` with `--no-gateway`.
    pub async fn start(
        store: Arc<dyn Store>,
        gateway: Option<GatewayLink>,
    ) -> Result<Arc<Self>, ClientError> {
        let first = {
            let store = store.clone();
            blocking(move || load_view(&*store)).await?
        };
        let (registry_tx, registry) = watch::channel(Arc::new(first));
        let (gateway_tx, gateway_rx) = watch::channel(match &gateway {
            Some(g) => GatewayInfo {
                listen: Some(g.listen.clone()),
                state: GatewayState::Running,
            },
            None => GatewayInfo::off(),
        });
        let (stats, stats_tx) = match gateway {
            Some(g) => (g.stats, None),
            None => {
                let (tx, rx) = watch::channel(Arc::new(StatsSnapshot::default()));
                (rx, Some(tx))
            }
        };
        let refresh = Arc::new(Notify::new());
        let refresher = tokio::spawn(refresh_loop(store.clone(), registry_tx, refresh.clone()));
        Ok(Arc::new(Self {
            store,
            registry,
            stats,
            gateway: gateway_rx,
            _gateway_tx: gateway_tx,
            _stats_tx: stats_tx,
            refresh,
            refresher,
        }))
    }
}

impl Drop for InProcessClient {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Other(format!("store task failed: {e}")))?
        .map_err(ClientError::from)
}

fn load_view(store: &dyn Store) -> Result<RegistryView, StoreError> {
    Ok(RegistryView {
        registry: Arc::new(store.load()?),
        reports: Arc::new(store.reports()?),
    })
}

/// Publish a new registry snapshot when the revision moves and new reports
/// when they change. One refresh at a time: a slow store skips ticks rather
/// than piling them up.
async fn refresh_loop(
    store: Arc<dyn Store>,
    tx: watch::Sender<Arc<RegistryView>>,
    refresh: Arc<Notify>,
) {
    loop {
        tokio::select! {
            _ = refresh.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let current = tx.borrow().clone();
        let store = store.clone();
        let next = blocking(move || {
            let revision = store.revision()?;
            let registry = if revision != current.registry.revision {
                Arc::new(store.load()?)
            } else {
                current.registry.clone()
            };
            let reports = store.reports()?;
            let reports = if reports == *current.reports {
                current.reports.clone()
            } else {
                Arc::new(reports)
            };
            Ok(RegistryView { registry, reports })
        })
        .await;
        match next {
            Ok(view) => {
                tx.send_if_modified(|cur| {
                    if **cur == view {
                        false
                    } else {
                        *cur = Arc::new(view);
                        true
                    }
                });
            }
            Err(e) => tracing::warn!("cannot refresh the registry: {e}"),
        }
        if tx.is_closed() {
            return;
        }
    }
}

impl Client for InProcessClient {
    fn registry(&self) -> watch::Receiver<Arc<RegistryView>> {
        self.registry.clone()
    }
    fn stats(&self) -> watch::Receiver<Arc<StatsSnapshot>> {
        self.stats.clone()
    }
    fn gateway(&self) -> watch::Receiver<GatewayInfo> {
        self.gateway.clone()
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<Applied, ClientError>> {
        Box::pin(async move {
            let store = self.store.clone();
            let summary = summarize(&changes);
            let result = blocking(move || store.apply(changes)).await;
            match &result {
                Ok(a) => tracing::info!(revision = a.revision, "applied {summary}"),
                Err(e) => tracing::info!("refused {summary}: {e}"),
            }
            self.refresh.notify_one();
            result
        })
    }

    fn create_key(
        &self,
        workspace: String,
        name: String,
    ) -> BoxFuture<'_, Result<CreatedKey, ClientError>> {
        Box::pin(async move {
            let (change, created) = new_key(workspace, name);
            self.apply(vec![change]).await?;
            Ok(created)
        })
    }
}

/// A new platform key for `workspace`: the change that stores its hash, and
/// the key with its secret (to show once). Shared by every client and the
/// admin API, so keys are made one way.
pub fn new_key(workspace: String, name: String) -> (Change, CreatedKey) {
    let secret = generate_secret();
    let id = generate_key_id();
    let change = Change::CreateKey {
        id: id.clone(),
        workspace: workspace.clone(),
        name: name.clone(),
        secret_hash: hash_secret(&secret),
        secret_hint: secret_hint(&secret),
    };
    let created = CreatedKey {
        id,
        workspace,
        name,
        secret,
    };
    (change, created)
}

/// `create-model DeepSeek-V3, add-rule DeepSeek-V3` for the log (no secrets:
/// only operation names and entity names).
pub fn summarize(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            let v = serde_json::to_value(c).unwrap_or_default();
            let op = v["op"].as_str().unwrap_or("change").to_string();
            let subject = ["name", "model", "id"]
                .iter()
                .find_map(|k| v[*k].as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{op} {subject}").trim().to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Endpoint, ModelSpec, Policy};
    use crate::store::SqliteStore;

    fn spec() -> ModelSpec {
        ModelSpec {
            name: "DeepSeek-V3".into(),
            cluster: "local".into(),
            model_id: "deepseek-chat".into(),
            endpoints: vec![Endpoint::new("http://127.0.0.1:9")],
            policy: Policy::RoundRobin,
            tags: vec![],
        }
    }

    #[tokio::test]
    async fn publishes_changes_and_reports_refusals() {
        let dir = std::env::temp_dir().join(format!("maasctl-client-{}", std::process::id()));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        let client = InProcessClient::start(store, None).await.unwrap();
        let mut rx = client.registry();
        let before = rx.borrow_and_update().registry.revision;
        client
            .apply(vec![Change::CreateModel(spec())])
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while rx.borrow_and_update().registry.revision == before {
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("the new revision is published");
        assert!(rx.borrow().registry.models.contains_key("DeepSeek-V3"));
        let err = client
            .apply(vec![Change::CreateModel(spec())])
            .await
            .unwrap_err();
        let ClientError::Domain(d) = err else {
            panic!("{err:?}")
        };
        assert!(d.for_field("name").unwrap().contains("already exists"));
        let key = client
            .create_key("missing".into(), "k".into())
            .await
            .unwrap_err();
        assert!(key.to_string().contains("workspace"), "{key}");
        assert!(summarize(&[Change::CreateModel(spec())]).contains("create-model DeepSeek-V3"));
        drop(client);
        let _ = std::fs::remove_dir_all(dir);
    }
}
