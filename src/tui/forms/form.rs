//! A form: its fields, focus, errors and drawing. What differs by kind
//! (what it builds, which fields follow others, extra keys) comes in a
//! [`Behaviour`] from the module that makes that kind of form.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::client::guard::{Guard, Subject};
use crate::domain::{DomainError, FieldError, Registry, Secret};
use crate::tui::action::Op;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b, find};
use crate::tui::theme::Theme;
use crate::tui::widgets::popup::centered;

/// A choice of a select field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

impl Choice {
    pub fn same(v: &str) -> Self {
        Self {
            value: v.to_string(),
            label: v.to_string(),
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone)]
pub enum FieldKind {
    Text(Input),
    /// A secret: what is typed is shown as bullets; with nothing typed the
    /// stored value is kept (shown masked) unless cleared.
    Secret {
        input: Input,
        stored: Option<Secret>,
        cleared: bool,
    },
    Select {
        options: Vec<Choice>,
        index: usize,
    },
    /// The save button.
    Save,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// The registry's name for it (`endpoints[0].url`).
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub hidden: bool,
    /// Edited by the user: its local errors are shown from now on.
    pub touched: bool,
}

impl Field {
    pub fn text(key: impl Into<String>, label: impl Into<String>, value: &str) -> Self {
        Self::new(key, label, FieldKind::Text(Input::new(value.to_string())))
    }
    pub fn secret(
        key: impl Into<String>,
        label: impl Into<String>,
        stored: Option<Secret>,
    ) -> Self {
        Self::new(
            key,
            label,
            FieldKind::Secret {
                input: Input::default(),
                stored,
                cleared: false,
            },
        )
    }
    pub fn select(
        key: impl Into<String>,
        label: impl Into<String>,
        options: Vec<Choice>,
        value: Option<&str>,
    ) -> Self {
        let index = value
            .and_then(|v| options.iter().position(|c| c.value == v))
            .unwrap_or(0);
        Self::new(key, label, FieldKind::Select { options, index })
    }
    fn new(key: impl Into<String>, label: impl Into<String>, kind: FieldKind) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            kind,
            hidden: false,
            touched: false,
        }
    }

    /// A fingerprint of the value, for "is the form changed?".
    fn fingerprint(&self) -> String {
        match &self.kind {
            FieldKind::Text(i) => i.value().to_string(),
            FieldKind::Secret { input, cleared, .. } => format!("{}{cleared}", input.value()),
            FieldKind::Select { options, index } => options
                .get(*index)
                .map(|c| c.value.clone())
                .unwrap_or_default(),
            FieldKind::Save => String::new(),
        }
    }

    /// Whether an error reported for `field` belongs here (`tags[2]` → `tags`).
    fn owns(&self, field: &str) -> bool {
        field == self.key
            || field
                .strip_prefix(self.key.as_str())
                .is_some_and(|rest| rest.starts_with('['))
    }
}

/// Which form, and what it edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    Model { editing: Option<String> },
    Rule { model: String, editing: Option<u64> },
    Key,
    Workspace,
    Cluster { editing: Option<String> },
    Market { editing: Option<String> },
    Budget,
}

impl FormKind {
    /// What an edit form saves over (`None`: it creates).
    pub fn subject(&self) -> Option<Subject> {
        Some(match self {
            FormKind::Model { editing: Some(n) } => Subject::Model(n.clone()),
            FormKind::Rule {
                model,
                editing: Some(id),
            } => Subject::Rule {
                model: model.clone(),
                id: *id,
            },
            FormKind::Cluster { editing: Some(n) } => Subject::Cluster(n.clone()),
            FormKind::Market { editing: Some(n) } => Subject::Market(n.clone()),
            _ => return None,
        })
    }
}

/// What a key did to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormEvent {
    None,
    Save,
    Cancel,
    Quit,
    Help,
}

/// Form keys (the footer and help show these same tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormAction {
    Next,
    Prev,
    Enter,
    Save,
    Cancel,
    Quit,
    AddEndpoint,
    RemoveEndpoint,
    ClearSecret,
    Help,
}

const C: KeyModifiers = KeyModifiers::CONTROL;

pub const FORM_KEYS: &[Binding<FormAction>] = &[
    b(
        &[(KeyCode::Tab, N), (KeyCode::Down, N)],
        "tab/↓",
        FormAction::Next,
        "next field",
        true,
    ),
    b(
        &[
            (KeyCode::BackTab, KeyModifiers::SHIFT),
            (KeyCode::BackTab, N),
            (KeyCode::Up, N),
        ],
        "shift-tab/↑",
        FormAction::Prev,
        "previous field",
        false,
    ),
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        FormAction::Enter,
        "next / saves on [Save]",
        false,
    ),
    b(
        &[(KeyCode::Char('s'), C)],
        "ctrl-s",
        FormAction::Save,
        "save",
        true,
    ),
    b(
        &[(KeyCode::Esc, N)],
        "esc",
        FormAction::Cancel,
        "cancel",
        true,
    ),
    b(&[(KeyCode::F(1), N)], "f1", FormAction::Help, "help", true),
    b(
        &[(KeyCode::Char('c'), C), (KeyCode::Char('q'), C)],
        "ctrl-c",
        FormAction::Quit,
        "quit maasctl",
        false,
    ),
];

/// `←/→` on a select; typing a letter jumps to the next choice starting with it.
pub const SELECT_HELP: (&str, &str) = ("←/→", "choose (selects)");

/// What a kind of form does beyond its fields.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// The call saving sends, or every problem with what is typed.
    pub build: fn(&Form, &Registry) -> Result<Op, Vec<FieldError>>,
    /// Fields that follow others (a rule's keys follow its workspace); run
    /// after every edit.
    pub follow: fn(&mut Form, &Registry),
    /// Its own keys (after the common ones: footer and help show both).
    pub keys: &'static [Binding<FormAction>],
    /// What its own keys do.
    pub act: fn(&mut Form, FormAction, &Registry),
}

impl Behaviour {
    /// A form with no following fields and no keys of its own.
    pub fn plain(build: fn(&Form, &Registry) -> Result<Op, Vec<FieldError>>) -> Self {
        Self {
            build,
            follow: |_, _| {},
            keys: &[],
            act: |_, _, _| {},
        }
    }
}

/// An open form.
#[derive(Debug, Clone)]
pub struct Form {
    pub kind: FormKind,
    behaviour: Behaviour,
    pub title: String,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Identifies this form's save request.
    pub seq: u64,
    /// What the store refused last (cleared by the next edit of that field).
    pub server: Vec<FieldError>,
    /// What the domain validation says of what is typed now.
    pub local: Vec<FieldError>,
    /// A failure not about one field (storage, transport).
    pub failure: Option<String>,
    /// Save was pressed: every error is shown, touched or not.
    pub submitted: bool,
    /// A save is in flight.
    pub saving: bool,
    /// An edit form: what it edits as it was when it opened; its save
    /// does not overwrite a change made meanwhile elsewhere.
    pub guard: Option<Guard>,
    initial: Vec<String>,
    scroll: usize,
    /// What was typed on a select so far (type-ahead by prefix), on which
    /// field, and when: a pause longer than [`TYPE_AHEAD_PAUSE`] or another
    /// field starts over.
    typed: (String, usize, Option<std::time::Instant>),
}

/// How long a pause in typing on a select keeps its prefix.
const TYPE_AHEAD_PAUSE: std::time::Duration = std::time::Duration::from_millis(1000);

/// The option to select for `typed` on a select at `index`: the first, from
/// the current one on, whose label starts with the whole prefix; else, for
/// one letter typed again (`m`, `m`), the next option starting with it.
fn type_ahead(options: &[Choice], index: usize, typed: &str) -> Option<usize> {
    let n = options.len();
    let starts = |j: usize, p: &str| options[j].label.to_lowercase().starts_with(p);
    let first = typed.chars().next()?;
    let repeated = typed.chars().count() > 1 && typed.chars().all(|c| c == first);
    if !repeated {
        if let Some(j) = (0..n).map(|d| (index + d) % n).find(|&j| starts(j, typed)) {
            // One letter moves on from the current option (as before);
            // a longer prefix stays on it while it still matches.
            if typed.chars().count() > 1 || j != index {
                return Some(j);
            }
        }
    }
    let one = first.to_string();
    (1..=n).map(|d| (index + d) % n).find(|&j| starts(j, &one))
}

impl Form {
    pub fn new(
        (kind, behaviour): (FormKind, Behaviour),
        title: impl Into<String>,
        mut fields: Vec<Field>,
        reg: &Registry,
    ) -> Self {
        fields.push(Field::new("save", "", FieldKind::Save));
        let guard = kind.subject().map(|s| Guard::new(s, reg));
        let mut f = Self {
            guard,
            kind,
            behaviour,
            title: title.into(),
            fields,
            focus: 0,
            seq: 0,
            server: Vec::new(),
            local: Vec::new(),
            failure: None,
            submitted: false,
            saving: false,
            initial: Vec::new(),
            scroll: 0,
            typed: (String::new(), 0, None),
        };
        f.after_edit(reg, None);
        f.initial = f.fingerprints();
        f
    }

    fn fingerprints(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| format!("{}={}", f.key, f.fingerprint()))
            .collect()
    }

    /// Changed since it was opened.
    pub fn is_dirty(&self) -> bool {
        self.fingerprints() != self.initial
    }

    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut Field> {
        self.fields.iter_mut().find(|f| f.key == key)
    }

    /// The text of a text field ("" if absent).
    pub fn text(&self, key: &str) -> &str {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Text(i)) => i.value(),
            _ => "",
        }
    }

    /// The chosen value of a select.
    pub fn choice(&self, key: &str) -> Option<&str> {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Select { options, index }) => {
                options.get(*index).map(|c| c.value.as_str())
            }
            _ => None,
        }
    }

    /// The value a secret field stands for: typed, else stored unless cleared.
    pub fn secret(&self, key: &str) -> Option<Secret> {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Secret {
                input,
                stored,
                cleared,
            }) => {
                if !input.value().is_empty() {
                    Some(Secret::new(input.value()))
                } else if *cleared {
                    None
                } else {
                    stored.clone()
                }
            }
            _ => None,
        }
    }

    /// Set a select's choices, keeping the current value when still offered.
    pub fn set_options(&mut self, key: &str, options: Vec<Choice>) {
        if let Some(f) = self.field_mut(key)
            && let FieldKind::Select { options: o, index } = &mut f.kind
        {
            let cur = o.get(*index).map(|c| c.value.clone());
            *index = cur
                .and_then(|v| options.iter().position(|c| c.value == v))
                .unwrap_or(0);
            *o = options;
        }
    }

    pub fn set_hidden(&mut self, key: &str, hidden: bool) {
        if let Some(f) = self.field_mut(key) {
            f.hidden = hidden;
        }
    }

    /// Put the text of a text field (used by tests and presets).
    pub fn set_text(&mut self, key: &str, value: &str, reg: &Registry) {
        if let Some(f) = self.field_mut(key)
            && let FieldKind::Text(i) = &mut f.kind
        {
            *i = Input::new(value.to_string());
            f.touched = true;
        }
        self.after_edit(reg, Some(key.to_string()));
    }

    /// Move focus to the field named `key`.
    pub fn focus_on(&mut self, key: &str) {
        if let Some(i) = self.fields.iter().position(|f| f.key == key && !f.hidden) {
            self.focus = i;
        }
    }

    pub fn focused(&self) -> &Field {
        &self.fields[self.focus]
    }

    pub(super) fn move_focus(&mut self, forward: bool) {
        let n = self.fields.len();
        let mut i = self.focus;
        for _ in 0..n {
            i = if forward {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            if !self.fields[i].hidden {
                self.focus = i;
                return;
            }
        }
    }

    /// The key bindings of this form (its footer and help).
    pub fn bindings(&self) -> Vec<&'static Binding<FormAction>> {
        FORM_KEYS.iter().chain(self.behaviour.keys).collect()
    }

    /// Handle a key; `reg` lets dependent fields follow (a rule's keys
    /// follow its workspace).
    pub fn on_key(&mut self, key: KeyEvent, reg: &Registry) -> FormEvent {
        let action = find(FORM_KEYS, &key).or_else(|| find(self.behaviour.keys, &key));
        match action {
            Some(FormAction::Next) => self.move_focus(true),
            Some(FormAction::Prev) => self.move_focus(false),
            Some(FormAction::Enter) => {
                if matches!(self.focused().kind, FieldKind::Save) {
                    return FormEvent::Save;
                }
                self.move_focus(true);
            }
            Some(FormAction::Save) => return FormEvent::Save,
            Some(FormAction::Cancel) => return FormEvent::Cancel,
            Some(FormAction::Quit) => return FormEvent::Quit,
            Some(FormAction::Help) => return FormEvent::Help,
            Some(a @ (FormAction::AddEndpoint | FormAction::RemoveEndpoint)) => {
                (self.behaviour.act)(self, a, reg)
            }
            Some(FormAction::ClearSecret) => {
                let key = self.focused().key.clone();
                if let FieldKind::Secret {
                    input,
                    cleared,
                    stored,
                } = &mut self.fields[self.focus].kind
                    && stored.is_some()
                {
                    *cleared = !*cleared;
                    *input = Input::default();
                    self.fields[self.focus].touched = true;
                    self.after_edit(reg, Some(key));
                }
            }
            None => self.edit(key, reg),
        }
        FormEvent::None
    }

    /// A key that is not a form command edits the focused field.
    fn edit(&mut self, key: KeyEvent, reg: &Registry) {
        let field = &mut self.fields[self.focus];
        let changed = match &mut field.kind {
            FieldKind::Text(input) | FieldKind::Secret { input, .. } => input
                .handle_event(&Event::Key(key))
                .is_some_and(|c| c.value),
            FieldKind::Select { options, index } if !options.is_empty() => {
                let before = *index;
                let n = options.len();
                match key.code {
                    KeyCode::Left => *index = (*index + n - 1) % n,
                    KeyCode::Right | KeyCode::Char(' ') => *index = (*index + 1) % n,
                    KeyCode::Char(c) => {
                        let now = std::time::Instant::now();
                        let (typed, on, at) = &mut self.typed;
                        let fresh = *on != self.focus
                            || at.is_none_or(|t| now.duration_since(t) > TYPE_AHEAD_PAUSE);
                        if fresh {
                            typed.clear();
                        }
                        typed.extend(c.to_lowercase());
                        (*on, *at) = (self.focus, Some(now));
                        if let Some(j) = type_ahead(options, *index, typed) {
                            *index = j;
                        }
                    }
                    _ => {}
                }
                *index != before
            }
            _ => false,
        };
        if changed {
            field.touched = true;
            let key = field.key.clone();
            self.after_edit(reg, Some(key));
        }
    }

    /// Follow an edit: dependent fields, then validation of what is typed.
    pub(super) fn after_edit(&mut self, reg: &Registry, edited: Option<String>) {
        if let Some(k) = &edited {
            self.server
                .retain(|e| !self.fields.iter().any(|f| f.key == *k && f.owns(&e.field)));
            self.failure = None;
        }
        (self.behaviour.follow)(self, reg);
        self.local = self.build(reg).err().unwrap_or_default();
    }

    /// What saving would send, or what is wrong with the form.
    pub fn build(&self, reg: &Registry) -> Result<Op, Vec<FieldError>> {
        (self.behaviour.build)(self, reg)
    }

    /// What to say once it saved, and which row to select.
    pub fn success(&self) -> (String, Option<(ViewId, String)>) {
        let name = self
            .choice("name")
            .map(str::to_string)
            .unwrap_or_else(|| self.text("name").trim().to_string());
        match &self.kind {
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
            FormKind::Budget => ("budget added".to_string(), None),
        }
    }

    /// Save was pressed and refused locally: show everything, focus the first problem.
    pub fn refuse(&mut self, errors: Vec<FieldError>) {
        self.local = errors;
        self.submitted = true;
        self.focus_first_error();
    }

    /// The store refused the change.
    pub fn rejected(&mut self, e: DomainError) {
        self.saving = false;
        self.submitted = true;
        self.server = e.errors;
        self.focus_first_error();
    }

    fn focus_first_error(&mut self) {
        if let Some(i) = self
            .fields
            .iter()
            .position(|f| !f.hidden && self.error_for(f).is_some())
        {
            self.focus = i;
        }
    }

    /// The problem shown next to `field`: the store's, else the local one
    /// once the field was edited or save was pressed.
    pub fn error_for(&self, field: &Field) -> Option<&str> {
        let find = |errs: &'_ [FieldError]| -> Option<usize> {
            errs.iter().position(|e| field.owns(&e.field))
        };
        if let Some(i) = find(&self.server) {
            return Some(&self.server[i].problem);
        }
        if field.touched || self.submitted {
            return find(&self.local).map(|i| self.local[i].problem.as_str());
        }
        None
    }

    /// Errors no visible field owns (sums, counts, storage failures), shown
    /// at the top.
    pub fn general_errors(&self) -> Vec<String> {
        let visible = |e: &FieldError| self.fields.iter().any(|f| !f.hidden && f.owns(&e.field));
        let mut out: Vec<String> = self
            .server
            .iter()
            .chain(if self.submitted { &self.local[..] } else { &[] })
            .filter(|e| !visible(e))
            .map(|e| e.to_string())
            .collect();
        out.dedup();
        if let Some(f) = &self.failure {
            out.push(f.clone());
        }
        out
    }

    /// The box the form is drawn in over `area`, and its inside.
    fn frame(&self, area: Rect, theme: &Theme) -> (Rect, Block<'static>, Rect) {
        let rect = centered(area, 100.min(area.width), area.height);
        let status = if self.saving { " saving… " } else { "" };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border_focus())
            .title(Span::styled(format!(" {} ", self.title), theme.title()))
            .title(Line::from(Span::styled(status, theme.warn())).right_aligned());
        let inner = block.inner(rect);
        (rect, block, inner)
    }

    /// Every line the form shows at width `inner` (fields, their errors),
    /// and which one holds the focused field.
    fn lines(&self, inner: Rect) -> (Vec<FormLine>, usize) {
        let general_w = usize::from(inner.width.saturating_sub(2)).max(10);
        let mut lines: Vec<FormLine> = self
            .general_errors()
            .iter()
            .flat_map(|e| wrap(e, general_w))
            .map(FormLine::General)
            .collect();
        let mut focus_line = 0;
        for (i, fld) in self.fields.iter().enumerate() {
            if fld.hidden {
                continue;
            }
            if i == self.focus {
                focus_line = lines.len();
            }
            lines.push(FormLine::Field(i));
            if let Some(e) = self.error_for(fld) {
                let w = usize::from(inner.width.saturating_sub(LABEL_W + 2)).max(10);
                lines.extend(wrap(e, w).into_iter().map(FormLine::Error));
            }
        }
        (lines, focus_line)
    }

    /// The first line shown in `h` rows: as last frame, unless the focused
    /// field (and the line under it) would not be visible.
    fn scrolled(&self, lines: usize, focus_line: usize, h: usize) -> usize {
        let mut scroll = self.scroll;
        if focus_line < scroll {
            scroll = focus_line;
        } else if focus_line + 2 > scroll + h {
            scroll = (focus_line + 2).saturating_sub(h).min(focus_line);
        }
        scroll.min(lines.saturating_sub(h))
    }

    /// Fit the scroll to `area` (before a frame; drawing only reads).
    pub fn layout(&mut self, area: Rect) {
        let (_, _, inner) = self.frame(area, &Theme::monochrome());
        if inner.height == 0 || inner.width < 10 {
            return;
        }
        let (lines, focus_line) = self.lines(inner);
        self.scroll = self.scrolled(lines.len(), focus_line, usize::from(inner.height));
    }

    /// Draw the form in `area` (a centred box), with the cursor in the
    /// focused text field.
    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        f.render_widget(Clear, area);
        let (rect, block, inner) = self.frame(area, theme);
        f.render_widget(block, rect);
        if inner.height == 0 || inner.width < 10 {
            return;
        }
        // Lay out every line (fields, their errors), then scroll so the
        // focused field is visible.
        let (lines, focus_line) = self.lines(inner);
        let h = usize::from(inner.height);
        let scroll = self.scrolled(lines.len(), focus_line, h);
        let label_w: u16 = LABEL_W;
        for (row, line) in lines.iter().skip(scroll).take(h).enumerate() {
            let y = inner.y + row as u16;
            let full = Rect::new(inner.x, y, inner.width, 1);
            match line {
                FormLine::General(s) => f.render_widget(
                    Paragraph::new(Span::styled(s.clone(), theme.error_text())),
                    full,
                ),
                FormLine::Error(s) => f.render_widget(
                    Paragraph::new(Span::styled(
                        format!("{:w$}{s}", "", w = usize::from(label_w)),
                        theme.error_text(),
                    )),
                    full,
                ),
                FormLine::Field(i) => {
                    let fld = &self.fields[*i];
                    let focused = *i == self.focus;
                    let label_style = if focused { theme.focus() } else { theme.base() };
                    let value =
                        Rect::new(inner.x + label_w, y, inner.width.saturating_sub(label_w), 1);
                    if !matches!(fld.kind, FieldKind::Save) {
                        let marker = if focused { "▸ " } else { "  " };
                        f.render_widget(
                            Paragraph::new(Span::styled(
                                format!("{marker}{}", fld.label),
                                label_style,
                            )),
                            Rect::new(inner.x, y, label_w, 1),
                        );
                    }
                    self.render_value(f, fld, value, focused, theme);
                }
            }
        }
    }

    /// For a shown endpoint weight field: the sum of the shown weights
    /// (what does not parse counts 0).
    fn weight_sum(&self, fld: &Field) -> Option<u64> {
        let is_weight =
            |f: &Field| !f.hidden && f.key.starts_with("endpoints[") && f.key.ends_with("].weight");
        if !is_weight(fld) {
            return None;
        }
        Some(
            self.fields
                .iter()
                .filter(|f| is_weight(f))
                .filter_map(|f| match &f.kind {
                    FieldKind::Text(i) => i.value().trim().parse::<u64>().ok(),
                    _ => None,
                })
                .sum(),
        )
    }

    fn render_value(&self, f: &mut Frame, fld: &Field, area: Rect, focused: bool, theme: &Theme) {
        let w = usize::from(area.width.saturating_sub(1));
        let underline = if focused {
            theme.selected()
        } else {
            theme.dim()
        };
        match &fld.kind {
            FieldKind::Text(input) => {
                let scroll = input.visual_scroll(w);
                f.render_widget(
                    Paragraph::new(input.value()).scroll((0, scroll as u16)),
                    area,
                );
                if let Some(sum) = self.weight_sum(fld) {
                    // The weights' running sum beside each weight field,
                    // marked while it is not 100.
                    let text = format!("{sum} / 100");
                    let style = if sum == 100 {
                        theme.dim()
                    } else {
                        theme.error_text()
                    };
                    let tw = text.len() as u16;
                    let at = usize::from(tw) + input.value().len() + 2;
                    if usize::from(area.width) > at {
                        let x = area.x + area.width - tw;
                        f.render_widget(
                            Paragraph::new(Span::styled(text, style)),
                            Rect::new(x, area.y, tw, 1),
                        );
                    }
                }
                if input.value().is_empty() && !focused {
                    f.render_widget(Paragraph::new(Span::styled("·", theme.dim())), area);
                }
                if focused {
                    let x = input.visual_cursor().saturating_sub(scroll) as u16;
                    f.set_cursor_position((area.x + x, area.y));
                }
            }
            FieldKind::Secret {
                input,
                stored,
                cleared,
            } => {
                if input.value().is_empty() {
                    let shown = match (stored, cleared) {
                        (Some(_), true) => "(removed on save)".to_string(),
                        (Some(s), false) => format!("{} (kept; type to replace)", s.masked()),
                        (None, _) => "(none)".to_string(),
                    };
                    f.render_widget(Paragraph::new(Span::styled(shown, theme.dim())), area);
                    if focused {
                        f.set_cursor_position((area.x, area.y));
                    }
                } else {
                    // Bullets, one per character: the cursor counts characters.
                    let n = input.value().chars().count();
                    let cursor = input.cursor();
                    let scroll = cursor.saturating_sub(w);
                    let bullets: String = "•".repeat(n - scroll.min(n));
                    f.render_widget(Paragraph::new(bullets), area);
                    if focused {
                        f.set_cursor_position((area.x + (cursor - scroll) as u16, area.y));
                    }
                }
            }
            FieldKind::Select { options, index } => {
                let text = match options.get(*index) {
                    Some(c) => format!("‹ {} ›", c.label),
                    None => "(nothing to choose)".to_string(),
                };
                let style = if focused { underline } else { theme.base() };
                f.render_widget(Paragraph::new(Span::styled(text, style)), area);
            }
            FieldKind::Save => {
                let style = if focused {
                    theme.selected()
                } else {
                    theme.key()
                };
                let hint = if self.local.is_empty() || !self.submitted {
                    ""
                } else {
                    "  (fix the fields marked ✗ first)"
                };
                f.render_widget(
                    Paragraph::new(Line::from(vec![
                        Span::styled("[ Save ]", style),
                        Span::styled(hint, theme.dim()),
                    ])),
                    Rect::new(
                        area.x.saturating_sub(LABEL_W),
                        area.y,
                        area.width + LABEL_W,
                        1,
                    ),
                );
            }
        }
    }
}

/// A line of a drawn form.
enum FormLine {
    /// An error no field owns.
    General(String),
    Field(usize),
    /// The error of the field above.
    Error(String),
}

/// `✗ problem` cut into lines of at most `width` columns at spaces
/// (continuation lines indented under the text).
fn wrap(problem: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::from("✗");
    for word in problem.split(' ') {
        if line.chars().count() + 1 + word.chars().count() > width && line.chars().count() > 2 {
            out.push(std::mem::replace(&mut line, String::from(" ")));
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push(line);
    out
}

/// Width of the label column.
const LABEL_W: u16 = 20;

/// Parse a whole number for `field`, or say why not.
/// A window in seconds, in the units the console shows it (`format::window`):
/// `90` or `90s`, `5m`, `2h`, `1d`; a clear error naming the field
/// otherwise.
pub fn parse_window(field: &str, s: &str, errs: &mut Vec<FieldError>) -> Option<u32> {
    let t = s.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let scale = match unit.trim() {
        "" | "s" => Some(1u64),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    let secs = scale.and_then(|k| digits.parse::<u64>().ok()?.checked_mul(k));
    match secs.map(u32::try_from) {
        _ if t.is_empty() => {
            errs.push(FieldError::new(field, "must not be empty"));
            None
        }
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            errs.push(FieldError::new(
                field,
                format!("'{t}' is more than {} seconds", u32::MAX),
            ));
            None
        }
        None => {
            errs.push(FieldError::new(
                field,
                format!(
                    "'{t}' is not a duration: seconds, or a number with s, m, h or d (10s, 5m, 1h)"
                ),
            ));
            None
        }
    }
}

pub fn parse_u32(field: &str, s: &str, errs: &mut Vec<FieldError>) -> Option<u32> {
    let t = s.trim();
    if t.is_empty() {
        errs.push(FieldError::new(field, "must not be empty"));
        return None;
    }
    match t.parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => {
            errs.push(FieldError::new(
                field,
                format!("'{t}' is not a whole number"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn windows_take_the_units_the_console_shows() {
        let mut errs = Vec::new();
        let p = |s: &str, errs: &mut Vec<FieldError>| parse_window("duration", s, errs);
        assert_eq!(p("90", &mut errs), Some(90));
        assert_eq!(p(" 10s ", &mut errs), Some(10));
        assert_eq!(p("1m", &mut errs), Some(60));
        assert_eq!(p("2h", &mut errs), Some(7200));
        assert_eq!(p("1d", &mut errs), Some(86_400));
        assert!(errs.is_empty(), "{errs:?}");
        for bad in ["", "m", "1.5m", "10 minutes", "-1", "1w", "99999999999h"] {
            let mut errs = Vec::new();
            assert_eq!(p(bad, &mut errs), None, "{bad}");
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!(errs[0].field, "duration");
        }
        let mut errs = Vec::new();
        p("1w", &mut errs);
        assert!(errs[0].problem.contains("10s, 5m, 1h"), "{errs:?}");
    }
}

#[cfg(test)]
mod type_ahead_tests {
    use super::*;

    fn options() -> Vec<Choice> {
        [
            "DeepSeek-V3",
            "Mistral-Large-2411",
            "Mistral-Small-3.1-24B-Instruct",
            "gpt-4o",
            "gpt-4o-mini",
        ]
        .into_iter()
        .map(Choice::same)
        .collect()
    }

    #[test]
    fn a_prefix_selects_the_first_option_it_starts() {
        let o = options();
        // "mistral-s" typed on DeepSeek-V3 lands on Mistral-Small, passing
        // Mistral-Large while the prefix still fits it.
        let mut at = 0;
        let mut typed = String::new();
        let mut seen = Vec::new();
        for c in "mistral-s".chars() {
            typed.push(c);
            at = type_ahead(&o, at, &typed).unwrap();
            seen.push(at);
        }
        assert_eq!(seen, [1, 1, 1, 1, 1, 1, 1, 1, 2]);
        assert_eq!(type_ahead(&o, 0, "gpt-4o-"), Some(4));
        assert_eq!(type_ahead(&o, 0, "x"), None);
        assert_eq!(
            type_ahead(&o, 0, "mistral-x"),
            Some(1),
            "no match: by its first letter"
        );
    }

    #[test]
    fn one_letter_again_moves_to_the_next_option_it_starts() {
        let o = options();
        assert_eq!(type_ahead(&o, 1, "m"), Some(2));
        assert_eq!(type_ahead(&o, 1, "mm"), Some(2));
        assert_eq!(type_ahead(&o, 2, "mmm"), Some(1));
        assert_eq!(type_ahead(&o, 3, "g"), Some(4));
    }
}
