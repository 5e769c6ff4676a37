//! What a key asks for ([`Action`]) and what the console asks of the
//! platform in the background ([`Request`] / [`Reply`]).

use crate::client::guard::{self, Guard, Guarded};
use crate::client::{ClientError, CreatedKey};
use crate::domain::usage::{UsageQuery, UsageReport};
use crate::domain::{AuditEntry, AuditQuery, Change, Registry};
use crate::gateway::TailPage;
use crate::ops::rollback::RollbackReport;
use crate::store::Applied;
use crate::tui::ids::SortBy;

/// Everything a key can do in the views: the app handles the global ones
/// (`:`, `/`, `?`, `esc`, `q`), the view on top the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Enter: open the selection.
    Open,
    /// Esc: clear the filter, else go back a page.
    Back,
    /// `/`: filter the list.
    Filter,
    /// `:`: the command bar.
    Command,
    /// `?`: every key of this view.
    Help,
    Quit,
    Create,
    Edit,
    Delete,
    /// Enable/disable a model.
    Toggle,
    Revoke,
    /// Publish/unpublish a marketplace entry.
    Publish,
    /// Register a model from the selected marketplace entry.
    Register,
    AddRule,
    /// Switch between the endpoints and rules panes of the model detail.
    SwitchPane,
    /// Take the selected endpoint out of rotation (or put it back).
    ToggleEndpoint,
    /// Logs: follow the newest lines again.
    Follow,
    /// Logs: wrap long lines (or cut them again).
    Wrap,
    /// Sort the list by a column (again: the other way round).
    Sort(SortBy),
    /// Audit: roll the registry back to the selected entry's revision.
    Rollback,
    /// Tail: pause (or resume) the live lines.
    Pause,
    /// Open the live tail filtered on the selection (model, key, workspace).
    Tail,
    /// Copy (OSC 52): a model's ready-to-run curl snippet.
    Copy,
    /// Copy (OSC 52): a model's access path.
    CopyPath,
    /// Undo the console's last change (within 30 s), showing what it reverts.
    Undo,
    /// Model detail: nudge the selected endpoint's weight by this much
    /// (the others follow; saved with `enter`).
    Weight(i8),
    /// Usage: the range of the last N UTC days (1: today).
    Days(u16),
    /// Usage: the next range (today → 7 days → 30 days).
    NextRange,
    /// Usage: the next grouping (workspace → key → model → workspace×model).
    Group,
    /// Ask again now for what the view shows (its report).
    Refresh,
}

impl Action {
    /// Whether it changes the registry (or opens a form that would): a
    /// console attached with a `read` token hides these keys and answers
    /// them with a line instead.
    pub fn changes(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Edit
                | Action::Delete
                | Action::Toggle
                | Action::Revoke
                | Action::Publish
                | Action::Register
                | Action::AddRule
                | Action::ToggleEndpoint
                | Action::Rollback
                | Action::Undo
                | Action::Weight(_)
        )
    }
}

/// A background call to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Apply(Vec<Change>),
    /// An edit form's save: applied only if what it edits did not change
    /// since the form opened (see [`crate::client::guard`]).
    Guarded {
        guard: Guard,
        changes: Vec<Change>,
    },
    CreateKey {
        workspace: String,
        name: String,
    },
    /// The newest audit entries (`:audit`).
    Audit(AuditQuery),
    /// Roll back to `revision`; with `dry_run`, only say what it would do.
    Rollback {
        revision: u64,
        dry_run: bool,
    },
    /// The gateway's request events after this cursor (the live tail).
    Tail(u64),
    /// Every budget with its spending (`:budgets`).
    Budgets,
    /// A usage report from the ledger (`:usage`).
    Usage(UsageQuery),
}

/// A call with the id its reply will carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: u64,
    pub op: Op,
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Applied(Applied),
    KeyCreated(CreatedKey),
    /// A guarded save found its subject changed: nothing was applied; the
    /// registry as it is now.
    Changed(Box<Registry>),
    Audit(Vec<AuditEntry>),
    Rollback(RollbackReport),
    Tail(TailPage),
    Budgets(Vec<crate::domain::budget::BudgetStatus>),
    Usage(Box<UsageReport>),
}

/// A reply to request `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: u64,
    pub result: Result<Done, ClientError>,
}

impl Request {
    /// Run it against a client (on a background task).
    pub async fn run(self, client: &dyn crate::client::Client) -> Reply {
        let result = match self.op {
            Op::Apply(changes) => client.apply(changes).await.map(Done::Applied),
            Op::Guarded { guard, changes } => guard::apply_guarded(client, &guard, changes)
                .await
                .map(|g| match g {
                    Guarded::Applied(a) => Done::Applied(a),
                    Guarded::Changed(reg) => Done::Changed(reg),
                }),
            Op::Audit(query) => client.audit(query).await.map(Done::Audit),
            Op::Rollback { revision, dry_run } => {
                client.rollback(revision, dry_run).await.map(Done::Rollback)
            }
            Op::Tail(since) => client.tail(since).await.map(Done::Tail),
            Op::Budgets => client.budgets().await.map(Done::Budgets),
            Op::Usage(query) => client.usage(query).await.map(|r| Done::Usage(Box::new(r))),
            Op::CreateKey { workspace, name } => client
                .create_key(workspace, name)
                .await
                .map(Done::KeyCreated),
        };
        Reply {
            id: self.id,
            result,
        }
    }
}
