//! The live counters (`docs/gateway.md`, "Counters"): atomics, one shard per worker thread.
//!
//! Each subject (the gateway, a model, a key, a workspace, an endpoint) owns
//! a [`Counters`]. A shard has exactly one writer, its worker thread (every
//! request is counted on the thread that serves it), so counting is a plain
//! load and store on a cache line no other core writes: no locked
//! instruction, no ping-pong between cores. Readers (the sampler) load the
//! same atomics, so they never see a torn value; they sum the shards a few
//! times a second. Everything is cumulative since the gateway started, so totals are
//! exact and rates come from differences.
//!
//! Latency goes into a log-linear histogram (4 buckets per power of two,
//! ≤ 19% bucket width) of cumulative counts; the sampler keeps periodic
//! copies and derives the last minute's p50/p99 from the difference. A
//! cumulative count and sum (microseconds) go beside it, for the
//! `_count`/`_sum` of the `/metrics` summary.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram buckets (covers 0 µs to about 2.4 hours).
pub const BUCKETS: usize = 128;

/// How a counted request ended. Every counted request ends in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The upstream answered 2xx.
    Success,
    /// 401: missing, invalid or revoked key.
    Unauthorized,
    /// 404: unknown or disabled model.
    NotFound,
    /// 400 or 413.
    BadRequest,
    /// 429 from a rate-limit rule.
    Throttled,
    /// The upstream answered 3xx/4xx (passed through).
    Upstream4xx,
    /// The upstream answered 5xx, or was unreachable (502), timed out (504),
    /// or no endpoint was usable (503).
    UpstreamError,
    /// The client went away before its answer was relayed to the end.
    Cancelled,
}

/// One worker's share of a subject's counters, on its own cache lines.
#[repr(align(128))]
#[derive(Default)]
pub struct Shard {
    started: AtomicU64,
    finished: AtomicU64,
    outcomes: [AtomicU64; 8],
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    hist: Hist,
}

struct Hist([AtomicU32; BUCKETS]);

impl Default for Hist {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU32::new(0)))
    }
}

/// A subject's counters.
pub struct Counters {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("shards", &self.shards.len())
            .finish()
    }
}

fn outcome_slot(o: RequestOutcome) -> usize {
    o as usize
}

/// Add `n` to a counter only this thread writes (see the module docs).
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Counters {
    /// Counters with one shard per worker (`shards` ≥ 1). Shard `w` must
    /// only ever be written from worker `w`'s thread.
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    #[inline]
    fn shard(&self, worker: usize) -> &Shard {
        &self.shards[worker % self.shards.len()]
    }

    /// A request for this subject began (counts a request and one in flight).
    #[inline]
    pub fn start(&self, worker: usize) {
        bump(&self.shard(worker).started, 1);
    }

    /// A request for this subject is over (no longer in flight).
    #[inline]
    pub fn finish(&self, worker: usize) {
        bump(&self.shard(worker).finished, 1);
    }

    #[inline]
    pub fn outcome(&self, worker: usize, o: RequestOutcome) {
        bump(&self.shard(worker).outcomes[outcome_slot(o)], 1);
    }

    #[inline]
    pub fn tokens(&self, worker: usize, prompt: u64, completion: u64) {
        let s = self.shard(worker);
        if prompt > 0 {
            bump(&s.prompt_tokens, prompt);
        }
        if completion > 0 {
            bump(&s.completion_tokens, completion);
        }
    }

    #[inline]
    pub fn latency(&self, worker: usize, d: Duration) {
        let s = self.shard(worker);
        let us = micros(d);
        let b = &s.hist.0[bucket_of_us(us)];
        b.store(b.load(Relaxed).wrapping_add(1), Relaxed);
        bump(&s.latency_count, 1);
        bump(&s.latency_sum_us, us);
    }

    /// Requests in flight now (started, not finished), summed over the
    /// shards: two loads per shard (the least-loaded policy reads it).
    #[inline]
    pub fn in_flight_now(&self) -> u64 {
        let (mut started, mut finished) = (0u64, 0u64);
        for s in self.shards.iter() {
            started += s.started.load(Relaxed);
            finished += s.finished.load(Relaxed);
        }
        started.saturating_sub(finished)
    }

    /// Sum of all shards, now.
    pub fn read(&self) -> Reading {
        let mut r = Reading::default();
        for s in self.shards.iter() {
            r.started += s.started.load(Relaxed);
            r.finished += s.finished.load(Relaxed);
            for (acc, o) in r.outcomes.iter_mut().zip(&s.outcomes) {
                *acc += o.load(Relaxed);
            }
            r.prompt_tokens += s.prompt_tokens.load(Relaxed);
            r.completion_tokens += s.completion_tokens.load(Relaxed);
            r.latency_count += s.latency_count.load(Relaxed);
            r.latency_sum_us += s.latency_sum_us.load(Relaxed);
            for (acc, b) in r.hist.iter_mut().zip(&s.hist.0) {
                *acc = acc.wrapping_add(b.load(Relaxed));
            }
        }
        r
    }
}

/// Summed counters of one subject at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub started: u64,
    pub finished: u64,
    outcomes: [u64; 8],
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Latencies recorded, and their sum in microseconds (cumulative).
    pub latency_count: u64,
    pub latency_sum_us: u64,
    /// Cumulative latency histogram (wrapping counts; differences are exact).
    pub hist: [u32; BUCKETS],
}

impl Default for Reading {
    fn default() -> Self {
        Self {
            started: 0,
            finished: 0,
            outcomes: [0; 8],
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_count: 0,
            latency_sum_us: 0,
            hist: [0; BUCKETS],
        }
    }
}

impl Reading {
    pub fn outcome(&self, o: RequestOutcome) -> u64 {
        self.outcomes[outcome_slot(o)]
    }
    /// Started and not finished. Shards are read one after another, so a
    /// request finishing mid-read could make this briefly negative: clamp.
    pub fn in_flight(&self) -> u64 {
        self.started.saturating_sub(self.finished)
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// The bucket of a latency: exact below 8 µs, then 4 buckets per power of two.
pub fn bucket_of(d: Duration) -> usize {
    bucket_of_us(micros(d))
}

fn bucket_of_us(us: u64) -> usize {
    if us < 8 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // ≥ 3
    let sub = ((us >> (octave - 2)) & 3) as usize;
    (8 + (octave - 3) * 4 + sub).min(BUCKETS - 1)
}

/// The middle of a bucket, in milliseconds (what percentiles report).
pub fn bucket_mid_ms(b: usize) -> f64 {
    if b < 8 {
        return b as f64 / 1000.0;
    }
    let octave = (b - 8) / 4 + 3;
    let sub = ((b - 8) % 4) as u64;
    let width = 1u64 << (octave - 2);
    let low = (1u64 << octave) + sub * width;
    (low as f64 + width as f64 / 2.0) / 1000.0
}

/// The `q`-quantile (0..1) of a histogram of counts, in milliseconds; 0 if empty.
pub fn quantile_ms(hist: &[u32; BUCKETS], q: f64) -> f64 {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (b, &c) in hist.iter().enumerate() {
        seen += u64::from(c);
        if seen >= rank {
            return bucket_mid_ms(b);
        }
    }
    bucket_mid_ms(BUCKETS - 1)
}

/// `now - then` bucket by bucket (the requests recorded in between).
pub fn hist_delta(now: &[u32; BUCKETS], then: &[u32; BUCKETS]) -> [u32; BUCKETS] {
    std::array::from_fn(|i| now[i].wrapping_sub(then[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_mids_fall_inside() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            12_345,
            1_000_000,
            60_000_000,
            3_600_000_000,
        ] {
            let b = bucket_of(Duration::from_micros(us));
            assert!(b >= last, "{us}");
            last = b;
            let mid = bucket_mid_ms(b) * 1000.0;
            if us >= 8 && b < BUCKETS - 1 {
                assert!(
                    (mid - us as f64).abs() / us as f64 <= 0.2,
                    "{us} µs → bucket {b} mid {mid}"
                );
            }
        }
        assert_eq!(bucket_of(Duration::from_secs(1_000_000)), BUCKETS - 1);
    }

    #[test]
    fn shards_sum_and_quantiles_follow_the_data() {
        let c = Counters::new(3);
        for w in 0..3 {
            for _ in 0..10 {
                c.start(w);
                c.outcome(w, RequestOutcome::Success);
            }
            c.finish(w);
        }
        for i in 0..100u64 {
            c.latency(
                (i % 3) as usize,
                Duration::from_millis(if i < 98 { 10 } else { 500 }),
            );
        }
        c.tokens(1, 5, 7);
        let r = c.read();
        assert_eq!(
            (r.started, r.in_flight(), r.outcome(RequestOutcome::Success)),
            (30, 27, 30)
        );
        assert_eq!((r.prompt_tokens, r.completion_tokens), (5, 7));
        assert_eq!(
            (r.latency_count, r.latency_sum_us),
            (100, (98 * 10 + 2 * 500) * 1000)
        );
        let p50 = quantile_ms(&r.hist, 0.5);
        let p99 = quantile_ms(&r.hist, 0.99);
        assert!((8.0..12.0).contains(&p50), "{p50}");
        assert!((400.0..600.0).contains(&p99), "{p99}");
        let empty = [0u32; BUCKETS];
        assert_eq!(quantile_ms(&hist_delta(&r.hist, &r.hist), 0.5), 0.0);
        assert_eq!(quantile_ms(&empty, 0.99), 0.0);
    }
}
