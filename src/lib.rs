//! maasctl: a terminal console for model-as-a-service operators and the
//! OpenAI-compatible gateway it manages. The binary is a thin shell over this
//! library so tests drive the same code.

pub mod admin;
pub mod cli;
pub mod client;
pub mod compose;
pub mod demo;
pub mod domain;
pub mod gateway;
pub mod logging;
pub mod ops;
pub mod paths;
pub mod store;
pub mod tui;
