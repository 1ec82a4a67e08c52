//! The output Secret on a real API server: server-side apply ownership and garbage collection.

use std::time::Duration;

use digital_channels_operator::api::DigitalChannelsTenant;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::{Scenario, Scope, cluster};
use crate::resources::{apply_environment, apply_secrets, ready_t100, tenant_manifest};

const OUTPUT: &str = "t100-digital-channels";
const UCS_ANNOTATION: &str = "digitalchannels.dev/ucs-url";

fn annotation(secret: &Secret, key: &str) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(key).cloned()
}

#[tokio::test]
async fn server_side_apply_drops_what_the_operator_stops_setting_and_keeps_what_users_add() {
    let Some(client) = cluster("server_side_apply").await else {
        return;
    };
    let mut s = Scenario::new(client, "ssa", Scope::Namespaces).await;
    s.start_operator("replica-a");
    apply_secrets(&s).await;
    apply_environment(&s, "prod", "Retain").await;
    let with_ucs = json!({"ucs": {"url": "https://ucs.example.com"}});
    s.apply::<DigitalChannelsTenant>(tenant_manifest("t100", "prod", "t100", "Retain", with_ucs))
        .await;
    s.wait_tenant_ready("t100").await;
    let secrets = s.api::<Secret>();
    let output = s
        .wait_until(
            OUTPUT,
            "the UCS bookkeeping annotation",
            Duration::from_secs(30),
            |o: &Secret| annotation(o, UCS_ANNOTATION).is_some(),
        )
        .await;
    let xapikey = output.data.as_ref().expect("data")["xapikey"].clone();

    // A label a user adds survives the operator's next apply.
    secrets
        .patch(
            OUTPUT,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "chat"}}})),
        )
        .await
        .expect("label");

    // A user's edit of a field the operator owns is put back.
    secrets
        .patch(
            OUTPUT,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"tenantName": "edited-by-hand"}})),
        )
        .await
        .expect("edit");
    let repaired = s
        .wait_until(
            OUTPUT,
            "tenantName put back",
            Duration::from_secs(30),
            |o: &Secret| {
                o.data
                    .as_ref()
                    .is_some_and(|d| d["tenantName"].0 == b"t100")
            },
        )
        .await;
    assert_eq!(repaired.data.as_ref().expect("data")["xapikey"], xapikey);
    assert_eq!(
        repaired
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("chat"),
        "the user's label survives the operator's apply"
    );

    // An annotation the operator stops setting (no more spec.ucs) disappears.
    s.apply::<DigitalChannelsTenant>(tenant_manifest("t100", "prod", "t100", "Retain", json!({})))
        .await;
    let after = s
        .wait_until(
            OUTPUT,
            "the UCS annotation to go",
            Duration::from_secs(30),
            |o: &Secret| annotation(o, UCS_ANNOTATION).is_none(),
        )
        .await;
    assert_eq!(
        after
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("chat")
    );
    assert_eq!(after.data.as_ref().expect("data")["xapikey"], xapikey);
    s.finish().await;
}

#[tokio::test]
async fn deleting_a_tenant_garbage_collects_its_output_secret() {
    let Some(client) = cluster("garbage_collection").await else {
        return;
    };
    let mut s = Scenario::new(client, "gc", Scope::Namespaces).await;
    s.start_operator("replica-a");
    ready_t100(&s).await;
    assert!(
        s.api::<Secret>()
            .get_opt(OUTPUT)
            .await
            .expect("get")
            .is_some()
    );

    s.api::<DigitalChannelsTenant>()
        .delete("t100", &DeleteParams::default())
        .await
        .expect("delete");
    s.wait_gone::<DigitalChannelsTenant>("t100", Duration::from_secs(30))
        .await;
    // The garbage collector of kube-controller-manager follows the owner reference.
    s.wait_gone::<Secret>(OUTPUT, Duration::from_secs(30)).await;
    // Retain: the Nexus tenant stays.
    let state = s.sim.state().await;
    assert_eq!(
        state["tenants"].as_object().map(|m| m.len()),
        Some(1),
        "{state}"
    );
    s.finish().await;
}
