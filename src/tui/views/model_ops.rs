//! What the model list and the model detail both do to a model: edit it,
//! enable or disable it, add a rule to it.

use crate::domain::{Change, Model};
use crate::tui::action::{Action, Op};
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::forms;

/// `e`, `t` or `a` on model `m`; `None` for any other action.
pub fn act(action: Action, m: &Model, data: &Data) -> Option<Effect> {
    let reg = data.registry();
    Some(match action {
        Action::Edit => Effect::Form(forms::model::edit(reg, m)),
        Action::Toggle => {
            let name = m.spec.name.clone();
            let enabled = !m.enabled;
            let done = format!(
                "model {name} {}",
                if enabled { "enabled" } else { "disabled" }
            );
            Effect::Send {
                op: Op::Apply(vec![Change::SetEnabled { name, enabled }]),
                done,
            }
        }
        Action::AddRule if reg.workspaces.is_empty() => {
            Effect::error("a rule needs a workspace: create one in :workspaces first")
        }
        Action::AddRule => Effect::Form(forms::rule::create(reg, &m.spec.name)),
        _ => return None,
    })
}
