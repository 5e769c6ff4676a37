//! The live tail's lines as the console holds them: the newest [`KEEP`]
//! request events taken from the gateway (through [`Client::tail`]), a
//! cursor to ask for the next ones, and the gateway's drop count.
//!
//! [`Client::tail`]: crate::client::Client::tail

use std::collections::VecDeque;

use crate::gateway::{RequestEvent, TailPage};

/// How many request lines the console keeps.
pub const KEEP: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct RequestLines {
    /// Oldest first, by `seq`.
    pub lines: VecDeque<RequestEvent>,
    /// The cursor for the next call.
    pub next: u64,
    /// Events the gateway dropped (its channel was full).
    pub dropped: u64,
    /// Moves whenever `lines` change.
    pub generation: u64,
}

impl RequestLines {
    /// Take a page; returns whether anything shown changed.
    pub fn take(&mut self, page: TailPage) -> bool {
        let mut changed = page.dropped != self.dropped;
        if page.next < self.next {
            // The gateway started over (its numbers did): so do we.
            self.lines.clear();
            changed = true;
        }
        self.next = page.next;
        self.dropped = page.dropped;
        let last = self.lines.back().map_or(0, |e| e.seq);
        for e in page.events.into_iter().filter(|e| e.seq > last) {
            if self.lines.len() == KEEP {
                self.lines.pop_front();
            }
            self.lines.push_back(e);
            changed = true;
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// The line numbered `seq`.
    pub fn get(&self, seq: u64) -> Option<&RequestEvent> {
        let i = self.lines.binary_search_by_key(&seq, |e| e.seq).ok()?;
        self.lines.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seqs: std::ops::RangeInclusive<u64>) -> TailPage {
        TailPage {
            next: *seqs.end(),
            events: seqs
                .map(|seq| RequestEvent {
                    seq,
                    ..Default::default()
                })
                .collect(),
            dropped: 0,
        }
    }

    #[test]
    fn keeps_the_newest_and_starts_over_with_the_gateway() {
        let mut r = RequestLines::default();
        assert!(r.take(page(1..=600)));
        assert!(r.take(page(601..=1200)));
        assert_eq!(r.lines.len(), KEEP);
        assert_eq!(r.lines[0].seq, 201);
        assert!(!r.take(page(1100..=1200)), "nothing new");
        assert!(r.take(page(1..=3)), "a restarted gateway");
        assert_eq!(r.lines.len(), 3);
        assert_eq!(r.get(2).map(|e| e.seq), Some(2));
    }
}
