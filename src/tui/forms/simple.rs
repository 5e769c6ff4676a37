//! The small forms: API key, workspace, cluster, marketplace entry.

use crate::domain::{Change, Cluster, FieldError, MarketEntry, Registry, registry, validate};
use crate::tui::action::Op;

use super::form::{Behaviour, Choice, Field, Form, FormKind};

fn result(errs: Vec<FieldError>, op: Op) -> Result<Op, Vec<FieldError>> {
    if errs.is_empty() { Ok(op) } else { Err(errs) }
}

/// A new API key in `workspace` (preselected if given).
pub fn key(reg: &Registry, workspace: Option<&str>) -> Form {
    let ws = reg.workspaces.keys().map(|w| Choice::same(w)).collect();
    Form::new(
        (FormKind::Key, Behaviour::plain(build_key)),
        "Create API key",
        vec![
            Field::select("workspace", "Workspace", ws, workspace),
            Field::text("name", "Key name", ""),
        ],
        reg,
    )
}

fn build_key(form: &Form, _reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let mut errs = Vec::new();
    let workspace = form.choice("workspace").unwrap_or_default().to_string();
    if workspace.is_empty() {
        errs.push(FieldError::new(
            "workspace",
            "create a workspace first (:workspaces, c)",
        ));
    }
    let name = form.text("name").trim().to_string();
    validate::name("name", &name, &mut errs);
    result(errs, Op::CreateKey { workspace, name })
}

pub fn workspace(reg: &Registry) -> Form {
    Form::new(
        (FormKind::Workspace, Behaviour::plain(build_workspace)),
        "Create workspace",
        vec![
            Field::text("name", "Name", ""),
            Field::text("description", "Description", ""),
        ],
        reg,
    )
}

fn build_workspace(form: &Form, _reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let mut errs = Vec::new();
    let name = form.text("name").trim().to_string();
    validate::name("name", &name, &mut errs);
    let description = form.text("description").trim().to_string();
    result(
        errs,
        Op::Apply(vec![Change::AddWorkspace { name, description }]),
    )
}

pub fn cluster(reg: &Registry, editing: Option<&Cluster>) -> Form {
    let title = match editing {
        Some(c) => format!("Edit cluster {}", c.name),
        None => "Add cluster".to_string(),
    };
    Form::new(
        (
            FormKind::Cluster {
                editing: editing.map(|c| c.name.clone()),
            },
            Behaviour::plain(build_cluster),
        ),
        title,
        vec![
            Field::text("name", "Name", editing.map_or("", |c| c.name.as_str())),
            Field::text(
                "entry_address",
                "Entry address",
                editing.map_or("", |c| c.entry_address.as_str()),
            ),
        ],
        reg,
    )
}

fn build_cluster(form: &Form, _reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let editing = match &form.kind {
        FormKind::Cluster { editing } => editing.as_deref(),
        _ => None,
    };
    let cluster = Cluster {
        name: form.text("name").trim().to_string(),
        entry_address: form.text("entry_address").trim().to_string(),
    };
    let errs = registry::cluster::validate(&cluster);
    let change = match editing {
        None => Change::AddCluster(cluster),
        Some(name) => Change::UpdateCluster {
            name: name.to_string(),
            cluster,
        },
    };
    result(errs, Op::Apply(vec![change]))
}

pub fn market(reg: &Registry, editing: Option<&MarketEntry>) -> Form {
    let title = match editing {
        Some(e) => format!("Edit marketplace entry {}", e.name),
        None => "Add marketplace entry".to_string(),
    };
    let yes_no = vec![Choice::same("yes"), Choice::same("no")];
    let published = if editing.is_some_and(|e| e.published) {
        "yes"
    } else {
        "no"
    };
    Form::new(
        (
            FormKind::Market {
                editing: editing.map(|e| e.name.clone()),
            },
            Behaviour::plain(build_market),
        ),
        title,
        vec![
            Field::text("name", "Name", editing.map_or("", |e| e.name.as_str())),
            Field::text(
                "provider",
                "Provider",
                editing.map_or("", |e| e.provider.as_str()),
            ),
            Field::text(
                "tags",
                "Tags",
                &editing.map(|e| e.tags.join(", ")).unwrap_or_default(),
            ),
            Field::text(
                "description",
                "Description",
                editing.map_or("", |e| e.description.as_str()),
            ),
            Field::select("published", "Published", yes_no, Some(published)),
        ],
        reg,
    )
}

fn build_market(form: &Form, reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let editing = match &form.kind {
        FormKind::Market { editing } => editing.as_deref(),
        _ => None,
    };
    // Prices are set with `maasctl market edit` or a file; the form keeps them.
    let old = editing.and_then(|n| reg.market.get(n));
    let entry = MarketEntry {
        name: form.text("name").trim().to_string(),
        provider: form.text("provider").trim().to_string(),
        tags: validate::parse_tags(form.text("tags")),
        description: form.text("description").trim().to_string(),
        published: form.choice("published") == Some("yes"),
        input_price: old.and_then(|e| e.input_price),
        output_price: old.and_then(|e| e.output_price),
    };
    let errs = registry::market::validate(&entry);
    let change = match editing {
        None => Change::AddMarket(entry),
        Some(name) => Change::UpdateMarket {
            name: name.to_string(),
            entry,
        },
    };
    result(errs, Op::Apply(vec![change]))
}
