//! The terminal: raw mode and the alternate screen, restored on every way
//! out (normal exit, error, panic, hang-up), and frames drawn as
//! synchronized updates so tmux and SSH never show a half-drawn screen.

use std::io::{self, Stdout, Write};

use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::theme::{Ansi16, Palette};

pub type Term = Terminal<CrosstermBackend<Ansi16<Stdout>>>;

/// Put the terminal back as it was. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// Owns the terminal while the console runs; dropping it restores the
/// terminal, so an early return or an error cannot leave it in raw mode.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    /// Enter raw mode and the alternate screen, and make a panic restore
    /// the terminal *before* its message is printed (so the message is
    /// seen, on the normal screen).
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        // A 16-colour terminal gets its colours as basic SGR codes.
        let out = Ansi16::new(out, Palette::from_env() == Palette::Basic);
        let terminal = Terminal::new(CrosstermBackend::new(out)).inspect_err(|_| restore())?;
        Ok(Self { terminal })
    }

    /// Draw one frame as a synchronized update.
    pub fn draw(&mut self, f: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        execute!(self.terminal.backend_mut(), BeginSynchronizedUpdate)?;
        let r = self.terminal.draw(f).map(|_| ());
        execute!(self.terminal.backend_mut(), EndSynchronizedUpdate)?;
        self.terminal.backend_mut().flush()?;
        r
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            // The log file keeps it too, for whoever reads it later.
            tracing::error!("panic: {info}");
            previous(info);
        }));
    });
}
