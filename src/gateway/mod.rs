//! The OpenAI-compatible gateway (SPEC §2) and its counters (SPEC §3).

pub mod limiter;
pub mod stats;
