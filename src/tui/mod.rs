//! The console (`docs/console.md`): a k9s-like keyboard dashboard over the
//! [`Client`](crate::client::Client) seam.
//!
//! Shape: background tasks publish snapshots; [`run`]'s loop feeds them,
//! keys and replies to [`app::App`] (all state, no I/O). Data flows one
//! way: a snapshot arrives → every view derives its rows from it
//! ([`component::View::refresh`]) → before a frame [`app::App::layout`]
//! fits scroll positions → [`chrome::render`] draws from `&App`, reading
//! only, and only when something changed.
//!
//! Keys: the app keeps a stack, views (pages) below and popups (a form,
//! above it at most one overlay) on top. A key goes to the top popup,
//! else to the `:`/`/` prompt, else to the view on top, through that
//! view's key table and then [`keymap::GLOBAL`]. A view answers an action
//! with an [`component::Effect`] (send a call, push a view, jump, open a
//! form or an overlay, flash a line) that the app carries out. One key
//! table per view is the single source of its keys, its footer and its
//! `?` help.
//!
//! Layers, bottom up (no module imports one above it): [`ids`] (view ids,
//! `:` commands, sort keys) · [`action`], [`keymap`], [`theme`], [`clipboard`],
//! [`format`], [`live`], [`requests`], [`data`] · [`widgets`] · [`forms`] · [`popups`] ·
//! [`component`] (the `View` trait and `Effect`) · [`views`] · [`app`] ·
//! [`chrome`] · [`run`]. `tests/tui.rs` checks there is no import cycle.
//!
//! # How to add …
//!
//! **A view** (`:tokens`, say): a `ViewId` variant and its name in
//! [`ids`] (plus a line in `ids::COMMANDS` for its `:` command); one file
//! in `views/` that implements [`component::View`] — or, for a table of
//! rows, [`views::list::Table`] (ids, columns, cells, sorts, what its keys
//! do), which gets filter, sort, selection and drawing from
//! [`views::list::List`]; and one line in [`views::VIEWS`]. A view opened
//! from another (a detail) is not in the table: the opener returns
//! `Effect::Push(Box::new(…))`. Derive rows in `refresh` (it runs for every
//! view whenever data arrives, so skip the work when its inputs did not
//! move); keep `render` reading only; persist scroll offsets in `layout`.
//!
//! **A key**: a line in the view's `KEYS` table (in its file) with the
//! [`action::Action`] it triggers (a new variant if none fits) and an arm
//! in the view's `handle` (or `Table::act`). Footer and help follow from
//! the table. A key of every view goes in [`keymap::GLOBAL`] and is handled
//! in `App::dispatch`.
//! A key that changes something (or opens a form that would) names an
//! action listed in [`action::Action::changes`]: a read-only console (a
//! `read` token) hides it and answers it with a line.
//!
//! **A form**: a module in `forms/` that builds a [`forms::Form`] from
//! fields named like the registry's error fields, with a
//! [`forms::form::Behaviour`] (what it builds, which fields follow others,
//! keys of its own), a [`forms::FormKind`] variant and its success line in
//! `Form::success`; a view opens it with `Effect::Form(…)`.
//!
//! **A popup**: an [`popups::Overlay`] variant with its keys in
//! `Overlay::on_key` and its drawing in `Overlay::render`; a view opens it
//! with `Effect::Overlay(…)`.

pub mod action;
pub mod app;
pub mod chrome;
pub mod clipboard;
pub mod component;
pub mod data;
pub mod format;
pub mod forms;
pub mod ids;
pub mod keymap;
pub mod live;
pub mod popups;
pub mod requests;
pub mod run;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;
