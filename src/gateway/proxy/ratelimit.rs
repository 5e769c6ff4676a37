//! The `x-ratelimit-*` headers: their names, and their values as OpenAI
//! writes them (limits and remaining as integers, `-reset` in whole
//! seconds, `-reset-tokens` as a duration such as `1m1.5s`). Admitted
//! answers carry them as numbers ([`RateHeaders`]), written straight into
//! the head; 429s as header values ([`super::errors`]).

use hyper::header::{HeaderName, HeaderValue};

use crate::gateway::upstream::h1::name_is;

/// Milliseconds to whole seconds, rounded up.
pub fn secs_up(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The `x-ratelimit-*` headers of an admitted answer: the request rule's
/// `-limit`, `-remaining`, `-reset` (whole seconds, rounded up) and the
/// token rule's `-limit-tokens`, `-remaining-tokens`, `-reset-tokens` (a
/// duration, [`duration`]), as OpenAI sends them. They are on every answer
/// of a limited model, so they travel as numbers with the answer's body
/// and are written straight into the answer's head by the server
/// ([`RateHeaders::write`]): no header values, no header map insertions
/// (those cost half of what a token rule added to a request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// The request rule's limit, remaining and reset (ms).
    pub requests: Option<(u32, u32, u64)>,
    /// The token rule's limit, remaining and reset (ms).
    pub tokens: Option<(u32, u32, u64)>,
}

impl RateHeaders {
    /// Whether an upstream's header of this name (any case) gives way to
    /// one of these.
    pub fn covers(&self, name: &[u8]) -> bool {
        let is = |n: &[u8], s: &str| name_is(n, s);
        if name.len() <= 12 || !is(&name[..12], "x-ratelimit-") {
            return false;
        }
        let rest = &name[12..];
        (self.requests.is_some()
            && (is(rest, "limit") || is(rest, "remaining") || is(rest, "reset")))
            || (self.tokens.is_some()
                && (is(rest, "limit-tokens")
                    || is(rest, "remaining-tokens")
                    || is(rest, "reset-tokens")))
    }

    /// Append the header lines (`name: value\r\n`) to a head being written.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some((limit, remaining, reset_ms)) = self.requests {
            lines(out, REQUEST_LINES, limit, remaining, |o| {
                write_num(o, secs_up(reset_ms))
            });
        }
        if let Some((limit, remaining, reset_ms)) = self.tokens {
            lines(out, TOKEN_LINES, limit, remaining, |o| {
                write_duration(o, reset_ms)
            });
        }
    }
}

/// The starts of the `-limit`, `-remaining` and `-reset` lines: name and
/// `": "` in one piece (one copy instead of two).
const REQUEST_LINES: [&[u8]; 3] = [
    b"x-ratelimit-limit: ",
    b"x-ratelimit-remaining: ",
    b"x-ratelimit-reset: ",
];
const TOKEN_LINES: [&[u8]; 3] = [
    b"x-ratelimit-limit-tokens: ",
    b"x-ratelimit-remaining-tokens: ",
    b"x-ratelimit-reset-tokens: ",
];

/// A rule's three lines: its limit, what remains, and the reset `reset`
/// writes.
fn lines(
    out: &mut Vec<u8>,
    [limit_line, remaining_line, reset_line]: [&[u8]; 3],
    limit: u32,
    remaining: u32,
    reset: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(limit_line);
    write_num(out, u64::from(limit));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(remaining_line);
    write_num(out, u64::from(remaining));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reset_line);
    reset(out);
    out.extend_from_slice(b"\r\n");
}

// Checked once, at compile time (`from_static` in a `static` is const
// evaluated; called at run time it checks every byte of the name).
pub(super) static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub(super) static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub(super) static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
static RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// `x-ratelimit-limit-tokens`, `-remaining-tokens`, `-reset-tokens` of a
/// token rule's 429 (see [`RateHeaders`] for admitted answers).
pub fn token_headers(limit: u32, remaining: u32, reset_ms: u64) -> [(HeaderName, HeaderValue); 3] {
    let reset = HeaderValue::from_str(&duration(reset_ms))
        .unwrap_or_else(|_| HeaderValue::from_static("0s"));
    [
        (LIMIT_TOKENS.clone(), HeaderValue::from(limit)),
        (REMAINING_TOKENS.clone(), HeaderValue::from(remaining)),
        (RESET_TOKENS.clone(), reset),
    ]
}

fn write_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A duration as OpenAI writes `x-ratelimit-reset-tokens` (Go's
/// `time.Duration` text at millisecond precision): `0s`, `250ms`, `1.5s`,
/// `59s`, `6m0s`, `1h2m3.5s`.
pub fn duration(ms: u64) -> String {
    let mut out = Vec::new();
    write_duration(&mut out, ms);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_duration(out: &mut Vec<u8>, ms: u64) {
    if ms == 0 {
        out.extend_from_slice(b"0s");
        return;
    }
    if ms < 1000 {
        write_num(out, ms);
        out.extend_from_slice(b"ms");
        return;
    }
    let (h, m, sec_ms) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    if h > 0 {
        write_num(out, h);
        out.extend_from_slice(b"h");
    }
    if h > 0 || m > 0 {
        write_num(out, m);
        out.extend_from_slice(b"m");
    }
    write_num(out, sec_ms / 1000);
    let frac = sec_ms % 1000;
    if frac != 0 {
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.extend_from_slice(b".");
        out.extend_from_slice(&digits[..keep]);
    }
    out.extend_from_slice(b"s");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_resets_read_as_openai_writes_them() {
        let cases = [
            (0, "0s"),
            (1, "1ms"),
            (250, "250ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1_020, "1.02s"),
            (59_999, "59.999s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (3_723_500, "1h2m3.5s"),
        ];
        for (ms, want) in cases {
            assert_eq!(duration(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn an_admitted_answer_s_rate_limit_headers_carry_each_value() {
        let text = |r: RateHeaders| {
            let mut out = Vec::new();
            r.write(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            text(RateHeaders {
                requests: Some((60, 59, 1_001)),
                tokens: Some((90_000, 12_345, 61_500)),
            }),
            "x-ratelimit-limit: 60\r\nx-ratelimit-remaining: 59\r\nx-ratelimit-reset: 2\r\n\
             x-ratelimit-limit-tokens: 90000\r\nx-ratelimit-remaining-tokens: 12345\r\n\
             x-ratelimit-reset-tokens: 1m1.5s\r\n"
        );
        let tokens = RateHeaders {
            requests: None,
            tokens: Some((7, 0, 250)),
        };
        assert_eq!(
            text(tokens),
            "x-ratelimit-limit-tokens: 7\r\nx-ratelimit-remaining-tokens: 0\r\n\
             x-ratelimit-reset-tokens: 250ms\r\n"
        );
        let requests = RateHeaders {
            requests: Some((1, 0, 0)),
            tokens: None,
        };
        assert_eq!(
            text(requests),
            "x-ratelimit-limit: 1\r\nx-ratelimit-remaining: 0\r\nx-ratelimit-reset: 0\r\n"
        );
        assert_eq!(text(RateHeaders::default()), "");
        // An upstream's own headers give way to the ones written, only.
        assert!(
            requests.covers(b"x-ratelimit-remaining")
                && !requests.covers(b"x-ratelimit-remaining-tokens")
        );
        assert!(tokens.covers(b"x-ratelimit-reset-tokens") && !tokens.covers(b"x-ratelimit-reset"));
        assert!(!tokens.covers(b"x-ratelimit-other-tokens") && !requests.covers(b"content-type"));
    }
}
