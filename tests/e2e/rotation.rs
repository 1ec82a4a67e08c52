//! A tenant user's password Secret changes: the operator acts within seconds (the Secret
//! watch), as docs/day-2.md says: a new password that GWS accepts is pushed to Nexus with the
//! tenant update; one that GWS refuses turns the tenant `Unauthorized`.

use std::time::{Duration, Instant};

use digital_channels_operator::api::DigitalChannelsTenant;
use digital_channels_operator::api::conditions::ConditionStatus;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::{Scenario, Scope, cluster, condition, is_true, wait_for};
use crate::resources::{contact_center, ready_t100};

/// Well below the resync interval (30 s here, 10 min by default): only the watch explains it.
const ACTED_ON_WITHIN: Duration = Duration::from_secs(15);

async fn set_password(s: &Scenario, password: &str) {
    s.api::<Secret>()
        .patch(
            "t100-nexus-user",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": password}})),
        )
        .await
        .expect("patch password");
}

#[tokio::test]
async fn a_rotated_tenant_password_is_acted_on_within_seconds() {
    let Some(client) = cluster("secret_rotation").await else {
        return;
    };
    let mut s = Scenario::new(client, "rotation", Scope::Namespaces).await;
    s.start_operator("replica-a");
    ready_t100(&s).await;
    let updates_before = s.sim.calls("nexus.update_tenant").await;

    // Rotated in GWS first, then in the Secret: the tenant update carries the new password.
    s.sim
        .set_tenant_user_password(contact_center("t100"), "nexus", "rotated-password-1")
        .await;
    let started = Instant::now();
    set_password(&s, "rotated-password-1").await;
    wait_for(
        "the tenant update in Nexus after the rotation",
        ACTED_ON_WITHIN,
        || s.context(),
        || async { (s.sim.calls("nexus.update_tenant").await > updates_before).then_some(()) },
    )
    .await;
    println!(
        "e2e secret_rotation: tenant update reached Nexus {:?} after the Secret changed",
        started.elapsed()
    );
    let tenant = s.wait_tenant_ready("t100").await;
    assert!(is_true(
        &tenant.status.expect("status").conditions,
        "TenantProvisioned"
    ));

    // A password GWS refuses: Unauthorized, within seconds, naming the Secret.
    let started = Instant::now();
    set_password(&s, "not-the-password").await;
    let tenant = s
        .wait_until(
            "t100",
            "Ready=False Unauthorized",
            ACTED_ON_WITHIN,
            |t: &DigitalChannelsTenant| {
                t.status.as_ref().is_some_and(|st| {
                    condition(&st.conditions, "Ready").is_some_and(|c| {
                        c.status == ConditionStatus::False && c.reason == "Unauthorized"
                    })
                })
            },
        )
        .await;
    println!(
        "e2e secret_rotation: a wrong password showed as Unauthorized {:?} after the Secret changed",
        started.elapsed()
    );
    let ready = condition(&tenant.status.as_ref().expect("status").conditions, "Ready")
        .expect("Ready")
        .clone();
    assert!(
        ready.message.contains("t100-nexus-user"),
        "{}",
        ready.message
    );
    assert!(
        !ready.message.contains("not-the-password"),
        "{}",
        ready.message
    );

    // Put right again: Ready within seconds, and no second tenant in Nexus.
    set_password(&s, "rotated-password-1").await;
    s.wait_until(
        "t100",
        "Ready again",
        ACTED_ON_WITHIN,
        |t: &DigitalChannelsTenant| {
            t.status
                .as_ref()
                .is_some_and(|st| is_true(&st.conditions, "Ready"))
        },
    )
    .await;
    let state = s.sim.state().await;
    assert_eq!(
        state["tenants"].as_object().map(|m| m.len()),
        Some(1),
        "{state}"
    );
    s.finish().await;
}
