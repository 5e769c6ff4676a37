//! What a request reserves against a token rule before it is forwarded:
//! its prompt's tokens, estimated from the request body, plus the most it
//! may generate (docs/rate-limits.md, "Token rules").
//!
//! The estimate must not fall short of what the upstream will bill, or a
//! window could admit more than its limit until settlement corrects it; it
//! may exceed it (the difference is given back when the answer's `usage`
//! arrives). Tokenizers differ per model, so the estimate is a byte count
//! that bounds the usual ones from above, computed over the whole body in
//! one pass (no JSON tree, no allocation):
//!
//! ```text
//! prompt ≈ ⌈(ASCII bytes + ASCII digits) / 3⌉ + non-ASCII characters
//! ```
//!
//! English prose runs at about 4 bytes per token, so a third of its bytes
//! is above it; digits group by at most three per token (and the commas and
//! spaces between numbers are tokens of their own), so they count twice;
//! CJK characters are about one token each in cl100k/o200k. The JSON
//! around the messages (`{"role":"user","content":""}`, ~30 bytes) pays for
//! the per-message overhead of chat templates (3–4 tokens). Measured
//! against tiktoken on the chat bodies in `tests/data/chat/` (the unit test
//! below keeps it so): 1.07–2.13 × the larger of the cl100k and o200k
//! counts (2.76 × for CJK sent `\u`-escaped, as Python's `json.dumps`
//! does), never below. It is not a proof: a body made of rare CJK
//! characters or emoji (2–4 tokens per character) can be underestimated,
//! by at most 4× (every token covers at least one byte).
//!
//! The completion part is `max_completion_tokens`, else `max_tokens`, else
//! the model's default completion cap, times `n` (choices); embeddings
//! generate nothing.

use serde::Deserialize;

/// Reserved completion tokens when a request gives no `max_tokens` /
/// `max_completion_tokens` and its model sets no `completion_cap`.
pub const DEFAULT_COMPLETION_CAP: u64 = 4096;

/// A request's reservation, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The prompt, estimated from the body.
    pub prompt: u64,
    /// The most the answer may hold (cap × choices; 0 for embeddings).
    pub completion: u64,
}

impl Estimate {
    /// What the request reserves.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }
}

/// The prompt estimate of a request body (see the module header).
pub fn prompt_tokens(body: &[u8]) -> u64 {
    let (ascii, digits, chars) = byte_counts(body);
    (ascii + digits).div_ceil(3) + chars
}

/// ASCII bytes, ASCII digits and UTF-8 lead bytes (one per non-ASCII
/// character) of `body`. Counted 64 bytes at a time into byte-wide sums, a
/// loop the compiler turns into vector compares (a plain loop over the
/// bytes ran ~10 instructions a byte).
fn byte_counts(body: &[u8]) -> (u64, u64, u64) {
    let (mut ascii, mut digits, mut chars) = (0u64, 0u64, 0u64);
    let mut chunks = body.chunks_exact(64);
    for chunk in &mut chunks {
        let (mut a, mut d, mut c) = (0u8, 0u8, 0u8);
        for &b in chunk {
            a += u8::from(b < 0x80);
            d += u8::from(b.is_ascii_digit());
            c += u8::from(b >= 0xC0);
        }
        ascii += u64::from(a);
        digits += u64::from(d);
        chars += u64::from(c);
    }
    for &b in chunks.remainder() {
        ascii += u64::from(b < 0x80);
        digits += u64::from(b.is_ascii_digit());
        chars += u64::from(b >= 0xC0);
    }
    (ascii, digits, chars)
}

/// The completion caps a request may give (the rest of the body is skipped).
/// The gateway reads them in its one pass over the body
/// (`proxy::extract::CapFields::read`); [`estimate`] parses them itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Caps {
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub n: Option<u64>,
}

/// The reservation of a request to `path` (`/v1/chat/completions`, …) with
/// `body`. `default_cap` applies when the body gives no cap; a body whose
/// caps cannot be read (not JSON, a cap that is not a whole number) is
/// reserved with the default (the upstream refuses such a body, and a
/// refusal gives the reservation back).
pub fn estimate(path: &str, body: &[u8], default_cap: u64) -> Estimate {
    let caps = || serde_json::from_slice::<Caps>(body).ok();
    estimate_with(path, body, default_cap, caps)
}

/// [`estimate`] with the caps read by the caller (`None`: unreadable),
/// asked for only when the request generates text.
pub fn estimate_with(
    path: &str,
    body: &[u8],
    default_cap: u64,
    caps: impl FnOnce() -> Option<Caps>,
) -> Estimate {
    let prompt = prompt_tokens(body);
    if path.ends_with("/embeddings") {
        return Estimate {
            prompt,
            completion: 0,
        };
    }
    let caps = caps();
    let cap = caps
        .as_ref()
        .and_then(|c| c.max_completion_tokens.or(c.max_tokens))
        .unwrap_or(default_cap);
    let n = caps.and_then(|c| c.n).unwrap_or(1).max(1);
    Estimate {
        prompt,
        completion: cap.saturating_mul(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tiktoken counts (cl100k_base, o200k_base) of the chat bodies in
    /// `tests/data/chat/`, with OpenAI's chat overhead (3 per message + 3),
    /// measured with tiktoken-rs 0.12.1.
    const MEASURED: &[(&str, u64, u64)] = &[
        ("en_code", 168, 169),
        ("en_multi", 221, 218),
        ("en_numbers", 158, 158),
        ("en_short", 16, 15),
        ("ja", 126, 93),
        ("ko", 87, 57),
        ("mixed", 103, 80),
        ("zh_escaped", 272, 191),
        ("zh_multi", 272, 191),
    ];

    #[test]
    fn the_prompt_estimate_stays_above_tiktoken_on_real_chat_bodies() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat");
        let mut ratios = Vec::new();
        for &(name, cl100k, o200k) in MEASURED {
            let body = std::fs::read(format!("{dir}/{name}.json")).unwrap();
            let est = prompt_tokens(&body);
            let truth = cl100k.max(o200k);
            let ratio = est as f64 / truth as f64;
            assert!(est >= truth, "{name}: estimate {est} < {truth}");
            ratios.push((name, ratio));
        }
        let worst = ratios.iter().map(|r| r.1).fold(0.0, f64::max);
        let best = ratios.iter().map(|r| r.1).fold(f64::MAX, f64::min);
        // The figures docs/rate-limits.md quotes.
        assert!(best >= 1.06 && worst <= 2.77, "{ratios:?}");
    }

    #[test]
    fn the_completion_cap_is_the_callers_or_the_default_times_choices() {
        let chat = "/v1/chat/completions";
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let p = prompt_tokens(body);
        assert_eq!(
            estimate(chat, body, 4096),
            Estimate {
                prompt: p,
                completion: 4096
            }
        );
        let body = br#"{"model":"m","max_tokens":100,"n":3,"messages":[]}"#;
        assert_eq!(estimate(chat, body, 4096).completion, 300);
        let body = br#"{"model":"m","max_tokens":100,"max_completion_tokens":50}"#;
        assert_eq!(estimate(chat, body, 4096).completion, 50);
        let body = br#"{"model":"m","max_tokens":"lots"}"#;
        assert_eq!(estimate(chat, body, 512).completion, 512);
        let body = br#"{"model":"m","input":"some text"}"#;
        assert_eq!(estimate("/v1/embeddings", body, 4096).completion, 0);
        // Digits count twice, a CJK character once.
        assert_eq!(prompt_tokens(b"abc"), 1);
        // The chunked count equals the byte-by-byte definition at every
        // length around the chunk size, with every kind of byte.
        let mixed: Vec<u8> = "a1 你好, é9\u{1F600}z".bytes().cycle().take(300).collect();
        for len in 0..mixed.len() {
            let body = &mixed[..len];
            let plain = (
                body.iter().filter(|&&b| b < 0x80).count() as u64,
                body.iter().filter(|b| b.is_ascii_digit()).count() as u64,
                body.iter().filter(|&&b| b >= 0xC0).count() as u64,
            );
            assert_eq!(byte_counts(body), plain, "length {len}");
        }
        assert_eq!(prompt_tokens(b"123"), 2);
        assert_eq!(prompt_tokens("你好".as_bytes()), 2);
    }
}
