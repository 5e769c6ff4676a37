//! Connections handed between workers: a worker that accepts a connection
//! while another serves fewer passes it there (the count is
//! `ConnCounters::place`), before reading a byte of it (and before its TLS
//! handshake). Only a connection that evens out the workers moves; one
//! accepted by the least busy worker stays where it is, with no cost.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::gateway::GatewayState;

/// Counts a caller's connection as open, and as served by `worker`, until
/// dropped (served, or dropped unserved at shutdown).
pub(crate) struct Open {
    shared: Arc<GatewayState>,
    worker: usize,
}

impl Open {
    /// A connection already counted by `try_open`/`force_open` and placed
    /// on `worker` by `place`.
    pub(crate) fn new(shared: Arc<GatewayState>, worker: usize) -> Self {
        Self { shared, worker }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.shared.conns.close();
        self.shared.conns.left(self.worker);
    }
}

/// A connection on its way to the worker it was placed on.
pub(crate) struct Placed {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) open: Open,
}

/// Each worker's inbox of handed-over connections.
pub(crate) struct Handoff {
    inboxes: Box<[mpsc::UnboundedSender<Placed>]>,
}

impl Handoff {
    /// The hand-off of `workers` workers, and each worker's receiving end
    /// (by worker id).
    pub(crate) fn new(workers: usize) -> (Arc<Self>, Vec<mpsc::UnboundedReceiver<Placed>>) {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..workers.max(1))
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        (
            Arc::new(Self {
                inboxes: tx.into_boxed_slice(),
            }),
            rx,
        )
    }

    /// Pass `placed` to `worker`. A worker that stopped takes nothing: the
    /// connection is closed (the gateway is shutting down).
    pub(crate) fn pass(&self, worker: usize, placed: Placed) {
        if self.inboxes[worker % self.inboxes.len()]
            .send(placed)
            .is_err()
        {
            tracing::debug!("worker {worker} stopped: a connection handed to it is closed");
        }
    }
}
