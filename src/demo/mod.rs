//! Demo mode pieces (SPEC §5): a mock upstream on loopback.

pub mod upstream;
