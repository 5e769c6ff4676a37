//! Reusable pieces: the virtual table every list view uses, popups, and the
//! sparkline panel.

pub mod popup;
pub mod spark;
pub mod table;
