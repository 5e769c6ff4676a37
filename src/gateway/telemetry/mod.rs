//! Counting what the request path did (SPEC §3) and publishing it:
//! per-worker atomic [`counters`], the per-request [`tally`] that feeds
//! them, token counts found by [`usage`] scanning of response bytes, the
//! [`sampler`] that sums them into a [`stats`] snapshot, `/metrics`
//! ([`metrics`]) and the recent notable [`events`].

pub mod counters;
pub mod events;
pub mod metrics;
pub mod sampler;
pub mod stats;
pub mod tally;
pub mod usage;
