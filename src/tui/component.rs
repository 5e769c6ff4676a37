//! The shape every view has ([`View`]) and what a view may ask of the app
//! ([`Effect`]). A view owns its state and its key table; it never sends,
//! opens or navigates itself: it answers an action with an effect and the
//! app carries it out.

use std::any::Any;

use ratatui::Frame;
use ratatui::layout::Rect;

use super::action::{Action, Op};
use super::data::Data;
use super::forms::Form;
use super::ids::ViewId;
use super::keymap::Binding;
use super::popups::{Confirmed, Overlay};
use super::widgets::table::ListState;

/// What the app does after a view handled an action.
pub enum Effect {
    None,
    /// Send a call in the background; say `done` once it succeeded (a
    /// refusal is explained in a popup).
    Send {
        op: Op,
        done: String,
    },
    /// Push a view over this one (`esc` comes back).
    Push(Box<dyn View>),
    /// Go to a top-level view, with this filter if given.
    Jump(ViewId, Option<String>),
    /// Open a form over the views.
    Form(Form),
    /// Open an overlay (a question, a message, a text).
    Overlay(Overlay),
    /// Ask for a rollback to this revision: a dry run first, whose
    /// answer the app shows in a question (`y` rolls back).
    Rollback(u64),
    /// Copy `text` to the operator's clipboard (OSC 52); the line says
    /// `what` was copied.
    Copy {
        text: String,
        what: String,
    },
    /// Ask again now for the data the view shows (`:usage`'s report):
    /// it reads, it changes nothing.
    Reload,
    /// A line under the view.
    Flash {
        text: String,
        error: bool,
    },
}

impl Effect {
    /// Whether carrying it out would change something (send a change, open
    /// a form, ask to confirm a change): a read-only console refuses it
    /// with a line, whichever key asked for it.
    pub fn changes(&self) -> bool {
        matches!(
            self,
            Effect::Send { .. }
                | Effect::Form(_)
                | Effect::Rollback(_)
                | Effect::Overlay(Overlay::Confirm {
                    on_yes: Confirmed::Op(..),
                    ..
                })
        )
    }

    /// An error line under the view.
    pub fn error(text: impl Into<String>) -> Self {
        Effect::Flash {
            text: text.into(),
            error: true,
        }
    }

    /// A question; `y` sends `op` and says `done`.
    pub fn confirm(title: &str, text: String, op: Op, done: String) -> Self {
        Effect::Overlay(Overlay::Confirm {
            title: title.into(),
            text,
            on_yes: Confirmed::Op(op, done),
        })
    }
}

/// Lets the app hand out a view as its concrete type (tests read a view's
/// own state through it).
pub trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A page of the console. The app routes the keys of its table to
/// [`View::handle`], feeds it data through [`View::refresh`] and draws it
/// with [`View::render`], which only reads.
pub trait View: AsAny {
    fn id(&self) -> ViewId;

    /// Its breadcrumbs in the header.
    fn crumbs(&self) -> String {
        self.id().name().to_string()
    }

    /// Its keys, looked up before the global ones: the one table key
    /// handling, the footer and `?` all read.
    fn keys(&self) -> &'static [Binding];

    /// Do what a key of its table, or a global move (`↑`, `pgdn`, …),
    /// asks.
    fn handle(&mut self, action: Action, data: &Data) -> Effect;

    /// Derive what it shows from the data (new registry, counters, clock,
    /// log lines, or its own filter or sort changed). Cheap when nothing it
    /// reads moved: it runs for every view whenever data arrives.
    fn refresh(&mut self, _data: &Data) {}

    /// Fit its scroll position to `area`, the body it is about to be drawn
    /// in (the app calls this before every frame; drawing then only reads).
    fn layout(&mut self, _data: &Data, _area: Rect) {}

    fn render(&self, data: &Data, f: &mut Frame, area: Rect);

    /// Its `/` filter; `None` where the view has none.
    fn filter(&self) -> Option<&str> {
        None
    }

    /// Filter by `text`; `typed` (as it is typed) starts the selection
    /// over at the top.
    fn set_filter(&mut self, _text: &str, _typed: bool, _data: &Data) {}

    /// Its rows, where it is a list.
    fn list(&self) -> Option<&ListState> {
        None
    }

    /// Select row `id`; whether it is shown.
    fn select(&mut self, _id: &str) -> bool {
        false
    }

    /// `esc`: drop what the view holds unsaved (nudged weights) and say
    /// so; `None` lets `esc` clear the filter or go back as usual.
    fn back(&mut self) -> Option<Effect> {
        None
    }

    /// Footer hints in place of its key table's while it holds something
    /// unsaved (`enter save · esc discard`).
    fn footer_hint(&self) -> Option<&'static [(&'static str, &'static str)]> {
        None
    }

    /// What it shows is gone (the model of a detail was deleted): the app
    /// goes back.
    fn gone(&self, _data: &Data) -> bool {
        false
    }
}
