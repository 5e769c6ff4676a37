//! One caller's connection: whether it is answering a request (`busy`) or
//! waiting for the next one (idle keep-alive), and its half-close handling.
//!
//! **Half-close.** A caller may send a complete request and then shut down
//! its sending side (`shutdown(SHUT_WR)`); it still reads the answer.
//! hyper's default (`half_close(false)`) takes a read EOF in the middle of
//! a request for a caller that left and drops the request; with
//! `half_close(true)` it never looks at the socket mid-request, so a caller
//! that resets its connection would not cancel the upstream request until
//! the answer is written. [`ClientIo`] sits between: a read EOF while a
//! request is being answered is held back (the read stays pending) and
//! handed to hyper once the answer is written, while errors (a reset) pass
//! through at once, ending the connection and with it the request (the
//! upstream connection is closed, which cancels the upstream's work). A
//! FIN-only close and `shutdown(SHUT_WR)` are the same on the wire, so a
//! caller that closes without a reset is answered (and the answer's write
//! then fails, which ends a stream as cancelled).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::gateway::proxy::body::ResBody;

/// What the connection's reader, its service and its response bodies share.
#[derive(Default)]
pub(crate) struct ConnState {
    /// From a request's head to the end (or drop) of its response body.
    busy: AtomicBool,
    /// It answered at least one request (an idle keep-alive connection when
    /// not busy; one that never sent a request is not shed).
    served: AtomicBool,
    /// Asked to finish: the worker stops, or it is shed at the cap.
    close: AtomicBool,
    /// The caller shut down its sending side.
    eof: AtomicBool,
    /// Requests begun: the head-timeout sweep sees a connection that
    /// answered one between two looks (written by the connection's task only).
    begun: AtomicU64,
    /// The head-timeout sweep found it waiting for a request head for
    /// longer than the head timeout: close it if it still is.
    expired: AtomicBool,
    /// The connection's task, when a held-back EOF waits for the answer.
    reader: AtomicWaker,
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

    /// The answer's body ended (or was dropped): idle again.
    pub(crate) fn end(&self) {
        self.busy.store(false, Ordering::Relaxed);
        if self.eof.load(Ordering::Relaxed) {
            self.reader.wake();
        }
    }

    /// Idle keep-alive: no request being answered.
    pub(crate) fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::Relaxed)
    }
}

/// The caller's stream as hyper reads it (see the module header).
pub(crate) struct ClientIo<I> {
    io: I,
    state: Arc<ConnState>,
    /// The caller's EOF was read (sticky).
    eof: bool,
}

impl<I> ClientIo<I> {
    pub(crate) fn new(io: I, state: Arc<ConnState>) -> Self {
        Self {
            io,
            state,
            eof: false,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.eof {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            if buf.filled().len() > before || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            this.eof = true;
            this.state.eof.store(true, Ordering::Relaxed);
        }
        if this.state.is_idle() {
            return Poll::Ready(Ok(()));
        }
        // Hold the EOF back until the answer is written.
        this.state.reader.register(cx.waker());
        if this.state.is_idle() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ClientIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that marks its connection idle when it ends or is
/// dropped (hyper drops bodies it does not send: HEAD, 204, 304).
pub(crate) struct ConnBody {
    inner: ResBody,
    state: Arc<ConnState>,
    done: bool,
}

impl ConnBody {
    pub(crate) fn new(inner: ResBody, state: Arc<ConnState>) -> Self {
        Self {
            inner,
            state,
            done: false,
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.state.end();
        }
    }
}

impl Drop for ConnBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for ConnBody {
    type Data = bytes::Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, io::Error>>> {
        let this = self.get_mut();
        let next = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if next.is_none() || this.inner.is_end_stream() {
            this.finish();
        }
        Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
