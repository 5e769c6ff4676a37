//! The gateway's own answers in OpenAI's error shape
//! (`{"error":{"message","type","code"}}`), with messages a caller can act
//! on. OpenAI's SDKs map the status to an exception class
//! (401 → `AuthenticationError`, 404 → `NotFoundError`, 429 →
//! `RateLimitError`…) and show the message.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::ResBody;
use super::ratelimit::{LIMIT, REMAINING, RESET, secs_up, token_headers};
use crate::gateway::limiter::Rejection;

/// One error answer.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ProxyError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn invalid(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, "invalid_request_error", code, message)
    }

    pub fn missing_key() -> Self {
        Self::invalid(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "No API key provided. Send your key in the Authorization header: 'Authorization: Bearer sk-...'.",
        )
    }

    pub fn malformed_auth() -> Self {
        Self::invalid(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "The Authorization header must be 'Bearer <API key>'.",
        )
    }

    pub fn invalid_key(hint: &str) -> Self {
        Self::invalid(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            format!(
                "Incorrect API key provided: {hint}. Check the key, or ask your platform operator for one."
            ),
        )
    }

    pub fn revoked_key(id: &str) -> Self {
        Self::invalid(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            format!("API key {id} has been revoked. Ask your platform operator for a new key."),
        )
    }

    pub fn unknown_model(name: &str) -> Self {
        Self::invalid(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "The model '{name}' does not exist. GET /v1/models lists the models you can use."
            ),
        )
    }

    pub fn disabled_model(name: &str) -> Self {
        Self::invalid(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "The model '{name}' is disabled and cannot be called right now. GET /v1/models lists the models you can use."
            ),
        )
    }

    pub fn other_cluster(name: &str, access_path: &str) -> Self {
        Self::invalid(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("The model '{name}' is not served at this address; call it at {access_path}."),
        )
    }

    pub fn bad_body(code: &'static str, message: String) -> Self {
        Self::invalid(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn too_large(limit: usize, got: Option<u64>) -> Self {
        let size = match got {
            Some(n) => format!("The request body is {n} bytes"),
            None => "The request body is larger than the limit".to_string(),
        };
        let mut e = Self::invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "{size}; this gateway accepts at most {limit} bytes ({}). Send a smaller request.",
                human_bytes(limit)
            ),
        );
        // The rest of the body is not read, so the connection cannot be
        // reused; say so, or a client may send its next request into it.
        e.headers = vec![(hyper::header::CONNECTION, HeaderValue::from_static("close"))];
        e
    }

    pub fn throttled(model: &str, r: &Rejection) -> Self {
        let retry = secs_up(r.retry_after_ms).max(1);
        let message = match r.unit {
            crate::domain::RuleUnit::Requests => format!(
                "Rate limit reached for model '{model}': rule #{} allows {} request(s) per {}s for {} {}. Retry after {retry}s.",
                r.rule_id,
                r.limit,
                r.duration_secs,
                r.target.as_str(),
                r.subject
            ),
            // Token rules (docs/rate-limits.md, "Token rules").
            crate::domain::RuleUnit::Tokens => format!(
                "Rate limit reached for model '{model}': rule #{} allows {} tokens per {}s for {} {}; this request reserves {} (estimated prompt + max_tokens or the default completion cap). {}",
                r.rule_id,
                r.limit,
                r.duration_secs,
                r.target.as_str(),
                r.subject,
                r.requested,
                if r.requested > u64::from(r.limit) {
                    "That is more than the rule allows in any window: lower max_tokens or shorten the prompt.".to_owned()
                } else {
                    format!("The tokens free up in {retry}s; retry after {retry}s.")
                }
            ),
        };
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
        );
        let num = |n: u64| HeaderValue::from(n);
        e.headers = match r.unit {
            crate::domain::RuleUnit::Requests => vec![
                (hyper::header::RETRY_AFTER, num(retry)),
                (LIMIT.clone(), num(u64::from(r.limit))),
                (REMAINING.clone(), num(0)),
                (RESET.clone(), num(secs_up(r.reset_ms))),
                (HeaderName::from_static("x-ratelimit-rule"), num(r.rule_id)),
            ],
            // A token rule speaks in OpenAI's token headers (what it had
            // left may be more than 0: a reservation larger than that).
            crate::domain::RuleUnit::Tokens => {
                let mut h = vec![(hyper::header::RETRY_AFTER, num(retry))];
                h.extend(token_headers(r.limit, r.remaining, r.reset_ms));
                h.push((HeaderName::from_static("x-ratelimit-rule"), num(r.rule_id)));
                h
            }
        };
        e
    }

    pub fn unreachable(model: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unreachable",
            format!(
                "The upstream of model '{model}' could not be reached ({detail}). Retry later."
            ),
        )
    }

    pub fn timeout(model: &str, secs: f64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            format!(
                "The upstream of model '{model}' did not answer within {secs}s. Retry later, or ask for fewer tokens."
            ),
        )
    }

    pub fn no_endpoint(model: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_error",
            "no_available_endpoint",
            format!(
                "Model '{model}' has no endpoint in service (all are disabled by the operator). Retry later."
            ),
        )
    }

    pub fn unknown_url(method: &str, path: &str) -> Self {
        Self::invalid(
            StatusCode::NOT_FOUND,
            "unknown_url",
            format!(
                "Unknown request URL: {method} {path}. This gateway serves POST /v1/chat/completions, /v1/completions, /v1/embeddings and GET /v1/models."
            ),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let mut e = Self::invalid(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; use {allow}."),
        );
        e.headers = vec![(hyper::header::ALLOW, HeaderValue::from_static(allow))];
        e
    }

    /// The body did not arrive in time (`--body-timeout`); the rest is not
    /// read, so the connection closes.
    pub fn body_timeout(secs: f64) -> Self {
        let mut e = Self::invalid(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "The request body did not arrive within {secs}s of its headers; send it faster or in one piece."
            ),
        );
        e.headers = vec![(hyper::header::CONNECTION, HeaderValue::from_static("close"))];
        e
    }

    pub fn bad_request_body(detail: &str) -> Self {
        Self::invalid(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("The request body could not be read ({detail}). Send it again."),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let v = serde_json::json!({"error": {"message": self.message, "type": self.kind, "code": self.code}});
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }

    pub fn into_response(self) -> Response<ResBody> {
        let mut res = Response::new(ResBody::full(self.body()));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        res
    }
}

fn human_bytes(n: usize) -> String {
    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleTarget;

    #[test]
    fn bodies_have_openai_shape() {
        let e = ProxyError::unknown_model("nope");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains("'nope'"));
    }

    #[test]
    fn throttled_names_the_rule_and_rounds_up() {
        let r = Rejection {
            rule_id: 7,
            target: RuleTarget::ApiKey,
            unit: Default::default(),
            requested: 1,
            subject: "key_12345678".into(),
            limit: 5,
            remaining: 0,
            duration_secs: 60,
            retry_after_ms: 1001,
            reset_ms: 59_000,
        };
        let e = ProxyError::throttled("m", &r);
        assert_eq!(e.status, 429);
        assert!(
            e.message.contains("rule #7")
                && e.message.contains("api-key key_12345678")
                && e.message.contains("5 request(s) per 60s")
        );
        let get = |n: &str| {
            e.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("retry-after").as_deref(), Some("2"));
        assert_eq!(get("x-ratelimit-reset").as_deref(), Some("59"));
        assert_eq!(get("x-ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(human_bytes(4 << 20), "4 MiB");
    }
}
