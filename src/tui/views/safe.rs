//! Safe changes (`docs/console.md`, "Safe changes and undo"): a delete, a
//! revoke, or disabling a model that has traffic asks first and says what
//! follows; a change the registry would refuse (a workspace with active
//! keys, a key or workspace rules still use, a cluster models enter
//! through) is refused at once with the registry's own reason, before
//! asking — the change is tried on a copy of the registry the console
//! shows, by the same domain code the store runs.

use crate::domain::Change;
use crate::tui::action::Op;
use crate::tui::component::Effect;
use crate::tui::data::Data;

/// The registry's refusal of `change` on the registry shown, if any.
pub fn refusal(data: &Data, change: &Change) -> Option<String> {
    let mut reg = data.registry().clone();
    let now = data.now_ms / 1000;
    reg.apply_all(vec![change.clone()], now).err().map(|e| {
        e.errors
            .iter()
            .map(|f| f.problem.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Ask before `change` (deleting `what` `id`), saying what follows
/// (`also`); refuse at once what the registry would refuse.
pub fn delete(data: &Data, what: &str, id: &str, change: Change, also: &[String]) -> Effect {
    if let Some(why) = refusal(data, &change) {
        // Said whole (a line under the view would cut it), not asked.
        return Effect::Overlay(crate::tui::popups::Overlay::Message {
            title: format!("Cannot delete {what} {id}"),
            lines: vec![why],
        });
    }
    let mut text = format!("Delete {what} {id}?");
    for a in also {
        text.push(' ');
        text.push_str(a);
    }
    text.push_str(" y to delete, n to keep.");
    Effect::confirm(
        &format!("Delete {what}?"),
        text,
        Op::Apply(vec![change]),
        format!("{what} {id} deleted"),
    )
}

/// What deleting model `name` also does.
pub fn model_consequences(data: &Data, name: &str) -> Vec<String> {
    let Some(m) = data.registry().models.get(name) else {
        return Vec::new();
    };
    let mut also = Vec::new();
    if m.enabled {
        also.push("It is enabled: callers get 404 at once.".to_string());
    }
    let rate = data.live.model(name);
    if rate.req > 0.0 {
        also.push(format!("It has traffic now ({:.1} req/s).", rate.req));
    }
    match m.rules.len() {
        0 => {}
        1 => also.push("Its 1 rule goes too.".into()),
        n => also.push(format!("Its {n} rules go too.")),
    }
    also
}

/// What deleting workspace `name` also does.
pub fn workspace_consequences(data: &Data, name: &str) -> Vec<String> {
    let revoked = data
        .registry()
        .keys
        .values()
        .filter(|k| k.workspace == name)
        .count();
    match revoked {
        0 => Vec::new(),
        n => vec![format!("Its {n} revoked key(s) go too.")],
    }
}

/// Disable (or enable) model `name`: disabling one that has traffic asks
/// first; the rest is sent at once.
pub fn toggle(data: &Data, name: &str, enabled_now: bool) -> Effect {
    let enabled = !enabled_now;
    let op = Op::Apply(vec![Change::SetEnabled {
        name: name.to_string(),
        enabled,
    }]);
    let done = format!(
        "model {name} {}",
        if enabled { "enabled" } else { "disabled" }
    );
    let rate = data.live.model(name);
    if enabled || rate.req <= 0.0 {
        return Effect::Send { op, done };
    }
    Effect::confirm(
        "Disable model?",
        format!(
            "Disable model {name}? It has traffic ({:.1} req/s): callers get 404 at once. y to disable, n to keep.",
            rate.req
        ),
        op,
        done,
    )
}
