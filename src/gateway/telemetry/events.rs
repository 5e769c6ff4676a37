//! Recent notable events (throttles, upstream errors, endpoints leaving or
//! rejoining the rotation, reloads) for the traffic view. Bounded; written
//! only on those rare paths, never for a request that went well.
//!
//! And the per-request events of the console's live tail ([`RequestTail`]):
//! every finished request costs the request path one `try_send` on a
//! bounded channel (nothing when it is full: the event is dropped and
//! counted). The control thread's sampler moves them into a bounded ring
//! 4×/s (and a reader before it reads); readers ask for the events after a
//! cursor (`docs/console.md`, "Live request tail").

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

use super::stats::{Event, EventKind};
use crate::domain::now_ms;

/// How many events are kept.
pub const KEEP: usize = 200;

#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<(u64, VecDeque<Event>)>,
    /// Every finished request, for the live tail.
    pub requests: RequestTail,
}

/// How many request events the channel holds between two drains (the
/// sampler drains 4×/s: 4096 a quarter second before any is dropped).
pub const TAIL_CHANNEL: usize = 4096;
/// How many request events the gateway keeps for readers.
pub const TAIL_KEEP: usize = 2000;

/// One finished request, as the live tail shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// Numbered from 1 in the order the ring took them.
    #[serde(default)]
    pub seq: u64,
    /// When it finished (Unix ms).
    pub at_ms: i64,
    /// The caller's key id, once authenticated.
    /// Shared names (`Arc<str>`): the request path clones a reference
    /// count, not the string.
    pub key_id: Option<Arc<str>>,
    /// The model, once routed.
    pub model: Option<Arc<str>>,
    /// The status answered; 0 when the caller went away before one was.
    pub status: u16,
    pub latency_ms: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The upstream endpoint that answered (or was tried last): `#index url`.
    pub endpoint: Option<Arc<str>>,
    /// Endpoints tried and failed before the last one (failover hops).
    pub hops: u32,
    /// The rate-limit rule that refused it (429).
    pub rule: Option<u64>,
}

/// The request events after a cursor (`GET /admin/v1/tail?since=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailPage {
    /// Oldest first; at most the newest `limit` after the cursor.
    pub events: Vec<RequestEvent>,
    /// The cursor for the next call: the newest seq taken so far.
    pub next: u64,
    /// Events dropped because the channel was full, since the gateway started.
    pub dropped: u64,
}

/// The request path's side (a bounded channel) and the readers' side (a
/// bounded ring) of the live tail.
#[derive(Debug)]
pub struct RequestTail {
    tx: mpsc::Sender<RequestEvent>,
    rx: Mutex<mpsc::Receiver<RequestEvent>>,
    ring: Mutex<(u64, VecDeque<RequestEvent>)>,
    dropped: AtomicU64,
}

impl Default for RequestTail {
    fn default() -> Self {
        Self::with_capacity(TAIL_CHANNEL)
    }
}

impl RequestTail {
    pub fn with_capacity(n: usize) -> Self {
        let (tx, rx) = mpsc::channel(n);
        Self {
            tx,
            rx: Mutex::new(rx),
            ring: Mutex::new((0, VecDeque::new())),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether an event would be taken now (the request path checks this
    /// before building one, so a full channel costs no allocation).
    #[inline]
    pub fn has_room(&self) -> bool {
        if self.tx.capacity() == 0 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The request path: never waits; a full channel drops the event.
    #[inline]
    pub fn record(&self, ev: RequestEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Move what the channel holds into the ring (the sampler, readers).
    pub fn drain(&self) {
        let mut rx = self.rx.lock();
        let mut ring = self.ring.lock();
        while let Ok(mut ev) = rx.try_recv() {
            ring.0 += 1;
            ev.seq = ring.0;
            if ring.1.len() == TAIL_KEEP {
                ring.1.pop_front();
            }
            ring.1.push_back(ev);
        }
    }

    /// The newest `limit` events after `since`, oldest first.
    pub fn since(&self, since: u64, limit: usize) -> TailPage {
        self.drain();
        let ring = self.ring.lock();
        let after: Vec<&RequestEvent> = ring.1.iter().filter(|e| e.seq > since).collect();
        let skip = after.len().saturating_sub(limit);
        TailPage {
            events: after.into_iter().skip(skip).cloned().collect(),
            next: ring.0,
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Events {
    pub fn push(
        &self,
        kind: EventKind,
        model: Option<&str>,
        key_id: Option<&str>,
        message: String,
    ) {
        let mut g = self.inner.lock();
        g.0 += 1;
        let seq = g.0;
        if g.1.len() == KEEP {
            g.1.pop_front();
        }
        g.1.push_back(Event {
            seq,
            at_ms: now_ms(),
            kind,
            model: model.map(str::to_string),
            key_id: key_id.map(str::to_string),
            message,
        });
    }

    /// The kept events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.inner.lock().1.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(status: u16) -> RequestEvent {
        RequestEvent {
            status,
            ..Default::default()
        }
    }

    #[test]
    fn the_tail_drops_and_counts_when_full_and_pages_by_cursor() {
        let t = RequestTail::with_capacity(3);
        for s in [200, 201, 202, 203] {
            if t.has_room() {
                t.record(req(s));
            }
        }
        let p = t.since(0, 100);
        assert_eq!(
            p.events.iter().map(|e| e.status).collect::<Vec<_>>(),
            [200, 201, 202]
        );
        assert_eq!((p.next, p.dropped), (3, 1));
        t.record(req(204));
        let p2 = t.since(p.next, 100);
        assert_eq!(p2.events.len(), 1);
        assert_eq!((p2.events[0].seq, p2.events[0].status), (4, 204));
        assert_eq!(t.since(4, 100).events, vec![]);
        assert_eq!(t.since(0, 2).events[0].seq, 3, "the newest `limit`");
    }

    #[test]
    fn the_tail_ring_is_bounded() {
        let t = RequestTail::with_capacity(TAIL_KEEP + 10);
        for _ in 0..TAIL_KEEP + 10 {
            t.record(req(200));
        }
        let p = t.since(0, usize::MAX);
        assert_eq!(p.events.len(), TAIL_KEEP);
        assert_eq!(p.events[0].seq, 11);
        assert_eq!(p.next, (TAIL_KEEP + 10) as u64);
    }

    #[test]
    fn keeps_the_newest_in_order() {
        let e = Events::default();
        for i in 0..KEEP + 5 {
            e.push(EventKind::Reloaded, None, None, format!("{i}"));
        }
        let r = e.recent();
        assert_eq!(r.len(), KEEP);
        assert_eq!(r[0].seq, 6);
        assert_eq!(r.last().unwrap().message, format!("{}", KEEP + 4));
    }
}
