//! `dc_operator_time_to_ready_seconds` counts each way to Ready once. Alone in its binary:
//! the metrics are the process's, and another test's resources would count too.

mod common;

use common::operator::{Harness, NS, WAIT};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{DigitalChannelsEnvironment, ManagementPolicy};
use digital_channels_operator::telemetry::metrics::metrics;

/// How many times Ready was reached, by kind, as `/metrics` says it.
fn ready_count(kind: &str) -> u64 {
    let text = metrics().encode();
    let series = format!("dc_operator_time_to_ready_seconds_count{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|n| n.trim().parse::<f64>().expect("a count") as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn each_way_to_ready_counts_once() {
    let (env_kind, tenant_kind) = ("DigitalChannelsEnvironment", "DigitalChannelsTenant");
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    assert_eq!((ready_count(env_kind), ready_count(tenant_kind)), (1, 1));

    // An edit of the environment is no way to Ready for anyone that stayed Ready.
    h.env(|e| e.spec.client.access_token_expiration_timeout = 3600);
    let applied = h
        .api
        .wait_for(WAIT, |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
            let status = e.status?;
            (status.observed_generation == e.metadata.generation
                && find(&status.conditions, "Ready")?.status == ConditionStatus::True)
                .then_some(())
        })
        .await;
    assert!(applied.is_some());
    h.settle().await;
    assert_eq!((ready_count(env_kind), ready_count(tenant_kind)), (1, 1));

    // The environment fails and recovers: one more way to Ready for it, none for the
    // tenant, which stayed Ready.
    h.secret("gws-ops", &[("username", "ops"), ("password", "wrong")]);
    h.env_condition("Ready", ConditionStatus::False, Some("Unauthorized"))
        .await;
    h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    assert_eq!((ready_count(env_kind), ready_count(tenant_kind)), (2, 1));

    // A policy switch changes Ready's reason, not its status: no way into Ready (review).
    h.env(|e| {
        e.spec.client.access_token_expiration_timeout = 3600;
        e.spec.management_policy = ManagementPolicy::Observe;
    });
    h.env_condition("Ready", ConditionStatus::True, Some("InSync"))
        .await;
    h.settle().await;
    assert_eq!((ready_count(env_kind), ready_count(tenant_kind)), (2, 1));
    h.stop().await;
}
