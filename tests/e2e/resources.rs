//! Manifests the scenarios apply, pointed at the scenario's simulator and database.

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::harness::Scenario;

pub const TENANT_PASSWORD: &str = "nexus_password";

/// The contact center of a seeded domain.
pub fn contact_center(domain: &str) -> &'static str {
    match domain {
        "t100" => DEMO_CC_T100,
        "t200" => DEMO_CC_T200,
        other => panic!("no seeded contact center {other}"),
    }
}

fn secret(name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "type": "Opaque", "stringData": data,
    })
}

/// The ops user, the database URL, and the tenant user of both seeded contact centers.
pub async fn apply_secrets(s: &Scenario) {
    for manifest in [
        secret("gws-ops", json!({"username": "ops", "password": "ops"})),
        secret("nexus-db", json!({"url": s.sim.database_url})),
        secret(
            "t100-nexus-user",
            json!({"username": "nexus", "password": TENANT_PASSWORD}),
        ),
        secret(
            "t200-nexus-user",
            json!({"username": "nexus", "password": TENANT_PASSWORD}),
        ),
    ] {
        s.apply::<Secret>(manifest).await;
    }
}

pub async fn apply_environment(
    s: &Scenario,
    name: &str,
    policy: &str,
) -> DigitalChannelsEnvironment {
    s.apply(json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": name},
        "spec": {
            "authUrl": s.sim.url, "gwsUrl": s.sim.url, "nexusUrl": s.sim.url,
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
            "deletionPolicy": policy,
        },
    }))
    .await
}

/// A tenant of environment `env` for a seeded domain (`t100`, `t200`), with `extra` merged
/// into its spec.
pub fn tenant_manifest(name: &str, env: &str, domain: &str, policy: &str, extra: Value) -> Value {
    let mut spec = json!({
        "environmentRef": {"name": env},
        "contactCenterDomain": domain,
        "tenantName": domain,
        "credentialsSecret": {"name": format!("{domain}-nexus-user")},
        "deletionPolicy": policy,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsTenant",
        "metadata": {"name": name},
        "spec": spec,
    })
}

pub async fn apply_tenant(
    s: &Scenario,
    name: &str,
    env: &str,
    domain: &str,
    policy: &str,
) -> DigitalChannelsTenant {
    s.apply(tenant_manifest(name, env, domain, policy, json!({})))
        .await
}

/// The usual start: Secrets, environment `prod` and tenant `t100` (both Retain), Ready.
pub async fn ready_t100(s: &Scenario) -> DigitalChannelsTenant {
    apply_secrets(s).await;
    apply_environment(s, "prod", "Retain").await;
    apply_tenant(s, "t100", "prod", "t100", "Retain").await;
    s.wait_tenant_ready("t100").await
}
