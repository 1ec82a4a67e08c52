//! Tenant cleanup for `deletionPolicy: Delete`.

use crate::api::DigitalChannelsTenant;
use crate::runbook::Runbook;
use crate::runbook::environment::ResolvedEnvironment;
use crate::runbook::report::StepError;
use crate::runbook::secrets::SecretStore;
use crate::upstream::UpstreamError;
use crate::upstream::gws_auth::Grant;

/// Tenant cleanup for `deletionPolicy: Delete`: the Nexus tenant and its PlatformUCS
/// service. "Already gone" counts as done.
pub async fn delete_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    contact_center_id: &str,
) -> Result<(), StepError> {
    let spec = &tenant.spec;
    let user = store
        .read_credentials(
            &spec.credentials_secret.name,
            &spec.credentials_secret.username_key,
            &spec.credentials_secret.password_key,
        )
        .await
        .map_err(|e| e.to_step_error("tenant user"))?;
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(to_step)?;
    let nexus = runbook
        .connector
        .nexus(&env.spec.nexus_url, env.ca())
        .map_err(to_step)?;
    let grant = Grant::Password {
        username: format!("{contact_center_id}\\{}", user.username),
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
    if let Some(ucs) = &spec.ucs {
        let key = match &ucs.api_key_secret {
            Some(r) => store
                .read(&r.name, &r.key)
                .await
                .map_err(|e| e.to_step_error("UCS API key"))?,
            None => token.clone(),
        };
        nexus
            .delete_ucs(&key, contact_center_id)
            .await
            .map_err(to_step)?;
    }
    nexus
        .delete_tenant(&token, contact_center_id)
        .await
        .map_err(to_step)?;
    Ok(())
}
