//! Bodies of the admin API that are not domain types (those travel as
//! they are: `Change`, `Applied`, `GatewayReport`, `StatsSnapshot`, …).

use serde::{Deserialize, Serialize};

use crate::domain::token::Role;
use crate::logging::LogLine;

/// `GET /admin/v1/info`: the process behind this admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// maasctl version of the server.
    pub version: String,
    /// Base URL of this admin API.
    pub admin: String,
    /// Who is asking: the token's name and role (a console attached with
    /// a `read` token shows itself read-only).
    pub caller: CallerInfo,
    pub gateway: ServedGateway,
}

/// The caller of `GET /admin/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerInfo {
    /// The token's name (`bootstrap` for the server's own token).
    pub name: String,
    pub role: Role,
}

/// The gateway the admin API belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedGateway {
    /// Its listen address as bound (`127.0.0.1:8080`).
    pub listen: String,
    /// Whether it serves HTTPS.
    pub tls: bool,
    /// The cluster it serves; `None`: every model.
    pub cluster: Option<String>,
    /// The registry revision it serves.
    pub applied_revision: u64,
}

/// `POST /admin/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub workspace: String,
    pub name: String,
}

/// One log line of `GET /admin/v1/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Line number since the server started (the `after` cursor).
    pub seq: u64,
    /// Unix ms.
    pub at_ms: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    pub target: String,
    pub message: String,
}

impl LogEntry {
    pub fn new(seq: u64, line: &LogLine) -> Self {
        Self {
            seq,
            at_ms: line.at_ms,
            level: line.level.to_string(),
            target: line.target.clone(),
            message: line.message.clone(),
        }
    }

    /// Back into a line for a local ring (the remote console's `:logs`).
    pub fn to_line(&self) -> LogLine {
        LogLine {
            at_ms: self.at_ms,
            level: self.level.parse().unwrap_or(tracing::Level::INFO),
            target: self.target.clone(),
            message: self.message.clone(),
        }
    }
}

/// `GET /admin/v1/logs?after=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub lines: Vec<LogEntry>,
    /// Number of the newest line logged (pass it as `after` next time).
    pub newest: u64,
}

/// `GET /admin/v1/revision`: the registry's current revision (cheap to poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u64,
}
