//! The caller's request head as the request path reads it: method, target
//! and the header lines as they came (no header map: see
//! [`HeaderLines`]). Parsed by the server (`server/codec.rs`).

use bytes::Bytes;
use hyper::{Method, Version};

use crate::gateway::upstream::h1::HeaderLines;

#[derive(Debug)]
pub struct CallerHead {
    pub method: Method,
    pub version: Version,
    /// The request target as sent (UTF-8, checked by [`CallerHead::new`]).
    target: Bytes,
    /// Where the path starts in `target` (after `scheme://authority` of an
    /// absolute target) and where it ends (at the query).
    path: (usize, usize),
    pub headers: HeaderLines,
}

impl CallerHead {
    /// `None`: the target is not UTF-8.
    pub fn new(
        method: Method,
        version: Version,
        target: Bytes,
        headers: HeaderLines,
    ) -> Option<Self> {
        let path = path_span(std::str::from_utf8(&target).ok()?);
        Some(Self {
            method,
            version,
            target,
            path,
            headers,
        })
    }

    fn target(&self) -> &str {
        // SAFETY: `new` checked that `target` is UTF-8, and the field is
        // private and never changed after. Checking again here cost ~120
        // instructions on each of the two or three calls a request makes.
        unsafe { std::str::from_utf8_unchecked(&self.target) }
    }

    /// The path, without the query (`/v1/chat/completions`).
    pub fn path(&self) -> &str {
        self.target()
            .get(self.path.0..self.path.1)
            .unwrap_or_default()
    }

    /// The path and the query (`/v1/chat/completions?x=1`).
    pub fn path_and_query(&self) -> &str {
        self.target().get(self.path.0..).unwrap_or_default()
    }
}

/// Where the path of `target` starts and ends: after the scheme and
/// authority of an absolute target (`http://gw/v1/…`), up to the query.
fn path_span(target: &str) -> (usize, usize) {
    let start = match target.find("://") {
        Some(i) if !target.starts_with('/') => target[i + 3..]
            .find('/')
            .map_or(target.len(), |j| i + 3 + j),
        _ => 0,
    };
    let end = target[start..]
        .find('?')
        .map_or(target.len(), |q| start + q);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &'static [u8]) -> Option<CallerHead> {
        CallerHead::new(
            Method::POST,
            Version::HTTP_11,
            Bytes::from_static(target),
            HeaderLines::default(),
        )
    }

    #[test]
    fn only_a_utf8_target_makes_a_head_and_its_path_is_read_from_it() {
        // `target()` trusts this check (it does not validate again).
        assert!(head(b"/v1/\xff").is_none() && head(b"/v1/\xc3").is_none());
        let h = head("/v1/caf\u{e9}/x?q=\u{e9}".as_bytes()).unwrap();
        assert_eq!(h.path(), "/v1/caf\u{e9}/x");
        assert_eq!(h.path_and_query(), "/v1/caf\u{e9}/x?q=\u{e9}");
        let h = head(b"http://gw:8080/v1/chat/completions?a=1").unwrap();
        assert_eq!(h.path(), "/v1/chat/completions");
        assert_eq!(h.path_and_query(), "/v1/chat/completions?a=1");
        let h = head(b"http://gw").unwrap();
        assert_eq!((h.path(), h.path_and_query()), ("", ""));
    }
}
