//! What the model list and the model detail both do to a model: edit it,
//! enable or disable it, add a rule to it.

use crate::domain::Model;
use crate::tui::action::Action;
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::forms;

/// `e`, `t` or `a` on model `m`; `None` for any other action.
pub fn act(action: Action, m: &Model, data: &Data) -> Option<Effect> {
    let reg = data.registry();
    Some(match action {
        Action::Edit => Effect::Form(forms::model::edit(reg, m)),
        // Disabling a model with traffic asks first (`safe::toggle`).
        Action::Toggle => super::safe::toggle(data, &m.spec.name, m.enabled),
        Action::AddRule if reg.workspaces.is_empty() => {
            Effect::error("a rule needs a workspace: create one in :workspaces first")
        }
        Action::AddRule => Effect::Form(forms::rule::create(reg, &m.spec.name)),
        _ => return None,
    })
}
