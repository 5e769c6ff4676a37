//! Token counts from the upstream's `usage`, read from the response bytes as
//! they pass through (`docs/gateway.md`, "Counters": tokens, streaming included).
//!
//! The response is never buffered or parsed: the scanner looks for the keys
//! `"prompt_tokens"` and `"completion_tokens"` followed by `:` and a number.
//! Inside a JSON string a quote is always escaped (`\"`), so the pattern can
//! only match a real key. Streams that report usage once (OpenAI's
//! `stream_options.include_usage`) and those that repeat a running total in
//! every chunk are both right because the last value seen wins. A key split
//! across two chunks is found by rescanning the seam (the last bytes of the
//! previous chunk joined to the first bytes of the next).

use memchr::memmem::Finder;
use std::sync::LazyLock;

/// The longest match: `"completion_tokens"` + a little whitespace + `:` + 20 digits.
const SEAM: usize = 64;

static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"_tokens\""));

/// Token counts seen so far in one response.
#[derive(Debug, Clone)]
pub struct UsageScanner {
    tail: [u8; SEAM],
    tail_len: usize,
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
}

impl Default for UsageScanner {
    fn default() -> Self {
        Self {
            tail: [0; SEAM],
            tail_len: 0,
            prompt: None,
            completion: None,
        }
    }
}

impl UsageScanner {
    /// Feed the next chunk of the response.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if self.tail_len > 0 {
            let head = &chunk[..chunk.len().min(SEAM)];
            let mut seam = [0u8; 2 * SEAM];
            seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            seam[self.tail_len..self.tail_len + head.len()].copy_from_slice(head);
            self.scan(&seam[..self.tail_len + head.len()]);
        }
        self.scan(chunk);
        // Keep the last bytes for the next seam.
        if chunk.len() >= SEAM {
            self.tail.copy_from_slice(&chunk[chunk.len() - SEAM..]);
            self.tail_len = SEAM;
        } else {
            let keep = (SEAM - chunk.len()).min(self.tail_len);
            self.tail
                .copy_within(self.tail_len - keep..self.tail_len, 0);
            self.tail[keep..keep + chunk.len()].copy_from_slice(chunk);
            self.tail_len = keep + chunk.len();
        }
    }

    fn scan(&mut self, buf: &[u8]) {
        for at in FINDER.find_iter(buf) {
            let key_end = at + b"_tokens\"".len();
            let slot = if buf[..at].ends_with(b"\"prompt") {
                &mut self.prompt
            } else if buf[..at].ends_with(b"\"completion") {
                &mut self.completion
            } else {
                continue;
            };
            if let Some(n) = number_after_colon(&buf[key_end..]) {
                *slot = Some(n);
            }
        }
    }
}

/// `  : 123,` → 123. `None` unless the number is complete (a terminator follows).
fn number_after_colon(s: &[u8]) -> Option<u64> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = s.iter().take_while(|b| ws(b)).count();
    if s.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    i += s[i..].iter().take_while(|b| ws(b)).count();
    let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || i + digits >= s.len() {
        return None;
    }
    std::str::from_utf8(&s[i..i + digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"id":"x","choices":[{"message":{"content":"say \"prompt_tokens\": 999 now"}}],"usage":{"prompt_tokens": 12,"completion_tokens":345,"total_tokens":357,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":7}}}"#;

    fn scan_in_pieces(text: &[u8], sizes: &[usize]) -> UsageScanner {
        let mut s = UsageScanner::default();
        let mut i = 0;
        let mut k = 0;
        while i < text.len() {
            let n = sizes[k % sizes.len()].min(text.len() - i);
            s.feed(&text[i..i + n]);
            i += n;
            k += 1;
        }
        s
    }

    #[test]
    fn reads_usage_from_a_whole_body_ignoring_strings_and_details() {
        let s = scan_in_pieces(BODY.as_bytes(), &[BODY.len()]);
        assert_eq!((s.prompt, s.completion), (Some(12), Some(345)));
    }

    #[test]
    fn reads_usage_split_at_every_position() {
        for cut in 1..BODY.len() {
            let s = scan_in_pieces(BODY.as_bytes(), &[cut, BODY.len()]);
            assert_eq!(
                (s.prompt, s.completion),
                (Some(12), Some(345)),
                "cut at {cut}"
            );
        }
        for size in 1..80 {
            let s = scan_in_pieces(BODY.as_bytes(), &[size]);
            assert_eq!(
                (s.prompt, s.completion),
                (Some(12), Some(345)),
                "pieces of {size}"
            );
        }
    }

    #[test]
    fn the_last_value_of_a_stream_wins() {
        let sse = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n\
                   data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}\n\n\
                   data: [DONE]\n\n";
        let s = scan_in_pieces(sse.as_bytes(), &[7, 13]);
        assert_eq!((s.prompt, s.completion), (Some(5), Some(9)));
    }

    #[test]
    fn no_usage_means_none() {
        let s = scan_in_pieces(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            &[5],
        );
        assert_eq!((s.prompt, s.completion), (None, None));
        // A number cut off at the very end of the response is not trusted.
        let s = scan_in_pieces(b"{\"prompt_tokens\":12", &[100]);
        assert_eq!(s.prompt, None);
    }
}
