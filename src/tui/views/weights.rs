//! Weights at the keyboard (model detail, policy `weighted`): `←`/`→`
//! nudge the selected endpoint's weight by 5, `H`/`L` by 1; the others
//! follow so the weights keep their sum (100 under `weighted`). Nothing is
//! saved until `enter`, through the same guarded save as the model form.
//!
//! The arithmetic ([`nudge`]), in integers and deterministic:
//!
//! 1. the selected weight moves by the step, clamped to `0..=total`
//!    (`total` the sum of all weights, 100), and not at all when it is the
//!    only endpoint;
//! 2. what it gained is taken from the others in proportion to their
//!    weights (an endpoint at 0 gives nothing); what it lost is given to
//!    the others in proportion to their weights, or in equal parts when
//!    they are all at 0;
//! 3. the proportional parts are rounded down, and the units left over go
//!    one each to the endpoints with the largest remainders, the lower
//!    index first on a tie (the largest-remainder method). No endpoint
//!    goes below 0 and the sum never changes.

use crate::client::guard::{Guard, Subject};
use crate::domain::{Change, Model, ModelSpec, Registry};

/// The weights after moving endpoint `i`'s by `step` (see the module
/// header). `weights` is returned unchanged when `i` is out of range.
pub fn nudge(weights: &[u32], i: usize, step: i32) -> Vec<u32> {
    let mut out = weights.to_vec();
    if i >= weights.len() || weights.len() < 2 {
        return out;
    }
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let own = i64::from(weights[i]);
    let moved = (own + i64::from(step)).clamp(0, total as i64);
    out[i] = moved as u32;
    let delta = moved - own;
    if delta == 0 {
        return out;
    }
    let others: Vec<usize> = (0..weights.len()).filter(|j| *j != i).collect();
    let others_sum: u64 = others.iter().map(|j| u64::from(weights[*j])).sum();
    // The basis of the proportions: the others' weights, or equal parts
    // when giving to others that are all at 0.
    let basis: Vec<u64> = others
        .iter()
        .map(|j| {
            if others_sum == 0 {
                1
            } else {
                u64::from(weights[*j])
            }
        })
        .collect();
    let basis_sum: u64 = basis.iter().sum();
    let amount = delta.unsigned_abs();
    let mut parts: Vec<u64> = basis.iter().map(|b| amount * b / basis_sum).collect();
    let mut left = amount - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..others.len()).collect();
    // Largest remainder first, lower index on a tie (a stable sort).
    order.sort_by_key(|k| std::cmp::Reverse(amount * basis[*k] % basis_sum));
    for k in order {
        if left == 0 {
            break;
        }
        parts[k] += 1;
        left -= 1;
    }
    for (k, j) in others.iter().enumerate() {
        let w = u64::from(weights[*j]);
        out[*j] = (if delta > 0 {
            w - parts[k]
        } else {
            w + parts[k]
        }) as u32;
    }
    out
}

/// Weights nudged in the detail and not saved yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The model as it was at the first nudge: what the save is guarded on.
    pub guard: Guard,
    /// Its spec then (the save sends it back with the new weights).
    pub spec: ModelSpec,
    pub weights: Vec<u32>,
    /// `enter` sent them; the answer has not come (or said the model
    /// changed elsewhere: `esc` discards).
    pub saving: bool,
}

impl Pending {
    /// Start from `m` as the console shows it.
    pub fn start(m: &Model, reg: &Registry) -> Self {
        Self {
            guard: Guard::new(Subject::Model(m.spec.name.clone()), reg),
            spec: m.spec.clone(),
            weights: stored(&m.spec),
            saving: false,
        }
    }

    /// The weights as they were at the first nudge.
    pub fn before(&self) -> Vec<u32> {
        stored(&self.spec)
    }

    /// The change the save sends: the spec seen first, new weights.
    pub fn change(&self) -> Change {
        let mut spec = self.spec.clone();
        for (ep, w) in spec.endpoints.iter_mut().zip(&self.weights) {
            ep.weight = Some(*w);
        }
        Change::UpdateModel {
            name: spec.name.clone(),
            spec,
        }
    }

    /// `70/30`: the weights, for messages.
    pub fn summary(&self) -> String {
        let w: Vec<String> = self.weights.iter().map(u32::to_string).collect();
        w.join("/")
    }
}

/// A spec's weights (a missing one as 0).
pub fn stored(spec: &ModelSpec) -> Vec<u32> {
    spec.endpoints
        .iter()
        .map(|e| e.weight.unwrap_or(0))
        .collect()
}
