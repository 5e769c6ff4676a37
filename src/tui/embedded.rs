//! The embedded gateway: started beside the console, over the same store,
//! on its own threads (the console's runtime stays free for the UI).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::client::GatewayLink;
use crate::gateway::{Gateway, GatewayConfig, GatewayError, GatewayHandle, GatewayView};
use crate::store::Store;

/// A running embedded gateway.
pub struct Embedded {
    handle: GatewayHandle,
    listen: String,
}

impl Embedded {
    /// The address it listens on, as bound (`127.0.0.1:PORT`).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// What the console's client reads from it.
    pub fn link(&self) -> GatewayLink {
        GatewayLink {
            listen: self.listen.clone(),
            stats: self.handle.stats(),
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

/// Start the gateway on `listen` (serving every model, like any gateway
/// started without `--cluster`); `admin` is the URL of its admin API, for
/// its report.
pub async fn start(
    listen: SocketAddr,
    store: Arc<dyn Store>,
    admin: Option<String>,
) -> Result<Embedded, String> {
    try_start(listen, store, admin).await.map_err(|e| {
        format!(
            "cannot start the embedded gateway: {e}; choose another address with --listen ADDR, or run the console without it (--no-gateway)"
        )
    })
}

/// [`start`], with the gateway's own error (a caller can tell a taken port).
pub async fn try_start(
    listen: SocketAddr,
    store: Arc<dyn Store>,
    admin: Option<String>,
) -> Result<Embedded, GatewayError> {
    let cfg = GatewayConfig {
        listen,
        admin,
        ..GatewayConfig::default()
    };
    let handle = tokio::task::spawn_blocking(move || {
        let handle = Gateway::start(cfg, store.clone())?;
        adopt_entry(&*store, handle.local_addr());
        Ok::<_, GatewayError>(handle)
    })
    .await
    .map_err(|e| GatewayError::Thread(std::io::Error::other(e.to_string())))??;
    let listen = handle.local_addr().to_string();
    tracing::info!("embedded gateway listening on {listen}");
    Ok(Embedded { handle, listen })
}

/// The `local` cluster's access path follows this gateway (see
/// `store::advertise`); a store that refuses is logged, not fatal.
fn adopt_entry(store: &dyn Store, listen: SocketAddr) {
    match crate::store::advertise::adopt_local_entry(store, listen, false) {
        Ok(Some(entry)) => tracing::info!("cluster 'local' now has entry address {entry}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("could not point cluster 'local' at {listen}: {e}"),
    }
}
