//! `GET /metrics`: the published counters in Prometheus text format (0.0.4).
//!
//! One family per measure, the subject in labels: `scope` is `gateway`,
//! `model`, `key`, `workspace` or `endpoint`, with `model`, `key`,
//! `workspace`, `index`, `url` labels as they apply. Outcomes are a label of
//! `maasctl_responses_total`, so `sum by (scope)` equals
//! `maasctl_requests_total` minus what is in flight.

use std::fmt::Write;

use super::stats::{StatsSnapshot, Totals};
use crate::domain::EndpointState;

/// Escape a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    inner.join(",")
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    lines: String,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind,
            help,
            lines: String::new(),
        }
    }
    fn add(&mut self, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.lines, "{}{{{labels}}} {value}", self.name);
    }
    fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {}",
            self.name, self.help, self.name, self.kind
        );
        out.push_str(&self.lines);
    }
}

struct Families {
    requests: Family,
    responses: Family,
    in_flight: Family,
    tokens: Family,
    latency: Family,
}

impl Families {
    fn new() -> Self {
        Self {
            requests: Family::new(
                "maasctl_requests_total",
                "counter",
                "Requests received, by subject.",
            ),
            responses: Family::new(
                "maasctl_responses_total",
                "counter",
                "Requests answered, by subject and outcome (success, unauthorized, not_found, bad_request, throttled, upstream_4xx, upstream_error, cancelled).",
            ),
            in_flight: Family::new("maasctl_in_flight", "gauge", "Requests being served now."),
            tokens: Family::new(
                "maasctl_tokens_total",
                "counter",
                "Tokens reported by upstreams in usage, by kind (prompt, completion).",
            ),
            latency: Family::new(
                "maasctl_latency_seconds",
                "gauge",
                "Latency to the end of the response over the last minute (forwarded requests), by quantile.",
            ),
        }
    }

    fn add(&mut self, base: &[(&str, &str)], t: &Totals) {
        let l = labels(base);
        self.requests.add(&l, t.requests);
        for (outcome, v) in [
            ("success", t.success),
            ("unauthorized", t.unauthorized),
            ("not_found", t.not_found),
            ("bad_request", t.bad_request),
            ("throttled", t.throttled),
            ("upstream_4xx", t.upstream_4xx),
            ("upstream_error", t.upstream_errors),
            ("cancelled", t.cancelled),
        ] {
            self.responses.add(&format!("{l},outcome=\"{outcome}\""), v);
        }
        self.in_flight.add(&l, t.in_flight);
        self.tokens
            .add(&format!("{l},kind=\"prompt\""), t.prompt_tokens);
        self.tokens
            .add(&format!("{l},kind=\"completion\""), t.completion_tokens);
        self.latency
            .add(&format!("{l},quantile=\"0.5\""), t.latency_p50_ms / 1000.0);
        self.latency
            .add(&format!("{l},quantile=\"0.99\""), t.latency_p99_ms / 1000.0);
    }
}

/// Render a snapshot.
pub fn render(s: &StatsSnapshot) -> String {
    let mut f = Families::new();
    f.add(&[("scope", "gateway")], &s.gateway);
    for (m, t) in &s.models {
        f.add(&[("scope", "model"), ("model", m)], t);
    }
    for (k, t) in &s.keys {
        f.add(&[("scope", "key"), ("key", k)], t);
    }
    for (w, t) in &s.workspaces {
        f.add(&[("scope", "workspace"), ("workspace", w)], t);
    }
    let mut up = Family::new(
        "maasctl_endpoint_up",
        "gauge",
        "1 if the endpoint is in rotation, 0 if it is down or disabled (state label says which).",
    );
    for e in &s.endpoints {
        let idx = e.index.to_string();
        let base = [
            ("scope", "endpoint"),
            ("model", e.model.as_str()),
            ("index", idx.as_str()),
            ("url", e.url.as_str()),
        ];
        f.add(&base, &e.totals);
        let l = format!("{},state=\"{}\"", labels(&base[1..]), e.state.as_str());
        up.add(&l, u8::from(e.state == EndpointState::Healthy));
    }
    let mut admitted = Family::new(
        "maasctl_rule_admitted_total",
        "counter",
        "Requests a rate-limit rule admitted.",
    );
    let mut throttled = Family::new(
        "maasctl_rule_throttled_total",
        "counter",
        "Requests a rate-limit rule refused (429).",
    );
    let mut used = Family::new(
        "maasctl_rule_used",
        "gauge",
        "Requests counted in the rule's current window.",
    );
    let mut limit = Family::new(
        "maasctl_rule_limit",
        "gauge",
        "Requests the rule admits per window.",
    );
    for r in &s.rules {
        let id = r.rule_id.to_string();
        let l = labels(&[("rule", &id), ("model", &r.model), ("subject", &r.subject)]);
        admitted.add(&l, r.admitted);
        throttled.add(&l, r.throttled);
        used.add(&l, r.used);
        limit.add(&l, r.limit);
    }
    let mut info = Family::new(
        "maasctl_gateway_info",
        "gauge",
        "The registry revision served and the limiter mode.",
    );
    info.add(
        &labels(&[("listen", &s.listen), ("limiter", s.limiter.as_str())]),
        1,
    );
    let mut revision = Family::new(
        "maasctl_registry_revision",
        "gauge",
        "The registry revision being served.",
    );
    revision.add("", s.revision);

    let mut out = String::with_capacity(4096);
    for fam in [
        &info,
        &revision,
        &f.requests,
        &f.responses,
        &f.in_flight,
        &f.tokens,
        &f.latency,
        &up,
        &admitted,
        &throttled,
        &used,
        &limit,
    ] {
        fam.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_escaped_labels() {
        let mut s = StatsSnapshot::default();
        s.gateway.requests = 3;
        s.gateway.success = 2;
        s.models.insert(
            "we\"ird\\name".into(),
            Totals {
                requests: 3,
                ..Default::default()
            },
        );
        let text = render(&s);
        assert!(text.contains("# TYPE maasctl_requests_total counter"));
        assert!(text.contains("maasctl_requests_total{scope=\"gateway\"} 3"));
        assert!(text.contains("maasctl_responses_total{scope=\"gateway\",outcome=\"success\"} 2"));
        assert!(text.contains("model=\"we\\\"ird\\\\name\""), "{text}");
        assert!(text.contains("maasctl_registry_revision{} 0"));
    }
}
