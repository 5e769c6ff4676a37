//! The admin API's listener: bound before the gateway starts (so the
//! gateway's report can carry its address), then served on the caller's
//! runtime until [`AdminHandle::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::AdminToken;
use super::routes::handle;
use super::state::AdminState;
use crate::gateway::GatewayView;
use crate::logging::LogRing;
use crate::store::Store;

/// How long connections (streams included) get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(2);

/// A bound, not yet serving, admin listener and the token it will ask for.
pub struct AdminListener {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    token: AdminToken,
}

impl AdminListener {
    /// Bind `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, token: AdminToken) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                format!(
                    "--admin-listen: cannot listen on {addr}: {e}; choose another address (port 0 picks a free one) or turn the admin API off with --admin-listen off"
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("--admin-listen: {e}"))?;
        Ok(Self {
            listener,
            addr,
            token,
        })
    }

    /// The startup line: where it listens and where its token is (never
    /// the token).
    pub fn banner(&self) -> String {
        format!(
            "maasctl admin API listening on {} ({})",
            self.url(),
            self.token.source
        )
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://127.0.0.1:9090`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serve the admin API for `gateway` over `store` on the current
    /// runtime.
    pub fn serve(
        self,
        store: Arc<dyn Store>,
        gateway: GatewayView,
        logs: LogRing,
    ) -> Result<AdminHandle, String> {
        let url = self.url();
        let token = self.token;
        let listener = TcpListener::from_std(self.listener)
            .map_err(|e| format!("--admin-listen: cannot use the listener: {e}"))?;
        let (stop_tx, stop) = watch::channel(false);
        let state = Arc::new(AdminState {
            store,
            gateway,
            token,
            logs,
            url,
            stop: stop.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, state, stop));
        Ok(AdminHandle {
            stop: stop_tx,
            task,
        })
    }
}

/// A serving admin API.
pub struct AdminHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AdminHandle {
    /// Stop accepting, end the streams, let answers in progress finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (state, stop) = (state.clone(), stop.clone());
                    conns.spawn(serve_conn(stream, state, stop));
                    while conns.try_join_next().is_some() {}
                }
                Err(e) => {
                    tracing::warn!("admin API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    state: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| handle(state.clone(), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!("admin API connection ended: {e}");
    }
}
