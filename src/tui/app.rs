//! The console's state and the one place keys, replies and snapshots change
//! it. No I/O here: background calls leave through `outbox` and come back
//! through [`App::on_reply`], so every key action is testable without a
//! terminal or a store.

use std::collections::HashMap;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::client::{ClientError, CreatedKey, GatewayHeader, RegistryView};
use crate::domain::{Change, DomainError, ErrorKind, Model};
use crate::gateway::stats::StatsSnapshot;
use crate::logging::LogRing;

use super::action::{Action, Done, Op, Reply, Request};
use super::data::Data;
use super::forms::{self, Form, FormEvent, FormKind};
use super::keymap;
use super::theme::Theme;
use super::views::logs::{self, LogsState};
use super::views::{self, COMMANDS, Command, ViewId, sort};
use super::widgets::table::ListState;

/// A line under the view: the outcome of the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    /// Unix ms after which it is cleared.
    pub until_ms: i64,
}

/// What `y` does in a confirmation.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    Op(Op, String),
    DiscardForm,
    Quit,
}

/// A popup over everything, taking all keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Confirm {
        title: String,
        text: String,
        on_yes: Confirmed,
    },
    Message {
        title: String,
        lines: Vec<String>,
    },
    /// A created key's secret, shown this once.
    Secret(CreatedKey),
    Help,
    /// Text to read (a whole log line).
    Text {
        title: String,
        lines: Vec<String>,
    },
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

/// Which table of the model detail has the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Endpoints,
    Rules,
}

#[derive(Debug, Clone, Default)]
pub struct DetailState {
    pub model: String,
    pub pane: Pane,
    pub endpoint: usize,
    pub rule: usize,
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
}

/// How long a flash message stays.
const FLASH_MS: i64 = 6000;

pub struct App {
    pub data: Data,
    /// The page stack; the last is shown.
    pub pages: Vec<ViewId>,
    pub lists: HashMap<ViewId, ListState>,
    pub detail: DetailState,
    pub logs: LogsState,
    pub prompt: Option<Prompt>,
    pub form: Option<Form>,
    pub overlay: Option<Overlay>,
    pub flash: Option<Flash>,
    /// Calls to run in the background (the loop drains it).
    pub outbox: Vec<Request>,
    pending: HashMap<u64, OnReply>,
    next_id: u64,
    pub quit: bool,
    /// Select this row once it appears (a just-created entity).
    want_select: Option<(ViewId, String)>,
}

impl App {
    pub fn new(
        theme: Theme,
        view: Arc<RegistryView>,
        gateway: GatewayHeader,
        now_ms: i64,
        logs: Option<LogRing>,
    ) -> Self {
        Self {
            data: Data::new(theme, view, gateway, now_ms, logs),
            pages: vec![ViewId::Models],
            lists: HashMap::new(),
            detail: DetailState::default(),
            logs: LogsState::default(),
            prompt: None,
            form: None,
            overlay: None,
            flash: None,
            outbox: Vec::new(),
            pending: HashMap::new(),
            next_id: 1,
            quit: false,
            want_select: None,
        }
    }

    pub fn current(&self) -> ViewId {
        *self.pages.last().expect("the page stack is never empty")
    }

    /// The list state of `view`: filtered again if the registry or filter
    /// moved, sorted again if that or what the sort reads moved.
    pub fn list(&mut self, view: ViewId) -> &mut ListState {
        let revision = self.data.registry().revision;
        let data = &self.data;
        let st = self.lists.entry(view).or_default();
        if st
            .built
            .as_ref()
            .is_none_or(|(r, f)| *r != revision || *f != st.filter)
        {
            st.base = views::rows(data, view, &st.filter);
            st.built = Some((revision, st.filter.clone()));
            st.ordered = None;
        }
        let order = st.sort.unwrap_or_else(|| sort::default_sort(view));
        let key = (order, sort::depends_on(data, order));
        if st.ordered != Some(key) {
            st.set_rows(sort::apply(data, view, order, st.base.clone()));
            st.ordered = Some(key);
        }
        if let Some((v, id)) = &self.want_select
            && *v == view
            && st.select_id(id)
        {
            self.want_select = None;
        }
        st
    }

    fn selected(&mut self, view: ViewId) -> Option<String> {
        self.list(view).selected_id().map(str::to_string)
    }

    /// The model the models list or detail is on.
    pub fn current_model(&mut self) -> Option<Model> {
        let name = match self.current() {
            ViewId::Detail => Some(self.detail.model.clone()),
            ViewId::Models => self.selected(ViewId::Models),
            _ => None,
        }?;
        self.data.registry().models.get(&name).cloned()
    }

    // ---- inputs --------------------------------------------------------

    /// A new registry snapshot.
    pub fn on_registry(&mut self, view: Arc<RegistryView>) {
        self.data.set_view(view);
        if self.current() == ViewId::Detail
            && !self.data.registry().models.contains_key(&self.detail.model)
        {
            // Deleted or renamed: back to the list (which selects the new name).
            self.pages.pop();
        }
    }

    /// New counters; returns whether anything shown changed.
    pub fn on_stats(&mut self, snap: Arc<StatsSnapshot>) -> bool {
        self.data.live.update(snap)
    }

    pub fn on_gateway(&mut self, info: GatewayHeader) {
        self.data.gateway = info;
    }

    /// The slow tick; returns whether a redraw is needed.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        let mut changed = self.data.tick(now_ms);
        if self.flash.as_ref().is_some_and(|f| f.until_ms <= now_ms) {
            self.flash = None;
            changed = true;
        }
        changed
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
            OnReply::Form { seq, done, select } => {
                let open = self.form.as_ref().is_some_and(|f| f.seq == seq);
                match reply.result {
                    Ok(Done::KeyCreated(k)) => {
                        if open {
                            self.form = None;
                        }
                        self.want_select = Some((ViewId::Keys, k.id.clone()));
                        self.overlay = Some(Overlay::Secret(k));
                    }
                    Ok(Done::Applied(_)) => {
                        if open {
                            self.form = None;
                        }
                        self.want_select = select;
                        self.say(done, false);
                    }
                    Err(e) if open => {
                        let form = self.form.as_mut().expect("open");
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
            }
            OnReply::Flash(done) => match reply.result {
                Ok(_) => self.say(done, false),
                Err(e) => self.refused(e),
            },
        }
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
        self.overlay = Some(Overlay::Message {
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
        if self.overlay.is_some() {
            self.overlay_key(key);
        } else if self.form.is_some() {
            self.form_key(key);
        } else if self.prompt.is_some() {
            self.prompt_key(key);
        } else if let Some(action) = keymap::lookup(self.current(), &key) {
            self.dispatch(action);
        }
    }

    fn overlay_key(&mut self, key: KeyEvent) {
        match self.overlay {
            Some(Overlay::Confirm { .. }) => {}
            // Shown once and never again: a stray key must not lose it.
            Some(Overlay::Secret(_)) => {
                if matches!(key.code, KeyCode::Enter | KeyCode::Esc) {
                    self.overlay = None;
                }
                return;
            }
            // Messages, help and text close on any key.
            _ => {
                self.overlay = None;
                return;
            }
        }
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                if let Some(Overlay::Confirm { on_yes, .. }) = self.overlay.take() {
                    match on_yes {
                        Confirmed::Op(op, done) => self.send(op, OnReply::Flash(done)),
                        Confirmed::DiscardForm => self.form = None,
                        Confirmed::Quit => self.quit = true,
                    }
                }
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => self.overlay = None,
            // Only y, n and esc answer a question.
            _ => {}
        }
    }

    fn form_key(&mut self, key: KeyEvent) {
        let reg = self.data.view.registry.clone();
        let form = self.form.as_mut().expect("form open");
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
                    self.form = None;
                }
            }
            FormEvent::Quit => self.request_quit(),
            FormEvent::Help => self.overlay = Some(Overlay::Help),
        }
    }

    fn save_form(&mut self) {
        let reg = self.data.view.registry.clone();
        let form = self.form.as_mut().expect("form open");
        if form.saving {
            return;
        }
        match form.build(&reg) {
            Err(errs) => form.refuse(errs),
            Ok(op) => {
                form.saving = true;
                let (done, select) = success(form);
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
                    let v = self.current();
                    self.list(v).filter.clear();
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
                let done = complete(prompt.input.value());
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
                    let v = self.current();
                    let list = self.list(v);
                    list.filter = text;
                    list.selected = 0;
                    list.offset = 0;
                }
            }
        }
    }

    fn run_command(&mut self, text: &str) {
        let text = text.trim_start_matches(':');
        if text.is_empty() {
            return;
        }
        match views::command(text) {
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
        if v != ViewId::Models {
            self.pages.push(v);
        }
    }

    fn confirm(&mut self, title: &str, text: &str, on_yes: Confirmed) {
        self.overlay = Some(Overlay::Confirm {
            title: title.into(),
            text: text.into(),
            on_yes,
        });
    }

    fn confirm_op(&mut self, title: &str, text: String, change: Change, done: String) {
        self.confirm(title, &text, Confirmed::Op(Op::Apply(vec![change]), done));
    }

    pub fn request_quit(&mut self) {
        if self.form.as_ref().is_some_and(Form::is_dirty) {
            self.confirm(
                "Quit?",
                "The open form has unsaved changes. Quit and discard them?",
                Confirmed::Quit,
            );
        } else {
            self.quit = true;
        }
    }

    pub fn open_form(&mut self, mut form: Form) {
        form.seq = self.next_id;
        self.next_id += 1;
        self.form = Some(form);
    }

    /// Do what a key of the view table asks.
    pub fn dispatch(&mut self, action: Action) {
        let view = self.current();
        let reg = self.data.view.registry.clone();
        if let Some(noun) = noun(view)
            && needs_selection(action)
            && self.list(view).selected_id().is_none()
        {
            let filtered = !self.list(view).filter.is_empty();
            let hint = if filtered {
                " (the filter hides every row: esc clears it)"
            } else if keymap::view_bindings(view)
                .iter()
                .any(|b| b.action == Action::Create)
            {
                " (c creates one)"
            } else {
                ""
            };
            self.say(format!("no {noun} selected{hint}"), true);
            return;
        }
        match action {
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-20),
            Action::PageDown => self.step(20),
            Action::Top => self.step(isize::MIN / 2),
            Action::Bottom => self.step(isize::MAX / 2),
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::Quit => self.request_quit(),
            Action::Command => {
                self.prompt = Some(Prompt {
                    kind: PromptKind::Command,
                    input: Input::default(),
                })
            }
            Action::Filter => {
                if views::filterable(view) {
                    let current = self.list(view).filter.clone();
                    self.prompt = Some(Prompt {
                        kind: PromptKind::Filter,
                        input: Input::new(current),
                    });
                } else {
                    self.say("this view has no filter", true);
                }
            }
            Action::Back => {
                if views::filterable(view) && !self.list(view).filter.is_empty() {
                    self.list(view).filter.clear();
                } else if self.pages.len() > 1 {
                    self.pages.pop();
                }
            }
            Action::Follow => self.logs.cursor = None,
            Action::Wrap => self.logs.wrap = !self.logs.wrap,
            Action::Sort(by) => {
                let list = self.list(view);
                list.sort = Some(
                    list.sort
                        .unwrap_or_else(|| sort::default_sort(view))
                        .pressed(by),
                );
            }
            Action::SwitchPane => {
                self.detail.pane = match self.detail.pane {
                    Pane::Endpoints => Pane::Rules,
                    Pane::Rules => Pane::Endpoints,
                }
            }
            Action::Open => match view {
                ViewId::Models => {
                    if let Some(name) = self.selected(ViewId::Models) {
                        self.detail = DetailState {
                            model: name,
                            ..Default::default()
                        };
                        self.pages.push(ViewId::Detail);
                    }
                }
                ViewId::Workspaces => {
                    if let Some(ws) = self.selected(ViewId::Workspaces) {
                        self.jump(ViewId::Keys);
                        self.list(ViewId::Keys).filter = ws;
                    }
                }
                ViewId::Logs => {
                    let lines = self.log_lines();
                    if let Some((n, l)) = self.logs.index(&lines).map(|i| &lines[i]) {
                        self.overlay = Some(Overlay::Text {
                            title: format!("log line {n}"),
                            lines: logs::full_text(l),
                        });
                    }
                }
                ViewId::Detail => match self.detail.pane {
                    Pane::Rules => match self.selected_rule() {
                        Some((m, r)) => self.open_form(forms::rule::edit(&reg, &m.spec.name, &r)),
                        None => self.say("no rule to edit: a adds one", true),
                    },
                    Pane::Endpoints => {
                        if let Some(m) = self.current_model() {
                            let i = self.detail.endpoint;
                            self.overlay = Some(Overlay::Text {
                                title: format!("{} endpoint {}", m.spec.name, i + 1),
                                lines: views::detail::endpoint_text(&self.data, &m, i),
                            });
                        }
                    }
                },
                _ => {}
            },
            Action::Create => match view {
                ViewId::Models => self.open_form(forms::model::create(&reg, None)),
                ViewId::Keys => {
                    let ws = self.list(ViewId::Keys).filter.clone();
                    let ws = reg.workspaces.contains_key(&ws).then_some(ws);
                    self.open_form(forms::simple::key(&reg, ws.as_deref()))
                }
                ViewId::Workspaces => self.open_form(forms::simple::workspace(&reg)),
                ViewId::Clusters => self.open_form(forms::simple::cluster(&reg, None)),
                ViewId::Market => self.open_form(forms::simple::market(&reg, None)),
                _ => {}
            },
            Action::Register => {
                if let Some(name) = self.selected(ViewId::Market) {
                    self.open_form(forms::model::create(&reg, Some(&name)));
                }
            }
            Action::Edit => match view {
                ViewId::Models | ViewId::Detail => {
                    if let Some(m) = self.current_model() {
                        self.open_form(forms::model::edit(&reg, &m));
                    }
                }
                ViewId::Clusters => {
                    if let Some(c) = self
                        .selected(view)
                        .and_then(|n| reg.clusters.get(&n).cloned())
                    {
                        self.open_form(forms::simple::cluster(&reg, Some(&c)));
                    }
                }
                ViewId::Market => {
                    if let Some(e) = self
                        .selected(view)
                        .and_then(|n| reg.market.get(&n).cloned())
                    {
                        self.open_form(forms::simple::market(&reg, Some(&e)));
                    }
                }
                _ => {}
            },
            Action::AddRule => {
                if let Some(m) = self.current_model() {
                    if reg.workspaces.is_empty() {
                        self.say(
                            "a rule needs a workspace: create one in :workspaces first",
                            true,
                        );
                    } else {
                        self.open_form(forms::rule::create(&reg, &m.spec.name));
                    }
                }
            }
            Action::Toggle => {
                if let Some(m) = self.current_model() {
                    let name = m.spec.name.clone();
                    let enabled = !m.enabled;
                    let done = format!(
                        "model {name} {}",
                        if enabled { "enabled" } else { "disabled" }
                    );
                    self.send(
                        Op::Apply(vec![Change::SetEnabled { name, enabled }]),
                        OnReply::Flash(done),
                    );
                }
            }
            Action::Publish => {
                if let Some(e) = self
                    .selected(ViewId::Market)
                    .and_then(|n| reg.market.get(&n).cloned())
                {
                    let published = !e.published;
                    let done = format!(
                        "{} {}",
                        e.name,
                        if published {
                            "published"
                        } else {
                            "unpublished"
                        }
                    );
                    self.send(
                        Op::Apply(vec![Change::SetPublished {
                            name: e.name,
                            published,
                        }]),
                        OnReply::Flash(done),
                    );
                }
            }
            Action::ToggleEndpoint => {
                if self.detail.pane != Pane::Endpoints {
                    self.say("select an endpoint first (tab switches panes)", true);
                } else if let Some(m) = self.current_model()
                    && let Some(ep) = m.spec.endpoints.get(self.detail.endpoint)
                {
                    let disabled = !ep.disabled;
                    let done = format!(
                        "endpoint {} {}",
                        ep.url,
                        if disabled {
                            "taken out of rotation"
                        } else {
                            "back in rotation"
                        }
                    );
                    self.send(
                        Op::Apply(vec![Change::SetEndpointDisabled {
                            model: m.spec.name.clone(),
                            index: self.detail.endpoint,
                            disabled,
                        }]),
                        OnReply::Flash(done),
                    );
                }
            }
            Action::Revoke => {
                let revoked = |id: &str| reg.keys.get(id).is_some_and(|k| k.is_revoked());
                match self.selected(ViewId::Keys) {
                    Some(id) if revoked(&id) => {
                        self.say(format!("key {id} is already revoked"), true)
                    }
                    Some(id) => self.confirm_op(
                        "Revoke key?",
                        format!("Revoke {id}? Calls with it fail at once. y to revoke, n to keep."),
                        Change::RevokeKey { id: id.clone() },
                        format!("key {id} revoked"),
                    ),
                    None => {}
                }
            }
            Action::Delete => self.delete(view),
        }
    }

    fn delete(&mut self, view: ViewId) {
        if view == ViewId::Detail {
            self.delete_rule();
            return;
        }
        let Some(id) = self.selected(view) else {
            return;
        };
        let (what, change) = match view {
            ViewId::Models => ("model", Change::DeleteModel { name: id.clone() }),
            ViewId::Keys => ("key", Change::DeleteKey { id: id.clone() }),
            ViewId::Workspaces => ("workspace", Change::DeleteWorkspace { name: id.clone() }),
            ViewId::Clusters => ("cluster", Change::DeleteCluster { name: id.clone() }),
            ViewId::Market => (
                "marketplace entry",
                Change::DeleteMarket { name: id.clone() },
            ),
            ViewId::Detail | ViewId::Traffic | ViewId::Logs => return,
        };
        // Say what else it does: callers of an enabled model get 404 at once.
        let serving = view == ViewId::Models
            && self
                .data
                .registry()
                .models
                .get(&id)
                .is_some_and(|m| m.enabled);
        let also = if serving {
            " It is enabled: callers get 404 at once."
        } else {
            ""
        };
        self.confirm_op(
            &format!("Delete {what}?"),
            format!("Delete {what} {id}?{also} y to delete, n to keep."),
            change,
            format!("{what} {id} deleted"),
        );
    }

    fn delete_rule(&mut self) {
        let Some((m, r)) = self.selected_rule() else {
            self.say("select a rule first (tab switches to the rules)", true);
            return;
        };
        let text = format!(
            "Delete {} of {}? y to delete, n to keep.",
            r.describe(),
            m.spec.name
        );
        let done = format!("rule #{} deleted", r.id);
        self.confirm_op(
            "Delete rule?",
            text,
            Change::DeleteRule {
                model: m.spec.name.clone(),
                id: r.id,
            },
            done,
        );
    }

    /// The log lines the logs view shows (its filter applied).
    fn log_lines(&mut self) -> Vec<(u64, crate::logging::LogLine)> {
        let filter = self.list(ViewId::Logs).filter.clone();
        logs::lines(&self.data, &filter)
    }

    /// The rule selected in the detail view's rules pane.
    pub fn selected_rule(&mut self) -> Option<(Model, crate::domain::Rule)> {
        if self.current() != ViewId::Detail || self.detail.pane != Pane::Rules {
            return None;
        }
        let m = self.current_model()?;
        let r = m.rules.get(self.detail.rule)?.clone();
        Some((m, r))
    }

    fn step(&mut self, delta: isize) {
        match self.current() {
            ViewId::Detail => {
                let (n_eps, n_rules) = self
                    .current_model()
                    .map_or((0, 0), |m| (m.spec.endpoints.len(), m.rules.len()));
                let (sel, n) = match self.detail.pane {
                    Pane::Endpoints => (&mut self.detail.endpoint, n_eps),
                    Pane::Rules => (&mut self.detail.rule, n_rules),
                };
                *sel = sel.saturating_add_signed(delta).min(n.saturating_sub(1));
            }
            ViewId::Logs => {
                let lines = self.log_lines();
                self.logs.step(&lines, delta);
            }
            ViewId::Traffic => {}
            v => self.list(v).step(delta),
        }
    }
}

/// What the rows of a list view are, for "no … selected".
fn noun(view: ViewId) -> Option<&'static str> {
    Some(match view {
        ViewId::Models => "model",
        ViewId::Keys => "key",
        ViewId::Workspaces => "workspace",
        ViewId::Clusters => "cluster",
        ViewId::Market => "marketplace entry",
        ViewId::Detail | ViewId::Traffic | ViewId::Logs => return None,
    })
}

/// Actions on the selected row of a list.
fn needs_selection(action: Action) -> bool {
    matches!(
        action,
        Action::Open
            | Action::Edit
            | Action::Delete
            | Action::Toggle
            | Action::Revoke
            | Action::Publish
            | Action::Register
            | Action::AddRule
    )
}

/// What to say after a form saved, and which row to select.
fn success(form: &Form) -> (String, Option<(ViewId, String)>) {
    let name = form
        .choice("name")
        .map(str::to_string)
        .unwrap_or_else(|| form.text("name").trim().to_string());
    match &form.kind {
        FormKind::Model { editing: None } => (
            format!("model {name} created, disabled: press t to enable it"),
            Some((ViewId::Models, name)),
        ),
        FormKind::Model { editing: Some(_) } => {
            (format!("model {name} saved"), Some((ViewId::Models, name)))
        }
        FormKind::Rule {
            model,
            editing: None,
        } => (format!("rule added to {model}"), None),
        FormKind::Rule {
            model,
            editing: Some(id),
        } => (format!("rule #{id} of {model} saved"), None),
        FormKind::Key => (String::new(), None),
        FormKind::Workspace => (
            format!("workspace {name} created"),
            Some((ViewId::Workspaces, name)),
        ),
        FormKind::Cluster { .. } => (
            format!("cluster {name} saved"),
            Some((ViewId::Clusters, name)),
        ),
        FormKind::Market { .. } => (
            format!("marketplace entry {name} saved"),
            Some((ViewId::Market, name)),
        ),
    }
}

/// Tab in the command bar: the one command starting with `typed`, or the
/// longest prefix the candidates share.
pub fn complete(typed: &str) -> String {
    let t = typed.trim_start_matches(':');
    let candidates: Vec<&str> = COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with(t))
        .collect();
    match candidates.as_slice() {
        [] => typed.to_string(),
        [one] => one.to_string(),
        many => {
            let first = many[0];
            let len = (0..first.len())
                .take_while(|i| {
                    many.iter()
                        .all(|c| c.as_bytes().get(*i) == first.as_bytes().get(*i))
                })
                .count();
            first[..len.max(t.len())].to_string()
        }
    }
}
