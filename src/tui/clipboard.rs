//! Copy to the operator's own clipboard, wherever the console runs (over
//! SSH, inside tmux): OSC 52, `ESC ] 52 ; c ; <base64> BEL`, which the
//! operator's terminal turns into a clipboard write (`docs/console.md`,
//! "Copy over SSH").
//!
//! Inside tmux (`$TMUX` set) both are sent: the plain sequence, which tmux
//! takes into a paste buffer and passes on to the outer terminal when
//! `set -g set-clipboard on`, and the same sequence in tmux's DCS
//! passthrough (`ESC P tmux; … ESC \`, every `ESC` doubled), which reaches
//! the outer terminal when `set -g allow-passthrough on`. Either setting is
//! enough; the defaults of tmux 3.3+ (`set-clipboard external`,
//! `allow-passthrough off`) drop both, which the console cannot detect.

use std::io::Write;

use base64::Engine;

/// The OSC 52 sequence that sets the clipboard to `text`.
pub fn osc52(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{b64}\x07")
}

/// `seq` wrapped in tmux's DCS passthrough.
pub fn tmux_passthrough(seq: &str) -> String {
    format!("\x1bPtmux;{}\x1b\\", seq.replace('\x1b', "\x1b\x1b"))
}

/// What is written for `text`: inside tmux, the plain sequence then the
/// passthrough one; elsewhere the plain one.
pub fn sequence(text: &str, in_tmux: bool) -> String {
    let seq = osc52(text);
    if in_tmux {
        let wrapped = tmux_passthrough(&seq);
        seq + &wrapped
    } else {
        seq
    }
}

/// The placeholder for the caller's key in copied snippets: the console
/// never holds a key's secret after its popup closed.
pub const KEY_PLACEHOLDER: &str = "$MAASCTL_KEY";

/// A ready-to-run curl call of `model` at `base` (its access path, ending
/// in `/v1`), the key left to the shell's `$MAASCTL_KEY`.
pub fn curl_snippet(base: &str, model: &str) -> String {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string()
    // In single quotes for the shell: a quote closes, escapes, reopens.
    .replace('\'', "'\\''");
    format!(
        "curl -s {base}/chat/completions -H \"Authorization: Bearer {KEY_PLACEHOLDER}\" -H 'content-type: application/json' -d '{body}'"
    )
}

/// Write `text`'s sequence to the terminal (stdout) between two frames.
pub fn emit(text: &str) -> std::io::Result<()> {
    let in_tmux = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let mut out = std::io::stdout().lock();
    out.write_all(sequence(text, in_tmux).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_sequence_is_osc_52_with_base64() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(sequence("hi", false), "\x1b]52;c;aGk=\x07");
    }

    #[test]
    fn the_curl_snippet_leaves_the_key_to_the_shell() {
        assert_eq!(
            curl_snippet("http://gw:8080/v1", "it's"),
            r#"curl -s http://gw:8080/v1/chat/completions -H "Authorization: Bearer $MAASCTL_KEY" -H 'content-type: application/json' -d '{"messages":[{"content":"hello","role":"user"}],"model":"it'\''s"}'"#
        );
    }

    #[test]
    fn inside_tmux_the_passthrough_doubles_every_escape() {
        assert_eq!(
            sequence("hi", true),
            "\x1b]52;c;aGk=\x07\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\"
        );
    }
}
