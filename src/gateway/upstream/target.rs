//! Where an endpoint's requests go: its base URL, parsed once per reload.
//!
//! An endpoint URL is an OpenAI *base URL* (what the OpenAI SDK calls
//! `base_url`): the gateway takes the caller's path after `/v1` and appends
//! it, so `/v1/chat/completions?x=1` sent to an endpoint
//! `http://127.0.0.1:9000/v1` goes to `http://127.0.0.1:9000/v1/chat/completions?x=1`,
//! and to `https://api.deepseek.com` it goes to
//! `https://api.deepseek.com/chat/completions` (DeepSeek's documented base
//! URL). A trailing `/` on the endpoint is ignored.

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;

/// Where an endpoint's requests go.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    scheme: Scheme,
    pub(super) host: String,
    pub(super) port: u16,
    /// `Host` header value (`host[:port]`).
    host_header: HeaderValue,
    /// Path of the base URL without a trailing `/` (`/v1`, or empty).
    prefix: String,
}

impl UpstreamTarget {
    /// Parse an endpoint base URL (already validated by the registry).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| format!("the endpoint URL '{url}' does not parse: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("the endpoint URL '{url}' has no scheme"))?;
        let default_port = if scheme == Scheme::HTTP {
            80
        } else if scheme == Scheme::HTTPS {
            443
        } else {
            return Err(format!("the endpoint URL '{url}' must be http or https"));
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the endpoint URL '{url}' has no host"))?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("the endpoint URL '{url}' has an unusable host: {e}"))?;
        Ok(Self {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
            host_header,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The origin-form request target for `rest` (the caller's path after
    /// `/v1`, with its query), in two pieces to write back to back.
    pub fn path<'a>(&'a self, rest: &'a str) -> [&'a str; 2] {
        if self.prefix.is_empty() && rest.is_empty() {
            ["/", ""]
        } else {
            [&self.prefix, rest]
        }
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `scheme://host:port`: the identity of a pool.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            self.scheme,
            self.host_header.to_str().unwrap_or(&self.host)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_path_after_v1_to_the_base_url() {
        let t = UpstreamTarget::parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(
            t.path("/chat/completions?x=1").concat(),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(t.host_header(), "127.0.0.1:9000");
        assert_eq!(t.origin(), "http://127.0.0.1:9000");
        let t = UpstreamTarget::parse("https://api.deepseek.com/").unwrap();
        assert_eq!(t.path("/chat/completions").concat(), "/chat/completions");
        assert_eq!(t.path("").concat(), "/");
        assert_eq!(
            (t.port, t.host_header().to_str().unwrap()),
            (443, "api.deepseek.com")
        );
        let t = UpstreamTarget::parse("https://h.example/openai/v1/").unwrap();
        assert_eq!(t.path("/models").concat(), "/openai/v1/models");
        let t = UpstreamTarget::parse("http://[::1]:8000/v1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8000));
        assert!(UpstreamTarget::parse("ftp://x").is_err());
        assert!(UpstreamTarget::parse("not a url").is_err());
    }
}
