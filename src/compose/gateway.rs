//! A gateway started beside whatever else runs in this process, over the
//! same store, on its own threads (the caller's runtime stays free for the
//! console or the admin API).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::client::GatewayLink;
use crate::gateway::{Gateway, GatewayConfig, GatewayError, GatewayHandle, GatewayView};
use crate::store::Store;

/// A running gateway.
pub struct RunningGateway {
    handle: GatewayHandle,
    listen: String,
}

impl RunningGateway {
    /// The address it listens on, as bound (`127.0.0.1:PORT`).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Where `/metrics` is served without a token (`--metrics-listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.handle.metrics_addr()
    }

    /// What the console's client reads from it.
    pub fn link(&self) -> GatewayLink {
        GatewayLink {
            listen: self.listen.clone(),
            stats: self.handle.stats(),
            events: Some(self.handle.events()),
        }
    }

    /// What its admin API reads.
    pub fn view(&self) -> GatewayView {
        self.handle.view()
    }

    /// Stop accepting, finish requests in flight, withdraw the report.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Start the gateway `config` describes. One serving every model (no
/// `cluster`) points the `local` cluster at itself (see
/// `store::advertise`). With `free_port_if_taken`, a taken listen address
/// falls back to a free port on the same interface (logged).
pub async fn start(
    config: GatewayConfig,
    store: Arc<dyn Store>,
    free_port_if_taken: bool,
) -> Result<RunningGateway, GatewayError> {
    let wanted = config.listen;
    match start_on(config.clone(), store.clone()).await {
        Err(GatewayError::Bind { source, .. })
            if free_port_if_taken && source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let free = SocketAddr::new(wanted.ip(), 0);
            let gateway = start_on(
                GatewayConfig {
                    listen: free,
                    ..config
                },
                store,
            )
            .await?;
            tracing::warn!(
                "{wanted} is taken by another program: the gateway listens on {} instead",
                gateway.listen()
            );
            Ok(gateway)
        }
        other => other,
    }
}

async fn start_on(
    config: GatewayConfig,
    store: Arc<dyn Store>,
) -> Result<RunningGateway, GatewayError> {
    let handle = tokio::task::spawn_blocking(move || {
        let (every_model, tls) = (config.cluster.is_none(), config.tls.is_some());
        let handle = Gateway::start(config, store.clone())?;
        if every_model {
            adopt_entry(&*store, handle.local_addr(), tls);
        }
        Ok::<_, GatewayError>(handle)
    })
    .await
    .map_err(|e| GatewayError::Thread(std::io::Error::other(e.to_string())))??;
    let listen = handle.local_addr().to_string();
    Ok(RunningGateway { handle, listen })
}

/// The `local` cluster's access path follows this gateway (see
/// `store::advertise`); a store that refuses is logged, not fatal.
fn adopt_entry(store: &dyn Store, listen: SocketAddr, tls: bool) {
    match crate::store::advertise::adopt_local_entry(store, listen, tls) {
        Ok(Some(entry)) => tracing::info!("cluster 'local' now has entry address {entry}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("could not point cluster 'local' at {listen}: {e}"),
    }
}
