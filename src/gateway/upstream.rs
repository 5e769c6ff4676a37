//! Reaching upstreams: where a request goes, and the pooled HTTP(S) clients.
//!
//! An endpoint URL is an OpenAI *base URL* (what the OpenAI SDK calls
//! `base_url`): the gateway takes the caller's path after `/v1` and appends
//! it, so `/v1/chat/completions?x=1` sent to an endpoint
//! `http://127.0.0.1:9000/v1` goes to `http://127.0.0.1:9000/v1/chat/completions?x=1`,
//! and to `https://api.deepseek.com` it goes to
//! `https://api.deepseek.com/chat/completions` (DeepSeek's documented base
//! URL). A trailing `/` on the endpoint is ignored.
//!
//! Every worker thread has its own keep-alive pool per upstream (its own
//! `Client`), so a connection is only ever used by the thread whose runtime
//! drives it and no pool lock is shared between cores. One more client per
//! upstream serves the health prober on the control thread.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client type used for every upstream.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Where an endpoint's requests go.
#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// Path of the base URL without a trailing `/` (`/v1`, or empty).
    prefix: String,
}

impl Target {
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
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!("the endpoint URL '{url}' must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("the endpoint URL '{url}' has no host"))?;
        Ok(Self {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The upstream URI for `rest` (the caller's path after `/v1`, with its query).
    pub fn uri(&self, rest: &str) -> Result<Uri, hyper::http::Error> {
        let mut pq = String::with_capacity(self.prefix.len() + rest.len());
        pq.push_str(&self.prefix);
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }

    /// `scheme://authority`: the key of a connection pool.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// One client per worker thread, plus one for the prober (the last).
pub struct Clients(Box<[HttpClient]>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clients({})", self.0.len())
    }
}

impl Clients {
    pub fn new(workers: usize, tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Self {
        let make = || {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(connect_timeout));
            http.set_keepalive(Some(Duration::from_secs(60)));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(https)
        };
        Self((0..=workers).map(|_| make()).collect())
    }

    /// The client of worker `w` (only ever used on that worker's thread).
    #[inline]
    pub fn worker(&self, w: usize) -> &HttpClient {
        &self.0[w.min(self.0.len() - 1)]
    }

    /// The prober's client (used on the control thread).
    pub fn prober(&self) -> &HttpClient {
        &self.0[self.0.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_path_after_v1_to_the_base_url() {
        let t = Target::parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(
            t.uri("/chat/completions?x=1").unwrap().to_string(),
            "http://127.0.0.1:9000/v1/chat/completions?x=1"
        );
        let t = Target::parse("https://api.deepseek.com/").unwrap();
        assert_eq!(
            t.uri("/chat/completions").unwrap().to_string(),
            "https://api.deepseek.com/chat/completions"
        );
        assert_eq!(t.origin(), "https://api.deepseek.com");
        let t = Target::parse("https://h.example/openai/v1/").unwrap();
        assert_eq!(
            t.uri("/models").unwrap().to_string(),
            "https://h.example/openai/v1/models"
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
