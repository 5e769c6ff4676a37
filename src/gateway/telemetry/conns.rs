//! The callers' connections of one gateway: how many are open, the cap,
//! how many idle keep-alive connections were shed to make room, and how
//! many callers were turned away because none could be shed. Atomics
//! touched once per connection (never per request); `/metrics` reads them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Connection counters shared by the workers.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Most connections open at once.
    pub cap: usize,
    open: AtomicUsize,
    shed: AtomicU64,
    refused: AtomicU64,
}

/// What `/metrics` shows of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnGauges {
    pub cap: u64,
    pub open: u64,
    pub shed: u64,
    pub refused: u64,
}

impl ConnCounters {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// Count a new connection if there is room; `false` at the cap.
    pub fn try_open(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Count a connection whatever the cap (one that replaces a shed one).
    pub fn force_open(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection counted by [`try_open`](Self::try_open) closed.
    pub fn close(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// An idle keep-alive connection was closed to make room.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// A caller was closed at once: the cap was reached and nothing idle
    /// could be shed.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gauges(&self) -> ConnGauges {
        ConnGauges {
            cap: self.cap as u64,
            open: self.open() as u64,
            shed: self.shed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}
