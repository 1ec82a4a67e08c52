//! Checks the CRD schema makes at apply time, repeated in code for manifests that never
//! met an API server (`provision`) and as a guard in the controllers. Each check here has
//! its rule in the schema (see `common.rs` for the patterns), and the other way round.

use super::common::{CredentialsSecretRef, INT32_MAX, SecretKeyRef, URL_MAX_LENGTH};
use super::environment::API_PATHS;
use super::{DigitalChannelsEnvironmentSpec, DigitalChannelsTenantSpec};

fn check_url(field: &str, value: &str, problems: &mut Vec<String>) {
    // The value itself is not repeated: a URL may carry credentials.
    if value.len() > URL_MAX_LENGTH {
        problems.push(format!(
            "{field} must be at most {URL_MAX_LENGTH} characters long"
        ));
        return;
    }
    match url::Url::parse(value) {
        Ok(u)
            if (u.scheme() == "http" || u.scheme() == "https")
                && u.host_str().is_some()
                && !value.chars().any(char::is_whitespace) => {}
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => problems.push(format!(
            "{field} must be an http:// or https:// URL with a host and no spaces"
        )),
        Ok(u) => problems.push(format!(
            "{field} must be an http:// or https:// URL, not {}://",
            u.scheme()
        )),
        Err(e) => problems.push(format!("{field} must be an http:// or https:// URL ({e})")),
    }
    if let Some((_, path)) = API_PATHS.iter().find(|(f, _)| *f == field)
        && url::Url::parse(value).is_ok_and(|u| {
            let p = u.path().trim_end_matches('/');
            p.ends_with(path) || p.contains(&format!("{path}/"))
        })
    {
        problems.push(format!(
            "{field} is a base URL, without {path}: the operator adds the API path itself"
        ));
    }
}

/// A DNS label (RFC 1123): lower-case letters, digits and `-`, starting and ending with a
/// letter or digit.
fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS subdomain (RFC 1123): the names of Secrets, Deployments and custom resources.
fn check_name(field: &str, value: &str, problems: &mut Vec<String>) {
    if value.is_empty() {
        problems.push(format!("{field} must not be empty"));
    } else if value.len() > 253 || !value.split('.').all(is_dns_label) {
        problems.push(format!(
            "{field} must be a valid Kubernetes name (lower-case letters, digits, '-' and '.', at most 253 characters), got {value:?}"
        ));
    }
}

fn check_namespace(field: &str, value: &str, problems: &mut Vec<String>) {
    if value.len() > 63 || !is_dns_label(value) {
        problems.push(format!(
            "{field} must be a valid namespace name (lower-case letters, digits and '-', at most 63 characters), got {value:?}"
        ));
    }
}

/// A key of a Secret's data: letters, digits, `-`, `_` and `.`.
fn check_key(field: &str, value: &str, problems: &mut Vec<String>) {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        problems.push(format!(
            "{field} must be a valid Secret key (letters, digits, '-', '_' and '.'), got {value:?}"
        ));
    }
}

fn check_secret_key_ref(field: &str, r: &SecretKeyRef, problems: &mut Vec<String>) {
    check_name(&format!("{field}.name"), &r.name, problems);
    check_key(&format!("{field}.key"), &r.key, problems);
}

fn check_credentials_ref(field: &str, r: &CredentialsSecretRef, problems: &mut Vec<String>) {
    check_name(&format!("{field}.name"), &r.name, problems);
    check_key(&format!("{field}.usernameKey"), &r.username_key, problems);
    check_key(&format!("{field}.passwordKey"), &r.password_key, problems);
}

/// Not empty, not longer than `max`, no whitespace at either end.
fn check_trimmed(field: &str, value: &str, max: usize, problems: &mut Vec<String>) {
    if value.trim().is_empty() {
        problems.push(format!("{field} must not be empty"));
    } else if value.trim() != value {
        problems.push(format!(
            "{field} must not start or end with whitespace, got {value:?}"
        ));
    } else if value.len() > max {
        problems.push(format!("{field} must be at most {max} characters long"));
    }
}

fn check_range(field: &str, value: i64, min: i64, problems: &mut Vec<String>) {
    if !(min..=INT32_MAX).contains(&value) {
        problems.push(format!(
            "{field} must be between {min} and {INT32_MAX}, got {value}"
        ));
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
    check_credentials_ref(
        "spec.opsCredentialsSecret",
        &spec.ops_credentials_secret,
        &mut problems,
    );
    check_trimmed("spec.client.id", &spec.client.id, 128, &mut problems);
    if let Some(secret) = &spec.client.secret {
        check_secret_key_ref("spec.client.secret", secret, &mut problems);
    }
    check_range(
        "spec.client.accessTokenExpirationTimeout",
        spec.client.access_token_expiration_timeout,
        60,
        &mut problems,
    );
    check_range(
        "spec.client.refreshTokenExpirationTimeout",
        spec.client.refresh_token_expiration_timeout,
        60,
        &mut problems,
    );
    check_secret_key_ref(
        "spec.database.urlSecret",
        &spec.database.url_secret,
        &mut problems,
    );
    if let Some(tls) = &spec.tls {
        check_secret_key_ref("spec.tls.caSecret", &tls.ca_secret, &mut problems);
    }
    if let Some(deployment) = &spec.nexus_deployment {
        check_name("spec.nexusDeployment.name", &deployment.name, &mut problems);
        if let Some(ns) = &deployment.namespace {
            check_namespace("spec.nexusDeployment.namespace", ns, &mut problems);
        }
    }
    problems
}

/// Everything wrong with a tenant spec; empty when it is valid.
pub fn tenant_problems(spec: &DigitalChannelsTenantSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(id) = &spec.contact_center_id
        && (uuid::Uuid::try_parse(id).is_err() || id.len() != 36)
    {
        problems.push(format!("spec.contactCenterId must be a UUID, got {id:?}"));
    }
    if spec.contact_center_id.is_some() && spec.contact_center_domain.is_some() {
        problems.push("set spec.contactCenterId or spec.contactCenterDomain, not both".to_string());
    }
    if let Some(domain) = &spec.contact_center_domain
        && (domain.is_empty() || domain.len() > 253)
    {
        problems.push("spec.contactCenterDomain must be 1 to 253 characters long".to_string());
    }
    check_trimmed("spec.tenantName", &spec.tenant_name, 128, &mut problems);
    check_name(
        "spec.environmentRef.name",
        &spec.environment_ref.name,
        &mut problems,
    );
    check_range(
        "spec.genesysTenantId",
        spec.genesys_tenant_id,
        0,
        &mut problems,
    );
    check_trimmed("spec.type", &spec.type_, 128, &mut problems);
    check_credentials_ref(
        "spec.credentialsSecret",
        &spec.credentials_secret,
        &mut problems,
    );
    if let Some(ucs) = &spec.ucs {
        check_url("spec.ucs.url", &ucs.url, &mut problems);
        if let Some(key) = &ucs.api_key_secret {
            check_secret_key_ref("spec.ucs.apiKeySecret", key, &mut problems);
        }
    }
    if let Some(name) = &spec.output_secret_name {
        check_name("spec.outputSecretName", name, &mut problems);
    }
    problems
}

/// [`tenant_problems`], and what needs the resource's name: the output Secret (by default
/// `<metadata.name>-digital-channels`) must be a name the API server takes, found before
/// anything is created upstream.
pub fn tenant_problems_named(name: &str, spec: &DigitalChannelsTenantSpec) -> Vec<String> {
    let mut problems = tenant_problems(spec);
    let output = spec.output_secret_name(name);
    if spec.output_secret_name.is_none() && output.len() > 253 {
        problems.push(format!(
            "the default output Secret name (metadata.name followed by -digital-channels) would be {} characters \
             long, over Kubernetes' 253: set spec.outputSecretName to a shorter name",
            output.len()
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

    fn environment(edit: serde_json::Value) -> DigitalChannelsEnvironmentSpec {
        let mut spec = serde_json::json!({
            "authUrl": "https://auth.example.com",
            "gwsUrl": "https://gws.example.com",
            "nexusUrl": "https://nexus.example.com",
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
        });
        json_merge(&mut spec, edit);
        let env: DigitalChannelsEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsEnvironment",
            "metadata": {"name": "prod"},
            "spec": spec,
        }))
        .expect("environment");
        env.spec
    }

    fn tenant(edit: serde_json::Value) -> DigitalChannelsTenantSpec {
        let mut spec = serde_json::json!({
            "environmentRef": {"name": "prod"},
            "contactCenterDomain": "t100",
            "tenantName": "t100",
            "credentialsSecret": {"name": "t100-nexus-user"},
        });
        json_merge(&mut spec, edit);
        let t: DigitalChannelsTenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsTenant",
            "metadata": {"name": "t100"},
            "spec": spec,
        }))
        .expect("tenant");
        t.spec
    }

    /// RFC 7386, enough for these tables.
    fn json_merge(target: &mut serde_json::Value, patch: serde_json::Value) {
        match patch {
            serde_json::Value::Object(fields) => {
                if !target.is_object() {
                    *target = serde_json::json!({});
                }
                let object = target.as_object_mut().expect("object");
                for (k, v) in fields {
                    if v.is_null() {
                        object.remove(&k);
                    } else {
                        json_merge(object.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            other => *target = other,
        }
    }

    #[test]
    fn the_valid_samples_have_no_problem() {
        assert!(environment_problems(&environment(serde_json::json!({}))).is_empty());
        assert!(tenant_problems(&tenant(serde_json::json!({}))).is_empty());
    }

    /// The same inputs the schema refuses (tests/e2e/bad_input.rs) are refused here, naming
    /// the field.
    #[test]
    // A table: one row a line reads better than rows spread over functions.
    #[allow(clippy::too_many_lines)]
    fn what_the_schema_refuses_the_controller_refuses_too() {
        use serde_json::json;
        let env_cases = [
            (json!({"authUrl": "auth.example.com"}), "spec.authUrl"),
            (json!({"authUrl": "ftp://auth.example.com"}), "spec.authUrl"),
            (json!({"authUrl": ""}), "spec.authUrl"),
            (
                json!({"authUrl": "https://auth example.com"}),
                "spec.authUrl",
            ),
            (
                json!({"authUrl": "https://auth.example.com/auth/v3"}),
                "without /auth/v3",
            ),
            (
                json!({"authUrl": format!("https://{}.example.com", "a".repeat(2040))}),
                "2048",
            ),
            (json!({"environmentUrl": "https://"}), "spec.environmentUrl"),
            (
                json!({"environmentUrl": "https://auth.example.com/environment/v3/"}),
                "without /environment/v3",
            ),
            (
                json!({"nexusUrl": "https://nexus.example.com/nexus/v3"}),
                "without /nexus/v3",
            ),
            (
                json!({"opsCredentialsSecret": {"name": ""}}),
                "spec.opsCredentialsSecret.name",
            ),
            (
                json!({"opsCredentialsSecret": {"name": "GWS_Ops"}}),
                "spec.opsCredentialsSecret.name",
            ),
            (
                json!({"opsCredentialsSecret": {"usernameKey": ""}}),
                "spec.opsCredentialsSecret.usernameKey",
            ),
            (
                json!({"opsCredentialsSecret": {"passwordKey": "pass word"}}),
                "spec.opsCredentialsSecret.passwordKey",
            ),
            (
                json!({"database": {"urlSecret": {"name": "nexus_db"}}}),
                "spec.database.urlSecret.name",
            ),
            (
                json!({"database": {"urlSecret": {"name": "a".repeat(254)}}}),
                "spec.database.urlSecret.name",
            ),
            (json!({"client": {"id": ""}}), "spec.client.id"),
            (
                json!({"client": {"id": " nexus_client "}}),
                "spec.client.id",
            ),
            (json!({"client": {"id": "a".repeat(129)}}), "spec.client.id"),
            (
                json!({"client": {"accessTokenExpirationTimeout": 0}}),
                "accessTokenExpirationTimeout",
            ),
            (
                json!({"client": {"refreshTokenExpirationTimeout": -1}}),
                "refreshTokenExpirationTimeout",
            ),
            (
                json!({"client": {"accessTokenExpirationTimeout": 99_999_999_999_i64}}),
                "accessTokenExpirationTimeout",
            ),
            (
                json!({"tls": {"caSecret": {"name": "genesys-ca", "key": "ca/crt"}}}),
                "spec.tls.caSecret.key",
            ),
            (
                json!({"nexusDeployment": {"name": ""}}),
                "spec.nexusDeployment.name",
            ),
            (
                json!({"nexusDeployment": {"name": "Nexus_Deploy"}}),
                "spec.nexusDeployment.name",
            ),
            (
                json!({"nexusDeployment": {"name": "nexus", "namespace": "nexus.prod"}}),
                "spec.nexusDeployment.namespace",
            ),
        ];
        for (edit, expected) in env_cases {
            let problems = environment_problems(&environment(edit.clone()));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{edit}: {problems:?}"
            );
        }
        let tenant_cases = [
            (
                json!({"environmentRef": {"name": ""}}),
                "spec.environmentRef.name",
            ),
            (
                json!({"environmentRef": {"name": "Prod Env"}}),
                "spec.environmentRef.name",
            ),
            (
                json!({"contactCenterDomain": null, "contactCenterId": "not-a-uuid"}),
                "spec.contactCenterId",
            ),
            (
                json!({"contactCenterDomain": null,
                       "contactCenterId": "{578ec98e-f07c-46ad-9675-f36c22f3ba9f}"}),
                "spec.contactCenterId",
            ),
            (
                json!({"contactCenterId": "578ec98e-f07c-46ad-9675-f36c22f3ba9f"}),
                "not both",
            ),
            (
                json!({"contactCenterDomain": ""}),
                "spec.contactCenterDomain",
            ),
            (json!({"tenantName": ""}), "spec.tenantName"),
            (json!({"tenantName": "   "}), "spec.tenantName"),
            (json!({"tenantName": "t100 "}), "spec.tenantName"),
            (json!({"tenantName": "a".repeat(129)}), "spec.tenantName"),
            (json!({"genesysTenantId": -1}), "spec.genesysTenantId"),
            (
                json!({"genesysTenantId": 4_294_967_296_i64}),
                "spec.genesysTenantId",
            ),
            (json!({"type": ""}), "spec.type"),
            (json!({"type": " PureEngage"}), "spec.type"),
            (
                json!({"credentialsSecret": {"name": "T100_User"}}),
                "spec.credentialsSecret.name",
            ),
            (
                json!({"credentialsSecret": {"passwordKey": ""}}),
                "spec.credentialsSecret.passwordKey",
            ),
            (json!({"ucs": {"url": "ucs.example.com"}}), "spec.ucs.url"),
            (
                json!({"ucs": {"url": "https://ucs.example.com", "apiKeySecret": {"name": "ucs-key", "key": ""}}}),
                "spec.ucs.apiKeySecret.key",
            ),
            (
                json!({"outputSecretName": "Not_A_Secret"}),
                "spec.outputSecretName",
            ),
            (
                json!({"outputSecretName": "a".repeat(254)}),
                "spec.outputSecretName",
            ),
        ];
        for (edit, expected) in tenant_cases {
            let problems = tenant_problems(&tenant(edit.clone()));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{edit}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_url_is_never_repeated_in_a_problem() {
        let spec = environment(serde_json::json!({"authUrl": "ftp://ops:s3cret@auth.example.com"}));
        let problems = environment_problems(&spec);
        assert!(!problems.is_empty());
        assert!(
            problems.iter().all(|p| !p.contains("s3cret")),
            "{problems:?}"
        );
    }
}
