//! Identity and lifecycle at the edges on a real API server, where the garbage collector and
//! finalizers are the real ones: a tenant cannot take the environment's Secrets (deleting it
//! would collect them), and a tenant deleted while its first create is in flight is cleaned up.

use std::time::Duration;

use digital_channels_operator::api::DigitalChannelsTenant;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use serde_json::json;

use crate::harness::{Scenario, Scope, cluster, condition, wait_for};
use crate::resources::{apply_environment, apply_secrets, contact_center, tenant_manifest};

/// Arms a fault in the scenario's simulator (`POST /_sim/faults`).
async fn fault(s: &Scenario, operation: &str, mode: &str, status: u16) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sim/faults", s.sim.url))
        .json(&json!({"operation": operation, "mode": mode, "status": status}))
        .send()
        .await
        .expect("simulator");
    assert!(resp.status().is_success(), "{}", resp.status());
}

async fn reason_of(s: &Scenario, name: &str, type_: &str) -> Option<String> {
    let t = s
        .api::<DigitalChannelsTenant>()
        .get_opt(name)
        .await
        .ok()??;
    condition(&t.status?.conditions, type_).map(|c| c.reason.clone())
}

#[tokio::test]
async fn a_tenant_cannot_take_the_environments_secrets() {
    let Some(client) = cluster("edges_environment_secrets").await else {
        return;
    };
    let mut s = Scenario::new(client, "edgesecrets", Scope::Namespaces).await;
    s.start_operator("replica-a");
    apply_secrets(&s).await;
    apply_environment(&s, "prod", "Retain").await;
    s.wait_environment_ready("prod").await;
    let secrets = s.api::<Secret>();
    let before = secrets
        .get("prod-fingerprint-key")
        .await
        .expect("generated");

    let thief = json!({"outputSecretName": "prod-fingerprint-key"});
    s.apply::<DigitalChannelsTenant>(tenant_manifest("thief", "prod", "t100", "Delete", thief))
        .await;
    wait_for(
        "the thief to be refused",
        Duration::from_secs(30),
        || s.context(),
        || async {
            (reason_of(&s, "thief", "Ready").await.as_deref() == Some("Conflict")).then_some(())
        },
    )
    .await;
    s.api::<DigitalChannelsTenant>()
        .delete("thief", &DeleteParams::default())
        .await
        .expect("delete");
    s.wait_gone::<DigitalChannelsTenant>("thief", Duration::from_secs(30))
        .await;
    // The garbage collector would have followed an owner reference by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = secrets
        .get("prod-fingerprint-key")
        .await
        .expect("still there");
    assert_eq!(after.metadata.uid, before.metadata.uid, "the same Secret");
    assert_eq!(after.data, before.data, "the same fingerprint key");
    assert!(
        after
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(s.sim.calls("nexus.create_tenant").await, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_tenant_deleted_while_its_first_create_is_in_flight_is_cleaned_up() {
    let Some(client) = cluster("edges_delete_during_create").await else {
        return;
    };
    let mut s = Scenario::new(client, "edgecreate", Scope::Namespaces).await;
    s.start_operator("replica-a");
    apply_secrets(&s).await;
    apply_environment(&s, "prod", "Retain").await;
    s.wait_environment_ready("prod").await;
    // The create reaches Nexus; its answer is lost.
    fault(&s, "nexus.create_tenant", "lose_answer", 504).await;
    s.apply::<DigitalChannelsTenant>(tenant_manifest("t100", "prod", "t100", "Delete", json!({})))
        .await;
    wait_for(
        "the create to reach Nexus",
        Duration::from_secs(30),
        || s.context(),
        || async { (s.sim.calls("nexus.create_tenant").await >= 1).then_some(()) },
    )
    .await;
    s.api::<DigitalChannelsTenant>()
        .delete("t100", &DeleteParams::default())
        .await
        .expect("delete");
    s.wait_gone::<DigitalChannelsTenant>("t100", Duration::from_secs(60))
        .await;
    let state = s.sim.state().await;
    let cc = contact_center("t100");
    assert!(
        state["tenants"].get(cc).is_none(),
        "the Nexus tenant leaked: {state}"
    );
    assert_eq!(s.sim.calls("nexus.create_tenant").await, 1);
    s.finish().await;
}
