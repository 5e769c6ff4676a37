//! Reaching upstreams: where a request goes ([`target`]), keep-alive
//! connection pools ([`pool`]), connections and response bodies
//! ([`conn`]) around the HTTP/1.1 codec ([`h1`]), TLS to upstreams
//! ([`tls`]), which endpoint takes a request ([`balancer`]) and whether an
//! endpoint is in rotation ([`health`]).

pub mod balancer;
pub mod conn;
pub mod h1;
pub mod health;
pub mod pool;
pub mod target;
pub mod tls;

pub use conn::UpBody;
pub use pool::{SendError, Upstream};
pub use target::UpstreamTarget;
