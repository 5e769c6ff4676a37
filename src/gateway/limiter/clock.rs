//! Time for the in-process windows, injected so tests are deterministic.
//!
//! The windows only need a monotonic millisecond count: wall-clock jumps
//! (NTP, an operator fixing the date) must neither free nor freeze a window.
//! Shared mode does not use this clock for its windows: Redis's own `TIME`
//! is the one clock every replica agrees on.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of monotonic milliseconds.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since an arbitrary fixed origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// The real clock: milliseconds since the limiter was created, read from
/// the CPU's time-stamp counter (`quanta`: one `rdtsc`, a multiply and a
/// shift instead of `clock_gettime` through the vDSO; the request path
/// reads it twice per token reservation). Where the TSC is not usable (no constant/invariant TSC
/// in CPUID, not x86), `quanta` reads the OS's monotonic clock instead.
///
/// Every call reads the counter: no cached "recent" time refreshed by a
/// ticker, which would stamp a request with an instant before it arrived
/// and so let it leave its window early (docs/rate-limits.md, "The clock").
#[derive(Debug)]
pub struct MonotonicClock {
    tsc: quanta::Clock,
    /// The counter's raw value when the clock was created.
    origin: u64,
    /// The latest ms handed out: TSCs of different cores may disagree by a
    /// little, and the windows need time that never goes backwards. Written
    /// once per ms (the line stays shared between cores in between).
    latest: AtomicU64,
}

impl MonotonicClock {
    pub fn new() -> Self {
        // The first `quanta::Clock` of the process calibrates the counter
        // against the OS clock (once, ~10-200 ms); later ones reuse it.
        let tsc = quanta::Clock::new();
        Self {
            origin: tsc.raw(),
            tsc,
            latest: AtomicU64::new(0),
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
        let ms = self.tsc.delta_as_nanos(self.origin, self.tsc.raw()) / 1_000_000;
        let latest = self.latest.load(Ordering::Relaxed);
        if ms <= latest {
            return latest;
        }
        // A new millisecond: publish it (another core may have gone further).
        self.latest.fetch_max(ms, Ordering::Relaxed).max(ms)
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use std::sync::Arc;

    use super::*;

    /// The counter's milliseconds are the OS clock's: the ms counted
    /// between two readings lie within what the OS clock saw around them
    /// (one ms of truncation each side; being descheduled only widens the
    /// outer bracket).
    #[test]
    fn the_tsc_clock_keeps_the_os_clocks_pace() {
        let clock = MonotonicClock::new();
        let t0 = Instant::now();
        let start_ms = clock.now_ms();
        let t1 = Instant::now();
        let deadline = t1 + Duration::from_secs(10);
        let mut last = start_ms;
        while last < start_ms + 50 {
            let now = clock.now_ms();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
            assert!(Instant::now() < deadline, "50 ms never passed on the clock");
        }
        let t2 = Instant::now();
        let end_ms = clock.now_ms();
        let t3 = Instant::now();
        let ours = (end_ms - start_ms) as f64;
        let (inner, outer) = ((t2 - t1).as_secs_f64() * 1e3, (t3 - t0).as_secs_f64() * 1e3);
        assert!(
            inner - 1.0 <= ours && ours <= outer + 1.0,
            "the clock counted {ours} ms while the OS saw {inner:.3}..{outer:.3} ms"
        );
    }

    #[test]
    fn the_tsc_clock_never_goes_back_across_threads() {
        let clock = Arc::new(MonotonicClock::new());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..200_000 {
                        let now = clock.now_ms();
                        assert!(now >= last, "went back from {last} to {now}");
                        last = now;
                    }
                    last
                })
            })
            .collect();
        let seen: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        // Anything handed out is at most the latest published ms.
        let latest = clock.now_ms();
        assert!(seen.iter().all(|&s| s <= latest), "{seen:?} after {latest}");
    }
}
