//! Recent notable events (throttles, upstream errors, endpoints leaving or
//! rejoining the rotation, reloads) for the traffic view. Bounded; written
//! only on those rare paths, never for a request that went well.

use parking_lot::Mutex;
use std::collections::VecDeque;

use super::stats::{Event, EventKind};
use crate::domain::now_ms;

/// How many events are kept.
pub const KEEP: usize = 200;

#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<(u64, VecDeque<Event>)>,
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
