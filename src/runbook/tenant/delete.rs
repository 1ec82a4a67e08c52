//! Tenant cleanup for `deletionPolicy: Delete`: only what this tenant created.

use crate::api::DigitalChannelsTenant;
use crate::runbook::Runbook;
use crate::runbook::contact_center;
use crate::runbook::environment::ResolvedEnvironment;
use crate::runbook::report::StepError;
use crate::runbook::secrets::SecretStore;
use crate::secret::SecretString;
use crate::upstream::gws_auth::Grant;
use crate::upstream::{ErrorKind, NexusApi, NexusDb, UpstreamError};

/// What a tenant's own record (its status) says it created upstream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreatedRecord {
    /// The contact center it resolved and claimed.
    pub contact_center_id: Option<String>,
    /// A Nexus tenant's key or operation id is recorded: the tenant was provisioned.
    pub tenant: bool,
    /// A PlatformUCS registration is recorded.
    pub ucs: bool,
}

impl CreatedRecord {
    /// The record of a tenant's status.
    pub fn of(status: &crate::api::TenantStatus) -> Self {
        Self {
            contact_center_id: status.contact_center_id.clone(),
            tenant: status.api_key_digest.is_some() || status.operation_id.is_some(),
            ucs: status.ucs_url.is_some(),
        }
    }

    fn proven_contact_center(&self) -> Option<&str> {
        self.contact_center_id.as_deref().filter(|_| self.tenant)
    }
}

/// What a cleanup deleted, for its event: never more than it says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deleted {
    pub tenant: bool,
    pub ucs: bool,
    pub contact_center_id: Option<String>,
}

impl Deleted {
    /// The event's words.
    pub fn describe(&self) -> String {
        let cc = self.contact_center_id.as_deref().unwrap_or("unknown");
        match (self.tenant, self.ucs) {
            (true, true) => format!("Deleted the Nexus tenant {cc} and its PlatformUCS service."),
            (true, false) => format!("Deleted the Nexus tenant {cc}."),
            (false, true) => format!("Deleted the PlatformUCS service of {cc}."),
            (false, false) => {
                "Nothing to delete: this tenant never created a Nexus tenant.".to_string()
            }
        }
    }
}

/// Tenant cleanup for `deletionPolicy: Delete`: the Nexus tenant and PlatformUCS service
/// that this tenant's record proves it created, never another resource's by contact center
/// alone. Without a record (a pass ended between the create and its status write), a Nexus
/// tenant is taken for this one's only when it bears this tenant's name at the contact center
/// this tenant resolves to. "Already gone" counts as done.
pub async fn delete_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    record: &CreatedRecord,
) -> Result<Deleted, StepError> {
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let cc = match record.proven_contact_center() {
        Some(cc) => cc.to_string(),
        None => match contact_center_for_cleanup(runbook, tenant, env, record).await? {
            Some(cc) => cc,
            None => return Ok(Deleted::default()),
        },
    };
    let nexus = runbook
        .connector
        .nexus(&env.spec.nexus_url, env.ca())
        .map_err(to_step)?;
    let token = tenant_token(runbook, tenant, env, store, &cc).await?;
    let (tenant_ours, ucs_ours) = match record.proven_contact_center() {
        Some(_) => (true, record.ucs),
        None => {
            let db = runbook
                .connector
                .nexus_db(&env.database_url)
                .map_err(to_step)?;
            let ours = created_unrecorded(nexus.as_ref(), db.as_ref(), &token, &cc, tenant).await?;
            (ours, ours && tenant.spec.ucs.is_some())
        }
    };
    let mut deleted = Deleted {
        contact_center_id: Some(cc.clone()),
        ..Deleted::default()
    };
    if ucs_ours && let Some(ucs) = &tenant.spec.ucs {
        let key = match &ucs.api_key_secret {
            Some(r) => store
                .read(&r.name, &r.key)
                .await
                .map_err(|e| e.to_step_error("UCS API key"))?,
            None => token.clone(),
        };
        nexus.delete_ucs(&key, &cc).await.map_err(to_step)?;
        deleted.ucs = true;
    }
    if tenant_ours {
        nexus.delete_tenant(&token, &cc).await.map_err(to_step)?;
        deleted.tenant = true;
    }
    Ok(deleted)
}

/// The contact center of a tenant with no proof of a create: recorded, named by id, or
/// chosen by domain from GWS's list (read only). `None` when it resolves to none.
async fn contact_center_for_cleanup(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    record: &CreatedRecord,
) -> Result<Option<String>, StepError> {
    let spec = &tenant.spec;
    if let Some(cc) = record
        .contact_center_id
        .clone()
        .or(spec.contact_center_id.clone())
    {
        return Ok(Some(cc));
    }
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let api = runbook
        .connector
        .environment(env.spec.environment_url(), env.ca())
        .map_err(to_step)?;
    let centers = runbook
        .contact_centers
        .get(api.as_ref(), env.spec.environment_url(), &env.ops)
        .await
        .map_err(to_step)?;
    let chosen = contact_center::choose(&centers, None, spec.contact_center_domain.as_deref());
    Ok(chosen.ok().map(|c| c.id.clone()))
}

/// Whether the Nexus tenant at `cc` is the one this tenant's unrecorded create made: it
/// bears this tenant's name. Where the (assumed) GET is refused or unknown, Nexus's own
/// `nex_apikeys` rows of that name and contact center decide.
async fn created_unrecorded(
    nexus: &dyn NexusApi,
    db: &dyn NexusDb,
    token: &SecretString,
    cc: &str,
    tenant: &DigitalChannelsTenant,
) -> Result<bool, StepError> {
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let name = &tenant.spec.tenant_name;
    match nexus.get_tenant(token, cc).await {
        Ok(Some(found)) if found.name.is_some() => {
            return Ok(found.name.is_some_and(|n| n.eq_ignore_ascii_case(name)));
        }
        Ok(_) => {}
        Err(e) if matches!(e.kind, ErrorKind::Rejected | ErrorKind::NotFound) => {}
        Err(e) => return Err(to_step(e)),
    }
    let rows = db.find_api_keys(cc, name).await.map_err(to_step)?;
    Ok(!rows.is_empty())
}

/// A tenant token for `cc`, as the provisioning pass gets it.
async fn tenant_token(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    cc: &str,
) -> Result<SecretString, StepError> {
    let secret = &tenant.spec.credentials_secret;
    let user = store
        .read_credentials(&secret.name, &secret.username_key, &secret.password_key)
        .await
        .map_err(|e| e.to_step_error("tenant user"))?;
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(to_step)?;
    let grant = Grant::Password {
        username: format!("{cc}\\{}", user.username),
        password: user.password.clone(),
    };
    let (token, _) = runbook
        .tokens
        .get(
            auth.as_ref(),
            &env.spec.auth_url,
            &env.spec.client.id,
            &env.client_secret,
            &grant,
        )
        .await
        .map_err(to_step)?;
    Ok(token)
}
