//! [`InProcessClient`]: the console's [`Client`] over a store and an
//! embedded gateway in this process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{
    BoxFuture, Client, ClientError, CreatedKey, GatewayHeader, GatewayState, RegistryView,
};
use crate::domain::Registry;
use crate::domain::token::Role;
use crate::domain::{AuditEntry, AuditQuery, Change, Origin, new_key, summarize};
use crate::gateway::StatsSnapshot;
use crate::ops::rollback::RollbackReport;
use crate::store::{Applied, Store, StoreError};

/// The embedded gateway as the in-process client sees it.
pub struct GatewayLink {
    pub listen: String,
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
    /// The gateway's events (the live tail reads its request events).
    pub events: Option<Arc<crate::gateway::telemetry::events::Events>>,
}

/// Store + embedded gateway in this process.
pub struct InProcessClient {
    store: Arc<dyn Store>,
    /// Who the console's changes are recorded as (the OS user, channel
    /// `console`).
    origin: Origin,
    registry: watch::Receiver<Arc<RegistryView>>,
    stats: watch::Receiver<Arc<StatsSnapshot>>,
    gateway: watch::Receiver<GatewayHeader>,
    /// Keeps the gateway watch alive when there is no gateway.
    _gateway_tx: watch::Sender<GatewayHeader>,
    _stats_tx: Option<watch::Sender<Arc<StatsSnapshot>>>,
    /// Wakes the refresher right after a change of ours.
    refresh: Arc<Notify>,
    refresher: JoinHandle<()>,
    /// The embedded gateway's events (the live tail).
    events: Option<Arc<crate::gateway::telemetry::events::Events>>,
}

/// How often the refresher looks at the store for changes made elsewhere
/// (another console, the CLI) and for new gateway reports.
const POLL: Duration = Duration::from_millis(500);

impl InProcessClient {
    /// Load the registry once, then keep publishing it from a background
    /// task. `gateway` is the embedded gateway, `None` with `--no-gateway`;
    /// changes are recorded as made by `origin`.
    pub async fn start(
        store: Arc<dyn Store>,
        gateway: Option<GatewayLink>,
        origin: Origin,
    ) -> Result<Arc<Self>, ClientError> {
        let first = {
            let store = store.clone();
            blocking(move || load_view(&*store)).await?
        };
        let (registry_tx, registry) = watch::channel(Arc::new(first));
        let (gateway_tx, gateway_rx) = watch::channel(match &gateway {
            Some(g) => GatewayHeader {
                listen: Some(g.listen.clone()),
                state: GatewayState::Running,
            },
            None => GatewayHeader::off(),
        });
        let events = gateway.as_ref().and_then(|g| g.events.clone());
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
            origin,
            registry,
            stats,
            gateway: gateway_rx,
            _gateway_tx: gateway_tx,
            _stats_tx: stats_tx,
            refresh,
            refresher,
            events,
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
    fn gateway(&self) -> watch::Receiver<GatewayHeader> {
        self.gateway.clone()
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<Applied, ClientError>> {
        Box::pin(async move {
            let (store, origin) = (self.store.clone(), self.origin.clone());
            let summary = summarize(&changes);
            let result = blocking(move || store.apply(changes, &origin)).await;
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

    fn load(&self) -> BoxFuture<'_, Result<Registry, ClientError>> {
        let store = self.store.clone();
        Box::pin(async move { blocking(move || store.load()).await })
    }

    fn rollback(
        &self,
        revision: u64,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<RollbackReport, ClientError>> {
        Box::pin(async move {
            let (store, origin) = (self.store.clone(), self.origin.clone());
            let report = blocking(move || {
                crate::ops::rollback::rollback(&*store, &origin, revision, dry_run)
            })
            .await;
            if let Ok(r) = &report
                && !r.dry_run
                && r.changed
            {
                tracing::info!(revision = r.revision, "rolled back to revision {}", r.to);
            }
            self.refresh.notify_one();
            report
        })
    }

    fn audit(&self, query: AuditQuery) -> BoxFuture<'_, Result<Vec<AuditEntry>, ClientError>> {
        let store = self.store.clone();
        Box::pin(async move { blocking(move || store.audit(&query)).await })
    }

    fn usage(
        &self,
        query: crate::domain::usage::UsageQuery,
    ) -> BoxFuture<'_, Result<crate::domain::usage::UsageReport, ClientError>> {
        let store = self.store.clone();
        Box::pin(async move {
            blocking(move || crate::ops::usage::report(store.as_ref(), &query)).await
        })
    }

    fn budgets(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::budget::BudgetStatus>, ClientError>> {
        let store = self.store.clone();
        Box::pin(async move {
            blocking(move || crate::ops::budgets::status(store.as_ref(), crate::domain::now_ms()))
                .await
        })
    }

    fn role(&self) -> Role {
        Role::Admin
    }

    fn tail(&self, since: u64) -> BoxFuture<'_, Result<crate::gateway::TailPage, ClientError>> {
        let page = self
            .events
            .as_ref()
            .map(|e| e.requests.since(since, super::TAIL_PAGE))
            .unwrap_or_default();
        Box::pin(async move { Ok(page) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Endpoint, ModelSpec, Policy};
    use crate::store::SqliteStore;
    use crate::store::Store;

    fn spec() -> ModelSpec {
        ModelSpec {
            name: "DeepSeek-V3".into(),
            cluster: "local".into(),
            model_id: "deepseek-chat".into(),
            endpoints: vec![Endpoint::new("http://127.0.0.1:9")],
            policy: Policy::RoundRobin,
            tags: vec![],
            fallbacks: Vec::new(),
            completion_cap: None,
        }
    }

    #[tokio::test]
    async fn publishes_changes_and_reports_refusals() {
        let dir = std::env::temp_dir().join(format!("maasctl-client-{}", std::process::id()));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        let origin = Origin::user("tester", crate::domain::Channel::Console);
        let client = InProcessClient::start(store.clone(), None, origin)
            .await
            .unwrap();
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
        // The console's change is in the audit trail as its user's, through
        // the console; the refused ones are not.
        assert_eq!(client.role(), Role::Admin);
        let trail = client.audit(AuditQuery::default()).await.unwrap();
        assert_eq!(trail.len(), 1, "{trail:?}");
        assert_eq!(trail[0].actor.to_string(), "tester");
        assert_eq!(trail[0].channel, crate::domain::Channel::Console);
        assert_eq!(trail[0].changes[0].entity, "model/DeepSeek-V3");
        drop(client);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The form guard and the console's rollback on a real store: a save
    /// over a change made meanwhile is not applied (the current registry
    /// comes back), one over an unrelated change is; a dry run changes
    /// nothing, the rollback is recorded as the console's.
    #[tokio::test]
    async fn guarded_saves_and_rollback_on_the_store() {
        use super::super::guard::{Guard, Guarded, Subject, apply_guarded};
        let dir = std::env::temp_dir().join(format!("maasctl-guard-{}", std::process::id()));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        let origin = Origin::user("tester", crate::domain::Channel::Console);
        let client = InProcessClient::start(store.clone(), None, origin)
            .await
            .unwrap();
        client
            .apply(vec![Change::CreateModel(spec())])
            .await
            .unwrap();
        let edit = |id: &str| {
            let mut s = spec();
            s.model_id = id.into();
            Change::UpdateModel {
                name: "DeepSeek-V3".into(),
                spec: s,
            }
        };
        let model_id = || {
            store.load().unwrap().models["DeepSeek-V3"]
                .spec
                .model_id
                .clone()
        };
        let guard = Guard::new(
            Subject::Model("DeepSeek-V3".into()),
            &client.load().await.unwrap(),
        );
        let cli = Origin::user("other", crate::domain::Channel::Cli);
        let theirs = store.apply(vec![edit("theirs")], &cli).unwrap().revision;
        let Guarded::Changed(now) = apply_guarded(&*client, &guard, vec![edit("mine")])
            .await
            .unwrap()
        else {
            panic!("a change made meanwhile stops the save")
        };
        assert_eq!(model_id(), "theirs");
        assert_eq!(now.models["DeepSeek-V3"].spec.model_id, "theirs");
        // Seen now; an unrelated change meanwhile does not stop it.
        let guard = Guard::new(Subject::Model("DeepSeek-V3".into()), &now);
        store
            .apply(
                vec![Change::AddWorkspace {
                    name: "acme".into(),
                    description: String::new(),
                }],
                &cli,
            )
            .unwrap();
        let saved = apply_guarded(&*client, &guard, vec![edit("mine")])
            .await
            .unwrap();
        assert!(
            matches!(saved, Guarded::Applied(ref a) if a.outcomes.len() == 1),
            "{saved:?}"
        );
        assert_eq!(model_id(), "mine");
        // Roll back to the other writer's revision: a dry run, then for real.
        let plan = client.rollback(theirs, true).await.unwrap();
        assert!(plan.changed && plan.dry_run, "{plan:?}");
        assert!(plan.changes.iter().any(|c| c.entity == "model/DeepSeek-V3"));
        assert_eq!(model_id(), "mine", "a dry run changes nothing");
        let done = client.rollback(theirs, false).await.unwrap();
        assert!(done.revision > plan.from);
        assert_eq!(model_id(), "theirs");
        let trail = client.audit(AuditQuery::default()).await.unwrap();
        let last = trail.last().unwrap();
        assert_eq!(last.channel, crate::domain::Channel::Console);
        assert_eq!(last.actor.to_string(), "tester");
        assert!(
            last.summary
                .contains(&format!("rollback to revision {theirs}")),
            "{}",
            last.summary
        );
        drop(client);
        let _ = std::fs::remove_dir_all(dir);
    }
}
