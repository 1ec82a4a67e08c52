//! Checks the CRD schema makes at apply time, repeated in code for manifests that never
//! met an API server (`provision`) and as a guard in the controllers.

use super::{DigitalChannelsEnvironmentSpec, DigitalChannelsTenantSpec};

fn check_url(field: &str, value: &str, problems: &mut Vec<String>) {
    // The value itself is not repeated: a URL may carry credentials.
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {}
        Ok(u) => problems.push(format!(
            "{field} must be an http:// or https:// URL, not {}://",
            u.scheme()
        )),
        Err(e) => problems.push(format!("{field} must be an http:// or https:// URL ({e})")),
    }
}

/// Everything wrong with an environment spec; empty when it is valid.
pub fn environment_problems(spec: &DigitalChannelsEnvironmentSpec) -> Vec<String> {
    let mut problems = Vec::new();
    check_url("spec.authUrl", &spec.auth_url, &mut problems);
    if let Some(u) = &spec.environment_url {
        check_url("spec.environmentUrl", u, &mut problems);
    }
    check_url("spec.gwsUrl", &spec.gws_url, &mut problems);
    check_url("spec.nexusUrl", &spec.nexus_url, &mut problems);
    if spec.client.id.trim().is_empty() {
        problems.push("spec.client.id must not be empty".to_string());
    }
    if spec.ops_credentials_secret.name.is_empty() {
        problems.push("spec.opsCredentialsSecret.name must not be empty".to_string());
    }
    problems
}

/// Everything wrong with a tenant spec; empty when it is valid.
pub fn tenant_problems(spec: &DigitalChannelsTenantSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(id) = &spec.contact_center_id
        && uuid::Uuid::parse_str(id).is_err()
    {
        problems.push(format!("spec.contactCenterId must be a UUID, got {id:?}"));
    }
    if spec.contact_center_id.is_some() && spec.contact_center_domain.is_some() {
        problems.push("set spec.contactCenterId or spec.contactCenterDomain, not both".to_string());
    }
    if spec.tenant_name.trim().is_empty() {
        problems.push("spec.tenantName must not be empty".to_string());
    }
    if spec.environment_ref.name.is_empty() {
        problems.push("spec.environmentRef.name must not be empty".to_string());
    }
    if let Some(ucs) = &spec.ucs {
        check_url("spec.ucs.url", &ucs.url, &mut problems);
    }
    problems
}
