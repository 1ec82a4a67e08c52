//! A tenant's health is about its own effects: its environment's trouble shows on it in a
//! condition of its own, and an edit of the environment makes it neither flap nor write.

mod common;

use common::operator::{Harness, NS, conditions};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

/// One wrong operations password turned every tenant NotReady, so a tenant alert would fire
/// for all of them. The tenants' keys still work with Nexus: they stay Ready.
#[tokio::test]
async fn a_wrong_ops_password_leaves_healthy_tenants_ready() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    let before = h.both_ready().await;
    let ready_before = find(&conditions(&before), "Ready").cloned().expect("Ready");

    h.secret(
        "gws-ops",
        &[("username", "ops"), ("password", "not-the-password")],
    );
    h.env_condition("Ready", ConditionStatus::False, Some("Unauthorized"))
        .await;
    let t = h
        .tenant_condition(
            "EnvironmentReady",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    let said = find(&conditions(&t), "EnvironmentReady")
        .cloned()
        .expect("said");
    assert!(said.message.contains("Unauthorized"), "{}", said.message);
    assert!(!said.message.contains("not-the-password"));
    assert_eq!(
        find(&conditions(&t), "Ready"),
        Some(&ready_before),
        "Ready unchanged, its transition time too"
    );

    h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
    h.tenant_condition("EnvironmentReady", ConditionStatus::True, None)
        .await;
    h.stop().await;
}

/// A tenant that never worked does wait for its environment: its Ready says so.
#[tokio::test]
async fn a_new_tenant_of_a_failing_environment_is_not_ready() {
    let h = Harness::start().await;
    h.secret(
        "gws-ops",
        &[("username", "ops"), ("password", "not-the-password")],
    );
    h.env(|_| {});
    h.tenant(|_| {});
    h.env_condition("Ready", ConditionStatus::False, Some("Unauthorized"))
        .await;
    let t = h
        .tenant_condition(
            "Ready",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    let env = find(&conditions(&t), "EnvironmentReady")
        .cloned()
        .expect("said on its own too");
    assert_eq!(env.status, ConditionStatus::False);
    h.stop().await;
}

/// Tried: each tenant went `WaitingForEnvironment` then Ready 40 ms later, two events and two
/// status writes per tenant per edit of its environment.
#[tokio::test]
async fn an_environment_edit_makes_its_tenants_neither_flap_nor_write() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;

    h.env(|e| e.spec.client.access_token_expiration_timeout = 3600);
    let edited = h
        .api
        .wait_for(common::operator::WAIT, |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
            let status = e.status?;
            (status.observed_generation == e.metadata.generation
                && find(&status.conditions, "Ready")?.status == ConditionStatus::True)
                .then_some(())
        })
        .await;
    assert!(edited.is_some(), "the environment applied its edit");
    h.settle_from_here().await;

    let tenant_writes: Vec<_> = h
        .writes_since_apply()
        .into_iter()
        .filter(|w| w.resource == "digitalchannelstenants" || w.resource == "events")
        .filter(|w| {
            w.resource != "events" || w.name.as_deref().is_some_and(|n| n.starts_with("t100"))
        })
        .collect();
    assert!(tenant_writes.is_empty(), "{tenant_writes:#?}");
    let t = h
        .api
        .get_as::<DigitalChannelsTenant>(NS, "t100")
        .expect("tenant");
    assert_eq!(
        find(&conditions(&t), "Ready").map(|c| c.status),
        Some(ConditionStatus::True)
    );
    h.stop().await;
}

/// Applied together with its environment (as a GitOps apply does), a tenant writes its status
/// once and publishes one event: it says nothing while the environment works on its first
/// pass, and its Ready event points at the step left by hand instead of a second event.
#[tokio::test]
async fn a_tenant_applied_with_its_environment_writes_its_status_once_and_one_event() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle_from_here().await;
    let writes = h.writes_since_apply();
    let statuses = writes
        .iter()
        .filter(|w| {
            w.resource == "digitalchannelstenants" && w.subresource.as_deref() == Some("status")
        })
        .count();
    let events: Vec<_> = writes
        .iter()
        .filter(|w| {
            w.resource == "events" && w.name.as_deref().is_some_and(|n| n.starts_with("t100."))
        })
        .filter_map(|w| w.body.as_ref().map(|b| b["reason"].clone()))
        .collect();
    assert_eq!(statuses, 1, "{writes:#?}");
    assert_eq!(events, [serde_json::json!("Provisioned")]);
    let t = h
        .api
        .get_as::<DigitalChannelsTenant>(NS, "t100")
        .expect("tenant");
    let ready = find(&conditions(&t), "Ready").cloned().expect("Ready");
    assert!(
        ready.message.contains("DesignerEnvConfigured"),
        "{}",
        ready.message
    );
    h.stop().await;
}

/// A suspended environment's status is as last applied while its spec may have been edited
/// since: its tenants make no call with it. Found by review.
#[tokio::test]
async fn a_suspended_environment_serves_no_tenant_pass() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.env(|e| e.spec.suspend = true);
    let t = h
        .tenant_condition(
            "EnvironmentReady",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    let said = find(&conditions(&t), "EnvironmentReady")
        .cloned()
        .expect("said");
    assert!(said.message.contains("suspended"), "{}", said.message);
    assert_eq!(
        find(&conditions(&t), "Ready").map(|c| c.status),
        Some(ConditionStatus::True),
        "its own effects hold"
    );
    h.stop().await;
}

/// A Ready tenant edited while its environment fails keeps no Ready for the spec it could not
/// apply. Found by review.
#[tokio::test]
async fn an_edited_tenant_is_not_ready_for_a_spec_its_failing_environment_kept_it_from_applying() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.secret(
        "gws-ops",
        &[("username", "ops"), ("password", "not-the-password")],
    );
    h.tenant_condition("EnvironmentReady", ConditionStatus::False, None)
        .await;
    h.tenant(|t| t.spec.genesys_tenant_id = 2);
    let t = h
        .tenant_condition(
            "Ready",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    assert_eq!(
        t.status.as_ref().and_then(|s| s.observed_generation),
        t.metadata.generation
    );
    h.stop().await;
}
