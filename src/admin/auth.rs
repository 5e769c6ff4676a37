//! The admin API's bearer token: where it comes from, how it is made and
//! kept (mode 0600 in the data directory), and how it is checked (in
//! constant time).
//!
//! Precedence, on both sides: `--admin-token-file FILE`, else the
//! environment variable `MAASCTL_ADMIN_TOKEN`, else `admin.token` in the
//! data directory — which a server generates when it is missing, so a
//! console or `rule explain` on the same machine finds it without flags.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Environment variable holding the token itself (not a file name).
pub const TOKEN_ENV: &str = "MAASCTL_ADMIN_TOKEN";
/// The token file in the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// The flag every admin-API user takes (server, console, `--server`,
/// `rule explain`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenArgs {
    /// File holding the admin API token (a server's bootstrap token, or the
    /// token a client sends). Default: $MAASCTL_ADMIN_TOKEN, else
    /// admin.token in the data directory.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub admin_token_file: Option<PathBuf>,
}

/// Where a token came from: what the startup line prints instead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Read from this file.
    File(PathBuf),
    /// Generated into this file just now.
    Generated(PathBuf),
    /// From `$MAASCTL_ADMIN_TOKEN`.
    Env,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(p) => write!(f, "token in {}", p.display()),
            TokenSource::Generated(p) => write!(f, "new token in {}", p.display()),
            TokenSource::Env => write!(f, "token from ${TOKEN_ENV}"),
        }
    }
}

/// A bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken {
    token: String,
    pub source: TokenSource,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminToken(<{}>)", self.source)
    }
}

impl AdminToken {
    /// A token given directly (tests, embedding).
    pub fn new(token: impl Into<String>, source: TokenSource) -> Self {
        Self {
            token: token.into(),
            source,
        }
    }

    /// The value, for the `Authorization` header a client sends.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// Whether `given` is this token. Both sides are hashed first, so the
    /// comparison takes the same time whatever the length or the first
    /// differing byte.
    pub fn matches(&self, given: &str) -> bool {
        let a = Sha256::digest(self.token.as_bytes());
        let b = Sha256::digest(given.as_bytes());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl TokenArgs {
    /// The token a server accepts; generates `<data_dir>/admin.token` when
    /// no token was given and the file does not exist yet.
    pub fn for_server(&self, data_dir: &Path) -> Result<AdminToken, String> {
        if let Some(t) = self.given()? {
            return Ok(t);
        }
        let path = data_dir.join(TOKEN_FILE);
        match read_token_file(&path) {
            Ok(t) => Ok(t),
            Err(_) if !path.exists() => generate_into(&path),
            Err(e) => Err(e),
        }
    }

    /// The token a client sends.
    pub fn for_client(&self, data_dir: &Path) -> Result<AdminToken, String> {
        if let Some(t) = self.given()? {
            return Ok(t);
        }
        let path = data_dir.join(TOKEN_FILE);
        if !path.exists() {
            return Err(format!(
                "no admin token: pass --admin-token-file FILE or set {TOKEN_ENV} (the server prints where its token file is; {} does not exist)",
                path.display()
            ));
        }
        read_token_file(&path)
    }

    /// The flag, else the environment.
    fn given(&self) -> Result<Option<AdminToken>, String> {
        if let Some(p) = &self.admin_token_file {
            return read_token_file(p).map(Some);
        }
        match std::env::var(TOKEN_ENV) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(AdminToken::new(v.trim(), TokenSource::Env))),
            Ok(_) => Err(format!("{TOKEN_ENV} is set but empty")),
            Err(_) => Ok(None),
        }
    }
}

/// The token in `path` (surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> Result<AdminToken, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--admin-token-file: cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "--admin-token-file: {} is empty; put the admin token in it",
            path.display()
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "--admin-token-file: {} holds more than one word; it must hold only the token",
            path.display()
        ));
    }
    Ok(AdminToken::new(
        token,
        TokenSource::File(path.to_path_buf()),
    ))
}

/// A fresh random token: 32 bytes, base64url.
fn generate_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    format!(
        "maasadm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// Write a new token to `path`, readable by its owner only. Written to a
/// private temporary file and linked into place, so a concurrent starter
/// never reads half a token: if another process got there first, its token
/// is used.
fn generate_into(path: &Path) -> Result<AdminToken, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    let token = generate_token();
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()
    };
    let linked = write().and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(AdminToken::new(
            token,
            TokenSource::Generated(path.to_path_buf()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token_file(path),
        Err(e) => Err(format!(
            "cannot write the admin token to {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn compares_whole_tokens_only() {
        let t = AdminToken::new("maasadm_abc", TokenSource::Env);
        assert!(t.matches("maasadm_abc"));
        assert!(!t.matches("maasadm_ab"));
        assert!(!t.matches("maasadm_abcd"));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("abc"));
    }

    #[test]
    fn server_generates_a_private_token_once_and_clients_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let args = TokenArgs::default();
        if std::env::var_os(TOKEN_ENV).is_some() {
            return; // the environment decides; covered by the integration tests
        }
        let made = args.for_server(dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(made.source, TokenSource::Generated(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = args.for_server(dir.path()).unwrap();
        assert_eq!(again.expose(), made.expose(), "reused, not regenerated");
        assert_eq!(args.for_client(dir.path()).unwrap().expose(), made.expose());
        let other = tempfile::tempdir().unwrap();
        let err = args.for_client(other.path()).unwrap_err();
        assert!(err.contains("--admin-token-file"), "{err}");
    }

    #[test]
    fn token_files_must_hold_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "  \n").unwrap();
        assert!(read_token_file(&p).unwrap_err().contains("is empty"));
        std::fs::write(&p, "a b").unwrap();
        assert!(read_token_file(&p).unwrap_err().contains("only the token"));
        std::fs::write(&p, "tok\n").unwrap();
        assert_eq!(read_token_file(&p).unwrap().expose(), "tok");
        let missing = read_token_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
