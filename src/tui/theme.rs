//! Styles. Sixteen colours only (they survive SSH, tmux and `TERM=screen`),
//! and with `NO_COLOR` set no colour at all: meaning is then carried by
//! bold/dim/reverse, and always by the words themselves.

use ratatui::style::{Color, Modifier, Style};

use crate::domain::{EndpointState, GatewayStatus};

/// The console's palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to anything non-empty (no-color.org).
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn colored() -> Self {
        Self { color: true }
    }

    pub fn monochrome() -> Self {
        Self { color: false }
    }

    fn fg(&self, c: Color, fallback: Modifier) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new().add_modifier(fallback)
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
        self.fg(Color::DarkGray, Modifier::DIM)
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
        self.fg(Color::DarkGray, Modifier::empty())
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
