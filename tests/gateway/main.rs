//! Gateway integration tests over real HTTP on loopback, against the mock
//! upstream (plain and TLS), the real `maasctl serve` binary and the
//! official `openai` Python client. One test binary; areas are modules.

#[path = "../common/mod.rs"]
mod common;
mod counters;
mod edge;
mod errors;
mod fallback;
mod framing;
mod health;
mod openai_python;
mod probes;
mod reload;
mod routing;
mod routing_heal;
mod streaming;
mod support;
mod tls;
mod tokens;
mod truth;
