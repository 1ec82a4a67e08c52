//! `managementPolicy: Observe` through both controllers (watches, status, finalizers) against
//! the in-memory API server, the simulator and PostgreSQL: no write request reaches the
//! simulator, the conditions say InSync, Drifted or Missing, deletion leaves everything
//! upstream whatever `deletionPolicy` says, and the switch back to Manage writes exactly what
//! was announced.

mod common;

use common::by_hand::{HAND_DESCRIPTION, HAND_SECRET, HandPlace, HandTenant, enable_by_hand};
use common::operator::{Harness, NS, WAIT, conditions};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::environment::DeploymentRef;
use digital_channels_operator::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, ManagementPolicy,
};
use digital_channels_operator::simulator::DEMO_CC_T100;
use k8s_openapi::api::core::v1::Secret;

const OBSERVE: ManagementPolicy = ManagementPolicy::Observe;

/// The requests that write (a token grant is a look), as `METHOD path`, since `from`.
fn writes_since(h: &Harness, from: usize) -> Vec<String> {
    let requests = h.sim.handle.requests();
    requests[from..]
        .iter()
        .filter(|r| r.method != "GET" && r.path != "/auth/v3/oauth/token")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn reason_of(conditions: &[digital_channels_operator::api::Condition], type_: &str) -> String {
    let c = find(conditions, type_).unwrap_or_else(|| panic!("no {type_}: {conditions:#?}"));
    format!("{:?}/{}", c.status, c.reason)
}

#[tokio::test]
async fn observed_in_sync_both_kinds_are_ready_and_nothing_is_written_upstream() {
    let h = Harness::start().await;
    h.env(|e| e.spec.deletion_policy = DeletionPolicy::Delete);
    h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
    h.both_ready().await;
    h.settle().await;
    let from = h.sim.handle.requests().len();

    h.env(|e| {
        e.spec.management_policy = OBSERVE;
        e.spec.deletion_policy = DeletionPolicy::Delete;
    });
    h.tenant(|t| {
        t.spec.management_policy = OBSERVE;
        t.spec.deletion_policy = DeletionPolicy::Delete;
    });
    let env = h
        .env_condition("Ready", ConditionStatus::True, Some("InSync"))
        .await;
    let t = h
        .tenant_condition("Ready", ConditionStatus::True, Some("InSync"))
        .await;
    let env_conditions = env.status.unwrap().conditions;
    for type_ in ["ClientRegistered", "ClientVerified", "GapiRegistered"] {
        assert_eq!(reason_of(&env_conditions, type_), "True/InSync", "{type_}");
    }
    for type_ in [
        "ContactCenterResolved",
        "ChatServiceRegistered",
        "UcsRegistered",
        "TenantProvisioned",
    ] {
        assert_eq!(reason_of(&conditions(&t), type_), "True/InSync", "{type_}");
    }
    h.settle().await;
    assert_eq!(writes_since(&h, from), Vec::<String>::new());

    // Deleting them leaves everything upstream, though deletionPolicy says Delete.
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    h.api
        .wait_for(WAIT, |_| {
            (h.get_tenant().is_none() && h.get_env().is_none()).then_some(())
        })
        .await
        .expect("both gone, their finalizers removed");
    assert_eq!(writes_since(&h, from), Vec::<String>::new());
    let state = h.sim.handle.snapshot();
    assert!(state.tenants.contains_key(DEMO_CC_T100));
    assert!(state.ucs_services.contains_key(DEMO_CC_T100));
    assert!(state.clients.contains_key("nexus_client"));
    assert_eq!(h.sim.handle.gapis_rows().await.unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn observe_then_manage_in_sync_writes_nothing() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.env(|e| e.spec.management_policy = OBSERVE);
    h.tenant(|t| t.spec.management_policy = OBSERVE);
    h.tenant_condition("Ready", ConditionStatus::True, Some("InSync"))
        .await;
    h.settle().await;
    let from = h.sim.handle.requests().len();

    h.env(|_| {});
    h.tenant(|_| {});
    h.env_condition("Ready", ConditionStatus::True, Some("Provisioned"))
        .await;
    h.tenant_condition("Ready", ConditionStatus::True, Some("Provisioned"))
        .await;
    h.settle().await;
    assert_eq!(writes_since(&h, from), Vec::<String>::new());
    h.stop().await;
}

/// A GWS and Nexus set up by hand, observed: the client secret is not generated (the
/// Secret is Missing, with what to supply); once supplied, the client's description is the
/// one drift, Nexus is not restarted, and nothing is written. Switched to Manage, the
/// description is the one write.
#[tokio::test]
async fn an_environment_enabled_by_hand_is_observed_then_taken_over_with_the_announced_write() {
    let h = Harness::start().await;
    let rb = common::runbook();
    let hand = [HandTenant {
        name: "t100",
        contact_center_id: DEMO_CC_T100,
        ucs: true,
    }];
    let url = h.sim.url();
    let place = HandPlace {
        base_url: &url,
        gws_url: &format!("{url}/gws"),
        database_url: &h.sim.db.url,
    };
    enable_by_hand(&rb, &place, &hand).await;
    let from = h.sim.handle.requests().len();
    let with_deployment = |e: &mut DigitalChannelsEnvironment| {
        e.spec.nexus_deployment = Some(DeploymentRef {
            name: "nexus".into(),
            namespace: None,
        });
    };
    h.env(|e| {
        e.spec.management_policy = OBSERVE;
        with_deployment(e);
    });
    let env = h
        .env_condition("ClientRegistered", ConditionStatus::False, Some("Missing"))
        .await;
    let missing = find(&env.status.unwrap().conditions, "ClientRegistered")
        .unwrap()
        .message
        .clone();
    assert!(missing.contains("prod-nexus-client"), "{missing}");
    assert!(
        h.api.get_as::<Secret>(NS, "prod-nexus-client").is_none(),
        "not generated"
    );

    h.secret("prod-nexus-client", &[("client-secret", HAND_SECRET)]);
    let env = h
        .env_condition("ClientRegistered", ConditionStatus::False, Some("Drifted"))
        .await;
    let status = env.status.unwrap();
    let said = find(&status.conditions, "ClientRegistered")
        .unwrap()
        .message
        .clone();
    assert!(
        said.contains(HAND_DESCRIPTION) && !said.contains(HAND_SECRET),
        "{said}"
    );
    for (type_, expected) in [
        ("ClientVerified", "True/InSync"),
        ("GapiRegistered", "True/InSync"),
        ("NexusRestarted", "True/InSync"),
        ("Ready", "False/Drifted"),
        // kstatus: nothing changes until a person acts (upstream, or the switch to Manage).
        ("Stalled", "True/Drifted"),
        ("Reconciling", "False/Drifted"),
    ] {
        assert_eq!(reason_of(&status.conditions, type_), expected, "{type_}");
    }
    assert_eq!(status.managed_client_id, None, "observed, not claimed");
    h.settle().await;
    assert_eq!(writes_since(&h, from), Vec::<String>::new());

    h.env(with_deployment);
    // Ready needs NexusRestarted: a restart tried would fail (there is no Deployment here).
    let env = h
        .env_condition("Ready", ConditionStatus::True, Some("Provisioned"))
        .await;
    let restarted = reason_of(&env.status.unwrap().conditions, "NexusRestarted");
    assert_eq!(restarted, "True/UpToDate");
    h.settle().await;
    assert_eq!(
        writes_since(&h, from),
        ["PUT /auth/v3/ops/clients/nexus_client"],
        "the description only: no create, no restart of Nexus for a row it did not change"
    );
    h.stop().await;
}

/// A team's first look at an estate enabled by hand: the environment and its tenants observed
/// at once. The environment's one drift (the client's description, which only Manage sets)
/// must not hold its tenants back: the client secret is verified and the row is in place,
/// which is all a tenant needs. Every key lands in its Secret, nothing is written upstream.
#[tokio::test]
async fn an_estate_enabled_by_hand_is_observed_whole_before_any_switch() {
    let h = Harness::start().await;
    let rb = common::runbook();
    let hand = [HandTenant {
        name: "t100",
        contact_center_id: DEMO_CC_T100,
        ucs: false,
    }];
    let url = h.sim.url();
    let place = HandPlace {
        base_url: &url,
        gws_url: &format!("{url}/gws"),
        database_url: &h.sim.db.url,
    };
    enable_by_hand(&rb, &place, &hand).await;
    let from = h.sim.handle.requests().len();
    h.secret("prod-nexus-client", &[("client-secret", HAND_SECRET)]);
    h.env(|e| e.spec.management_policy = OBSERVE);
    h.tenant(|t| t.spec.management_policy = OBSERVE);
    h.env_condition("ClientRegistered", ConditionStatus::False, Some("Drifted"))
        .await;
    let t = h
        .tenant_condition("Ready", ConditionStatus::True, Some("InSync"))
        .await;
    assert_eq!(
        reason_of(&conditions(&t), "TenantProvisioned"),
        "True/InSync"
    );
    assert!(
        h.output_key().is_some(),
        "the key found lands in the output Secret"
    );
    h.settle().await;
    assert_eq!(writes_since(&h, from), Vec::<String>::new());
    h.stop().await;
}
