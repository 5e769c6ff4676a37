//! The rate-limit rule form: target, workspace, key (only that workspace's
//! active keys), limit, duration.

use crate::domain::{Change, FieldError, Registry, Rule, RuleSpec, RuleTarget};
use crate::tui::action::Op;

use super::form::{Behaviour, Choice, Field, Form, FormKind, parse_u32};

fn key_choices(reg: &Registry, workspace: &str) -> Vec<Choice> {
    reg.keys
        .values()
        .filter(|k| k.workspace == workspace && !k.is_revoked())
        .map(|k| Choice {
            value: k.id.clone(),
            label: format!("{} ({})", k.id, k.name),
        })
        .collect()
}

fn form(reg: &Registry, kind: FormKind, title: String, spec: &RuleSpec) -> Form {
    let targets = [RuleTarget::ApiKey, RuleTarget::Workspace]
        .iter()
        .map(|t| Choice::same(t.as_str()))
        .collect();
    let workspaces = reg.workspaces.keys().map(|w| Choice::same(w)).collect();
    let fields = vec![
        Field::select("target", "Target", targets, Some(spec.target.as_str())),
        Field::select("workspace", "Workspace", workspaces, Some(&spec.workspace)),
        Field::select(
            "key",
            "API key",
            key_choices(reg, &spec.workspace),
            spec.key_id.as_deref(),
        ),
        Field::text("limit", "Limit (requests)", &spec.limit.to_string()),
        Field::text(
            "duration",
            "Window (seconds)",
            &spec.duration_secs.to_string(),
        ),
    ];
    let behaviour = Behaviour {
        follow,
        ..Behaviour::plain(build)
    };
    Form::new((kind, behaviour), title, fields, reg)
}

pub fn create(reg: &Registry, model: &str) -> Form {
    let workspace = reg.workspaces.keys().next().cloned().unwrap_or_default();
    let spec = RuleSpec {
        target: RuleTarget::ApiKey,
        workspace,
        key_id: None,
        limit: 60,
        duration_secs: 60,
        unit: Default::default(),
    };
    form(
        reg,
        FormKind::Rule {
            model: model.to_string(),
            editing: None,
        },
        format!("Add rule to {model}"),
        &spec,
    )
}

pub fn edit(reg: &Registry, model: &str, rule: &Rule) -> Form {
    form(
        reg,
        FormKind::Rule {
            model: model.to_string(),
            editing: Some(rule.id),
        },
        format!("Edit rule #{} of {model}", rule.id),
        &rule.spec,
    )
}

/// The key list follows the workspace; no key under target workspace.
fn follow(form: &mut Form, reg: &Registry) {
    let ws = form.choice("workspace").unwrap_or_default().to_string();
    form.set_options("key", key_choices(reg, &ws));
    let by_key = form.choice("target") == Some(RuleTarget::ApiKey.as_str());
    form.set_hidden("key", !by_key);
}

fn build(form: &Form, reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let FormKind::Rule { model, editing } = &form.kind else {
        return Err(Vec::new());
    };
    let (model, editing) = (model.as_str(), *editing);
    let mut errs = Vec::new();
    let target: RuleTarget = form
        .choice("target")
        .and_then(|t| t.parse().ok())
        .unwrap_or(RuleTarget::ApiKey);
    let limit = parse_u32("limit", form.text("limit"), &mut errs);
    let duration = parse_u32("duration", form.text("duration"), &mut errs);
    let spec = RuleSpec {
        target,
        workspace: form.choice("workspace").unwrap_or_default().to_string(),
        key_id: match target {
            RuleTarget::ApiKey => form.choice("key").map(str::to_string),
            RuleTarget::Workspace => None,
        },
        limit: limit.unwrap_or(1),
        duration_secs: duration.unwrap_or(1),
        unit: Default::default(),
    };
    if let Err(e) = reg.check_rule(&spec) {
        errs.extend(e.errors.into_iter().filter(|e| {
            // Numbers that did not parse were reported by the parser.
            !((e.field == "limit" && limit.is_none())
                || (e.field == "duration" && duration.is_none()))
        }));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let model = model.to_string();
    Ok(Op::Apply(vec![match editing {
        None => Change::AddRule { model, spec },
        Some(id) => Change::UpdateRule { model, id, spec },
    }]))
}
