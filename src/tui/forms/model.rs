//! The create/edit model form: every field of a model, endpoints as an
//! editable list (URL, masked key, weight under the weighted policy).

use crossterm::event::{KeyCode, KeyModifiers};

use crate::domain::{
    Change, Endpoint, FieldError, Model, ModelSpec, Policy, Registry, registry, validate,
};
use crate::tui::action::Op;
use crate::tui::keymap::{Binding, b};

use super::form::{Behaviour, Choice, Field, FieldKind, Form, FormAction, FormKind, parse_u32};

const C: KeyModifiers = KeyModifiers::CONTROL;

/// Extra keys of the model form.
const ENDPOINT_KEYS: &[Binding<FormAction>] = &[
    b(
        &[(KeyCode::Char('n'), C)],
        "ctrl-n",
        FormAction::AddEndpoint,
        "add endpoint",
        true,
    ),
    b(
        &[(KeyCode::Char('d'), C)],
        "ctrl-d",
        FormAction::RemoveEndpoint,
        "remove endpoint",
        true,
    ),
    b(
        &[(KeyCode::Char('x'), C)],
        "ctrl-x",
        FormAction::ClearSecret,
        "drop stored upstream key",
        false,
    ),
];

/// What the model form adds to a form: endpoints come and go, weights
/// follow the policy.
const BEHAVIOUR: Behaviour = Behaviour {
    build,
    follow: |form, _| follow(form),
    keys: ENDPOINT_KEYS,
    act,
};

fn act(form: &mut Form, action: FormAction, reg: &Registry) {
    match action {
        FormAction::AddEndpoint => add_endpoint(form, reg),
        FormAction::RemoveEndpoint => remove_endpoint(form, reg),
        _ => {}
    }
}

fn market_choices(reg: &Registry, own: Option<&str>) -> Vec<Choice> {
    reg.market
        .values()
        .filter(|e| Some(e.name.as_str()) == own || !reg.models.contains_key(&e.name))
        .map(|e| Choice {
            value: e.name.clone(),
            label: if e.published {
                e.name.clone()
            } else {
                format!("{} (unpublished)", e.name)
            },
        })
        .collect()
}

/// The model's completion cap for token rules (docs/rate-limits.md): empty
/// is the default, 4096.
const CAP: &str = "completion_cap";

fn endpoint_fields(i: usize, ep: Option<&Endpoint>) -> [Field; 3] {
    let weight = ep
        .and_then(|e| e.weight)
        .map(|w| w.to_string())
        .unwrap_or_default();
    [
        Field::text(
            format!("endpoints[{i}].url"),
            format!("Endpoint {} URL", i + 1),
            ep.map_or("", |e| e.url.as_str()),
        ),
        Field::secret(
            format!("endpoints[{i}].api_key"),
            "  API key",
            ep.and_then(|e| e.api_key.clone()),
        ),
        Field::text(format!("endpoints[{i}].weight"), "  Weight", &weight),
    ]
}

fn form(
    reg: &Registry,
    kind: FormKind,
    title: String,
    spec: &ModelSpec,
    own: Option<&str>,
) -> Form {
    let clusters = reg
        .clusters
        .values()
        .map(|c| Choice {
            value: c.name.clone(),
            label: format!("{}  {}", c.name, c.entry_address),
        })
        .collect();
    let policies = Policy::ALL
        .iter()
        .map(|p| Choice::same(p.as_str()))
        .collect();
    let mut fields = vec![
        Field::select(
            "name",
            "Marketplace name",
            market_choices(reg, own),
            Some(&spec.name),
        ),
        Field::select("cluster", "Entry cluster", clusters, Some(&spec.cluster)),
        Field::text("model_id", "Model ID", &spec.model_id),
        Field::select(
            "policy",
            "Balancing policy",
            policies,
            Some(spec.policy.as_str()),
        ),
        Field::text("tags", "Tags", &spec.tags.join(", ")),
    ];
    for (i, ep) in spec.endpoints.iter().enumerate() {
        fields.extend(endpoint_fields(i, Some(ep)));
    }
    // Last, so the fields above keep their places (new endpoints go before it).
    let cap = spec
        .completion_cap
        .map(|c| c.to_string())
        .unwrap_or_default();
    fields.push(Field::text(CAP, "Completion cap", &cap));
    Form::new((kind, BEHAVIOUR), title, fields, reg)
}

/// A new model (from the marketplace entry `preset` if given, else the
/// first published entry not registered yet, since only those can be
/// enabled): one empty endpoint.
pub fn create(reg: &Registry, preset: Option<&str>) -> Form {
    let name = preset.map(str::to_string).or_else(|| {
        reg.market
            .values()
            .find(|e| e.published && !reg.models.contains_key(&e.name))
            .map(|e| e.name.clone())
    });
    let spec = ModelSpec {
        name: name.unwrap_or_default(),
        cluster: crate::domain::Cluster::DEFAULT.to_string(),
        model_id: String::new(),
        endpoints: vec![Endpoint::new("")],
        policy: Policy::RoundRobin,
        tags: vec![],
        fallbacks: Vec::new(),
        completion_cap: None,
    };
    form(
        reg,
        FormKind::Model { editing: None },
        "Create model".into(),
        &spec,
        None,
    )
}

pub fn edit(reg: &Registry, m: &Model) -> Form {
    form(
        reg,
        FormKind::Model {
            editing: Some(m.spec.name.clone()),
        },
        format!("Edit model {}", m.spec.name),
        &m.spec,
        Some(&m.spec.name),
    )
}

fn endpoint_count(form: &Form) -> usize {
    form.fields
        .iter()
        .filter(|f| f.key.starts_with("endpoints[") && f.key.ends_with(".url"))
        .count()
}

/// Weights only exist under the weighted policy.
fn follow(form: &mut Form) {
    let weighted = form.choice("policy") == Some(Policy::Weighted.as_str());
    for i in 0..endpoint_count(form) {
        form.set_hidden(&format!("endpoints[{i}].weight"), !weighted);
    }
}

/// Which endpoint the focused field belongs to.
fn focused_endpoint(form: &Form) -> Option<usize> {
    let k = form.focused().key.strip_prefix("endpoints[")?;
    k[..k.find(']')?].parse().ok()
}

fn add_endpoint(form: &mut Form, reg: &Registry) {
    let n = endpoint_count(form);
    // Before the completion cap (and Save), after the last endpoint.
    let at = form
        .fields
        .iter()
        .position(|f| f.key == CAP)
        .unwrap_or(form.fields.len() - 1);
    for (j, f) in endpoint_fields(n, None).into_iter().enumerate() {
        form.fields.insert(at + j, f);
    }
    form.after_edit(reg, None);
    form.focus_on(&format!("endpoints[{n}].url"));
}

fn remove_endpoint(form: &mut Form, reg: &Registry) {
    let Some(i) = focused_endpoint(form) else {
        return;
    };
    let prefix = format!("endpoints[{i}].");
    form.fields.retain(|f| !f.key.starts_with(&prefix));
    // Renumber the endpoints after it.
    for f in &mut form.fields {
        let Some(rest) = f.key.strip_prefix("endpoints[") else {
            continue;
        };
        let Some(close) = rest.find(']') else {
            continue;
        };
        let Ok(j) = rest[..close].parse::<usize>() else {
            continue;
        };
        if j > i {
            let tail = rest[close + 1..].to_string();
            f.key = format!("endpoints[{}]{tail}", j - 1);
            if tail == ".url" {
                f.label = format!("Endpoint {j} URL");
            }
        }
    }
    form.focus = form.focus.min(form.fields.len() - 1);
    if form.fields[form.focus].hidden {
        form.move_focus(false);
    }
    form.after_edit(reg, None);
}

/// The change the form stands for, or every problem with it.
fn build(form: &Form, reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let editing = match &form.kind {
        FormKind::Model { editing } => editing.as_deref(),
        _ => None,
    };
    let mut errs = Vec::new();
    let policy: Policy = form
        .choice("policy")
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let stored = editing
        .and_then(|n| reg.models.get(n))
        .map(|m| &m.spec.endpoints);
    let endpoints = (0..endpoint_count(form))
        .map(|i| {
            let url = form.text(&format!("endpoints[{i}].url")).to_string();
            // Settings the form does not show (probe, disabled, CA file)
            // stay with an endpoint whose URL is unchanged.
            let mut ep = stored
                .and_then(|eps| eps.iter().find(|e| e.url == url))
                .cloned()
                .unwrap_or_else(|| Endpoint::new(url.clone()));
            ep.url = url;
            ep.api_key = form.secret(&format!("endpoints[{i}].api_key"));
            let wkey = format!("endpoints[{i}].weight");
            ep.weight = if policy == Policy::Weighted {
                parse_u32(&wkey, form.text(&wkey), &mut errs)
            } else {
                None
            };
            ep
        })
        .collect();
    let spec = ModelSpec {
        name: form.choice("name").unwrap_or_default().to_string(),
        cluster: form.choice("cluster").unwrap_or_default().to_string(),
        model_id: form.text("model_id").trim().to_string(),
        endpoints,
        policy,
        tags: validate::parse_tags(form.text("tags")),
        // The form does not show fallbacks: an edit keeps the stored ones.
        fallbacks: editing
            .and_then(|n| reg.models.get(n))
            .map(|m| m.spec.fallbacks.clone())
            .unwrap_or_default(),
        // Empty: the default (4096); out of range is refused by validate.
        completion_cap: match form.text(CAP).trim() {
            "" => None,
            t => parse_u32(CAP, t, &mut errs),
        },
    };
    for e in registry::model::validate(&spec) {
        // A weight that did not parse is reported once, by the parser.
        if !errs.iter().any(|p: &FieldError| p.field == e.field)
            && (e.field != "weight" || errs.is_empty())
        {
            errs.push(e);
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Op::Apply(vec![match editing {
        None => Change::CreateModel(spec),
        Some(name) => Change::UpdateModel {
            name: name.to_string(),
            spec,
        },
    }]))
}

/// Whether the field at `key` is a secret (tests use it to check masking).
pub fn is_secret(form: &Form, key: &str) -> bool {
    matches!(
        form.field(key).map(|f| &f.kind),
        Some(FieldKind::Secret { .. })
    )
}
