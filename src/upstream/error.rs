//! Errors from external systems: which system, which operation, what came back, and
//! whether trying again can help.

use std::fmt;
use std::time::Duration;

/// The external systems the operator talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum System {
    GwsAuth,
    Environment,
    Nexus,
    NexusDb,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::GwsAuth => "gws-auth",
            System::Environment => "environment",
            System::Nexus => "nexus",
            System::NexusDb => "nexus-db",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            System::GwsAuth => "GWS Auth",
            System::Environment => "GWS Environment API",
            System::Nexus => "Nexus",
            System::NexusDb => "Nexus database",
        };
        f.write_str(name)
    }
}

/// What kind of failure, which decides retrying and the condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connect error, timeout, 429 or 5xx: retried with backoff.
    Transient,
    /// 401 or 403: the credentials are wrong or lack rights.
    Unauthorized,
    /// 404 where the operation needed the object.
    NotFound,
    /// 409: the object exists already.
    Conflict,
    /// 400 or another 4xx: the request was refused as malformed.
    Rejected,
    /// A 2xx answer the client could not understand.
    InvalidAnswer,
    /// Never sent: this replica does not hold the leader lease (see [`crate::fence`]). Not
    /// an answer of the upstream, and not retried.
    Fenced,
}

/// A failed call to an external system. Never carries a secret: the detail comes from the
/// upstream's error message (cut short), never from our request.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{system} {operation} failed: {detail}")]
pub struct UpstreamError {
    pub system: System,
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub detail: String,
    /// How long the upstream asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl UpstreamError {
    pub fn new(
        system: System,
        operation: &'static str,
        kind: ErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        let mut detail = detail.into();
        if detail.len() > 300 {
            let mut cut = 300;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push_str("...");
        }
        Self {
            system,
            operation,
            kind,
            status: None,
            detail,
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// Kind for an HTTP status that is not a success.
    pub fn kind_for_status(status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            408 | 425 | 429 => ErrorKind::Transient,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        }
    }

    /// The label used for the `code` of `external_requests_total`.
    pub fn metric_code(&self) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None if self.kind == ErrorKind::Transient && self.detail.starts_with(TIMED_OUT) => {
                "timeout".to_string()
            }
            None if self.kind == ErrorKind::Transient => "unreachable".to_string(),
            None if self.kind == ErrorKind::Fenced => "fenced".to_string(),
            None => "error".to_string(),
        }
    }
}

/// How a transport timeout is worded, so the metrics can tell it from a refused connection.
pub const TIMED_OUT: &str = "timed out";

impl UpstreamError {
    /// A request the leader fence kept from leaving the process.
    pub fn fenced(system: System, operation: &'static str) -> Self {
        Self::new(
            system,
            operation,
            ErrorKind::Fenced,
            crate::fence::Fenced.to_string(),
        )
    }
}

pub type Result<T> = std::result::Result<T, UpstreamError>;
