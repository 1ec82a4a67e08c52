//! The runbook steps, shared by `provision`, `demo` and the controllers.
//!
//! Each step looks before it writes and reports what it did. A run stops at the first
//! step that fails: later steps depend on it.

pub mod connector;
pub mod contact_center;
mod database;
pub mod environment;
pub mod recorder;
pub mod report;
pub mod secrets;
pub mod tenant;
pub mod tokens;

pub use connector::{Connector, RealConnector};
pub use environment::{ResolvedEnvironment, run_environment};
pub use report::{Outcome, Reason, RunReport, Step, StepError, StepReport};
pub use secrets::{OutputRecord, SecretError, SecretStore};
pub use tenant::run_tenant;
pub use tokens::TokenCache;

/// What every run needs besides the resource: how to reach the external systems, and the
/// tokens already obtained.
#[derive(Clone)]
pub struct Runbook {
    pub connector: std::sync::Arc<dyn Connector>,
    pub tokens: TokenCache,
    /// Keys from a create answer not yet written to their output Secret.
    pub pending_keys: tenant::PendingKeys,
    /// GWS's contact-center lists, shared by the tenants of an environment.
    pub contact_centers: contact_center::ContactCenterLists,
    /// Where Nexus's tenant GET is known to answer.
    pub tenant_reads: tenant::TenantReads,
}

impl Runbook {
    pub fn new(connector: std::sync::Arc<dyn Connector>) -> Self {
        Self {
            connector,
            tokens: TokenCache::default(),
            pending_keys: tenant::PendingKeys::default(),
            contact_centers: contact_center::ContactCenterLists::default(),
            tenant_reads: tenant::TenantReads::default(),
        }
    }
}
