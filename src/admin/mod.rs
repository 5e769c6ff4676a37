//! The admin API server (`docs/admin-api.md`, `docs/openapi.json`): a JSON API on its own listener beside a
//! gateway (`maasctl serve`, and the console's embedded gateway), guarded
//! by a bearer token. It is what the remote half of the console's
//! [`Client`](crate::client::Client) seam talks to: a console started with
//! `--connect URL` reads the registry, reports, counters (a server-sent
//! event stream) and logs through it and sends its changes to it, and
//! `maasctl rule explain` asks the gateway's limiter through it. The
//! clients are in [`crate::client`]; this folder is the server and the
//! shapes it answers with.
//!
//! - [`server`]: listener and connections; [`routes`]: the route table
//!   (as data, with who may call each route), authentication (the
//!   bootstrap token, named tokens with a role), the registry's handlers;
//!   [`operations`]: the handlers of audit, history, rollback, manifests and
//!   tokens; [`state`]: the handlers' state and caller; [`http`]: bodies,
//!   JSON answers, queries; [`decode`]: request bodies, read strictly;
//!   [`error`]: the one error shape; [`secrets`]: what secrets may cross
//!   the wire (masked upstream keys, no key hashes); [`explain`]: the `rule
//!   explain` report; [`wire`]: the other bodies.
//!
//! The OpenAPI 3.1 document of every route is `docs/openapi.json`; a test
//! checks it against [`routes::ROUTES`] and the real error answers.
//!
//! Routes and examples: docs/admin-api.md.

pub mod auth;
pub mod decode;
pub mod error;
pub mod explain;
pub mod http;
pub mod operations;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod sse;
pub mod state;
pub mod wire;

use std::net::SocketAddr;
use std::str::FromStr;

pub use auth::{AdminToken, TokenArgs, TokenSource};
pub use server::{AdminHandle, AdminListener};

/// Every route is under this prefix.
pub const PREFIX: &str = "/admin/v1";

/// The request header naming what a change comes through (`cli`, `apply`,
/// `console`), for the audit trail; without it, `admin-api`.
pub const CHANNEL_HEADER: &str = "x-maasctl-channel";

/// `maasctl serve`'s default admin address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// `--admin-listen ADDR|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminListen(pub Option<SocketAddr>);

impl FromStr for AdminListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        t.parse().map(|a| Self(Some(a))).map_err(|_| {
            format!("'{s}' is not an address; use IP:PORT (e.g. 127.0.0.1:9090) or off")
        })
    }
}

/// Bind the admin API a gateway is about to get, with its token (given, or
/// `admin.token` in `data_dir`, generated if missing); `None` when it is
/// `off`. Bound before the gateway starts so its report carries the URL.
pub fn prepare(
    listen: AdminListen,
    tokens: &TokenArgs,
    data_dir: &std::path::Path,
) -> Result<Option<AdminListener>, String> {
    let Some(addr) = listen.0 else {
        return Ok(None);
    };
    let token = tokens.for_server(data_dir)?;
    let listener = AdminListener::bind(addr, token)?;
    if let Some(w) = warn_if_exposed(listener.local_addr()) {
        tracing::warn!("{w}");
    }
    Ok(Some(listener))
}

/// Warn when the admin API is reachable from other machines: it speaks
/// plain HTTP, so the token crosses the network in clear.
pub fn warn_if_exposed(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "the admin API listens on {addr}, beyond this machine, over plain HTTP: put it behind TLS (an SSH tunnel or a reverse proxy) or keep it on 127.0.0.1"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listen_is_an_address_or_off() {
        assert_eq!("off".parse::<AdminListen>().unwrap(), AdminListen(None));
        assert_eq!(
            "127.0.0.1:9090".parse::<AdminListen>().unwrap(),
            AdminListen(Some("127.0.0.1:9090".parse().unwrap()))
        );
        assert!(
            "9090"
                .parse::<AdminListen>()
                .unwrap_err()
                .contains("or off")
        );
        assert!(warn_if_exposed("0.0.0.0:1".parse().unwrap()).is_some());
        assert!(warn_if_exposed("127.0.0.1:1".parse().unwrap()).is_none());
    }
}
