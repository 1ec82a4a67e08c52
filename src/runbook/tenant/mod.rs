//! The tenant's steps: contact center, `chatservice-uri`, tenant token, PlatformUCS,
//! the Nexus tenant and its API key, the output Secret, and the manual DesignerEnv step.
//!
//! Which step needs which:
//!
//! ```text
//! Credentials ─ contact center ─┬─ chatservice-uri
//!                               └─ tenant token ─┬─ PlatformUCS
//!                                                └─ Nexus tenant ─ output Secret ─ DesignerEnv
//! ```
//!
//! Branches run side by side, so a pass takes as long as its longest chain, not the sum of its
//! calls; a failure stops only the steps that need the failed one.

mod delete;
mod pending;
mod provision;
mod steps;

pub use delete::{CreatedRecord, Deleted, Removal, delete_tenant};
pub use pending::PendingKeys;
pub use provision::{TenantReads, api_key_digest};

use super::Runbook;
use super::environment::ResolvedEnvironment;
use super::recorder::StepRecorder;
use super::report::{RunReport, StepError};
use super::secrets::SecretStore;
use crate::api::DigitalChannelsTenant;
use crate::secret::SecretString;
use crate::upstream::environment::ContactCenter;

/// Keys of the output Secret.
pub mod keys {
    pub const API_KEY: &str = "xapikey";
    pub const CONTACT_CENTER_ID: &str = "contactCenterId";
    pub const TENANT_NAME: &str = "tenantName";
    pub const NEXUS_URL: &str = "nexusUrl";
}

/// Bookkeeping kept as annotations on the output Secret, for `provision`, which has no
/// status. The controllers keep the same in the tenant's status, which wins. No secrets.
pub mod annotations {
    /// The UCS URL last registered.
    pub const UCS_URL: &str = "digitalchannels.dev/ucs-url";
    /// HMAC of the tenant user's credentials (see `credentials_fingerprint`), so a rotated
    /// password is noticed without keeping it anywhere.
    pub const CREDENTIALS_FINGERPRINT: &str = "digitalchannels.dev/credentials-fingerprint";
    /// Nexus's operationId of the provisioning.
    pub const OPERATION_ID: &str = "digitalchannels.dev/operation-id";
}

/// The setting that points GWS at Nexus.
pub const CHAT_SERVICE_SETTING: &str = "chatservice-uri";

/// What to set by hand in Agent Setup: no public API exists for it.
pub fn designer_env_instructions(tenant_name: &str) -> String {
    format!(
        "In Agent Setup, open the Environment tenant's Transactions; create the transaction DesignerEnv (type List, \
         Name and Alias DesignerEnv) if absent, and add baseurl=/nexus/v1, password= (empty) and url=/nexus/v3. \
         Then annotate the tenant {tenant_name} with {}=\"true\".",
        crate::api::DESIGNER_ENV_ANNOTATION
    )
}

/// What a tenant run found and did.
#[derive(Debug, Default)]
pub struct TenantRun {
    pub report: RunReport,
    pub contact_center_id: Option<String>,
    pub operation_id: Option<String>,
    pub output_secret_name: String,
    /// The API key, for showing it masked; it is written only to the output Secret.
    pub api_key: Option<SecretString>,
    /// [`api_key_digest`] of that key, for the tenant's status.
    pub api_key_digest: Option<String>,
    /// The PlatformUCS URL registered, for the tenant's status.
    pub ucs_url: Option<String>,
    /// The credentials' fingerprint the Nexus tenant was provisioned or updated with.
    pub credentials_fingerprint: Option<String>,
}

/// What the caller checks and records once the contact center is known and before the pass
/// writes anything upstream: the controller refuses a contact center another resource claims
/// and adds its finalizer there, so that a deletion during the first create cannot leak.
#[async_trait::async_trait]
pub trait ClaimBeforeWrites: Send + Sync {
    /// `centers` is the list the contact center was chosen from, to resolve the claims of
    /// others that name theirs by domain. An error stops the pass before any upstream write.
    async fn claim(
        &self,
        contact_center_id: &str,
        centers: &[ContactCenter],
    ) -> Result<(), StepError>;
}

/// No claim to make: `provision`, which has no other resources to respect.
pub struct NoClaim;

#[async_trait::async_trait]
impl ClaimBeforeWrites for NoClaim {
    async fn claim(&self, _: &str, _: &[ContactCenter]) -> Result<(), StepError> {
        Ok(())
    }
}

/// Runs the tenant's steps against an environment that is ready.
pub async fn run_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
) -> TenantRun {
    run_tenant_claiming(runbook, tenant, env, store, &NoClaim).await
}

/// [`run_tenant`], with `claim` made between the contact center's resolution and the first
/// upstream write.
pub async fn run_tenant_claiming(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    claim: &dyn ClaimBeforeWrites,
) -> TenantRun {
    let pass = steps::TenantPass::new(runbook, tenant, env, store, claim);
    let recorder = StepRecorder::default();
    let mut run = TenantRun {
        output_secret_name: pass.output_secret_name.clone(),
        ..TenantRun::default()
    };
    pass.run(&recorder, &mut run).await;
    run.report = recorder.into_report();
    run.report.policy = tenant.spec.management_policy;
    run
}

#[cfg(test)]
mod observe_tests;
#[cfg(test)]
mod tests;
