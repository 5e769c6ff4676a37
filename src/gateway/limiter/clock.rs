//! Time for the in-process windows, injected so tests are deterministic.
//!
//! The windows only need a monotonic millisecond count: wall-clock jumps
//! (NTP, an operator fixing the date) must neither free nor freeze a window.
//! Shared mode does not use this clock for its windows: Redis's own `TIME`
//! is the one clock every replica agrees on.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A source of monotonic milliseconds.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since an arbitrary fixed origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// The real clock: milliseconds since the limiter was created.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// A clock that moves only when told to: tests and benchmarks drive the
/// limiter through exact instants with it.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self {
            ms: AtomicU64::new(start_ms),
        }
    }

    /// Move to `ms` (ignored if that is in the past: the clock is monotonic).
    pub fn set(&self, ms: u64) {
        self.ms.fetch_max(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by_ms: u64) {
        self.ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}
