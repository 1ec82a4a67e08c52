//! Tenant cleanup for `deletionPolicy: Delete`: only what this tenant created.

use crate::api::DigitalChannelsTenant;
use crate::runbook::Runbook;
use crate::runbook::contact_center;
use crate::runbook::environment::ResolvedEnvironment;
use crate::runbook::report::{Reason, StepError};
use crate::runbook::secrets::SecretStore;
use crate::secret::{Credentials, SecretString};
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

/// What a cleanup did to one upstream object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Removal {
    /// Not this tenant's to delete (or nothing recorded of it): not touched.
    #[default]
    Untouched,
    Deleted,
    /// Asked to delete, it was not there: done, but not said to be deleted.
    AlreadyGone,
}

impl Removal {
    fn of(existed: bool) -> Self {
        if existed {
            Removal::Deleted
        } else {
            Removal::AlreadyGone
        }
    }
}

/// What a cleanup deleted, for its event and log: never more than it says ("already gone"
/// counts as done, and is said so).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deleted {
    pub tenant: Removal,
    pub ucs: Removal,
    pub contact_center_id: Option<String>,
}

impl Deleted {
    /// The event's words: what was deleted, then what was already gone.
    pub fn describe(&self) -> String {
        let cc = self.contact_center_id.as_deref().unwrap_or("unknown");
        let said = |wanted: Removal| {
            let tenant = self.tenant == wanted;
            match (tenant, self.ucs == wanted) {
                (true, true) => Some(format!("the Nexus tenant {cc} and its PlatformUCS service")),
                (true, false) => Some(format!("the Nexus tenant {cc}")),
                (false, true) => Some(format!("the PlatformUCS service of {cc}")),
                (false, false) => None,
            }
        };
        let plural = self.tenant == self.ucs;
        match (said(Removal::Deleted), said(Removal::AlreadyGone)) {
            (Some(deleted), Some(gone)) => format!("Deleted {deleted}; {gone} was already gone."),
            (Some(deleted), None) => format!("Deleted {deleted}."),
            (None, Some(gone)) => format!(
                "Nothing deleted: {gone} {} already gone.",
                if plural { "were" } else { "was" }
            ),
            (None, None) => {
                "Nothing to delete: this tenant never created a Nexus tenant.".to_string()
            }
        }
    }
}

/// Tenant cleanup for `deletionPolicy: Delete`: the Nexus tenant and PlatformUCS service
/// that this tenant's record proves it created, never another resource's by contact center
/// alone. Without a record (a pass ended between the create and its status write), a Nexus
/// tenant is taken for this one's only when it bears this tenant's name at the contact center
/// this tenant resolves to. "Already gone" counts as done. An observed tenant deletes
/// nothing, whatever its record says.
pub async fn delete_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    record: &CreatedRecord,
) -> Result<Deleted, StepError> {
    if tenant.spec.management_policy.observes() {
        return Ok(Deleted::default());
    }
    let cc = match record.proven_contact_center() {
        Some(cc) => cc.to_string(),
        None => match contact_center_for_cleanup(runbook, tenant, env, record).await? {
            Some(cc) => cc,
            None => return Ok(Deleted::default()),
        },
    };
    let user = read_user(tenant, store).await?;
    let (token, reused) = tenant_token(runbook, env, &user, &cc).await?;
    let cleanup = Cleanup {
        runbook,
        tenant,
        env,
        store,
        record,
        cc: &cc,
    };
    match cleanup.delete(&token).await {
        // A cached token GWS Auth no longer knows (a restart, a revocation): once more with
        // a fresh one, as a provisioning pass does; else the deletion would wait for the
        // cached token's renewal, hours away.
        Err(e) if e.reason == Reason::Unauthorized && reused => {
            let grant = password_grant(&cc, &user);
            let spec = &env.spec;
            let tokens = &runbook.tokens;
            tokens.forget(
                &spec.auth_url,
                &spec.client.id,
                &env.client_secret,
                &grant,
                &token,
            );
            let (fresh, _) = tenant_token(runbook, env, &user, &cc).await?;
            cleanup.delete(&fresh).await
        }
        other => other,
    }
}

/// One cleanup attempt, with the tenant token it was given.
struct Cleanup<'a> {
    runbook: &'a Runbook,
    tenant: &'a DigitalChannelsTenant,
    env: &'a ResolvedEnvironment,
    store: &'a dyn SecretStore,
    record: &'a CreatedRecord,
    cc: &'a str,
}

impl Cleanup<'_> {
    async fn delete(&self, token: &SecretString) -> Result<Deleted, StepError> {
        let (runbook, env, cc) = (self.runbook, self.env, self.cc);
        let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
        let nexus = runbook
            .connector
            .nexus(&env.spec.nexus_url, env.ca())
            .map_err(to_step)?;
        let tenant_ours = match self.record.proven_contact_center() {
            Some(_) => true,
            None => {
                let db = env.nexus_db(runbook.connector.as_ref())?;
                created_unrecorded(nexus.as_ref(), db.as_ref(), token, cc, self.tenant).await?
            }
        };
        // PlatformUCS by its own record (it may have held while the create failed), else
        // with the unrecorded Nexus tenant this pass found to be this tenant's.
        let ucs_recorded = self.record.ucs && self.record.contact_center_id.is_some();
        let ucs_ours = ucs_recorded || (tenant_ours && self.tenant.spec.ucs.is_some());
        let mut deleted = Deleted {
            contact_center_id: Some(cc.to_string()),
            ..Deleted::default()
        };
        if ucs_ours && let Some(ucs) = &self.tenant.spec.ucs {
            let key = match &ucs.api_key_secret {
                Some(r) => self
                    .store
                    .read(&r.name, &r.key)
                    .await
                    .map_err(|e| e.to_step_error("UCS API key"))?,
                None => token.clone(),
            };
            deleted.ucs = Removal::of(nexus.delete_ucs(&key, cc).await.map_err(to_step)?);
        }
        if tenant_ours {
            deleted.tenant = Removal::of(nexus.delete_tenant(token, cc).await.map_err(to_step)?);
        }
        Ok(deleted)
    }
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

async fn read_user(
    tenant: &DigitalChannelsTenant,
    store: &dyn SecretStore,
) -> Result<Credentials, StepError> {
    let secret = &tenant.spec.credentials_secret;
    store
        .read_credentials(&secret.name, &secret.username_key, &secret.password_key)
        .await
        .map_err(|e| e.to_step_error("tenant user"))
}

fn password_grant(cc: &str, user: &Credentials) -> Grant {
    Grant::Password {
        username: format!("{cc}\\{}", user.username),
        password: user.password.clone(),
    }
}

/// A tenant token for `cc`, as the provisioning pass gets it, and whether it came from the
/// cache.
async fn tenant_token(
    runbook: &Runbook,
    env: &ResolvedEnvironment,
    user: &Credentials,
    cc: &str,
) -> Result<(SecretString, bool), StepError> {
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(to_step)?;
    runbook
        .tokens
        .get(
            auth.as_ref(),
            &env.spec.auth_url,
            &env.spec.client.id,
            &env.client_secret,
            &password_grant(cc, user),
        )
        .await
        .map_err(to_step)
}
