//! The console (SPEC §4): a k9s-like keyboard dashboard over the
//! [`Client`](crate::client::Client) seam.
//!
//! Shape: background tasks publish snapshots; [`run`]'s loop feeds them,
//! keys and replies to [`app::App`] (all state, no I/O) and draws with
//! [`views::chrome::render`] only when something changed.

pub mod action;
pub mod app;
pub mod data;
pub mod fixtures;
pub mod format;
pub mod forms;
pub mod keymap;
pub mod live;
pub mod run;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;
