//! `GET /metrics`: the published counters in Prometheus text format (0.0.4).
//!
//! One family per measure, the subject in labels: `scope` is `gateway`,
//! `model`, `key`, `workspace` or `endpoint`, with `model`, `key`,
//! `workspace`, `index`, `url` labels as they apply. Outcomes are a label of
//! `maasctl_responses_total`, so `sum by (scope)` equals
//! `maasctl_requests_total` minus what is in flight. Latency is a summary:
//! p50/p99 over the last minute (`quantile` label) with the cumulative
//! `_sum` (seconds) and `_count` of the latencies recorded.
//!
//! Cardinality: per-key series are capped ([`Options::key_series`],
//! `--metrics-key-series`): above the cap, the keys with the most requests
//! keep their series and the rest are summed into one `key="other"` series
//! (its latency quantiles are `NaN`: quantiles do not add up), so the sum
//! over `scope="key"` still equals what the keys did; 0 turns per-key series
//! off. Workspaces and models are operator-made and not capped.

use std::fmt::Write;

use super::conns::ConnGauges;
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

/// What `/metrics` shows besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Keys with a series of their own (the most requests first); the rest
    /// are summed into `key="other"`. 0: no per-key series.
    pub key_series: usize,
    /// The callers' connections.
    pub conns: ConnGauges,
}

/// The label value of the series that sums the keys over the cap.
pub const OTHER_KEYS: &str = "other";

/// `a` plus the counters of `b` (quantiles do not add up: `NaN`).
fn sum_totals(a: &mut Totals, b: &Totals) {
    a.requests += b.requests;
    a.success += b.success;
    a.unauthorized += b.unauthorized;
    a.not_found += b.not_found;
    a.bad_request += b.bad_request;
    a.throttled += b.throttled;
    a.upstream_4xx += b.upstream_4xx;
    a.upstream_errors += b.upstream_errors;
    a.cancelled += b.cancelled;
    a.in_flight += b.in_flight;
    a.prompt_tokens += b.prompt_tokens;
    a.completion_tokens += b.completion_tokens;
    a.latency_count += b.latency_count;
    a.latency_sum_us += b.latency_sum_us;
    a.latency_p50_ms = f64::NAN;
    a.latency_p99_ms = f64::NAN;
}

/// The per-key series: every key up to `cap`, else the top `cap` by
/// requests (ties by id) and the rest summed as [`OTHER_KEYS`].
fn key_series(s: &StatsSnapshot, cap: usize) -> Vec<(&str, Totals)> {
    if s.keys.len() <= cap {
        return s.keys.iter().map(|(k, t)| (k.as_str(), *t)).collect();
    }
    let mut by_requests: Vec<(&String, &Totals)> = s.keys.iter().collect();
    by_requests.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
    let mut out: Vec<(&str, Totals)> = by_requests[..cap]
        .iter()
        .map(|(k, t)| (k.as_str(), **t))
        .collect();
    if cap > 0 {
        let mut other = Totals::default();
        for (_, t) in &by_requests[cap..] {
            sum_totals(&mut other, t);
        }
        out.push((OTHER_KEYS, other));
    }
    out
}

fn conn_families(c: &ConnGauges) -> [Family; 5] {
    let mut cap = Family::new(
        "maasctl_connections_max",
        "gauge",
        "Most callers' connections open at once (--max-connections).",
    );
    cap.add("", c.cap);
    let mut open = Family::new(
        "maasctl_connections_open",
        "gauge",
        "Callers' connections open now.",
    );
    open.add("", c.open);
    let mut shed = Family::new(
        "maasctl_connections_shed_total",
        "counter",
        "Idle keep-alive connections closed to make room for new callers at the cap.",
    );
    shed.add("", c.shed);
    let mut refused = Family::new(
        "maasctl_connections_refused_total",
        "counter",
        "Callers closed at once: the cap was reached and no connection was idle.",
    );
    refused.add("", c.refused);
    let mut by_worker = Family::new(
        "maasctl_worker_connections_open",
        "gauge",
        "Callers' connections each worker serves (a new one goes to the worker serving the fewest).",
    );
    for (i, n) in c.per_worker.iter().enumerate() {
        by_worker.add(&labels(&[("worker", &i.to_string())]), *n);
    }
    [cap, open, shed, refused, by_worker]
}

/// Render a snapshot.
pub fn render(s: &StatsSnapshot, o: &Options) -> String {
    let mut f = Families::new();
    f.add(&[("scope", "gateway")], &s.gateway);
    for (m, t) in &s.models {
        f.add(&[("scope", "model"), ("model", m)], t);
    }
    for (k, t) in key_series(s, o.key_series) {
        f.add(&[("scope", "key"), ("key", k)], &t);
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
    let conns = conn_families(&o.conns);
    for fam in conns.iter().chain([
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
    ]) {
        fam.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::telemetry::stats::EndpointStats;

    fn opts() -> Options {
        Options {
            key_series: 100,
            conns: ConnGauges {
                cap: 8,
                open: 3,
                shed: 2,
                refused: 1,
                per_worker: vec![2, 1],
            },
        }
    }

    fn requests(n: u64) -> Totals {
        Totals {
            requests: n,
            success: n,
            latency_p50_ms: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn per_key_series_are_capped_to_the_busiest_plus_other() {
        let mut s = StatsSnapshot::default();
        for (k, n) in [("a", 5), ("b", 9), ("c", 1), ("d", 7)] {
            s.keys.insert(k.into(), requests(n));
        }
        let text = render(
            &s,
            &Options {
                key_series: 2,
                ..opts()
            },
        );
        check_exposition(&text);
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("maasctl_requests_total{scope=\"key\""))
            .collect();
        assert_eq!(
            keys,
            [
                "maasctl_requests_total{scope=\"key\",key=\"b\"} 9",
                "maasctl_requests_total{scope=\"key\",key=\"d\"} 7",
                "maasctl_requests_total{scope=\"key\",key=\"other\"} 6",
            ]
        );
        assert!(
            text.contains(
                "maasctl_latency_seconds{scope=\"key\",key=\"other\",quantile=\"0.5\"} NaN"
            )
        );
        let all = render(&s, &opts());
        assert_eq!(
            all.matches("maasctl_requests_total{scope=\"key\"").count(),
            4
        );
        let off = render(
            &s,
            &Options {
                key_series: 0,
                ..opts()
            },
        );
        assert!(!off.contains("scope=\"key\""), "{off}");
        for line in [
            "maasctl_connections_max{} 8",
            "maasctl_connections_open{} 3",
            "maasctl_connections_shed_total{} 2",
            "maasctl_connections_refused_total{} 1",
            "maasctl_worker_connections_open{worker=\"0\"} 2",
            "maasctl_worker_connections_open{worker=\"1\"} 1",
        ] {
            assert!(all.contains(line), "lacks {line}");
        }
    }

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
        let text = render(&s, &opts());
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
        let text = render(&s, &opts());
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
