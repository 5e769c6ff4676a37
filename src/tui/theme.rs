//! Styles. The named colours only (green, yellow, red, cyan), plus one
//! mid grey for dim text where the terminal has 256 colours; with
//! `NO_COLOR` set no colour at all: meaning is then carried by
//! bold/dim/reverse, and always by the words themselves.
//!
//! Two palettes (`docs/console.md`, "Palette"): [`Palette::Full`] for
//! terminals that say they have 256 colours or more (`TERM` with
//! `256color`/`direct`, or `COLORTERM=truecolor|24bit`), and
//! [`Palette::Basic`] for the rest (`TERM=xterm`, `screen`, `linux`,
//! `vt100`). In the basic palette dim text is the terminal's own colour
//! made faint (no dark grey, unreadable on black), and every colour leaves
//! as a basic SGR code (`31`, `92`…): [`Ansi16`] rewrites what crossterm
//! writes as `38;5;N`.

use std::io::{self, Write};

use ratatui::style::{Color, Modifier, Style};

use crate::domain::{EndpointState, GatewayStatus};

/// How many colours the terminal is known to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// 256 colours or more.
    Full,
    /// The 16 basic ANSI colours only.
    Basic,
}

impl Palette {
    /// From `TERM` and `COLORTERM`.
    pub fn detect(term: Option<&str>, colorterm: Option<&str>) -> Self {
        let colorterm = colorterm.unwrap_or("").to_ascii_lowercase();
        let term = term.unwrap_or("").to_ascii_lowercase();
        if matches!(colorterm.as_str(), "truecolor" | "24bit")
            || ["256color", "direct", "truecolor"]
                .iter()
                .any(|t| term.contains(t))
        {
            Palette::Full
        } else {
            Palette::Basic
        }
    }

    pub fn from_env() -> Self {
        let var = |n| std::env::var(n).ok();
        Self::detect(var("TERM").as_deref(), var("COLORTERM").as_deref())
    }
}

/// The grey of dim text and borders in the full palette: xterm 244
/// (#808080), readable on black and on white.
pub const MID_GREY: Color = Color::Indexed(244);

/// The console's palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
    palette: Palette,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to anything non-empty (no-color.org),
    /// in the palette `TERM`/`COLORTERM` allow.
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            palette: Palette::from_env(),
        }
    }

    /// Colours, 256-colour palette.
    pub fn colored() -> Self {
        Self {
            color: true,
            palette: Palette::Full,
        }
    }

    /// Colours, the 16 basic ones only.
    pub fn basic() -> Self {
        Self {
            color: true,
            palette: Palette::Basic,
        }
    }

    pub fn monochrome() -> Self {
        Self {
            color: false,
            palette: Palette::Basic,
        }
    }

    pub fn palette(&self) -> Palette {
        self.palette
    }

    fn fg(&self, c: Color, fallback: Modifier) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new().add_modifier(fallback)
        }
    }

    /// Faint text: mid grey with 256 colours, else the terminal's own
    /// colour made faint (readable on dark and light backgrounds alike).
    fn faint(&self) -> Style {
        if self.color && self.palette == Palette::Full {
            Style::new().fg(MID_GREY)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn base(&self) -> Style {
        Style::new()
    }
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn header(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        self.faint()
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub fn good(&self) -> Style {
        self.fg(Color::Green, Modifier::empty())
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow, Modifier::BOLD)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn error_text(&self) -> Style {
        self.fg(Color::Red, Modifier::BOLD)
    }
    pub fn focus(&self) -> Style {
        self.fg(Color::Cyan, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        if self.color && self.palette == Palette::Full {
            Style::new().fg(MID_GREY)
        } else {
            Style::new()
        }
    }
    pub fn border_focus(&self) -> Style {
        self.fg(Color::Cyan, Modifier::BOLD)
    }

    /// `enabled` / `disabled`.
    pub fn enabled(&self, enabled: bool) -> Style {
        if enabled { self.good() } else { self.dim() }
    }

    /// The gateway status column: green serving, yellow degraded/pending/
    /// unknown, red down, dim offline/off.
    pub fn gateway(&self, s: GatewayStatus) -> Style {
        match s {
            GatewayStatus::Serving => self.good(),
            GatewayStatus::Degraded | GatewayStatus::Pending | GatewayStatus::Unknown => {
                self.warn()
            }
            GatewayStatus::Down => self.bad(),
            GatewayStatus::Offline | GatewayStatus::Off => self.dim(),
        }
    }

    pub fn endpoint(&self, s: EndpointState) -> Style {
        match s {
            EndpointState::Healthy => self.good(),
            EndpointState::Unknown | EndpointState::HalfOpen | EndpointState::Cooling => {
                self.warn()
            }
            EndpointState::Down => self.bad(),
            EndpointState::Draining | EndpointState::Drained | EndpointState::Disabled => {
                self.dim()
            }
        }
    }

    /// A throttle/error rate: red when non-zero.
    pub fn alarm(&self, nonzero: bool) -> Style {
        if nonzero { self.bad() } else { self.base() }
    }
}

/// A writer that sends colours as the 16 basic SGR codes: crossterm writes
/// every colour as `38;5;N` / `48;5;N` (and RGB as `38;2;R;G;B`), which a
/// 16-colour terminal may not understand. With `basic` on, `N < 16`
/// becomes `30+N`/`90+N-8` (`40+N`/`100+N-8` for the background) and
/// anything richer the terminal's default (`39`/`49`); other bytes pass
/// unchanged. A sequence split across writes is held until it is whole.
#[derive(Debug)]
pub struct Ansi16<W: Write> {
    inner: W,
    basic: bool,
    /// An escape sequence not yet complete.
    held: Vec<u8>,
}

impl<W: Write> Ansi16<W> {
    pub fn new(inner: W, basic: bool) -> Self {
        Self {
            inner,
            basic,
            held: Vec::new(),
        }
    }

    /// Rewrite `ESC [ params m`'s colour parameters.
    fn sgr(params: &str) -> String {
        let p: Vec<&str> = params.split(';').collect();
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let base = match p[i] {
                "38" => Some(30),
                "48" => Some(40),
                _ => None,
            };
            match (base, p.get(i + 1).copied()) {
                (Some(b), Some("5")) => {
                    let n: u16 = p.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(255);
                    out.push(match n {
                        0..=7 => (b + n).to_string(),
                        8..=15 => (b + 60 + n - 8).to_string(),
                        _ => (b + 9).to_string(),
                    });
                    i += 3;
                }
                (Some(b), Some("2")) => {
                    out.push((b + 9).to_string());
                    i += 5;
                }
                _ => {
                    out.push(p[i].to_string());
                    i += 1;
                }
            }
        }
        out.join(";")
    }

    /// Pass `buf` on, rewriting complete SGR sequences; hold an incomplete
    /// one.
    fn filter(&mut self, buf: &[u8]) -> io::Result<()> {
        self.held.extend_from_slice(buf);
        let data = std::mem::take(&mut self.held);
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i] != 0x1b {
                let next = data[i..]
                    .iter()
                    .position(|b| *b == 0x1b)
                    .map_or(data.len(), |p| i + p);
                out.extend_from_slice(&data[i..next]);
                i = next;
                continue;
            }
            if i + 1 >= data.len() {
                self.held = data[i..].to_vec();
                break;
            }
            if data[i + 1] != b'[' {
                out.push(data[i]);
                i += 1;
                continue;
            }
            // CSI: parameters up to a final byte (0x40..=0x7e).
            match data[i + 2..].iter().position(|b| (0x40..=0x7e).contains(b)) {
                None => {
                    self.held = data[i..].to_vec();
                    break;
                }
                Some(p) => {
                    let end = i + 2 + p;
                    if data[end] == b'm' {
                        let params = String::from_utf8_lossy(&data[i + 2..end]);
                        out.extend_from_slice(format!("\x1b[{}m", Self::sgr(&params)).as_bytes());
                    } else {
                        out.extend_from_slice(&data[i..=end]);
                    }
                    i = end + 1;
                }
            }
        }
        self.inner.write_all(&out)
    }
}

impl<W: Write> Write for Ansi16<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.basic {
            self.filter(buf)?;
        } else {
            self.inner.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(basic: bool, chunks: &[&[u8]]) -> String {
        let mut w = Ansi16::new(Vec::new(), basic);
        for c in chunks {
            w.write_all(c).unwrap();
        }
        String::from_utf8(w.inner).unwrap()
    }

    #[test]
    fn the_basic_writer_sends_sixteen_colour_codes() {
        let s =
            b"a\x1b[38;5;2mok\x1b[38;5;9;48;5;0mx\x1b[39m\x1b[38;5;244m\x1b[38;2;1;2;3;1m\x1b[2J";
        let want = "a\x1b[32mok\x1b[91;40mx\x1b[39m\x1b[39m\x1b[39;1m\x1b[2J";
        assert_eq!(through(true, &[s]), want);
        // Split anywhere, the same.
        for at in 1..s.len() {
            assert_eq!(through(true, &[&s[..at], &s[at..]]), want, "split at {at}");
        }
        assert_eq!(through(false, &[s]), String::from_utf8_lossy(s));
    }

    #[test]
    fn the_palette_follows_term_and_colorterm() {
        assert_eq!(Palette::detect(Some("xterm"), None), Palette::Basic);
        assert_eq!(Palette::detect(Some("screen"), None), Palette::Basic);
        assert_eq!(Palette::detect(None, None), Palette::Basic);
        assert_eq!(Palette::detect(Some("xterm-256color"), None), Palette::Full);
        assert_eq!(Palette::detect(Some("tmux-256color"), None), Palette::Full);
        assert_eq!(
            Palette::detect(Some("xterm"), Some("truecolor")),
            Palette::Full
        );
    }
}
