//! The callers' connections of one gateway: how many are open, the cap,
//! how many idle keep-alive connections were shed to make room, and how
//! many callers were turned away because none could be shed, and how many
//! each worker serves (a new connection goes to the worker serving the
//! fewest: [`ConnCounters::place`]). Atomics touched once per connection
//! (never per request); `/metrics` reads them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Connection counters shared by the workers.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Most connections open at once.
    pub cap: usize,
    open: AtomicUsize,
    /// Connections each worker serves.
    workers: Box<[AtomicUsize]>,
    shed: AtomicU64,
    refused: AtomicU64,
}

/// What `/metrics` shows of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnGauges {
    pub cap: u64,
    pub open: u64,
    pub shed: u64,
    pub refused: u64,
    /// Connections each worker serves, by worker id.
    pub per_worker: Vec<u64>,
}

impl ConnCounters {
    /// Counters of a gateway with `workers` workers (at least one).
    pub fn new(cap: usize, workers: usize) -> Self {
        Self {
            cap,
            workers: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            ..Self::default()
        }
    }

    /// The worker that serves a connection accepted by worker `by`: the one
    /// serving the fewest connections, `by` itself on a tie, counted at once
    /// so the next placement sees it (until [`left`](Self::left)). Workers
    /// accept from one shared socket, and the kernel wakes whichever it
    /// likes: a burst of connections (a load balancer's pool opening) can
    /// land on one worker while the others idle; this evens them out.
    /// Placements racing on two workers may both pick the same one; the
    /// next placement corrects it.
    pub fn place(&self, by: usize) -> usize {
        let by = by % self.workers.len();
        let mut best = (by, self.workers[by].load(Ordering::Relaxed));
        for (i, n) in self.workers.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n < best.1 {
                best = (i, n);
            }
        }
        self.workers[best.0].fetch_add(1, Ordering::Relaxed);
        best.0
    }

    /// A connection placed on `worker` ended.
    pub fn left(&self, worker: usize) {
        self.workers[worker % self.workers.len()].fetch_sub(1, Ordering::Relaxed);
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
            per_worker: self
                .workers
                .iter()
                .map(|n| n.load(Ordering::Relaxed) as u64)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_to_the_worker_serving_the_fewest() {
        let c = ConnCounters::new(100, 3);
        // A burst accepted by worker 0 alone spreads over all three.
        let placed: Vec<usize> = (0..6).map(|_| c.place(0)).collect();
        assert_eq!(placed, [0, 1, 2, 0, 1, 2]);
        assert_eq!(c.gauges().per_worker, [2, 2, 2]);
        // On a tie the accepting worker keeps it.
        assert_eq!(c.place(2), 2);
        // Worker 1's connections end: the next ones go there, whoever accepts.
        c.left(1);
        c.left(1);
        assert_eq!(c.gauges().per_worker, [2, 0, 3]);
        assert_eq!(c.place(2), 1);
        assert_eq!(c.place(0), 1);
        assert_eq!(c.place(0), 0);
        assert_eq!(c.gauges().per_worker, [3, 2, 3]);
    }
}
