//! Picking an endpoint by the model's policy (`docs/gateway.md`, "Request path", step 6), lock-free.
//!
//! - round-robin: a strict cycle over the endpoints that are healthy right
//!   now (one shared atomic counter; the k-th healthy endpoint is picked), so
//!   with three healthy endpoints requests go 0,1,2,0,1,2…
//! - random: uniform over the healthy endpoints.
//! - weighted: a precomputed smooth weighted round-robin wheel (nginx's
//!   algorithm: the sequence for 70/30 interleaves as A,B,A,A,B,A,A,B,A,A…)
//!   walked by the same atomic counter, so every window of 100 requests
//!   follows the weights exactly; a weight-0 endpoint never appears. While
//!   some weighted endpoints are out of rotation, the pick is weighted-random
//!   over the healthy ones, so their share still follows their weights.
//! - least-loaded: power of two choices. Two distinct healthy endpoints
//!   drawn at random; the one with fewer requests in flight wins (in flight:
//!   from the try's start to the end of its answer's body, or its failure:
//!   the endpoint's own counters), ties by the lower latency average (EWMA
//!   of the time to the answer's head), then the first drawn. Two picks
//!   look at two endpoints only, so the cost does not grow with their
//!   number, and a herd never piles onto the one least-loaded endpoint.
//!
//! The health of an endpoint is read through a closure so this module knows
//! nothing of the request path (and benches can drive it alone).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::domain::Policy;

/// Whether an endpoint may be used at all, and whether it is in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    /// In rotation.
    Healthy,
    /// Ejected (or half-open with its one trial in flight); used only when
    /// nothing healthy is left (the least recently failed first).
    Down,
    /// Never used (disabled by the operator, weight 0, or unusable config).
    Never,
    /// The upstream answered 429: not used until its Retry-After.
    Cooling,
}

/// The balancing state of one route (rebuilt on reload).
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Weights (weighted policy; 1 each otherwise).
    weights: Box<[u32]>,
    /// Smooth weighted round-robin sequence of endpoint indexes (weighted only).
    wheel: Box<[u16]>,
    next: AtomicUsize,
}

impl Balancer {
    /// `weights[i]` is endpoint i's weight; ignored unless the policy is weighted.
    pub fn new(policy: Policy, weights: &[u32]) -> Self {
        let weights: Box<[u32]> = if policy == Policy::Weighted {
            weights.into()
        } else {
            vec![1; weights.len()].into()
        };
        let wheel = if policy == Policy::Weighted {
            smooth_wheel(&weights)
        } else {
            Box::default()
        };
        Self {
            policy,
            weights,
            wheel,
            next: AtomicUsize::new(0),
        }
    }

    /// Weight of endpoint `i` (0 means it never gets traffic).
    pub fn weight(&self, i: usize) -> u32 {
        self.weights.get(i).copied().unwrap_or(0)
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Pick the first endpoint for a request, among healthy ones; `None` if
    /// none is healthy. `avail(i)` must already say `Never` for weight 0.
    /// (Least-loaded without loads: every endpoint looks idle.)
    pub fn pick(&self, n: usize, avail: impl Fn(usize) -> Avail) -> Option<usize> {
        self.pick_with(n, avail, |_| (0, 0))
    }

    /// [`Balancer::pick`], with `load(i)` = (requests in flight, latency
    /// EWMA) for the least-loaded policy (not called by the others).
    pub fn pick_with(
        &self,
        n: usize,
        avail: impl Fn(usize) -> Avail,
        load: impl Fn(usize) -> (u64, u64),
    ) -> Option<usize> {
        if n == 1 {
            // One endpoint: every policy picks it (no shared counter to touch).
            return (self.weight(0) > 0 && avail(0) == Avail::Healthy).then_some(0);
        }
        match self.policy {
            Policy::RoundRobin => {
                let healthy = (0..n).filter(|&i| avail(i) == Avail::Healthy).count();
                if healthy == 0 {
                    return None;
                }
                let k = self.next.fetch_add(1, Ordering::Relaxed) % healthy;
                nth_healthy(n, &avail, k)
            }
            Policy::Random => {
                let healthy = (0..n).filter(|&i| avail(i) == Avail::Healthy).count();
                if healthy == 0 {
                    return None;
                }
                nth_healthy(n, &avail, fastrand::usize(..healthy))
            }
            Policy::LeastLoaded => {
                let healthy = (0..n).filter(|&i| avail(i) == Avail::Healthy).count();
                if healthy <= 1 {
                    return nth_healthy(n, &avail, 0);
                }
                let k1 = fastrand::usize(..healthy);
                let mut k2 = fastrand::usize(..healthy - 1);
                if k2 >= k1 {
                    k2 += 1;
                }
                let a = nth_healthy(n, &avail, k1)?;
                let b = nth_healthy(n, &avail, k2)?;
                Some(if load(b) < load(a) { b } else { a })
            }
            Policy::Weighted => {
                if self.wheel.is_empty() {
                    return None;
                }
                let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.wheel.len();
                let i = self.wheel[slot] as usize;
                let all_healthy = (0..n).all(|j| self.weight(j) == 0 || avail(j) == Avail::Healthy);
                if all_healthy && i < n {
                    return Some(i);
                }
                let total: u64 = (0..n)
                    .filter(|&j| avail(j) == Avail::Healthy)
                    .map(|j| u64::from(self.weight(j)))
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut r = fastrand::u64(..total);
                (0..n).filter(|&j| avail(j) == Avail::Healthy).find(|&j| {
                    let w = u64::from(self.weight(j));
                    if r < w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
            }
        }
    }

    /// The endpoints to try after `first` failed to connect, in order: the
    /// other healthy ones (cyclically after `first`), then the ones out of
    /// rotation as a last resort (better a retry than a certain 502).
    /// With no `first` (nothing was healthy), the order starts at endpoint 0.
    pub fn fallbacks(
        &self,
        n: usize,
        first: Option<usize>,
        avail: impl Fn(usize) -> Avail,
    ) -> Vec<usize> {
        let start = first.map_or(0, |f| f + 1);
        let order = (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| Some(i) != first);
        let mut out: Vec<usize> = order
            .clone()
            .filter(|&i| avail(i) == Avail::Healthy)
            .collect();
        out.extend(order.filter(|&i| avail(i) == Avail::Down));
        out
    }
}

fn nth_healthy(n: usize, avail: &impl Fn(usize) -> Avail, k: usize) -> Option<usize> {
    (0..n).filter(|&i| avail(i) == Avail::Healthy).nth(k)
}

/// nginx's smooth weighted round-robin, unrolled into one full period.
fn smooth_wheel(weights: &[u32]) -> Box<[u16]> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut wheel = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        wheel.push(best as u16);
    }
    wheel.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_healthy(_: usize) -> Avail {
        Avail::Healthy
    }

    #[test]
    fn round_robin_is_a_strict_cycle_over_healthy_endpoints() {
        let b = Balancer::new(Policy::RoundRobin, &[0, 0, 0]);
        let picks: Vec<usize> = (0..7).map(|_| b.pick(3, all_healthy).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
        let down1 = |i| if i == 1 { Avail::Down } else { Avail::Healthy };
        let picks: Vec<usize> = (0..6).map(|_| b.pick(3, down1).unwrap()).collect();
        assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
        assert!(!picks.contains(&1));
        assert_eq!(b.pick(2, |_| Avail::Down), None);
    }

    #[test]
    fn weighted_follows_weights_exactly_per_period_and_skips_zero() {
        let b = Balancer::new(Policy::Weighted, &[70, 30, 0]);
        let mut n = [0usize; 3];
        for _ in 0..1000 {
            n[b.pick(3, |i| if i == 2 { Avail::Never } else { Avail::Healthy })
                .unwrap()] += 1;
        }
        assert_eq!(n, [700, 300, 0]);
        // Smooth: the 30% endpoint is never starved for long.
        let wheel = smooth_wheel(&[70, 30]);
        let max_gap = wheel.split(|&i| i == 1).map(|run| run.len()).max().unwrap();
        assert!(max_gap <= 3, "{wheel:?}");
    }

    #[test]
    fn weighted_with_an_endpoint_down_keeps_the_others_proportional() {
        let b = Balancer::new(Policy::Weighted, &[50, 25, 25]);
        let mut n = [0usize; 3];
        for _ in 0..20_000 {
            n[b.pick(3, |i| if i == 0 { Avail::Down } else { Avail::Healthy })
                .unwrap()] += 1;
        }
        assert_eq!(n[0], 0);
        let share = n[1] as f64 / 20_000.0;
        assert!((0.45..0.55).contains(&share), "{n:?}");
    }

    #[test]
    fn a_single_endpoint_is_picked_while_usable() {
        for policy in Policy::ALL {
            let b = Balancer::new(policy, &[100]);
            assert_eq!(b.pick(1, all_healthy), Some(0), "{policy}");
            assert_eq!(b.pick(1, |_| Avail::Down), None, "{policy}");
        }
        assert_eq!(
            Balancer::new(Policy::Weighted, &[0]).pick(1, all_healthy),
            None
        );
    }

    #[test]
    fn random_touches_every_healthy_endpoint() {
        let b = Balancer::new(Policy::Random, &[0; 4]);
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            seen[b
                .pick(4, |i| if i == 3 { Avail::Never } else { Avail::Healthy })
                .unwrap()] += 1;
        }
        assert!(seen[..3].iter().all(|&c| c > 0) && seen[3] == 0, "{seen:?}");
    }

    /// Seeded property loops: every policy's long-run split follows its
    /// definition, for random endpoint counts, weights and health.
    #[test]
    fn each_policy_splits_as_defined_over_random_setups() {
        let mut rng = fastrand::Rng::with_seed(14);
        for round in 0..60 {
            fastrand::seed(round);
            let n = rng.usize(2..=6);
            let down: Vec<bool> = (0..n).map(|_| rng.u8(..4) == 0).collect();
            if down.iter().all(|&d| d) {
                continue;
            }
            let avail = |i: usize| if down[i] { Avail::Down } else { Avail::Healthy };
            let healthy = down.iter().filter(|&&d| !d).count();
            let picks = 12_000;
            // Round-robin: exactly even over the healthy ones.
            let b = Balancer::new(Policy::RoundRobin, &vec![0; n]);
            let mut got = vec![0usize; n];
            for _ in 0..picks / healthy * healthy {
                got[b.pick(n, avail).unwrap()] += 1;
            }
            for i in 0..n {
                let want = if down[i] { 0 } else { picks / healthy };
                assert_eq!(got[i], want, "round {round} rr {got:?} down {down:?}");
            }
            // Random and least-loaded with equal loads: uniform within ±3 %.
            for policy in [Policy::Random, Policy::LeastLoaded] {
                let b = Balancer::new(policy, &vec![0; n]);
                let mut got = vec![0usize; n];
                for _ in 0..picks {
                    got[b.pick(n, avail).unwrap()] += 1;
                }
                for i in 0..n {
                    let share = got[i] as f64 / picks as f64;
                    let want = if down[i] { 0.0 } else { 1.0 / healthy as f64 };
                    assert!(
                        (share - want).abs() <= 0.03,
                        "round {round} {policy} {got:?}"
                    );
                }
            }
            // Weighted: random weights summing to 100, each share within ±3
            // points of its weight renormalised over the healthy endpoints.
            let mut weights = vec![0u32; n];
            for _ in 0..100 {
                weights[rng.usize(..n)] += 1;
            }
            let b = Balancer::new(Policy::Weighted, &weights);
            let wavail = |i: usize| {
                if weights[i] == 0 {
                    Avail::Never
                } else {
                    avail(i)
                }
            };
            let total: u32 = (0..n).filter(|&i| !down[i]).map(|i| weights[i]).sum();
            if total == 0 {
                continue;
            }
            let mut got = vec![0usize; n];
            for _ in 0..picks {
                got[b.pick(n, wavail).unwrap()] += 1;
            }
            for i in 0..n {
                let share = got[i] as f64 / picks as f64;
                let want = if down[i] {
                    0.0
                } else {
                    f64::from(weights[i]) / f64::from(total)
                };
                assert!(
                    (share - want).abs() <= 0.03,
                    "round {round} weights {weights:?} down {down:?} got {got:?}"
                );
            }
        }
    }

    /// Least-loaded over a simulated clock: one request arrives per tick,
    /// endpoint 0 takes 12 ticks to answer, the others 2: the slow one gets
    /// far less than its even share; with equal speeds the split is even.
    #[test]
    fn least_loaded_sends_less_to_a_slow_endpoint() {
        for (service, slow_max, slow_min) in [([12u64, 2, 2], 0.20, 0.0), ([3, 3, 3], 0.36, 0.30)] {
            fastrand::seed(7);
            let b = Balancer::new(Policy::LeastLoaded, &[0; 3]);
            // Completion ticks of the requests in flight, per endpoint.
            let mut flying: [Vec<u64>; 3] = Default::default();
            let mut got = [0usize; 3];
            for now in 0..30_000u64 {
                for f in flying.iter_mut() {
                    f.retain(|&done| done > now);
                }
                let i = b
                    .pick_with(
                        3,
                        |_| Avail::Healthy,
                        |i| (flying[i].len() as u64, service[i]),
                    )
                    .unwrap();
                flying[i].push(now + service[i]);
                got[i] += 1;
            }
            let slow = got[0] as f64 / 30_000.0;
            assert!(slow <= slow_max && slow >= slow_min, "{service:?}: {got:?}");
        }
    }

    #[test]
    fn fallbacks_try_healthy_then_down_and_never_the_rest() {
        let b = Balancer::new(Policy::RoundRobin, &[0; 5]);
        let avail = |i| match i {
            0 => Avail::Down,
            3 => Avail::Never,
            _ => Avail::Healthy,
        };
        assert_eq!(b.fallbacks(5, Some(2), avail), vec![4, 1, 0]);
        let none_healthy = |i| if i == 3 { Avail::Never } else { Avail::Down };
        assert_eq!(b.fallbacks(5, None, none_healthy), vec![0, 1, 2, 4]);
    }
}
