//! What `provision` checks before any call: every Secret key the manifests reference is in
//! the files. A missing one is an input error (exit 2), as an invalid spec is; there is no
//! cluster, so the message speaks of files, not of a namespace.

use super::file_store::FileStore;
use super::manifests::Bundle;
use crate::runbook::secrets::SecretError;

/// One Secret key a resource references.
struct Reference<'a> {
    /// `DigitalChannelsTenant t100`.
    owner: String,
    /// What it is for, and the field: `tenant user, spec.credentialsSecret`.
    purpose: &'static str,
    name: &'a str,
    key: &'a str,
}

/// Adds `owner`'s references to `wanted`: `add(purpose, secret name, key)`.
fn adder<'a, 'w>(
    wanted: &'w mut Vec<Reference<'a>>,
    owner: String,
) -> impl FnMut(&'static str, &'a str, &'a str) + 'w
where
    'a: 'w,
{
    move |purpose, name, key| {
        wanted.push(Reference {
            owner: owner.clone(),
            purpose,
            name,
            key,
        })
    }
}

/// Every Secret key the bundle's resources read. Not the client secret: it is generated
/// when absent.
fn references(bundle: &Bundle) -> Vec<Reference<'_>> {
    let mut wanted = Vec::new();
    for env in &bundle.environments {
        let name = env.metadata.name.as_deref().unwrap_or_default();
        let mut add = adder(&mut wanted, format!("DigitalChannelsEnvironment {name}"));
        let ops = &env.spec.ops_credentials_secret;
        let purpose = "GWS ops credentials, spec.opsCredentialsSecret";
        add(purpose, &ops.name, &ops.username_key);
        add(purpose, &ops.name, &ops.password_key);
        let db = &env.spec.database.url_secret;
        add(
            "Nexus database URL, spec.database.urlSecret",
            &db.name,
            &db.key,
        );
        if let Some(ca) = env.spec.tls.as_ref().map(|t| &t.ca_secret) {
            add("CA bundle, spec.tls.caSecret", &ca.name, &ca.key);
        }
    }
    for tenant in &bundle.tenants {
        let name = tenant.metadata.name.as_deref().unwrap_or_default();
        let mut add = adder(&mut wanted, format!("DigitalChannelsTenant {name}"));
        let user = &tenant.spec.credentials_secret;
        let purpose = "tenant user, spec.credentialsSecret";
        add(purpose, &user.name, &user.username_key);
        add(purpose, &user.name, &user.password_key);
        let ucs = tenant.spec.ucs.as_ref();
        if let Some(r) = ucs.and_then(|u| u.api_key_secret.as_ref()) {
            add("UCS API key, spec.ucs.apiKeySecret", &r.name, &r.key);
        }
    }
    wanted
}

/// What is missing, one sentence a Secret key, each saying what to do.
pub(super) fn missing_secrets(bundle: &Bundle, store: &FileStore) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for r in references(bundle) {
        let (name, key) = (r.name, r.key);
        let which = format!("Secret {name} ({} of {})", r.purpose, r.owner);
        let said = match store.check(name, key) {
            Ok(()) => continue,
            Err(SecretError::KeyMissing { .. }) => format!(
                "{which} has no key {key}: add it to its manifest or fix the key name in the spec"
            ),
            Err(_) => format!("{which} is not in the files: add its manifest with -f"),
        };
        // The two keys of a missing Secret say the same.
        if !problems.contains(&said) {
            problems.push(said);
        }
    }
    problems
}
