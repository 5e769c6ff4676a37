//! Reusable pieces: the virtual table every list view uses, popups, and the
//! sparkline panel.

pub mod popup;
pub mod spark;
pub mod table;

use ratatui::layout::{Constraint, Layout, Rect};

/// The rows of a frame: header, body (the view, forms and popups), the
/// prompt/message line and the footer of keys.
pub fn frame_areas(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}
