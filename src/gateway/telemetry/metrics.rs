//! `GET /metrics`: the published counters in Prometheus text format (0.0.4).
//!
//! One family per measure, the subject in labels: `scope` is `gateway`,
//! `model`, `key`, `workspace` or `endpoint`, with `model`, `key`,
//! `workspace`, `index`, `url` labels as they apply. Outcomes are a label of
//! `maasctl_responses_total`, so `sum by (scope)` equals
//! `maasctl_requests_total` minus what is in flight. Latency is a summary:
//! p50/p99 over the last minute (`quantile` label) with the cumulative
//! `_sum` (seconds) and `_count` of the latencies recorded.

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
        self.add_suffixed("", labels, value);
    }
    /// A sample of the family named `name` + `suffix` (a summary's `_sum`, `_count`).
    fn add_suffixed(&mut self, suffix: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.lines, "{}{suffix}{{{labels}}} {value}", self.name);
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
                "summary",
                "Latency to the end of the response of forwarded requests: quantiles over the last minute, sum and count since start.",
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
        self.latency
            .add_suffixed("_sum", &l, t.latency_sum_us as f64 / 1_000_000.0);
        self.latency.add_suffixed("_count", &l, t.latency_count);
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
    use crate::gateway::telemetry::stats::EndpointStats;

    /// A metric or label name of the text format.
    fn is_name(s: &str) -> bool {
        let mut cs = s.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// `{k="v",…}` (quotes escaped with a backslash) into its pairs.
    fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
        let inner = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| format!("labels not in braces: {s}"))?;
        let mut pairs = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let (k, v) = rest
                .split_once("=\"")
                .ok_or_else(|| format!("label without =\": {rest}"))?;
            if !is_name(k) {
                return Err(format!("bad label name {k:?}"));
            }
            let mut value = String::new();
            let mut chars = v.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => return Err(format!("bad escape {other:?} in {v}")),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated label value: {v}")),
                }
            };
            pairs.push((k.to_string(), value));
            rest = &v[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        Ok(pairs)
    }

    /// Check the text exposition format (0.0.4) line by line: every sample
    /// belongs to the family of the `# TYPE` above it (a summary's also as
    /// `_sum`/`_count`), each family is typed once, names and labels are
    /// well formed, values are numbers. Returns (type, family) pairs.
    fn check_exposition(text: &str) -> Vec<(String, String)> {
        let mut families: Vec<(String, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line}", n + 1);
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, _) = help.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(is_name(name), "{}", at());
                continue;
            }
            if let Some(ty) = line.strip_prefix("# TYPE ") {
                let (name, kind) = ty.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(is_name(name), "{}", at());
                assert!(
                    ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                    "{}",
                    at()
                );
                assert!(
                    families.iter().all(|(_, f)| f != name),
                    "typed twice: {}",
                    at()
                );
                families.push((kind.to_string(), name.to_string()));
                continue;
            }
            assert!(!line.starts_with('#'), "{}", at());
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(value.parse::<f64>().is_ok(), "value: {}", at());
            let (name, labels) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, "{}"),
            };
            assert!(is_name(name), "{}", at());
            let labels = parse_labels(labels).unwrap_or_else(|e| panic!("{e}: {}", at()));
            let (kind, family) = families
                .last()
                .unwrap_or_else(|| panic!("untyped: {}", at()));
            let belongs = name == family
                || (kind == "summary"
                    && [format!("{family}_sum"), format!("{family}_count")]
                        .contains(&name.to_string()));
            assert!(belongs, "not of family {family}: {}", at());
            if kind == "summary" && name == family {
                assert!(labels.iter().any(|(k, _)| k == "quantile"), "{}", at());
            }
        }
        families
    }

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
        check_exposition(&text);
    }

    #[test]
    fn latency_is_a_summary_with_quantiles_sum_and_count() {
        let mut s = StatsSnapshot::default();
        let t = Totals {
            latency_p50_ms: 12.0,
            latency_p99_ms: 250.0,
            latency_count: 4,
            latency_sum_us: 1_500_000,
            ..Default::default()
        };
        s.gateway = t;
        s.models.insert("m\nx".into(), t);
        s.endpoints.push(EndpointStats {
            model: "m\nx".into(),
            index: 0,
            url: "http://127.0.0.1:9/v1".into(),
            weight: None,
            state: EndpointState::Down,
            reason: Some("refused".into()),
            since_ms: Some(1),
            totals: t,
        });
        let text = render(&s);
        for line in [
            "# TYPE maasctl_latency_seconds summary",
            "maasctl_latency_seconds{scope=\"gateway\",quantile=\"0.5\"} 0.012",
            "maasctl_latency_seconds{scope=\"gateway\",quantile=\"0.99\"} 0.25",
            "maasctl_latency_seconds_sum{scope=\"gateway\"} 1.5",
            "maasctl_latency_seconds_count{scope=\"gateway\"} 4",
            "maasctl_latency_seconds_count{scope=\"model\",model=\"m\\nx\"} 4",
        ] {
            assert!(text.contains(line), "lacks {line}:\n{text}");
        }
        let families = check_exposition(&text);
        let typed = |name: &str| {
            families
                .iter()
                .find(|(_, f)| f == name)
                .map(|(k, _)| k.as_str())
        };
        for (name, kind) in [
            ("maasctl_gateway_info", "gauge"),
            ("maasctl_registry_revision", "gauge"),
            ("maasctl_requests_total", "counter"),
            ("maasctl_responses_total", "counter"),
            ("maasctl_in_flight", "gauge"),
            ("maasctl_tokens_total", "counter"),
            ("maasctl_latency_seconds", "summary"),
            ("maasctl_endpoint_up", "gauge"),
            ("maasctl_rule_admitted_total", "counter"),
            ("maasctl_rule_throttled_total", "counter"),
            ("maasctl_rule_used", "gauge"),
            ("maasctl_rule_limit", "gauge"),
        ] {
            assert_eq!(typed(name), Some(kind), "{name}");
        }
    }

    #[test]
    fn the_format_check_catches_what_prometheus_would_refuse() {
        for bad in [
            "# TYPE x gauge\nx{a=\"1} 1\n",
            "# TYPE x gauge\ny{} 1\n",
            "# TYPE x gauge\nx{} one\n",
            "# TYPE x gauge\n# TYPE x gauge\n",
            "# TYPE x summary\nx{a=\"1\"} 1\n",
        ] {
            assert!(
                std::panic::catch_unwind(|| check_exposition(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
