//! What the views read: the latest registry snapshot, gateway statuses
//! derived from the reports, live rates. Updated when a snapshot arrives,
//! never while drawing.

use std::collections::HashMap;
use std::sync::Arc;

use crate::client::{GatewayHeader, RegistryView};
use crate::domain::usage::UsageReport;
use crate::domain::{AuditEntry, GatewayReport, GatewayStatus, Model, gateway_status};
use crate::logging::LogRing;

use super::live::Live;
use super::requests::RequestLines;
use super::theme::Theme;

pub struct Data {
    pub theme: Theme,
    pub view: Arc<RegistryView>,
    /// Gateway status by model name.
    pub statuses: HashMap<String, GatewayStatus>,
    pub live: Live,
    pub gateway: GatewayHeader,
    /// The server this console is attached to (`--connect`), if remote.
    pub attached: Option<String>,
    /// Wall clock (Unix ms) as of the last tick: report freshness uses it.
    pub now_ms: i64,
    pub logs: Option<LogRing>,
    /// Moves whenever `statuses` are derived again (a status sort redoes
    /// its order then).
    pub status_generation: u64,
    /// How many reports were fresh when statuses were last derived.
    fresh_reports: usize,
    /// Attached with a `read` token: keys that change are hidden and
    /// refused with a line.
    pub read_only: bool,
    /// The newest audit entries, oldest first (as the store gives them),
    /// once `:audit` asked for them.
    pub audit: Arc<Vec<AuditEntry>>,
    /// Moves whenever `audit` is replaced.
    pub audit_generation: u64,
    /// The live tail's request lines (`:tail`), while it is shown.
    pub requests: RequestLines,
    /// Every budget with its spending, by id, as `:budgets` last asked
    /// (Unix ms of the answer).
    pub budgets: Arc<HashMap<String, crate::domain::budget::BudgetStatus>>,
    pub budgets_at_ms: Option<i64>,
    /// The `:usage` view's report, once it asked for one.
    pub usage: UsageData,
}

/// The usage report as the console holds it (`:usage`): the last one that
/// came, the last call's error, whether a call is under way.
#[derive(Debug, Clone, Default)]
pub struct UsageData {
    pub report: Option<Arc<UsageReport>>,
    /// The last call failed with this (the report shown, if any, is older).
    pub error: Option<String>,
    /// A call is under way.
    pub loading: bool,
    /// The console's clock (Unix ms) when the last answer came.
    pub at_ms: i64,
    /// Moves whenever `report` is replaced.
    pub generation: u64,
}

impl Data {
    pub fn new(
        theme: Theme,
        view: Arc<RegistryView>,
        gateway: GatewayHeader,
        now_ms: i64,
        logs: Option<LogRing>,
    ) -> Self {
        let mut d = Self {
            theme,
            view,
            statuses: HashMap::new(),
            live: Live::default(),
            gateway,
            attached: None,
            now_ms,
            logs,
            status_generation: 0,
            fresh_reports: 0,
            read_only: false,
            audit: Arc::new(Vec::new()),
            audit_generation: 0,
            requests: RequestLines::default(),
            budgets: Arc::new(HashMap::new()),
            budgets_at_ms: None,
            usage: UsageData::default(),
        };
        d.derive_statuses();
        d
    }

    /// Whether the source of the counters is answering (the embedded
    /// gateway running, or the remote server reachable).
    pub fn source_up(&self) -> bool {
        self.gateway.state == crate::client::GatewayState::Running
    }

    pub fn registry(&self) -> &crate::domain::Registry {
        &self.view.registry
    }

    pub fn status(&self, model: &str) -> GatewayStatus {
        self.statuses
            .get(model)
            .copied()
            .unwrap_or(GatewayStatus::Offline)
    }

    /// A key as people know it: `workspace/name` (its id if unknown).
    pub fn key_label(&self, id: &str) -> String {
        self.registry()
            .keys
            .get(id)
            .map_or_else(|| id.to_string(), |k| format!("{}/{}", k.workspace, k.name))
    }

    pub fn set_budgets(&mut self, all: Vec<crate::domain::budget::BudgetStatus>) {
        self.budgets = Arc::new(all.into_iter().map(|s| (s.id.clone(), s)).collect());
        self.budgets_at_ms = Some(self.now_ms);
    }

    pub fn set_audit(&mut self, entries: Vec<AuditEntry>) {
        self.audit = Arc::new(entries);
        self.audit_generation += 1;
    }

    pub fn set_view(&mut self, view: Arc<RegistryView>) {
        self.view = view;
        self.derive_statuses();
    }

    /// Re-derive statuses if a report went stale (or came back) since.
    /// Returns whether they were re-derived.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        self.now_ms = now_ms;
        let fresh = self
            .view
            .reports
            .iter()
            .filter(|r| r.is_fresh(now_ms))
            .count();
        if fresh != self.fresh_reports {
            self.derive_statuses();
            return true;
        }
        false
    }

    /// The gateway status of every model, in one pass over the reports:
    /// each model is judged on the reports cut down to its own endpoints,
    /// so the cost is O(models + endpoints), not their product.
    fn derive_statuses(&mut self) {
        let fresh: Vec<&GatewayReport> = self
            .view
            .reports
            .iter()
            .filter(|r| r.is_fresh(self.now_ms))
            .collect();
        self.fresh_reports = fresh.len();
        self.status_generation += 1;
        let headers: Vec<GatewayReport> = fresh
            .iter()
            .map(|r| GatewayReport {
                endpoints: Vec::new(),
                ..(*r).clone()
            })
            .collect();
        let mut per_model: HashMap<&str, Vec<GatewayReport>> = HashMap::new();
        for (i, r) in fresh.iter().enumerate() {
            for e in &r.endpoints {
                per_model
                    .entry(e.model.as_str())
                    .or_insert_with(|| headers.clone())[i]
                    .endpoints
                    .push(e.clone());
            }
        }
        let status = |m: &Model| {
            let reports = per_model.get(m.spec.name.as_str()).unwrap_or(&headers);
            gateway_status(m, reports, self.now_ms)
        };
        self.statuses = self
            .view
            .registry
            .models
            .values()
            .map(|m| (m.spec.name.clone(), status(m)))
            .collect();
    }
}
