//! What counting is made of (`docs/gateway.md`, "Counters"), below the routing snapshot: the
//! per-worker atomic [`counters`], token counts found by [`usage`] scanning
//! of response bytes, the published [`stats`] types, `/metrics`
//! ([`metrics`]), the callers' connection counts ([`conns`]) and the recent
//! notable [`events`]. The request's own tally
//! (`proxy::tally`) feeds the counters; the control thread's sampler
//! (`control::sampler`) sums them into a stats snapshot.

pub mod conns;
pub mod counters;
pub mod events;
pub mod ledger;
pub mod metrics;
pub mod stats;
pub mod usage;
