//! In-memory fakes of the four upstream traits, the [`Connector`](crate::runbook::Connector)
//! that hands them out and a [`SecretStore`](crate::runbook::SecretStore): for tests that
//! need no PostgreSQL, no socket and no cluster (`cargo test --lib`), and, behind the
//! `fakes` feature, for the integration suites.
//!
//! As cert-manager's fakes: each records its calls in a [`CallLog`] (no secret values, only
//! the operation and what it names) and answers from a [`Script`] of failures queued per
//! operation before it answers as the real service would (`reference/genesys-apis.md`): the
//! tenant create answers an `xapikey` and writes the `nex_apikeys` row the fake database then
//! returns; a client GET leaves out its secret; a token grant checks the client secret and
//! the tenant user's password; a bearer token Nexus never saw, or that GWS Auth forgot, is
//! refused with a 401.

mod connector;
mod environment;
mod gws_auth;
mod nexus;
mod nexus_db;
pub mod samples;
mod secrets;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub use connector::FakeConnector;
pub use environment::FakeEnvironment;
pub use gws_auth::FakeGwsAuth;
pub use nexus::FakeNexus;
pub use nexus_db::{ApiKeyRow, FakeNexusDb};
pub use secrets::FakeSecretStore;

use crate::upstream::{ErrorKind, System, UpstreamError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One call a fake received: the system, the operation (the trait method's name) and what
/// it names (a client id, a contact center; never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub system: System,
    pub operation: &'static str,
    pub target: String,
}

/// The operations that write upstream: what a test counts to prove a pass wrote nothing,
/// or exactly once.
pub const WRITES: &[&str] = &[
    "create_client",
    "update_client",
    "delete_client",
    "upsert_setting",
    "register_ucs",
    "delete_ucs",
    "create_tenant",
    "update_tenant",
    "delete_tenant",
    "insert_gapi",
    "update_gapi_secret",
    "delete_gapis",
];

/// The calls of one or more fakes, in the order they came. Cheap to clone; clones share
/// the log, so one log can order the calls of every system.
#[derive(Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<Call>>>);

impl CallLog {
    fn record(&self, system: System, operation: &'static str, target: impl Into<String>) {
        lock(&self.0).push(Call {
            system,
            operation,
            target: target.into(),
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.0).clone()
    }

    /// The operations, in order.
    pub fn operations(&self) -> Vec<&'static str> {
        lock(&self.0).iter().map(|c| c.operation).collect()
    }

    /// How many calls of `operation` came.
    pub fn count(&self, operation: &str) -> usize {
        lock(&self.0)
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// The writes (see [`WRITES`]), in order.
    pub fn writes(&self) -> Vec<&'static str> {
        self.operations()
            .into_iter()
            .filter(|o| WRITES.contains(o))
            .collect()
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }
}

/// What a scripted answer does to the call it answers.
#[derive(Clone, Debug)]
enum Scripted {
    /// The call fails and changes nothing.
    Fail(UpstreamError),
    /// The call takes effect, but its answer is lost (a time-out after the write).
    Lose(UpstreamError),
}

/// Failures queued per operation, each answering one call in turn, and failures that answer
/// every call of an operation. An operation with none answers as the real service does.
#[derive(Default)]
pub struct Script {
    queued: Mutex<HashMap<&'static str, VecDeque<Scripted>>>,
    always: Mutex<HashMap<&'static str, UpstreamError>>,
}

/// An error of the kind a real client maps an answer to (status included where there is one).
pub fn error(system: System, operation: &'static str, kind: ErrorKind) -> UpstreamError {
    let status = match kind {
        ErrorKind::Transient => Some(503),
        ErrorKind::Unauthorized => Some(401),
        ErrorKind::NotFound => Some(404),
        ErrorKind::Conflict => Some(409),
        ErrorKind::Rejected => Some(400),
        ErrorKind::InvalidAnswer | ErrorKind::Fenced => None,
    };
    let e = UpstreamError::new(system, operation, kind, format!("scripted {kind:?}"));
    match status {
        Some(s) => e.with_status(s),
        None => e,
    }
}

impl Script {
    /// The next call of `operation` fails with `error` and changes nothing.
    pub fn fail_next(&self, operation: &'static str, error: UpstreamError) {
        lock(&self.queued)
            .entry(operation)
            .or_default()
            .push_back(Scripted::Fail(error));
    }

    /// The next call of `operation` takes effect, then answers `error`.
    pub fn lose_next(&self, operation: &'static str, error: UpstreamError) {
        lock(&self.queued)
            .entry(operation)
            .or_default()
            .push_back(Scripted::Lose(error));
    }

    /// Every call of `operation` fails with `error` (until [`Self::heal`]).
    pub fn fail_always(&self, operation: &'static str, error: UpstreamError) {
        lock(&self.always).insert(operation, error);
    }

    /// Forgets every scripted failure.
    pub fn heal(&self) {
        lock(&self.queued).clear();
        lock(&self.always).clear();
    }

    /// What to answer before the call runs: `Err` to fail at once; `Ok(Some(e))` to run the
    /// call and then answer `e`.
    fn take(&self, operation: &'static str) -> Result<Option<UpstreamError>, UpstreamError> {
        if let Some(e) = lock(&self.always).get(operation) {
            return Err(e.clone());
        }
        match lock(&self.queued)
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
        {
            Some(Scripted::Fail(e)) => Err(e),
            Some(Scripted::Lose(e)) => Ok(Some(e)),
            None => Ok(None),
        }
    }
}

/// What every fake has: the log its calls go to, the script that answers them first, and the
/// system it stands for.
trait Faked {
    fn books(&self) -> (&CallLog, &Script, System);

    /// Runs one faked call: logs it, answers from the script, else runs `effect`; a lost
    /// answer runs `effect` and answers its error instead.
    fn run<T>(
        &self,
        operation: &'static str,
        target: &str,
        effect: impl FnOnce() -> crate::upstream::error::Result<T>,
    ) -> crate::upstream::error::Result<T> {
        let (log, script, system) = self.books();
        log.record(system, operation, target);
        match script.take(operation)? {
            None => effect(),
            Some(lost) => {
                let _ = effect();
                Err(lost)
            }
        }
    }
}

/// The error a fake answers for a refused credential.
fn unauthorized(system: System, operation: &'static str, why: &str) -> UpstreamError {
    UpstreamError::new(system, operation, ErrorKind::Unauthorized, why).with_status(401)
}

#[cfg(test)]
mod tests;
