//! The console's state and the one place keys, replies and data change it.
//! No I/O here: background calls leave through `outbox` and come back
//! through [`App::on_reply`], so every key action is testable without a
//! terminal or a store.
//!
//! The app holds a stack: pages (views) at the bottom, popups (a form,
//! above it at most one overlay) on top. A key goes to the top popup if
//! there is one, else to the `:`/`/` prompt being typed, else to the page
//! on top: looked up in that view's key table, then the global one. The
//! app handles the global actions (`:`, `/`, `?`, `esc`, `q`); the view
//! handles the rest and answers with an [`Effect`] the app carries out.

use std::collections::HashMap;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::client::{ClientError, GatewayHeader, RegistryView};
use crate::domain::token::Role;
use crate::domain::{AuditQuery, DomainError, ErrorKind, Registry};
use crate::gateway::StatsSnapshot;
use crate::logging::LogRing;
use crate::ops::rollback::RollbackReport;

use super::action::{Action, Done, Op, Reply, Request};
use super::component::{Effect, View};
use super::data::Data;
use super::forms::{Form, FormEvent};
use super::ids::{self, COMMANDS, Command, ViewId};
use super::keymap::{self, Binding, GLOBAL};
use super::popups::{Answer, Confirmed, Overlay, Popup};
use super::theme::Theme;
use super::views::{VIEWS, usage};
use super::widgets::frame_areas;
use super::widgets::table::ListState;

/// A line under the view: the outcome of the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    /// Unix ms after which it is cleared.
    pub until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Command,
    Filter,
}

/// The `:` command bar or the `/` filter being typed.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub kind: PromptKind,
    pub input: Input,
}

/// What to do with a reply.
#[derive(Debug, Clone, PartialEq)]
enum OnReply {
    /// The open form with this seq saved; say `done` and select `select`.
    Form {
        seq: u64,
        done: String,
        select: Option<(ViewId, String)>,
    },
    /// Say `done` on success; show the refusal in a popup.
    Flash(String),
    /// A guarded save from a view (not a form): say `done`, or that this
    /// subject changed elsewhere and nothing was overwritten.
    Guarded { done: String, subject: String },
    /// The audit entries for `:audit`.
    Audit,
    /// A rollback's dry run: ask before doing it.
    RollbackPlan,
    /// New lines for the live tail.
    Tail,
    /// The budgets' spending for `:budgets`.
    Budgets,
    /// A usage report for `:usage`.
    Usage,
}

/// A page of the stack: a top-level view (kept in the view table) or one
/// pushed over it (dropped when left).
enum Page {
    Top(ViewId),
    Pushed(Box<dyn View>),
}

/// What a changing key says in a read-only console.
pub const READ_ONLY: &str = "read-only: this token has role read";

/// How long the console's last change can be undone with `u`.
pub const UNDO_MS: i64 = 30_000;

/// The console's last change, which `u` can undo: a rollback to `before`
/// while the registry is still at `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undoable {
    pub before: u64,
    pub after: u64,
    /// What it did (its success line).
    pub what: String,
    /// Unix ms when it was applied.
    pub at_ms: i64,
}

/// How long a flash message stays.
const FLASH_MS: i64 = 6000;

pub struct App {
    pub data: Data,
    /// The top-level views, made once from [`VIEWS`].
    views: HashMap<ViewId, Box<dyn View>>,
    /// The page stack; the last is shown. The models list is always first.
    pages: Vec<Page>,
    /// Over the pages: an open form, then at most one overlay.
    popups: Vec<Popup>,
    pub prompt: Option<Prompt>,
    pub flash: Option<Flash>,
    /// Calls to run in the background (the loop drains it).
    pub outbox: Vec<Request>,
    pending: HashMap<u64, OnReply>,
    next_id: u64,
    pub quit: bool,
    /// Select this row once it appears (a just-created entity).
    want_select: Option<(ViewId, String)>,
    /// The registry revision the audit entries shown were asked at
    /// (`None`: ask again when `:audit` is shown).
    audit_at: Option<u64>,
    audit_pending: bool,
    /// The registry a guarded save found changed (for reload / overwrite).
    changed: Option<Box<Registry>>,
    /// A tail call is under way (one at a time).
    tail_pending: bool,
    /// A budgets call is under way (one at a time).
    budgets_pending: bool,
    /// Text to copy to the operator's clipboard (the loop writes it out).
    pub clipboard: Option<String>,
    /// The last change made here, for `u`.
    pub undo: Option<Undoable>,
    /// The rollback asked for is an undo of this change (its question says so).
    undoing: Option<String>,
    /// When `:usage` last asked for its report (the console's clock).
    usage_asked_ms: Option<i64>,
    /// Asked again while a usage call was under way: ask once it is back.
    usage_again: bool,
}

/// How many of the newest audit entries `:audit` holds.
pub const AUDIT_LIMIT: usize = 1000;

impl App {
    pub fn new(
        theme: Theme,
        view: Arc<RegistryView>,
        gateway: GatewayHeader,
        now_ms: i64,
        logs: Option<LogRing>,
    ) -> Self {
        let mut app = Self {
            data: Data::new(theme, view, gateway, now_ms, logs),
            views: VIEWS
                .iter()
                .map(|make| make())
                .map(|v| (v.id(), v))
                .collect(),
            pages: vec![Page::Top(ViewId::Models)],
            popups: Vec::new(),
            prompt: None,
            flash: None,
            outbox: Vec::new(),
            pending: HashMap::new(),
            next_id: 1,
            quit: false,
            want_select: None,
            audit_at: None,
            audit_pending: false,
            changed: None,
            tail_pending: false,
            budgets_pending: false,
            clipboard: None,
            undo: None,
            undoing: None,
            usage_asked_ms: None,
            usage_again: false,
        };
        app.refresh();
        app
    }

    /// What this console may do: with a `read` token it is read-only.
    pub fn set_role(&mut self, role: Role) {
        self.data.read_only = role == Role::Read;
    }

    // ---- what is shown ---------------------------------------------------

    /// The view on top of the page stack.
    pub fn view(&self) -> &dyn View {
        match self.pages.last().expect("the page stack is never empty") {
            Page::Top(id) => self.views[id].as_ref(),
            Page::Pushed(v) => v.as_ref(),
        }
    }

    pub fn current(&self) -> ViewId {
        self.view().id()
    }

    /// How many pages deep the operator is (`esc` goes back while > 1).
    pub fn depth(&self) -> usize {
        self.pages.len()
    }

    /// The view of type `T` on the stack or in the view table (tests read
    /// a view's own state through it).
    pub fn view_as<T: View>(&self) -> Option<&T> {
        let pushed = self.pages.iter().rev().filter_map(|p| match p {
            Page::Pushed(v) => Some(v.as_ref()),
            Page::Top(_) => None,
        });
        pushed
            .chain(self.views.values().map(|v| v.as_ref()))
            .find_map(|v| v.as_any().downcast_ref::<T>())
    }

    /// The key table of the top-level view `id`.
    pub fn keys_of(&self, id: ViewId) -> &'static [Binding] {
        self.views.get(&id).map_or(&[], |v| v.keys())
    }

    /// The rows of the list view `id`.
    pub fn list(&self, id: ViewId) -> &ListState {
        self.views
            .get(&id)
            .and_then(|v| v.list())
            .unwrap_or_else(|| panic!("{} is not a list view", id.name()))
    }

    /// Select row `row` of the list view `id`; whether it is shown.
    pub fn select(&mut self, id: ViewId, row: &str) -> bool {
        self.views.get_mut(&id).is_some_and(|v| v.select(row))
    }

    /// The popups, bottom first.
    pub fn popups(&self) -> &[Popup] {
        &self.popups
    }

    /// The open form.
    pub fn form(&self) -> Option<&Form> {
        self.popups.iter().rev().find_map(|p| match p {
            Popup::Form(f) => Some(f.as_ref()),
            Popup::Overlay(_) => None,
        })
    }

    pub fn form_mut(&mut self) -> Option<&mut Form> {
        self.popups.iter_mut().rev().find_map(|p| match p {
            Popup::Form(f) => Some(f.as_mut()),
            Popup::Overlay(_) => None,
        })
    }

    /// The overlay on top, if any.
    pub fn overlay(&self) -> Option<&Overlay> {
        match self.popups.last() {
            Some(Popup::Overlay(o)) => Some(o),
            _ => None,
        }
    }

    /// Fit scroll positions to a frame of `area` before it is drawn (so
    /// drawing only reads).
    pub fn layout(&mut self, area: Rect) {
        let [_, body, _, _] = frame_areas(area);
        let data = &self.data;
        match self
            .pages
            .last_mut()
            .expect("the page stack is never empty")
        {
            Page::Top(id) => self.views.get_mut(id).expect("made").layout(data, body),
            Page::Pushed(v) => v.layout(data, body),
        }
        for p in &mut self.popups {
            match p {
                Popup::Form(f) => f.layout(body),
                Popup::Overlay(Overlay::Scroll { lines, top, .. }) => {
                    *top = (*top).min(super::popups::scroll_max(body, lines));
                }
                Popup::Overlay(_) => {}
            }
        }
    }

    // ---- inputs --------------------------------------------------------

    /// Every view derives what it shows from the data again (each skips
    /// the work when nothing it reads moved).
    fn refresh(&mut self) {
        let data = &self.data;
        for v in self.views.values_mut() {
            v.refresh(data);
        }
        for p in &mut self.pages {
            if let Page::Pushed(v) = p {
                v.refresh(data);
            }
        }
        self.try_select();
    }

    /// Select the row asked for once it is there.
    fn try_select(&mut self) {
        if let Some((v, id)) = &self.want_select
            && self.views.get_mut(v).is_some_and(|view| view.select(id))
        {
            self.want_select = None;
        }
    }

    /// A new registry snapshot.
    pub fn on_registry(&mut self, view: Arc<RegistryView>) {
        self.data.set_view(view);
        self.refresh();
        if self.pages.len() > 1 && self.view().gone(&self.data) {
            // Deleted or renamed: back to the list (which selects the new name).
            self.pages.pop();
        }
        self.want_audit();
    }

    /// Ask for the audit entries when `:audit` is shown and the registry
    /// moved since they were asked for (one call at a time).
    fn want_audit(&mut self) {
        let revision = self.data.registry().revision;
        if self.current() != ViewId::Audit || self.audit_pending || self.audit_at == Some(revision)
        {
            return;
        }
        self.audit_pending = true;
        self.audit_at = Some(revision);
        let query = AuditQuery {
            limit: Some(AUDIT_LIMIT),
            ..AuditQuery::default()
        };
        self.send(Op::Audit(query), OnReply::Audit);
    }

    /// New counters arrived at `now_ms` (the console's clock: staleness is
    /// judged on it); returns whether anything shown changed.
    pub fn on_stats_at(&mut self, snap: Arc<StatsSnapshot>, now_ms: i64) -> bool {
        self.data.now_ms = now_ms;
        self.on_stats(snap)
    }

    /// Ask for the gateway's newest request events while `:tail` is shown
    /// (one call at a time; the loop calls this a few times a second).
    pub fn poll_tail(&mut self) {
        if self.current() != ViewId::Tail || self.tail_pending {
            return;
        }
        self.tail_pending = true;
        self.send(Op::Tail(self.data.requests.next), OnReply::Tail);
    }

    /// Ask for the budgets' spending while `:budgets` is shown (one call
    /// at a time; the loop calls this every couple of seconds).
    pub fn poll_budgets(&mut self) {
        if self.current() != ViewId::Budgets || self.budgets_pending {
            return;
        }
        self.budgets_pending = true;
        self.send(Op::Budgets, OnReply::Budgets);
    }

    /// New counters; returns whether anything shown changed.
    pub fn on_stats(&mut self, snap: Arc<StatsSnapshot>) -> bool {
        let changed = self.data.live.update(snap, self.data.now_ms);
        if changed {
            self.refresh();
        }
        changed
    }

    pub fn on_gateway(&mut self, info: GatewayHeader) {
        self.data.gateway = info;
        // A source that says it is down makes its data stale at once.
        if self
            .data
            .live
            .check(self.data.now_ms, self.data.source_up())
        {
            self.refresh();
        }
    }

    /// New log lines were kept.
    pub fn on_logs(&mut self) {
        self.refresh();
    }

    /// The slow tick; returns whether a redraw is needed.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        let mut changed = self.data.tick(now_ms);
        changed |= self.data.live.check(now_ms, self.data.source_up());
        if changed {
            self.refresh();
        }
        self.want_usage(false);
        if self.flash.as_ref().is_some_and(|f| f.until_ms <= now_ms) {
            self.flash = None;
            changed = true;
        }
        changed
    }

    /// Ask for `:usage`'s report while it is shown: `now` (opened, a key),
    /// else when the last ask is [`usage::REFRESH_MS`] old (the ledger's
    /// flush interval). One call at a time; asked for again while one is
    /// under way, it asks once that one is back.
    pub fn want_usage(&mut self, now: bool) {
        if self.current() != ViewId::Usage {
            return;
        }
        if self.data.usage.loading {
            self.usage_again |= now;
            return;
        }
        let due = self
            .usage_asked_ms
            .is_none_or(|at| self.data.now_ms - at >= usage::REFRESH_MS);
        if !now && !due {
            return;
        }
        let Some(view) = self
            .views
            .get(&ViewId::Usage)
            .and_then(|v| v.as_any().downcast_ref::<usage::UsageView>())
        else {
            return;
        };
        let query = view.query(self.data.now_ms);
        self.usage_asked_ms = Some(self.data.now_ms);
        self.usage_again = false;
        self.data.usage.loading = true;
        self.send(Op::Usage(query), OnReply::Usage);
    }

    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            until_ms: self.data.now_ms + FLASH_MS,
        });
    }

    /// Queue a background call.
    fn send(&mut self, op: Op, on_reply: OnReply) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, on_reply);
        self.outbox.push(Request { id, op });
    }

    /// Drain the calls to run.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    /// A background call finished.
    pub fn on_reply(&mut self, reply: Reply) {
        let Some(on) = self.pending.remove(&reply.id) else {
            return;
        };
        match on {
            OnReply::Form { seq, done, select } => self.form_saved(seq, done, select, reply),
            OnReply::Flash(done) => match reply.result {
                Ok(Done::Applied(a)) => {
                    self.remember(&a, &done);
                    self.say(done, false);
                }
                Ok(Done::Rollback(_)) => {
                    // Undone (or rolled back): nothing left to undo here.
                    self.undo = None;
                    self.say(done, false);
                }
                Ok(_) => self.say(done, false),
                Err(e) => self.refused(e),
            },
            OnReply::Guarded { done, subject } => match reply.result {
                Ok(Done::Changed(_)) => self.say(
                    format!(
                        "not saved: {subject} changed elsewhere meanwhile (nothing overwritten; esc discards)"
                    ),
                    true,
                ),
                Ok(Done::Applied(a)) => {
                    self.remember(&a, &done);
                    self.say(done, false);
                }
                Ok(_) => self.say(done, false),
                Err(e) => self.refused(e),
            },
            OnReply::Audit => {
                self.audit_pending = false;
                match reply.result {
                    Ok(Done::Audit(entries)) => {
                        self.data.set_audit(entries);
                        self.refresh();
                    }
                    Ok(_) => {}
                    // Asked again when the revision moves or `:audit` is
                    // opened again, not at once (a server that is down
                    // would be asked in a loop).
                    Err(e) => self.say(format!("cannot read the audit trail: {e}"), true),
                }
                self.want_audit();
            }
            OnReply::Tail => {
                self.tail_pending = false;
                match reply.result {
                    Ok(Done::Tail(page)) => {
                        if self.data.requests.take(page) {
                            self.refresh();
                        }
                    }
                    Ok(_) => {}
                    Err(e) => self.say(format!("cannot read the request tail: {e}"), true),
                }
            }
            OnReply::Budgets => {
                self.budgets_pending = false;
                match reply.result {
                    Ok(Done::Budgets(all)) => {
                        self.data.set_budgets(all);
                        self.refresh();
                    }
                    Ok(_) => {}
                    Err(e) => self.say(format!("cannot read the budgets: {e}"), true),
                }
            }
            OnReply::Usage => {
                let u = &mut self.data.usage;
                u.loading = false;
                u.at_ms = self.data.now_ms;
                match reply.result {
                    Ok(Done::Usage(report)) => {
                        u.report = Some(Arc::new(*report));
                        u.error = None;
                        u.generation += 1;
                    }
                    Ok(_) => {}
                    // Shown in the view; asked again at the next refresh.
                    Err(e) => u.error = Some(e.to_string()),
                }
                self.refresh();
                if std::mem::take(&mut self.usage_again) {
                    self.want_usage(true);
                }
            }
            OnReply::RollbackPlan => match (reply.result, self.undoing.take()) {
                (Ok(Done::Rollback(plan)), undoing) => self.confirm_rollback(&plan, undoing),
                (Ok(_), _) => {}
                (Err(e), _) => self.refused(e),
            },
        }
    }

    /// A change applied here can be undone for [`UNDO_MS`] (not one that
    /// changed nothing).
    fn remember(&mut self, a: &crate::store::Applied, done: &str) {
        let changed = a
            .outcomes
            .iter()
            .any(|o| *o != crate::domain::Outcome::Unchanged);
        if changed && a.revision > 0 {
            self.undo = Some(Undoable {
                before: a.revision - 1,
                after: a.revision,
                what: done.to_string(),
                at_ms: self.data.now_ms,
            });
        }
    }

    /// `u`: undo the last change made here, if it is recent and nothing
    /// moved the registry since: the rollback's dry run first, shown in a
    /// question (the same rollback code as `:audit`'s `R` and the CLI).
    fn undo(&mut self) {
        let Some(u) = self.undo.clone() else {
            self.say("nothing to undo: no change made here yet", true);
            return;
        };
        if self.data.now_ms - u.at_ms > UNDO_MS {
            self.undo = None;
            self.say(
                format!(
                    "too late to undo \"{}\" (changes can be undone for {} s); roll back in :audit",
                    u.what,
                    UNDO_MS / 1000
                ),
                true,
            );
            return;
        }
        let now = self.data.registry().revision;
        if now != u.after {
            self.say(
                format!(
                    "cannot undo \"{}\": the registry moved since (revision {} → {now}); roll back in :audit",
                    u.what, u.after
                ),
                true,
            );
            return;
        }
        self.undoing = Some(u.what.clone());
        self.run(Effect::Rollback(u.before));
    }

    /// A rollback's dry run came back: say there is nothing to do, or ask,
    /// showing what it will change.
    fn confirm_rollback(&mut self, plan: &RollbackReport, undoing: Option<String>) {
        if !plan.changed {
            let text = format!(
                "nothing to roll back: the registry already equals revision {}",
                plan.to
            );
            self.say(text, false);
            return;
        }
        let op = Op::Rollback {
            revision: plan.to,
            dry_run: false,
        };
        let (title, done) = match undoing {
            Some(what) => (
                format!("Undo \"{what}\"?"),
                format!("undone: {what} (rolled back to revision {})", plan.to),
            ),
            None => (
                format!("Roll back to revision {}?", plan.to),
                format!("rolled back to revision {}", plan.to),
            ),
        };
        self.open_overlay(Overlay::ConfirmLines {
            title,
            lines: super::views::audit::plan_lines(plan),
            on_yes: Confirmed::Op(op, done),
        });
    }

    fn form_saved(
        &mut self,
        seq: u64,
        done: String,
        select: Option<(ViewId, String)>,
        reply: Reply,
    ) {
        let open = self.form().is_some_and(|f| f.seq == seq);
        match reply.result {
            Ok(Done::KeyCreated(k)) => {
                if open {
                    self.close_form();
                }
                self.want_select = Some((ViewId::Keys, k.id.clone()));
                self.open_overlay(Overlay::Secret(k));
            }
            Ok(Done::Changed(reg)) if open => {
                let form = self.form_mut().expect("open");
                form.saving = false;
                let text = form
                    .guard
                    .as_ref()
                    .map_or_else(String::new, |g| g.changed_text());
                form.failure = Some(text.clone());
                self.changed = Some(reg);
                self.open_overlay(Overlay::Changed { text });
            }
            Ok(Done::Applied(a)) => {
                if open {
                    self.close_form();
                }
                self.remember(&a, &done);
                self.want_select = select;
                self.say(done, false);
            }
            Ok(
                Done::Changed(_)
                | Done::Audit(_)
                | Done::Rollback(_)
                | Done::Tail(_)
                | Done::Budgets(_)
                | Done::Usage(_),
            ) => {}
            Err(e) if open => {
                let form = self.form_mut().expect("open");
                match e {
                    ClientError::Domain(d) => form.rejected(d),
                    ClientError::Other(s) => {
                        form.saving = false;
                        form.failure = Some(s);
                    }
                }
            }
            Err(e) => self.refused(e),
        }
        self.try_select();
    }

    /// Show why an action was refused, with what to do about it.
    fn refused(&mut self, e: ClientError) {
        let mut lines: Vec<String> = match &e {
            ClientError::Domain(d) => d.errors.iter().map(|e| e.problem.clone()).collect(),
            ClientError::Other(s) => vec![s.clone()],
        };
        if let ClientError::Domain(DomainError {
            kind: ErrorKind::Refused,
            errors,
        }) = &e
            && errors.iter().any(|e| e.field == "status")
        {
            lines.push(
                "In the console: open :market, select the entry, press p to publish it, then enable the model again with t."
                    .into(),
            );
        }
        let title = match &e {
            ClientError::Domain(_) => "Refused",
            ClientError::Other(_) => "Failed",
        };
        self.open_overlay(Overlay::Message {
            title: title.into(),
            lines,
        });
    }

    // ---- keys ------------------------------------------------------------

    /// A key from the terminal. Only presses count (not repeats' releases).
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press {
            return;
        }
        // Esc followed quickly by a key arrives as Alt+key (the terminal's
        // meta prefix): treat it as the two keys the operator pressed.
        if key.modifiers == KeyModifiers::ALT
            && let KeyCode::Char(c) = key.code
        {
            self.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            self.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
            return;
        }
        match self.popups.last() {
            Some(Popup::Overlay(o)) => {
                let answer = o.on_key(&key);
                self.answer(answer);
            }
            Some(Popup::Form(_)) => self.form_key(key),
            None if self.prompt.is_some() => self.prompt_key(key),
            None => {
                let action =
                    keymap::find(self.view().keys(), &key).or_else(|| keymap::find(GLOBAL, &key));
                match action {
                    Some(a) if a.changes() && self.data.read_only => {
                        self.say(READ_ONLY, true);
                    }
                    Some(a) => self.dispatch(a),
                    None => {}
                }
            }
        }
    }

    /// The top overlay answered a key.
    fn answer(&mut self, answer: Answer) {
        match answer {
            Answer::Keep => {}
            Answer::Scroll(delta) => {
                if let Some(Popup::Overlay(Overlay::Scroll { lines, top, .. })) =
                    self.popups.last_mut()
                {
                    let max = lines.len().saturating_sub(1);
                    *top = top.saturating_add_signed(delta).min(max);
                }
            }
            Answer::Close => {
                self.popups.pop();
            }
            Answer::Copy { text, what } => self.copy(text, &what),
            Answer::Yes(on_yes) => {
                self.popups.pop();
                match on_yes {
                    Confirmed::Op(op, done) => self.send(op, OnReply::Flash(done)),
                    Confirmed::DiscardForm => self.close_form(),
                    Confirmed::ReloadForm => self.reload_form(),
                    Confirmed::OverwriteForm => self.overwrite_form(),
                    Confirmed::Quit => self.quit = true,
                }
            }
        }
    }

    fn form_key(&mut self, key: KeyEvent) {
        let reg = self.data.view.registry.clone();
        let Some(form) = self.form_mut() else { return };
        match form.on_key(key, &reg) {
            FormEvent::None => {}
            FormEvent::Save => self.save_form(),
            FormEvent::Cancel => {
                if form.is_dirty() {
                    self.confirm(
                        "Discard changes?",
                        "This form has unsaved changes. Discard them?",
                        Confirmed::DiscardForm,
                    );
                } else {
                    self.close_form();
                }
            }
            FormEvent::Quit => self.request_quit(),
            FormEvent::Help => self.open_overlay(Overlay::Help),
        }
    }

    /// Reopen the form on the registry its save found changed, with the
    /// values there (what was typed is dropped).
    fn reload_form(&mut self) {
        let (Some(reg), Some(form)) = (self.changed.take(), self.form()) else {
            return;
        };
        let what = form.guard.as_ref().map(|g| g.subject.label());
        match super::forms::reopen(&form.kind.clone(), &reg) {
            Some(fresh) => {
                self.open_form(fresh);
                self.say("reloaded with the current values", false);
            }
            None => {
                self.close_form();
                self.say(
                    format!("{} was deleted elsewhere", what.unwrap_or_default()),
                    true,
                );
            }
        }
    }

    /// Save what was typed over the change made elsewhere (the one seen;
    /// a newer one stops it again).
    fn overwrite_form(&mut self) {
        let Some(reg) = self.changed.take() else {
            return;
        };
        let Some(form) = self.form_mut() else { return };
        if let Some(g) = &mut form.guard {
            g.seen = g.subject.state(&reg);
        }
        form.failure = None;
        self.save_form();
    }

    fn save_form(&mut self) {
        let reg = self.data.view.registry.clone();
        let Some(form) = self.form_mut() else { return };
        if form.saving {
            return;
        }
        match form.build(&reg) {
            Err(errs) => form.refuse(errs),
            Ok(op) => {
                let op = match (op, &form.guard) {
                    (Op::Apply(changes), Some(guard)) => Op::Guarded {
                        guard: guard.clone(),
                        changes,
                    },
                    (op, _) => op,
                };
                form.saving = true;
                let (done, select) = form.success();
                let seq = form.seq;
                self.send(op, OnReply::Form { seq, done, select });
            }
        }
    }

    fn prompt_key(&mut self, key: KeyEvent) {
        let prompt = self.prompt.as_mut().expect("prompt open");
        let kind = prompt.kind;
        match key.code {
            KeyCode::Esc => {
                if kind == PromptKind::Filter {
                    self.set_filter("", false);
                }
                self.prompt = None;
            }
            KeyCode::Enter => {
                let value = prompt.input.value().trim().to_string();
                self.prompt = None;
                if kind == PromptKind::Command {
                    self.run_command(&value);
                }
            }
            KeyCode::Tab if kind == PromptKind::Command => {
                let done = ids::complete(prompt.input.value());
                prompt.input = Input::new(done);
            }
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.request_quit()
            }
            _ => {
                if prompt
                    .input
                    .handle_event(&crossterm::event::Event::Key(key))
                    .is_some()
                    && kind == PromptKind::Filter
                {
                    let text = prompt.input.value().to_string();
                    self.set_filter(&text, true);
                }
            }
        }
    }

    /// Filter the view on top by `text`; `typed` (as at the `/` prompt)
    /// starts the selection over at the top.
    pub fn set_filter(&mut self, text: &str, typed: bool) {
        let data = &self.data;
        match self
            .pages
            .last_mut()
            .expect("the page stack is never empty")
        {
            Page::Top(id) => self
                .views
                .get_mut(id)
                .expect("made")
                .set_filter(text, typed, data),
            Page::Pushed(v) => v.set_filter(text, typed, data),
        }
        self.try_select();
    }

    fn run_command(&mut self, text: &str) {
        let text = text.trim_start_matches(':');
        if text.is_empty() {
            return;
        }
        match ids::command(text) {
            Some(Command::Quit) => self.request_quit(),
            Some(Command::View(v)) => self.jump(v),
            None => {
                let all: Vec<String> = COMMANDS.iter().map(|(n, _)| format!(":{n}")).collect();
                self.say(
                    format!("unknown command ':{text}'; try {}", all.join(" ")),
                    true,
                );
            }
        }
    }

    /// Go to a top-level view; `Esc` leads back to the models list.
    pub fn jump(&mut self, v: ViewId) {
        self.pages.truncate(1);
        if v != ViewId::Models && self.views.contains_key(&v) {
            self.pages.push(Page::Top(v));
        }
        // What it shows may have moved while it was hidden (log lines).
        self.refresh();
        if v == ViewId::Audit {
            // Changes outside the registry (admin tokens) move no revision.
            if !self.audit_pending {
                self.audit_at = None;
            }
            self.want_audit();
        }
        self.poll_tail();
        self.poll_budgets();
        self.want_usage(true);
    }

    fn confirm(&mut self, title: &str, text: &str, on_yes: Confirmed) {
        self.open_overlay(Overlay::Confirm {
            title: title.into(),
            text: text.into(),
            on_yes,
        });
    }

    /// Show `o` over everything (in place of the overlay shown, if any).
    fn open_overlay(&mut self, o: Overlay) {
        if matches!(self.popups.last(), Some(Popup::Overlay(_))) {
            self.popups.pop();
        }
        self.popups.push(Popup::Overlay(o));
    }

    /// Open `form` (in place of an open one), under the overlay if any.
    pub fn open_form(&mut self, mut form: Form) {
        form.seq = self.next_id;
        self.next_id += 1;
        self.close_form();
        let at = self
            .popups
            .iter()
            .position(|p| matches!(p, Popup::Overlay(_)))
            .unwrap_or(self.popups.len());
        self.popups.insert(at, Popup::Form(Box::new(form)));
    }

    fn close_form(&mut self) {
        self.popups.retain(|p| !matches!(p, Popup::Form(_)));
    }

    pub fn request_quit(&mut self) {
        if self.form().is_some_and(Form::is_dirty) {
            self.confirm(
                "Quit?",
                "The open form has unsaved changes. Quit and discard them?",
                Confirmed::Quit,
            );
        } else {
            self.quit = true;
        }
    }

    /// Do what a key of the view's table or the global one asks.
    pub fn dispatch(&mut self, action: Action) {
        match action {
            Action::Help => self.open_overlay(Overlay::Help),
            Action::Undo => self.undo(),
            Action::Quit => self.request_quit(),
            Action::Command => {
                self.prompt = Some(Prompt {
                    kind: PromptKind::Command,
                    input: Input::default(),
                })
            }
            Action::Filter => match self.view().filter() {
                Some(current) => {
                    self.prompt = Some(Prompt {
                        kind: PromptKind::Filter,
                        input: Input::new(current.to_string()),
                    })
                }
                None => self.say("this view has no filter", true),
            },
            Action::Back => {
                let held = match self.pages.last_mut().expect("never empty") {
                    Page::Top(id) => self.views.get_mut(id).expect("made").back(),
                    Page::Pushed(v) => v.back(),
                };
                if let Some(effect) = held {
                    self.run(effect);
                } else if self.view().filter().is_some_and(|f| !f.is_empty()) {
                    self.set_filter("", false);
                } else if self.pages.len() > 1 {
                    self.pages.pop();
                }
            }
            other => {
                let data = &self.data;
                let effect = match self.pages.last_mut().expect("never empty") {
                    Page::Top(id) => self.views.get_mut(id).expect("made").handle(other, data),
                    Page::Pushed(v) => v.handle(other, data),
                };
                self.run(effect);
                self.try_select();
            }
        }
    }

    /// Carry out what a view asked for.
    fn run(&mut self, effect: Effect) {
        // Keys that change are refused before they get here; this also
        // catches a reading key that leads to a change (enter on a rule
        // in the detail opens its form).
        if self.data.read_only && effect.changes() {
            self.say(READ_ONLY, true);
            return;
        }
        match effect {
            Effect::None => {}
            Effect::Send { op, done } => {
                let on = match &op {
                    Op::Guarded { guard, .. } => OnReply::Guarded {
                        done,
                        subject: guard.subject.label(),
                    },
                    _ => OnReply::Flash(done),
                };
                self.send(op, on)
            }
            Effect::Push(mut v) => {
                v.refresh(&self.data);
                self.pages.push(Page::Pushed(v));
            }
            Effect::Jump(v, filter) => {
                self.jump(v);
                if let Some(f) = filter {
                    self.set_filter(&f, false);
                }
            }
            Effect::Form(form) => self.open_form(form),
            Effect::Overlay(o) => self.open_overlay(o),
            Effect::Rollback(revision) => self.send(
                Op::Rollback {
                    revision,
                    dry_run: true,
                },
                OnReply::RollbackPlan,
            ),
            Effect::Reload => self.want_usage(true),
            Effect::Flash { text, error } => self.say(text, error),
            Effect::Copy { text, what } => self.copy(text, &what),
        }
    }

    /// Copy `text` to the operator's clipboard (the loop sends it to the
    /// terminal) and say so.
    fn copy(&mut self, text: String, what: &str) {
        self.say(
            format!(
                "copied {what} ({} chars) to your clipboard via the terminal (OSC 52)",
                text.chars().count()
            ),
            false,
        );
        self.clipboard = Some(text);
    }

    /// The text to copy, once.
    pub fn take_clipboard(&mut self) -> Option<String> {
        self.clipboard.take()
    }
}
