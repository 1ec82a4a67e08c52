//! A sample world for tests on the fakes: one environment `prod`, its Secrets, a contact
//! center `cc-100` (domain `t100`) with the tenant user `nexus`, and the tenant `t100`.

use std::sync::Arc;

use super::{FakeConnector, FakeSecretStore};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::runbook::{Reason, RunReport, Runbook, Step};
use crate::upstream::gws_auth::{OAuthClient, REQUIRED_GRANT_TYPES};

pub const CONTACT_CENTER: &str = "cc-100";
pub const CLIENT_SECRET: &str = "client-secret";
pub const USER_PASSWORD: &str = "nexus_password";
pub const NEXUS_URL: &str = "https://nexus.example.com";
pub const GWS_URL: &str = "https://gws.example.com";

/// The environment `prod` of the sample, in namespace `dc`.
pub fn environment() -> DigitalChannelsEnvironment {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {{name: prod, namespace: dc, generation: 1, uid: env-uid}}
spec:
  authUrl: https://auth.example.com
  gwsUrl: {GWS_URL}
  nexusUrl: {NEXUS_URL}
  opsCredentialsSecret: {{name: gws-ops}}
  database: {{urlSecret: {{name: nexus-db, key: url}}}}
"#
    ))
    .expect("the sample environment parses")
}

/// A tenant of `prod` named `name`, on the contact center of domain `t100`; with `ucs`, a
/// PlatformUCS service at that URL.
pub fn tenant(name: &str, ucs: Option<&str>) -> DigitalChannelsTenant {
    let ucs = ucs
        .map(|u| format!("  ucs: {{url: {u}}}\n"))
        .unwrap_or_default();
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsTenant
metadata: {{name: {name}, namespace: dc, generation: 1, uid: {name}-uid}}
spec:
  environmentRef: {{name: prod}}
  contactCenterDomain: t100
  tenantName: {name}
  credentialsSecret: {{name: t100-user}}
{ucs}"#
    ))
    .expect("the sample tenant parses")
}

/// The namespace's Secrets: the ops user, the database URL, the tenant user; with
/// `environment_made`, the client secret and fingerprint key the environment's pass makes.
pub fn store(environment_made: bool) -> FakeSecretStore {
    let store = FakeSecretStore::default();
    store.put("gws-ops", &[("username", "ops"), ("password", "ops")]);
    store.put("nexus-db", &[("url", "postgres://nexus:pw@db:5432/nexus")]);
    store.put(
        "t100-user",
        &[("username", "nexus"), ("password", USER_PASSWORD)],
    );
    if environment_made {
        store.put("prod-nexus-client", &[("client-secret", CLIENT_SECRET)]);
        store.put("prod-fingerprint-key", &[("key", "fingerprint-key")]);
    }
    store
}

/// The upstream of the sample: GWS with the contact center and its user; with
/// `client_made`, the OAuth client holding [`CLIENT_SECRET`], made by `provision`.
pub fn connector(client_made: bool) -> Arc<FakeConnector> {
    let connector = FakeConnector::default();
    connector
        .environment
        .put_contact_center(CONTACT_CENTER, &["t100"]);
    connector
        .auth
        .put_user(CONTACT_CENTER, "nexus", USER_PASSWORD);
    if client_made {
        let client = OAuthClient {
            client_id: "nexus_client".into(),
            description: Some(crate::runbook::environment::ClientManager::Provision.description()),
            authorized_grant_types: REQUIRED_GRANT_TYPES.map(String::from).to_vec(),
            redirect_uris: vec![NEXUS_URL.to_string()],
            access_token_expiration_timeout: Some(43_200),
            refresh_token_expiration_timeout: Some(2_592_000),
            ..OAuthClient::default()
        };
        connector.auth.put_client(client, CLIENT_SECRET);
    }
    Arc::new(connector)
}

/// A runbook on `connector`.
pub fn runbook(connector: &Arc<FakeConnector>) -> Runbook {
    Runbook::new(connector.clone())
}

/// A report's first failure: its step, reason, and whether it is retried.
pub fn failure(report: &RunReport) -> Option<(Step, Reason, bool)> {
    let (step, e) = report.failure()?;
    Some((step.step, e.reason, e.transient))
}

/// The writes (as [`super::WRITES`] names them) that the Observe outcomes of `report`
/// announce Manage would make, one per step that is not in sync, sorted: what a switch to
/// Manage must make, no more and no less.
pub fn announced_writes(report: &RunReport) -> Vec<&'static str> {
    use crate::runbook::Outcome::{Drifted, Missing, NotObservable};
    let mut writes: Vec<&'static str> = report
        .steps
        .iter()
        .filter_map(|s| match (s.step, s.result.as_ref().ok()?) {
            (Step::ClientRegistered, Missing(_)) => Some("create_client"),
            (Step::ClientRegistered | Step::ClientVerified, Drifted(_)) => Some("update_client"),
            (Step::GapiRegistered, Missing(_)) => Some("insert_gapi"),
            (Step::GapiRegistered, Drifted(_)) => Some("update_gapi_secret"),
            (Step::ChatServiceRegistered, Missing(_) | Drifted(_)) => Some("upsert_setting"),
            (Step::UcsRegistered, NotObservable(_) | Drifted(_)) => Some("register_ucs"),
            (Step::TenantProvisioned, Missing(_)) => Some("create_tenant"),
            (Step::TenantProvisioned, Drifted(_)) => Some("update_tenant"),
            _ => None,
        })
        .collect();
    writes.sort_unstable();
    writes
}
