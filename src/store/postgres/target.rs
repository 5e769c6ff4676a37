//! Where a PostgreSQL store lives: a `postgres://` (or `postgresql://`) URL,
//! parsed once, and shown everywhere without its password.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::store::StoreError;

/// How long one connection attempt may take unless the URL says
/// (`connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where libpq looks when a URL names no host (Debian's socket directory).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// A parsed PostgreSQL store URL. `Debug` and `Display` show it without the
/// password, so it can go into errors, logs and banners.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    config: tokio_postgres::Config,
    shown: String,
}

impl Target {
    /// Parse `postgres://USER[:PASSWORD]@HOST[:PORT][,HOST…]/DB[?PARAM=…]`
    /// (libpq's URL syntax and parameters). Refuses `sslmode=require`: this
    /// build connects without TLS, and silently dropping TLS that was asked
    /// for would be worse than refusing.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: String| {
            StoreError::Backend(format!(
                "store URL '{}' is not a valid PostgreSQL URL: {why}",
                mask_url(url)
            ))
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "it must start with postgres:// or postgresql://".into(),
            ));
        }
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| invalid(chain(&e)))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(invalid(
                "sslmode=require: this maasctl connects to PostgreSQL without TLS; use sslmode=disable on a trusted network or a TLS tunnel"
                    .into(),
            ));
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            // libpq's default: the local server's socket directory, else TCP
            // on localhost.
            if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
                config.host_path(DEFAULT_SOCKET_DIR);
            } else {
                config.host("localhost");
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("maasctl");
        }
        let shown = show(&config);
        Ok(Self { config, shown })
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// `postgres://USER@HOST:PORT/DB`, never with the password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.shown)
    }
}

/// The canonical, password-free form of `config`.
fn show(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port(i)),
                a => format!("{a}:{}", port(i)),
            })
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", port(i)),
                Host::Tcp(h) => format!("{h}:{}", port(i)),
                #[cfg(unix)]
                Host::Unix(p) => format!("{}:{}", p.display(), port(i)),
            })
            .collect()
    };
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// `url` with any password replaced by `***`: the one in the credentials
/// (`user:PASSWORD@`, found the way libpq's URL parser finds it) and any
/// `password=` parameter. For echoing a URL the user gave in an error.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let mut out = format!("{scheme}://");
    let rest = match rest.split_once('@') {
        Some((creds, after)) => {
            match creds.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&format!("{creds}@")),
            }
            after
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// An error with its causes, `outer: inner: …` (tokio-postgres puts the
/// useful part in the source).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_are() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db:5432/reg"),
            "postgres://app:***@db:5432/reg"
        );
        assert_eq!(
            mask_url("postgresql://app@db/reg?password=s3cret&sslmode=disable"),
            "postgresql://app@db/reg?password=***&sslmode=disable"
        );
        assert_eq!(mask_url("postgres://db/reg"), "postgres://db/reg");
        assert_eq!(mask_url("sqlite:x.db"), "sqlite:x.db");
    }

    #[test]
    fn shown_names_user_hosts_ports_and_database_only() {
        let t = Target::parse("postgresql://app:s3cret@db.example:6432,[::1]/reg?sslmode=disable")
            .unwrap();
        assert_eq!(t.shown(), "postgres://app@db.example:6432,[::1]:5432/reg");
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        let t = Target::parse("postgres://app@127.0.0.1/reg?password=s3cret").unwrap();
        assert_eq!(t.shown(), "postgres://app@127.0.0.1:5432/reg");
        assert_eq!(
            t.config().get_connect_timeout(),
            Some(&CONNECT_TIMEOUT),
            "a connect timeout is always set"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        let e = Target::parse("postgres://app:s3cret@db:notaport/reg")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("storage: store URL 'postgres://app:***@db:notaport/reg' is not a valid PostgreSQL URL: invalid connection string"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = Target::parse("postgres://app:s3cret@db/reg?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=require"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
