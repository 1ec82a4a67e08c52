//! The controllers, running for real (watches, Secret index, status writes, finalizers)
//! against an in-memory Kubernetes API server, the simulator and a real PostgreSQL.

mod common;

use std::time::Duration;

use common::fake_apiserver::{ResourceKey, Verb};
use common::operator::{Harness, NS, WAIT, conditions};
use common::{environment, tenant};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant,
};
use digital_channels_operator::simulator::{DEMO_CC_T100, SimulatorConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

#[tokio::test]
async fn both_kinds_become_ready_with_status_and_output_secret() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    let t = h.both_ready().await;

    let status = t.status.clone().unwrap();
    assert_eq!(status.contact_center_id.as_deref(), Some(DEMO_CC_T100));
    assert_eq!(
        status.output_secret_name.as_deref(),
        Some("t100-digital-channels")
    );
    assert!(status.operation_id.is_some());
    assert_eq!(status.observed_generation, t.metadata.generation);
    for type_ in [
        "ContactCenterResolved",
        "ChatServiceRegistered",
        "UcsRegistered",
        "TenantProvisioned",
    ] {
        assert_eq!(
            find(&status.conditions, type_).unwrap().status,
            ConditionStatus::True,
            "{type_}"
        );
    }
    let designer = find(&status.conditions, "DesignerEnvConfigured").unwrap();
    assert_eq!(
        (designer.status, designer.reason.as_str()),
        (ConditionStatus::False, "ManualStepRequired")
    );
    assert!(designer.message.contains("baseurl=/nexus/v1"));

    let output = h.api.get_as::<Secret>(NS, "t100-digital-channels").unwrap();
    let keys: Vec<_> = output.data.clone().unwrap().into_keys().collect();
    assert_eq!(
        keys,
        ["contactCenterId", "nexusUrl", "tenantName", "xapikey"]
    );
    let owner = &output.metadata.owner_references.unwrap()[0];
    assert_eq!(Some(&owner.uid), t.metadata.uid.as_ref());
    assert_eq!(
        output
            .metadata
            .labels
            .unwrap()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("dc-operator")
    );
    let key = h.output_key().unwrap();
    assert!(
        h.sim
            .handle
            .apikey_rows()
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == key)
    );
    // The key is in the Secret only: not in status, not in events.
    assert!(!serde_json::to_string(&t).unwrap().contains(&key));
    let events = h
        .api
        .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS));
    assert!(!events.is_empty(), "a Ready transition publishes an event");
    assert!(!serde_json::to_string(&events).unwrap().contains(&key));

    let env = h.get_env().unwrap();
    assert_eq!(
        env.status.unwrap().client_secret_name.as_deref(),
        Some("prod-nexus-client")
    );
    let generated = h
        .api
        .get_as::<Secret>(NS, "prod-nexus-client")
        .expect("client secret generated");
    assert!(generated.data.unwrap()["client-secret"].0.len() >= 43);
    for finalizers in [env.metadata.finalizers, t.metadata.finalizers] {
        assert_eq!(finalizers.unwrap(), ["digitalchannels.dev/cleanup"]);
    }
    h.stop().await;
}

#[tokio::test]
async fn a_second_pass_writes_nothing() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    let before = h.both_ready().await;
    h.settle().await;
    let checks = h.sim.handle.snapshot().calls("nexus.get_tenant");

    // A change that is not ours (a label) triggers a full pass.
    h.tenant(|t| {
        t.metadata.labels = Some([("team".to_string(), "digital".to_string())].into());
    });
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().calls("nexus.get_tenant") > checks).then_some(())
        })
        .await
        .expect("the tenant was checked again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes: Vec<_> = h
        .api
        .writes()
        .into_iter()
        .filter(|w| w.verb != Verb::Create || w.resource != "events")
        .collect();
    assert!(
        writes.is_empty(),
        "a pass with nothing to do wrote: {writes:#?}"
    );
    let after = h.get_tenant().unwrap();
    assert_eq!(
        conditions(&after),
        conditions(&before),
        "no condition moved"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_waits_for_its_environment_then_proceeds_at_once() {
    let h = Harness::start().await;
    h.tenant(|_| {});
    let t = h
        .tenant_condition(
            "Ready",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    assert!(
        find(&conditions(&t), "Ready")
            .unwrap()
            .message
            .contains("prod")
    );
    assert_eq!(
        h.sim
            .handle
            .snapshot()
            .calls("environment.list_contact_centers"),
        0
    );
    h.env(|_| {});
    h.both_ready().await;
    h.stop().await;
}

#[tokio::test]
async fn a_missing_secret_is_waited_for_and_picked_up_when_created() {
    let h = Harness::start().await;
    h.api.delete_as::<Secret>(NS, "gws-ops");
    h.env(|_| {});
    let env = h
        .env_condition(
            "ClientRegistered",
            ConditionStatus::False,
            Some("SecretNotFound"),
        )
        .await;
    let ready = find(&env.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.reason, "SecretNotFound");
    assert!(ready.message.contains("gws-ops"));
    h.secret("gws-ops", &[("username", "ops")]);
    h.env_condition(
        "ClientRegistered",
        ConditionStatus::False,
        Some("SecretKeyMissing"),
    )
    .await;
    h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_tenant_password_is_pushed_to_nexus() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    let key = h.output_key().unwrap();
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "rotated-pw-789");
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated-pw-789")],
    );
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().updates("nexus.update_tenant") == 1).then_some(())
        })
        .await
        .expect("the Secret change reached Nexus within seconds");
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert_eq!(h.output_key(), Some(key), "the API key did not change");
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 1);
    h.stop().await;
}

/// Calls that change something in GWS or Nexus, so far.
fn upstream_writes(h: &Harness) -> u64 {
    let snapshot = h.sim.handle.snapshot();
    [
        "auth.create_client",
        "auth.update_client",
        "environment.upsert_setting",
        "nexus.register_ucs",
        "nexus.create_tenant",
        "nexus.update_tenant",
    ]
    .iter()
    .map(|op| snapshot.calls(op))
    .sum()
}

#[tokio::test]
async fn the_output_secret_is_rebuilt_when_deleted_or_edited() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    let key = h.output_key().unwrap();

    let writes_before = upstream_writes(&h);
    h.api.delete_as::<Secret>(NS, "t100-digital-channels");
    let rebuilt = h
        .api
        .wait_for(WAIT, |_| h.output_key())
        .await
        .expect("rebuilt");
    assert_eq!(rebuilt, key, "recovered from nex_apikeys");
    h.settle().await;
    assert_eq!(
        upstream_writes(&h),
        writes_before,
        "rebuilding the output Secret writes nothing upstream (the record is in status)"
    );

    h.secret(
        "t100-digital-channels",
        &[("xapikey", "tampered"), ("tenantName", "t100")],
    );
    let restored = h
        .api
        .wait_for(WAIT, |_| h.output_key().filter(|k| *k == key))
        .await;
    assert_eq!(restored, Some(key));
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 1);
    h.stop().await;
}

#[tokio::test]
async fn deletion_with_retain_leaves_nexus_alone() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.get_tenant().is_none().then_some(()))
        .await
        .expect("tenant gone");
    assert!(h.sim.handle.snapshot().tenants.contains_key(DEMO_CC_T100));
    // The output Secret going with its owner is the garbage collector's work: tests/e2e/.
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("environment gone");
    assert!(h.sim.handle.snapshot().clients.contains_key("nexus_client"));
    h.stop().await;
}

#[tokio::test]
async fn deletion_with_delete_is_blocked_by_tenants_then_cleans_up() {
    let h = Harness::start().await;
    h.env(|e| e.spec.deletion_policy = DeletionPolicy::Delete);
    h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
    h.both_ready().await;

    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    let env = h
        .env_condition("Ready", ConditionStatus::False, Some("DeletionBlocked"))
        .await;
    assert!(
        find(&env.status.unwrap().conditions, "Ready")
            .unwrap()
            .message
            .contains("t100")
    );
    assert!(h.sim.handle.snapshot().clients.contains_key("nexus_client"));

    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("environment gone");
    let state = h.sim.handle.snapshot();
    assert!(state.tenants.is_empty(), "the Nexus tenant was deleted");
    assert!(
        state.ucs_services.is_empty(),
        "the PlatformUCS service was deleted"
    );
    assert!(state.clients.is_empty(), "the OAuth client was deleted");
    assert!(
        h.sim.handle.gapis_rows().await.unwrap().is_empty(),
        "the nex_gapis row was deleted"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_with_delete_cleans_up_even_when_its_retained_environment_goes_first() {
    let h = Harness::start().await;
    h.env(|_| {}); // deletionPolicy Retain
    h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
    h.both_ready().await;

    // As `kubectl delete -f` with the environment's file before the tenant's.
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    let env = h
        .env_condition("Ready", ConditionStatus::False, Some("DeletionBlocked"))
        .await;
    let message = find(&env.status.unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("t100"), "{message}");
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("environment gone after its tenant");
    let state = h.sim.handle.snapshot();
    assert!(state.tenants.is_empty(), "the Nexus tenant was deleted");
    assert!(
        state.clients.contains_key("nexus_client"),
        "Retain: the client stays"
    );
    h.stop().await;
}

#[tokio::test]
async fn suspend_stops_external_calls() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.suspend = true);
    h.tenant_condition("Suspended", ConditionStatus::True, Some("Suspended"))
        .await;
    h.env_condition("Ready", ConditionStatus::True, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.sim
            .handle
            .snapshot()
            .calls("environment.list_contact_centers"),
        0
    );
    h.tenant(|t| t.spec.suspend = false);
    let t = h
        .tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert!(find(&conditions(&t), "Suspended").is_none());
    h.stop().await;
}

#[tokio::test]
async fn a_transient_upstream_failure_recovers_with_backoff() {
    let h = Harness::start().await;
    h.env(|_| {});
    // More failures than one pass retries (4 attempts): the condition shows it, then it recovers.
    h.sim
        .handle
        .faults()
        .fail_next("nexus.create_tenant", 6, 503);
    h.tenant(|_| {});
    h.tenant_condition(
        "TenantProvisioned",
        ConditionStatus::False,
        Some("UpstreamUnavailable"),
    )
    .await;
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let state = h.sim.handle.snapshot();
    assert_eq!(state.calls("nexus.create_tenant"), 7);
    assert_eq!(state.creates("nexus.create_tenant"), 1);
    h.stop().await;
}

/// A tenant user refused by GWS until its password is fixed in GWS itself: nothing in the
/// cluster changes, and the tenant still recovers, on its backoff.
#[tokio::test]
async fn a_failure_fixed_outside_kubernetes_is_retried_on_the_backoff() {
    let h = Harness::start().await;
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "changed-in-gws-42");
    h.env(|_| {});
    h.tenant(|_| {});
    h.tenant_condition(
        "TenantProvisioned",
        ConditionStatus::False,
        Some("Unauthorized"),
    )
    .await;
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "nexus_password");
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_sets_the_reason_and_does_not_loop() {
    let failed_passes = || {
        use digital_channels_operator::telemetry::metrics::{KindResult, metrics};
        metrics()
            .reconcile_total
            .get_or_create(&KindResult {
                kind: "DigitalChannelsTenant".to_string(),
                result: "failed".to_string(),
            })
            .get()
    };
    let failed_before = failed_passes();
    let h = Harness::start().await;
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "wrong-password-123")],
    );
    h.env(|_| {});
    h.tenant(|_| {});
    let t = h
        .tenant_condition(
            "TenantProvisioned",
            ConditionStatus::False,
            Some("Unauthorized"),
        )
        .await;
    let ready = find(&conditions(&t), "Ready").unwrap().clone();
    assert_eq!(ready.reason, "Unauthorized");
    // Counted once the pass returns, just after its status write.
    let counted = h
        .api
        .wait_for(WAIT, |_| (failed_passes() > failed_before).then_some(()))
        .await;
    assert!(
        counted.is_some(),
        "a pass that leaves the tenant not Ready counts as failed"
    );
    // The refused token grant: on TenantProvisioned, and so named in the metric.
    assert_eq!(
        find(&conditions(&t), "TenantProvisioned").unwrap().reason,
        "Unauthorized"
    );
    let failures = {
        use digital_channels_operator::telemetry::metrics::{StepFailure, metrics};
        metrics()
            .step_failures_total
            .get_or_create(&StepFailure {
                kind: "DigitalChannelsTenant".to_string(),
                step: "TenantProvisioned".to_string(),
                reason: "Unauthorized".to_string(),
            })
            .get()
    };
    assert!(failures > 0, "step_failures_total names the condition");
    assert!(ready.message.contains("t100-user"), "{}", ready.message);
    assert!(
        !serde_json::to_string(&t)
            .unwrap()
            .contains("wrong-password-123")
    );
    // What GWS refuses may be fixed there, out of the operator's sight: it tries again on
    // the resource's backoff (100 ms doubling to 1 s here), never in a hot loop.
    h.settle().await;
    let tokens = h.sim.handle.snapshot().calls("auth.token");
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let retries = h.sim.handle.snapshot().calls("auth.token") - tokens;
    // Each retry is one token request; at most one per 0.8 s (1 s, jittered by -20 %).
    let bound = (window.as_secs_f64() / 0.8).floor() as u64 + 1;
    assert!(
        (1..=bound).contains(&retries),
        "{retries} token requests in {window:?}: a retry on the backoff, at most {bound}"
    );
    // Fixing the Secret is enough: it is watched.
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "nexus_password")],
    );
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_is_a_condition() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.contact_center_id = Some("not-a-uuid".into()));
    let t = h
        .tenant_condition("Ready", ConditionStatus::False, Some("InvalidSpec"))
        .await;
    assert!(
        find(&conditions(&t), "Ready")
            .unwrap()
            .message
            .contains("UUID")
    );
    h.stop().await;
}

fn nexus_deployment() -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nexus", "namespace": NS, "generation": 1},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nexus"}},
                 "template": {"metadata": {"labels": {"app": "nexus"}}, "spec": {"containers": []}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    }))
    .unwrap()
}

fn restarted_at(h: &Harness) -> Option<String> {
    h.api
        .get_as::<Deployment>(NS, "nexus")?
        .spec?
        .template
        .metadata?
        .annotations?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

#[tokio::test]
async fn an_owed_nexus_restart_survives_a_failed_write() {
    let h = Harness::start_with(SimulatorConfig {
        gapis_cache: true,
        ..SimulatorConfig::default()
    })
    .await;
    h.api.apply_as(&nexus_deployment());
    // The pass that inserts the nex_gapis row fails at its next Kubernetes write.
    h.api
        .fail_next(Verb::Patch, "digitalchannelsenvironments", 500);
    h.env(|e| {
        e.spec.nexus_deployment =
            Some(serde_json::from_value(serde_json::json!({"name": "nexus"})).unwrap())
    });
    h.env_condition("NexusRestarted", ConditionStatus::False, Some("RollingOut"))
        .await;
    assert!(restarted_at(&h).is_some(), "the owed restart happened");
    h.stop().await;
}

#[tokio::test]
async fn nexus_is_restarted_before_tenants_proceed() {
    // Nexus sees nex_gapis only after a restart: a tenant provisioned before it would fail.
    let h = Harness::start_with(SimulatorConfig {
        gapis_cache: true,
        ..SimulatorConfig::default()
    })
    .await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nexus", "namespace": NS, "generation": 1},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nexus"}},
                 "template": {"metadata": {"labels": {"app": "nexus"}}, "spec": {"containers": []}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    }))
    .unwrap();
    h.api.apply_as(&deployment);
    h.env(|e| {
        e.spec.nexus_deployment =
            Some(serde_json::from_value(serde_json::json!({"name": "nexus"})).unwrap())
    });
    h.tenant(|_| {});
    h.env_condition("NexusRestarted", ConditionStatus::False, Some("RollingOut"))
        .await;
    let restarted = h
        .api
        .wait_for(WAIT, |api| {
            let d = api.get_as::<Deployment>(NS, "nexus")?;
            d.spec?
                .template
                .metadata?
                .annotations?
                .get("kubectl.kubernetes.io/restartedAt")
                .cloned()
        })
        .await;
    assert!(restarted.is_some(), "the Deployment was restarted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.sim.handle.snapshot().calls("nexus.create_tenant"),
        0,
        "tenants wait for the rollout"
    );

    // The new pods come up: Nexus reloads nex_gapis and the rollout completes.
    h.sim.handle.restart_nexus().await;
    let mut rolled = h.api.get_as::<Deployment>(NS, "nexus").unwrap();
    let generation = rolled.metadata.generation.unwrap_or(1) + 1;
    rolled.metadata.generation = Some(generation);
    rolled.status.as_mut().unwrap().observed_generation = Some(generation);
    h.api.apply_as(&rolled);
    h.env_condition("NexusRestarted", ConditionStatus::True, Some("RolledOut"))
        .await;
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let state = h.sim.handle.snapshot();
    assert_eq!(
        state.calls("nexus.create_tenant"),
        1,
        "provisioned once, after the restart"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_designer_env_step_waits_for_its_acknowledgement() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.tenant_condition(
        "DesignerEnvConfigured",
        ConditionStatus::False,
        Some("ManualStepRequired"),
    )
    .await;
    h.tenant(|t| {
        t.metadata.annotations = Some(
            [(
                "digitalchannels.dev/designer-env-configured".to_string(),
                "true".to_string(),
            )]
            .into(),
        );
    });
    let t = h
        .tenant_condition(
            "DesignerEnvConfigured",
            ConditionStatus::True,
            Some("Acknowledged"),
        )
        .await;
    assert_eq!(
        find(&conditions(&t), "Ready").unwrap().status,
        ConditionStatus::True
    );
    h.stop().await;
}

#[tokio::test]
async fn a_cleanup_that_can_never_succeed_lets_go_with_a_warning() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
    h.both_ready().await;
    // The tenant user's Secret goes first (as `kubectl delete -f examples/` does): no token,
    // so the Nexus tenant can never be deleted.
    h.api.delete_as::<Secret>(NS, "t100-user");
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.get_tenant().is_none().then_some(()))
        .await
        .expect("the tenant does not hang");
    let events = serde_json::to_string(
        &h.api
            .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS)),
    )
    .unwrap();
    assert!(events.contains("CleanupSkipped"), "{events}");
    assert!(
        h.sim.handle.snapshot().tenants.contains_key(DEMO_CC_T100),
        "left in place, as the event says"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_output_secret_that_is_not_ours_is_refused() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.output_secret_name = Some("t100-user".into()));
    let t = h
        .tenant_condition(
            "TenantProvisioned",
            ConditionStatus::False,
            Some("Conflict"),
        )
        .await;
    assert!(
        find(&conditions(&t), "Ready")
            .unwrap()
            .message
            .contains("outputSecretName")
    );
    let credentials = h.api.get_as::<Secret>(NS, "t100-user").unwrap();
    assert!(
        !credentials.data.unwrap().contains_key("xapikey"),
        "the credentials Secret is untouched"
    );
    assert_eq!(
        h.sim.handle.snapshot().calls("nexus.create_tenant"),
        0,
        "checked before the create: no key made that could not be kept"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_key_whose_output_secret_write_failed_is_kept_and_written_later() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    // The output Secret cannot be written right after the create.
    for _ in 0..3 {
        h.api.fail_next(Verb::Patch, "secrets", 500);
    }
    h.tenant(|_| {});
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().creates("nexus.create_tenant") == 1).then_some(())
        })
        .await
        .expect("created");
    // Nexus's table cannot give the key back either (another schema, a lag).
    sqlx::query("DELETE FROM nex_apikeys WHERE name = 't100'")
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let key = h.output_key().expect("written at last");
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 1);
    assert!(!key.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_second_tenant_for_the_same_contact_center_or_name_is_refused_naming_the_first() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    let key = h.output_key().unwrap();

    // The same contact center (by id, where t100 used its domain), another name.
    let mut twin = tenant("twin", "t100", false);
    twin.metadata.uid = None;
    twin.spec.contact_center_domain = None;
    twin.spec.contact_center_id = Some(DEMO_CC_T100.to_string());
    twin.spec.tenant_name = "twin".to_string();
    twin.spec.credentials_secret.name = "t100-user".to_string();
    // Another contact center, the same tenant name.
    let mut namesake = tenant("namesake", "t200", false);
    namesake.metadata.uid = None;
    namesake.spec.tenant_name = "t100".to_string();
    namesake.spec.credentials_secret.name = "t200-user".to_string();
    for t in [&twin, &namesake] {
        h.api.apply_as(t);
    }
    for (name, what) in [("twin", "contact center"), ("namesake", "tenant name t100")] {
        let refused = h
            .api
            .wait_for(WAIT, |api| {
                let t = api.get_as::<DigitalChannelsTenant>(NS, name)?;
                let ready = find(&t.status.as_ref()?.conditions, "Ready")?.clone();
                (ready.reason == "Conflict").then_some(ready)
            })
            .await
            .unwrap_or_else(|| panic!("{name} was not refused"));
        assert_eq!(refused.status, ConditionStatus::False);
        assert!(
            refused.message.contains("DigitalChannelsTenant dc/t100"),
            "{}",
            refused.message
        );
        assert!(refused.message.contains(what), "{}", refused.message);
        assert!(
            h.api
                .get_as::<Secret>(NS, &format!("{name}-digital-channels"))
                .is_none()
        );
    }
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(
        snapshot.creates("nexus.create_tenant"),
        1,
        "no second Nexus tenant"
    );
    assert_eq!(h.output_key(), Some(key), "the first keeps its key");
    let first = conditions(&h.get_tenant().unwrap());
    assert_eq!(find(&first, "Ready").unwrap().status, ConditionStatus::True);
    h.stop().await;
}

#[tokio::test]
async fn a_second_environment_for_the_same_client_is_refused_naming_the_first() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let updates = h.sim.handle.snapshot().calls("auth.update_client");

    let mut second = environment(&h.sim.url());
    second.metadata.uid = None;
    second.metadata.name = Some("prod-copy".to_string());
    second.spec.client.secret = None;
    h.api.apply_as(&second);
    let refused = h
        .api
        .wait_for(WAIT, |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod-copy")?;
            let ready = find(&e.status.as_ref()?.conditions, "Ready")?.clone();
            (ready.reason == "Conflict").then_some(ready)
        })
        .await
        .expect("the second environment is refused");
    assert!(
        refused
            .message
            .contains("DigitalChannelsEnvironment dc/prod")
            && refused.message.contains("nexus_client"),
        "{}",
        refused.message
    );
    h.settle().await;
    assert_eq!(
        h.sim.handle.snapshot().calls("auth.update_client"),
        updates,
        "the first environment's client is left alone"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_waits_while_a_rotated_client_secret_is_not_pushed_yet() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;

    // The environment's pass hangs at GWS Auth, so the rotated secret is not pushed yet.
    for op in ["auth.list_clients", "auth.get_client"] {
        h.sim.handle.faults().timeout_next(op, 100);
    }
    h.secret(
        "prod-nexus-client",
        &[("client-secret", "a-rotated-client-secret-of-enough-length")],
    );
    // Meanwhile something makes the tenant reconcile.
    h.tenant(|t| {
        t.metadata.labels = Some([("touched".to_string(), "1".to_string())].into());
    });
    // The tenant's own effects hold (its key still works with Nexus): it stays Ready, and
    // says what it waits for in a condition of its own.
    let t = h
        .tenant_condition(
            "EnvironmentReady",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    let waiting = find(&conditions(&t), "EnvironmentReady").unwrap().clone();
    assert!(
        waiting.message.contains("client secret"),
        "{}",
        waiting.message
    );
    assert_eq!(
        find(&conditions(&t), "Ready").map(|c| c.status),
        Some(ConditionStatus::True)
    );
    assert!(
        find(&conditions(&t), "TenantProvisioned").is_none_or(|c| c.reason != "Unauthorized"),
        "no token grant with a secret GWS Auth does not hold yet"
    );

    // Once pushed, the tenant uses its environment again at once.
    h.sim.handle.faults().clear();
    h.tenant_condition("EnvironmentReady", ConditionStatus::True, None)
        .await;
    h.stop().await;
}

/// Crash matrix, Kubernetes writes: the output Secret was written but the status write never
/// happened (the process died in between). A new process converges without a single
/// upstream write and with the same key.
#[tokio::test]
async fn crash_matrix_status_write_lost_then_a_new_process_converges() {
    let mut h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    let key = h.output_key().unwrap();
    let writes = upstream_writes(&h);

    // Both status writes lost: as if neither resource had ever recorded anything.
    h.task.abort();
    for (plural, name) in [
        ("digitalchannelstenants", "t100"),
        ("digitalchannelsenvironments", "prod"),
    ] {
        let resource = ResourceKey::new("digitalchannels.dev", "v1alpha1", plural);
        let mut object = h
            .api
            .objects(&resource, Some(NS))
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap();
        object.as_object_mut().unwrap().remove("status");
        h.api.insert(&resource, object);
    }
    h.restart_operator().await;
    h.both_ready().await;
    h.settle().await;
    assert_eq!(h.output_key(), Some(key), "the same key");
    assert_eq!(
        upstream_writes(&h),
        writes,
        "nothing written upstream again"
    );
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(snapshot.creates("nexus.create_tenant"), 1);
    assert_eq!(snapshot.creates("auth.create_client"), 1);
    h.stop().await;
}

/// 50 tenants created at once on one environment while its client secret rotates: the
/// shared steps run once, every tenant is provisioned once, no status update is lost.
#[tokio::test]
async fn fifty_tenants_at_once_while_the_client_secret_rotates() {
    const N: usize = 50;
    let h = Harness::start_with(SimulatorConfig {
        seed: digital_channels_operator::simulator::Seed::with_contact_centers(N),
        ..SimulatorConfig::default()
    })
    .await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    for i in 0..N {
        let mut t = tenant(&format!("cc{i}"), &format!("cc{i}"), false);
        t.metadata.uid = None;
        t.spec.credentials_secret.name = "t100-user".to_string();
        h.api.apply_as(&t);
        if i == N / 2 {
            h.secret(
                "prod-nexus-client",
                &[("client-secret", "a-rotated-client-secret-of-enough-length")],
            );
        }
    }
    let ready = h
        .api
        .wait_for(Duration::from_secs(120), |api| {
            let tenants = api.objects(&ResourceKey::of::<DigitalChannelsTenant>(), Some(NS));
            let ready = tenants
                .iter()
                .filter(|t| {
                    t["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    }) && t["status"]["contactCenterId"].is_string()
                })
                .count();
            (ready == N).then_some(ready)
        })
        .await;
    assert_eq!(ready, Some(N), "every tenant Ready with its status");
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(
        snapshot.creates("auth.create_client"),
        1,
        "the client, once"
    );
    assert_eq!(
        h.sim.handle.gapis_rows().await.unwrap().len(),
        1,
        "one nex_gapis row"
    );
    assert_eq!(
        snapshot.creates("nexus.create_tenant"),
        N as u64,
        "each tenant once"
    );
    assert_eq!(snapshot.tenants.len(), N);
    assert!(
        snapshot.clients["nexus_client"].secret_matches("a-rotated-client-secret-of-enough-length"),
        "the rotation reached GWS Auth"
    );
    assert_eq!(
        snapshot.calls("nexus.update_tenant"),
        0,
        "a rotation is not a password change"
    );
    let keys: std::collections::BTreeSet<String> = (0..N)
        .map(|i| {
            let s = h
                .api
                .get_as::<Secret>(NS, &format!("cc{i}-digital-channels"))
                .unwrap();
            String::from_utf8(s.data.unwrap()["xapikey"].0.clone()).unwrap()
        })
        .collect();
    assert_eq!(keys.len(), N, "every tenant its own key");
    h.stop().await;
}

/// The cost of provisioning one tenant on a Ready environment: one pass, so each upstream
/// operation once, and at most three Kubernetes API writes (finalizer, output Secret,
/// status) plus two events. The operator's own writes trigger no second pass.
#[tokio::test]
async fn provisioning_takes_one_pass_and_three_writes() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    let before = h.sim.handle.snapshot();
    h.api.clear_writes();
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    h.settle_from_here().await;

    let after = h.sim.handle.snapshot();
    for op in [
        "environment.list_contact_centers",
        "environment.list_settings",
        "environment.upsert_setting",
        "nexus.register_ucs",
        "nexus.get_tenant",
        "nexus.create_tenant",
    ] {
        assert_eq!(after.calls(op) - before.calls(op), 1, "{op}: once");
    }
    let writes = h.writes_since_apply();
    let (events, others): (Vec<_>, Vec<_>) =
        writes.into_iter().partition(|w| w.resource == "events");
    assert!(
        others.len() <= 3,
        "at most 3 writes to provision: {others:#?}"
    );
    assert!(events.len() <= 2, "at most 2 events: {events:#?}");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Bad input only the controllers can judge: docs/guarantees.md's table "Bad input: judged by the
// controllers" is this list.
// ---------------------------------------------------------------------------------------------

/// `digitalchannels.dev/reconcile-requested-at` asks for a pass now: one per value, echoed in
/// `status.lastHandledReconcileAt`. The pass reads its environment from the cache.
#[tokio::test]
async fn a_reconcile_request_runs_one_pass_per_value() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    let checks = || h.sim.handle.snapshot().calls("nexus.get_tenant");
    let before = checks();
    let environment_reads = h.api.requests_of(Verb::Get, "digitalchannelsenvironments");
    let request = |value: &str| {
        h.tenant(|t| {
            t.metadata.annotations = Some(
                [(
                    "digitalchannels.dev/reconcile-requested-at".to_string(),
                    value.to_string(),
                )]
                .into(),
            );
        })
    };
    request("2026-12-02T00:00:00Z");
    h.api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, "t100")?;
            (t.status?.last_handled_reconcile_at.as_deref() == Some("2026-12-02T00:00:00Z"))
                .then_some(())
        })
        .await
        .expect("the request is echoed in status");
    assert_eq!(checks(), before + 1, "one pass for the request");
    assert_eq!(
        h.api.requests_of(Verb::Get, "digitalchannelsenvironments"),
        environment_reads,
        "the pass read its environment from the cache"
    );
    h.settle().await;
    request("2026-12-02T00:00:00Z");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(checks(), before + 1, "the same value again: no pass");
    h.stop().await;
}

/// A suspended tenant keeps its last Ready only while what Ready claims still holds in the
/// cluster: with its output Secret gone, Ready turns False (reason Suspended), with no
/// external call.
#[tokio::test]
async fn a_suspended_tenant_whose_output_secret_is_gone_is_not_ready() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.tenant(|t| t.spec.suspend = true);
    h.tenant_condition("Suspended", ConditionStatus::True, Some("Suspended"))
        .await;
    h.settle().await;
    let calls: u64 = h.sim.handle.snapshot().calls.values().sum();
    assert!(h.api.delete_as::<Secret>(NS, "t100-digital-channels"));
    let t = h
        .tenant_condition("Ready", ConditionStatus::False, Some("Suspended"))
        .await;
    let ready = find(&conditions(&t), "Ready").unwrap().clone();
    assert!(
        ready.message.contains("t100-digital-channels"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("resume"), "{}", ready.message);
    assert_eq!(
        h.sim.handle.snapshot().calls.values().sum::<u64>(),
        calls,
        "no external call"
    );
    h.tenant(|t| t.spec.suspend = false);
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert!(h.output_key().is_some(), "rebuilt on resume");
    h.stop().await;
}

/// The client's redirect URIs follow `nexusUrl`: changing it and back leaves one URI, not a
/// growing list.
#[tokio::test]
async fn redirect_uris_follow_the_nexus_url_and_do_not_pile_up() {
    let h = Harness::start().await;
    let first = h.sim.url();
    let second = first.replace("127.0.0.1", "localhost");
    let redirects = || {
        h.sim.handle.snapshot().clients["nexus_client"]
            .redirect_uris
            .clone()
    };
    let ready_at = |generation: i64| {
        h.api.wait_for(WAIT, move |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
            let s = e.status?;
            (s.observed_generation == Some(generation)
                && find(&s.conditions, "Ready")?.status == ConditionStatus::True)
                .then_some(())
        })
    };
    h.env(|_| {});
    ready_at(1).await.expect("Ready");
    assert_eq!(redirects(), std::slice::from_ref(&first));
    h.env(|e| {
        e.metadata.generation = Some(2);
        e.spec.nexus_url = second.clone();
    });
    ready_at(2).await.expect("Ready with the new nexusUrl");
    assert_eq!(
        redirects(),
        std::slice::from_ref(&second),
        "the old URI replaced"
    );
    h.env(|e| {
        e.metadata.generation = Some(3);
        e.spec.nexus_url = first.clone();
    });
    ready_at(3)
        .await
        .expect("Ready with the first nexusUrl again");
    assert_eq!(redirects(), [first], "one URI, not a growing list");
    h.stop().await;
}

/// A missing database Secret shows on the condition of the step that needs the database.
#[tokio::test]
async fn a_missing_database_secret_shows_on_gapi_registered() {
    let h = Harness::start().await;
    h.env(|e| e.spec.database.url_secret.name = "no-such-db-secret".into());
    let env = h
        .env_condition(
            "GapiRegistered",
            ConditionStatus::False,
            Some("SecretNotFound"),
        )
        .await;
    let ready = find(&env.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert!(
        ready.message.starts_with("GapiRegistered:"),
        "{}",
        ready.message
    );
    h.stop().await;
}

/// Every log line of the test binary, as JSON with its spans: set once, for the tests that
/// read what the controllers log.
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    use tracing_subscriber::fmt::MakeWriter;
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Shared {
        type Writer = Shared;
        fn make_writer(&'a self) -> Shared {
            self.clone()
        }
    }
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(Shared(logs.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
    .clone()
}

/// A deprovisioning is logged at INFO, naming the tenant, with the event's words.
#[tokio::test]
async fn a_deprovisioning_is_logged_as_well_as_evented() {
    let logs = captured_logs();
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
    h.both_ready().await;
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.get_tenant().is_none().then_some(()))
        .await
        .expect("the tenant is deleted");
    let said = format!("Deleted the Nexus tenant {DEMO_CC_T100} and its PlatformUCS service.");
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains(&said))
        .unwrap_or_else(|| panic!("no {said:?} logged:\n{logs}"));
    assert!(line.contains(r#""level":"INFO""#), "{line}");
    assert!(
        line.contains(r#""resource":"t100""#) && line.contains(&format!(r#""namespace":"{NS}""#)),
        "{line}"
    );
    let events = serde_json::to_string(
        &h.api
            .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS)),
    )
    .unwrap();
    assert!(events.contains(&said), "{events}");
    h.stop().await;
}

/// An annotation that takes "true" set to anything else is reported, not ignored: on the
/// tenant in the DesignerEnvConfigured condition, on the environment in a Warning event.
#[tokio::test]
async fn an_annotation_value_other_than_true_is_reported() {
    let h = Harness::start().await;
    let annotate = |name: &str, value: &str| Some([(name.to_string(), value.to_string())].into());
    h.env(|e| e.metadata.annotations = annotate("digitalchannels.dev/take-over-client", "yes"));
    h.tenant(|t| {
        t.metadata.annotations = annotate("digitalchannels.dev/designer-env-configured", "yes");
    });
    let t = h.both_ready().await;
    let conditions = conditions(&t);
    let designer = find(&conditions, "DesignerEnvConfigured").unwrap();
    assert_eq!(designer.reason, "ManualStepRequired");
    assert!(
        designer.message.starts_with(
            r#"The annotation digitalchannels.dev/designer-env-configured is "yes", which is not understood: only "true" is."#
        ),
        "{}",
        designer.message
    );
    let events_of = ResourceKey::new("events.k8s.io", "v1", "events");
    let event = h
        .api
        .wait_for(WAIT, |api| {
            api.objects(&events_of, Some(NS))
                .into_iter()
                .find(|e| e["reason"] == "AnnotationNotUnderstood")
        })
        .await
        .expect("an AnnotationNotUnderstood event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "DigitalChannelsEnvironment");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains(r#"digitalchannels.dev/take-over-client is "yes", which is not understood"#),
        "{note}"
    );
    h.stop().await;
}
