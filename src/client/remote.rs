//! [`RemoteClient`]: the console's [`Client`] over the admin API, so a
//! console started with `--connect URL` works exactly like an embedded one.
//!
//! - registry + reports: polled twice a second (the registry only when its
//!   revision moved: `If-None-Match`), and at once after a change of ours;
//! - counters: the server-sent stats stream;
//! - logs: the server's lines, polled into the console's `:logs` ring;
//! - gateway state: `Running` while the server answers; when it stops
//!   answering, `Failed("disconnected, retrying …")` — the console keeps
//!   its last data (marked stale, without rates), keeps retrying, and is
//!   `Running` again once it is back;
//! - actions: refused at once while the server is known not to answer
//!   (saying so, and for how long), else sent with a short connect timeout.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::api::{AdminApi, CallError};
use super::events::EventReader;
use super::{
    BoxFuture, Client, ClientError, CreatedKey, GatewayHeader, GatewayState, RegistryView,
};
use crate::domain::Registry;
use crate::domain::token::Role;
use crate::domain::{AuditEntry, AuditQuery, Change, Channel, GatewayReport};
use crate::gateway::StatsSnapshot;
use crate::logging::LogRing;
use crate::ops::rollback::{RollbackReport, RollbackRequest};
use crate::store::Applied;

/// How often the registry, reports and logs are polled.
const POLL: Duration = Duration::from_millis(500);
/// Pause before reconnecting the stats stream.
const RECONNECT: Duration = Duration::from_millis(500);
/// Quiet longer than this on the stream (the server sends a comment every
/// few seconds) means the connection is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(15);
/// Time to open a connection for an action (a change, a key): short, so an
/// operator hears at once that the server is not there.
const ACTION_CONNECT: Duration = Duration::from_secs(1);

/// The admin API of a `maasctl serve` (or another console), as a [`Client`].
pub struct RemoteClient {
    api: AdminApi,
    /// The same, with a short connect timeout: for actions.
    actions: AdminApi,
    link: Arc<Link>,
    /// The role of the token it attached with.
    role: Role,
    registry: watch::Receiver<Arc<RegistryView>>,
    stats: watch::Receiver<Arc<StatsSnapshot>>,
    gateway: watch::Receiver<GatewayHeader>,
    refresh: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

/// The header's gateway line, fed by both background tasks.
struct Link {
    tx: watch::Sender<GatewayHeader>,
    listen: Mutex<String>,
    /// Since when the server has not answered, and why.
    down: Mutex<Option<(std::time::Instant, String)>>,
    /// Set by an outage: the gateway's address must be read again (a
    /// restarted server may listen elsewhere) before the link is shown up.
    reread: std::sync::atomic::AtomicBool,
}

impl Link {
    fn up(&self) {
        if self.reread.load(std::sync::atomic::Ordering::SeqCst) {
            // Not before the poll loop has the gateway's address again.
            return;
        }
        if !self.is_up() {
            tracing::info!("admin API reachable again");
        }
        *self.down.lock() = None;
        let listen = self.listen.lock().clone();
        self.tx.send_if_modified(|g| {
            let next = GatewayHeader {
                listen: Some(listen),
                state: GatewayState::Running,
            };
            let changed = *g != next;
            *g = next;
            changed
        });
    }

    fn down(&self, e: &CallError) {
        let why = match e {
            CallError::Transport { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        if self.is_up() {
            tracing::warn!("admin API unreachable, retrying: {e}");
        }
        self.down
            .lock()
            .get_or_insert_with(|| (std::time::Instant::now(), why.clone()));
        self.reread.store(true, std::sync::atomic::Ordering::SeqCst);
        self.tx.send_if_modified(|g| {
            let state = GatewayState::Failed(format!("disconnected, retrying ({why})"));
            let changed = g.state != state;
            g.state = state;
            changed
        });
    }

    fn is_up(&self) -> bool {
        self.tx.borrow().state == GatewayState::Running
    }

    /// An action is not even tried while the server is known not to
    /// answer: the operator hears so at once, with how long and why.
    fn check(&self, base: &str) -> Result<(), ClientError> {
        match &*self.down.lock() {
            None => Ok(()),
            Some((since, why)) => Err(ClientError::Other(format!(
                "not sent: cannot reach the admin API at {base} (no answer for {}s: {why}); \
                 the console keeps retrying and shows when it is back",
                since.elapsed().as_secs()
            ))),
        }
    }
}

impl RemoteClient {
    /// Connect: read everything once (so a wrong URL or token fails here,
    /// with the reason), then keep it fresh in the background. Lines the
    /// server logs are pushed into `logs`.
    /// Its changes are recorded as the token's, through the console.
    pub async fn connect(api: AdminApi, logs: Option<LogRing>) -> Result<Arc<Self>, String> {
        let api = api.with_channel(Channel::Console);
        let info = api.info().await.map_err(|e| e.to_string())?;
        let registry = api
            .registry(None)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let reports = api.reports().await.map_err(|e| e.to_string())?;
        let stats = api.stats().await.map_err(|e| e.to_string())?;
        tracing::info!(
            "console attached to {} (gateway {}, maasctl {})",
            api.base(),
            info.gateway.listen,
            info.version
        );
        let (registry_tx, registry_rx) = watch::channel(Arc::new(RegistryView {
            registry: Arc::new(registry),
            reports: Arc::new(reports),
        }));
        let (stats_tx, stats_rx) = watch::channel(Arc::new(stats));
        let (gateway_tx, gateway_rx) = watch::channel(GatewayHeader {
            listen: Some(info.gateway.listen.clone()),
            state: GatewayState::Running,
        });
        let link = Arc::new(Link {
            tx: gateway_tx,
            listen: Mutex::new(info.gateway.listen),
            down: Mutex::new(None),
            reread: std::sync::atomic::AtomicBool::new(false),
        });
        let actions = api.clone().with_connect_timeout(ACTION_CONNECT)?;
        let refresh = Arc::new(Notify::new());
        let tasks = vec![
            tokio::spawn(poll_loop(
                api.clone(),
                registry_tx,
                link.clone(),
                refresh.clone(),
                logs,
            )),
            tokio::spawn(stream_loop(api.clone(), stats_tx, link.clone())),
        ];
        Ok(Arc::new(Self {
            api,
            actions,
            link,
            role: info.caller.role,
            registry: registry_rx,
            stats: stats_rx,
            gateway: gateway_rx,
            refresh,
            tasks,
        }))
    }
}

impl Drop for RemoteClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Registry, reports and logs, every [`POLL`] or when asked.
async fn poll_loop(
    api: AdminApi,
    tx: watch::Sender<Arc<RegistryView>>,
    link: Arc<Link>,
    refresh: Arc<Notify>,
    logs: Option<LogRing>,
) {
    let mut log_cursor = 0u64;
    loop {
        tokio::select! {
            _ = refresh.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if tx.is_closed() {
            return;
        }
        let polled = async {
            if link.reread.load(std::sync::atomic::Ordering::SeqCst) {
                // Back after an outage: the gateway may have moved.
                *link.listen.lock() = api.info().await?.gateway.listen;
                link.reread
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
            poll_registry(&api, &tx).await?;
            if let Some(ring) = &logs {
                log_cursor = poll_logs(&api, ring, log_cursor).await?;
            }
            Ok::<(), CallError>(())
        }
        .await;
        match polled {
            Ok(()) => link.up(),
            Err(e) => link.down(&e),
        }
    }
}

async fn poll_registry(
    api: &AdminApi,
    tx: &watch::Sender<Arc<RegistryView>>,
) -> Result<(), CallError> {
    let current = tx.borrow().clone();
    let registry = api.registry(Some(current.registry.revision)).await?;
    let reports: Vec<GatewayReport> = api.reports().await?;
    if registry.is_none() && reports == *current.reports {
        return Ok(());
    }
    let view = RegistryView {
        registry: registry.map_or_else(|| current.registry.clone(), Arc::new),
        reports: if reports == *current.reports {
            current.reports.clone()
        } else {
            Arc::new(reports)
        },
    };
    tx.send_replace(Arc::new(view));
    Ok(())
}

/// Push the server's new log lines; returns the new cursor. A server that
/// restarted numbers from 1 again: start over.
async fn poll_logs(api: &AdminApi, ring: &LogRing, after: u64) -> Result<u64, CallError> {
    let mut page = api.logs(after).await?;
    if page.newest < after {
        page = api.logs(0).await?;
    }
    for l in &page.lines {
        let mut line = l.to_line();
        line.target = format!("server:{}", line.target);
        ring.push(line);
    }
    Ok(page.lines.last().map_or(page.newest, |l| l.seq))
}

/// The stats stream, reconnected whenever it ends.
async fn stream_loop(api: AdminApi, tx: watch::Sender<Arc<StatsSnapshot>>, link: Arc<Link>) {
    loop {
        if let Err(e) = follow_stream(&api, &tx, &link).await {
            link.down(&e);
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Read one stream until it ends or breaks.
async fn follow_stream(
    api: &AdminApi,
    tx: &watch::Sender<Arc<StatsSnapshot>>,
    link: &Link,
) -> Result<(), CallError> {
    let res = api.stats_stream().await?;
    let mut body = res.bytes_stream();
    let mut reader = EventReader::default();
    let broken = |reason: String| CallError::Transport {
        url: api.base().to_string(),
        reason,
    };
    loop {
        let chunk = match tokio::time::timeout(STREAM_SILENCE, body.next()).await {
            Err(_) => return Err(broken("no word from the server for 15s".into())),
            Ok(None) => return Err(broken("the server closed the stats stream".into())),
            Ok(Some(Err(e))) => return Err(broken(super::api::reason(&e))),
            Ok(Some(Ok(c))) => c,
        };
        for data in reader.push(&chunk) {
            let snap: StatsSnapshot =
                serde_json::from_str(&data).map_err(|e| CallError::Decode {
                    url: api.base().to_string(),
                    reason: format!("stats event: {e}"),
                })?;
            tx.send_replace(Arc::new(snap));
            link.up();
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}

impl Client for RemoteClient {
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
            self.link.check(self.api.base())?;
            let result = self
                .actions
                .apply(&changes)
                .await
                .map_err(ClientError::from);
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
            self.link.check(self.api.base())?;
            let result = self
                .actions
                .create_key(&workspace, &name)
                .await
                .map_err(ClientError::from);
            self.refresh.notify_one();
            result
        })
    }

    fn load(&self) -> BoxFuture<'_, Result<Registry, ClientError>> {
        Box::pin(async move {
            self.api
                .registry(None)
                .await
                .map_err(ClientError::from)?
                .ok_or_else(|| ClientError::Other("the admin API sent no registry".into()))
        })
    }

    fn rollback(
        &self,
        revision: u64,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<RollbackReport, ClientError>> {
        Box::pin(async move {
            let req = RollbackRequest { revision, dry_run };
            let result = self.api.rollback(&req).await.map_err(ClientError::from);
            self.refresh.notify_one();
            result
        })
    }

    fn audit(&self, query: AuditQuery) -> BoxFuture<'_, Result<Vec<AuditEntry>, ClientError>> {
        Box::pin(async move { self.api.audit(&query).await.map_err(ClientError::from) })
    }

    fn usage(
        &self,
        query: crate::domain::usage::UsageQuery,
    ) -> BoxFuture<'_, Result<crate::domain::usage::UsageReport, ClientError>> {
        Box::pin(async move { self.api.usage(&query).await.map_err(ClientError::from) })
    }

    fn budgets(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::budget::BudgetStatus>, ClientError>> {
        Box::pin(async move { self.api.budgets().await.map_err(ClientError::from) })
    }

    fn role(&self) -> Role {
        self.role
    }

    fn attached(&self) -> Option<String> {
        Some(self.api.base().to_string())
    }

    fn tail(&self, since: u64) -> BoxFuture<'_, Result<crate::gateway::TailPage, ClientError>> {
        Box::pin(async move { self.api.tail(since).await.map_err(ClientError::from) })
    }
}
