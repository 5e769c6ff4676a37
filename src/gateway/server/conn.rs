//! One caller's connection as the rest of the gateway sees it: whether it
//! is answering a request (`busy`) or waiting for the next one (idle
//! keep-alive), and the registry of every connection (graceful shutdown,
//! shedding at the cap, the head-timeout sweep). The connection's own task
//! is [`driver`](super::driver).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

/// What the connection's task and the registry share.
#[derive(Default)]
pub(crate) struct ConnState {
    /// From a request's head to the end of its answer.
    busy: AtomicBool,
    /// It answered at least one request (an idle keep-alive connection when
    /// not busy; one that never sent a request is not shed).
    served: AtomicBool,
    /// Asked to finish: the worker stops, or it is shed at the cap.
    close: AtomicBool,
    /// Requests begun: the head-timeout sweep sees a connection that
    /// answered one between two looks (written by the connection's task only).
    begun: AtomicU64,
    /// The head-timeout sweep found it waiting for a request head for
    /// longer than the head timeout: close it if it still is.
    expired: AtomicBool,
}

impl ConnState {
    /// A request's head was read: answering it.
    pub(crate) fn begin(&self) {
        self.busy.store(true, Ordering::Relaxed);
        let n = self.begun.load(Ordering::Relaxed);
        self.begun.store(n + 1, Ordering::Relaxed);
        if self.expired.load(Ordering::Relaxed) {
            // The sweep's verdict came as the head completed: let it through.
            self.expired.store(false, Ordering::Relaxed);
        }
        if !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
    }

    /// Whether it was asked to finish.
    pub(crate) fn closing(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    /// Waited longer than the head timeout for a request head and still
    /// waits: close it (a request begun since is let through).
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire) && self.is_idle()
    }

    /// Idle keep-alive and not asked to close yet: claim it for shedding.
    fn claim_idle(&self) -> bool {
        self.served.load(Ordering::Relaxed)
            && self.is_idle()
            && !self.close.swap(true, Ordering::AcqRel)
    }

    /// The answer was written (or the request dropped): idle again.
    pub(crate) fn end(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }

    /// Idle keep-alive: no request being answered.
    pub(crate) fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::Relaxed)
    }
}

/// One worker's connections.
#[derive(Default)]
struct Shard {
    next: u64,
    stopping: bool,
    conns: HashMap<u64, Entry>,
}

/// A connection as the registry knows it.
struct Entry {
    waker: Waker,
    state: Arc<ConnState>,
    /// What the head-timeout sweep saw last: the requests begun then, and
    /// since when it has seen the connection wait for a head (`None`: it
    /// was answering one at the last look).
    seen: (u64, Option<Instant>),
}

/// Every connection of a gateway, one shard per worker (a worker locks its
/// own shard once when a connection starts and once when it ends; other
/// shards only when shedding at the cap), so a worker can ask its
/// connections to finish when it stops, and any worker can shed an idle
/// keep-alive connection to make room for a new caller.
pub(crate) struct Registry {
    shards: Box<[parking_lot::Mutex<Shard>]>,
}

impl Registry {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            shards: (0..workers.max(1)).map(|_| Default::default()).collect(),
        }
    }

    fn shard(&self, worker: usize) -> &parking_lot::Mutex<Shard> {
        &self.shards[worker % self.shards.len()]
    }

    /// Register a connection of `worker` (its task's waker); the id to
    /// [`forget`](Self::forget) it with.
    pub(crate) fn register(&self, worker: usize, waker: &Waker, state: &Arc<ConnState>) -> u64 {
        let mut g = self.shard(worker).lock();
        g.next += 1;
        let id = g.next;
        if g.stopping {
            state.close.store(true, Ordering::Release);
        }
        // Waiting for its first head from now on.
        let seen = (state.begun.load(Ordering::Relaxed), Some(Instant::now()));
        g.conns.insert(
            id,
            Entry {
                waker: waker.clone(),
                state: state.clone(),
                seen,
            },
        );
        id
    }

    pub(crate) fn forget(&self, worker: usize, id: u64) {
        self.shard(worker).lock().conns.remove(&id);
    }

    /// Ask every connection of `worker` to finish (HTTP/1 graceful shutdown).
    pub(crate) fn stop(&self, worker: usize) {
        let mut g = self.shard(worker).lock();
        g.stopping = true;
        for e in g.conns.values() {
            e.state.close.store(true, Ordering::Release);
            e.waker.wake_by_ref();
        }
    }

    /// The head-timeout sweep of `worker`'s connections (once a second,
    /// off the request path): a connection seen waiting for a request head
    /// (an idle keep-alive connection, or a caller whose head never
    /// completes) at every look for `timeout` is woken to close; the count
    /// of those. So it waited at least `timeout`, and at most one sweep
    /// more. A request costs no timer this way, where a timer per request
    /// head was armed and cancelled on every request before.
    ///
    /// Called by the worker that serves these connections, on its own
    /// thread: a connection's task and the sweep never run at once, so a
    /// head cannot complete between the look and the verdict.
    pub(crate) fn expire_idle(&self, worker: usize, now: Instant, timeout: Duration) -> usize {
        let mut g = self.shard(worker).lock();
        let mut expired = 0;
        for e in g.conns.values_mut() {
            let begun = e.state.begun.load(Ordering::Relaxed);
            if begun != e.seen.0 || !e.state.is_idle() {
                // Answered a request since the last look, or answering one:
                // it may have been waiting since any moment up to now.
                e.seen = (begun, (e.state.is_idle()).then_some(now));
                continue;
            }
            let since = *e.seen.1.get_or_insert(now);
            if now.duration_since(since) >= timeout && !e.state.expired.swap(true, Ordering::AcqRel)
            {
                e.waker.wake_by_ref();
                expired += 1;
            }
        }
        expired
    }

    /// Close one idle keep-alive connection, this worker's first; whether
    /// one was found.
    pub(crate) fn shed_one(&self, worker: usize) -> bool {
        let n = self.shards.len();
        for i in 0..n {
            let g = self.shards[(worker + i) % n].lock();
            if let Some(e) = g.conns.values().find(|e| e.state.claim_idle()) {
                e.waker.wake_by_ref();
                return true;
            }
        }
        false
    }
}
