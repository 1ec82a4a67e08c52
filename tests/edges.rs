//! Identity and lifecycle at the edges (issue 15): no resource acts on, or deletes, what
//! another owns; a deletion during the first create does not leak; a stale cache, a long
//! name, a transient read or a deleted resource without a finalizer leaves nothing wrong.
//! Each test failed before its fix.

mod common;

use std::time::Duration;

use common::fake_apiserver::{ResourceKey, Verb};
use common::operator::{Harness, NS, WAIT, conditions};
use common::{http_config, tenant};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{DeletionPolicy, DigitalChannelsTenant};
use digital_channels_operator::runbook::tenant::api_key_digest;
use digital_channels_operator::secret::SecretString;
use digital_channels_operator::simulator::DEMO_CC_T100;
use digital_channels_operator::upstream::gws_auth::Grant;
use digital_channels_operator::upstream::{GwsAuthApi, GwsAuthClient, HttpClient};
use digital_channels_operator::upstream::{NexusApi, NexusClient};
use k8s_openapi::api::core::v1::Secret;

const KIND: &str = "DigitalChannelsTenant";

/// A second tenant `name`, by domain, with its own user Secret (a copy of t100's).
fn second_tenant(
    h: &Harness,
    name: &str,
    domain: &str,
    tenant_name: &str,
) -> DigitalChannelsTenant {
    h.secret(
        &format!("{name}-user"),
        &[("username", "nexus"), ("password", "nexus_password")],
    );
    let mut t = tenant(name, domain, true);
    t.metadata.uid = None;
    t.spec.tenant_name = tenant_name.to_string();
    t.spec.deletion_policy = DeletionPolicy::Delete;
    t
}

async fn ready_reason(h: &Harness, name: &str) -> String {
    h.api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, name)?;
            let ready = find(&t.status.as_ref()?.conditions, "Ready")?;
            (ready.reason != "Pending" && ready.reason != "WaitingForEnvironment")
                .then(|| ready.reason.clone())
        })
        .await
        .unwrap_or_else(|| panic!("{name} never settled"))
}

#[tokio::test]
async fn a_tenant_naming_a_claimed_contact_center_by_another_domain_writes_and_deletes_nothing() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| {
        t.spec.contact_center_domain = None;
        t.spec.contact_center_id = Some(DEMO_CC_T100.to_string());
        t.spec.ucs = None;
    });
    h.both_ready().await;
    let key = h.output_key().unwrap();

    // The same contact center by its domain in other letter case, another tenant name,
    // PlatformUCS on and deletionPolicy Delete.
    h.api.apply_as(&second_tenant(&h, "rival", "T100", "rival"));
    assert_eq!(ready_reason(&h, "rival").await, "Conflict");
    let rival = h.api.get_as::<DigitalChannelsTenant>(NS, "rival").unwrap();
    let resolved = find(&conditions(&rival), "ContactCenterResolved")
        .unwrap()
        .clone();
    assert_eq!(resolved.reason, "Conflict");
    assert!(
        resolved.message.contains("DigitalChannelsTenant dc/t100"),
        "{}",
        resolved.message
    );
    assert!(rival.metadata.finalizers.unwrap_or_default().is_empty());
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(
        snapshot.calls("nexus.register_ucs"),
        0,
        "no PlatformUCS on t100's contact center"
    );
    assert_eq!(snapshot.creates("nexus.create_tenant"), 1);

    h.api.delete_as::<DigitalChannelsTenant>(NS, "rival");
    h.api
        .wait_for(WAIT, |api| {
            api.get_as::<DigitalChannelsTenant>(NS, "rival")
                .is_none()
                .then_some(())
        })
        .await
        .expect("the rival is gone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(snapshot.deletes("nexus.delete_tenant"), 0);
    assert_eq!(snapshot.calls("nexus.delete_ucs"), 0);
    assert!(
        snapshot.tenants.contains_key(DEMO_CC_T100),
        "t100's Nexus tenant stays"
    );
    assert_eq!(h.output_key(), Some(key), "t100 keeps its key");
    h.stop().await;
}

#[tokio::test]
async fn two_new_tenants_resolving_to_one_contact_center_at_once_create_one_nexus_tenant() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let a = second_tenant(&h, "first", "t100", "first");
    let b = second_tenant(&h, "second", "T100", "second");
    h.api.apply_as(&a);
    h.api.apply_as(&b);
    let reasons = [
        ready_reason(&h, "first").await,
        ready_reason(&h, "second").await,
    ];
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(sorted, ["Conflict", "Provisioned"], "{reasons:?}");
    let snapshot = h.sim.handle.snapshot();
    assert_eq!(snapshot.creates("nexus.create_tenant"), 1);
    assert!(snapshot.calls("nexus.register_ucs") <= 1);
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_deleted_while_its_first_create_is_in_flight_is_cleaned_up() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    // The create reaches Nexus, then its answer never comes (the client gives up).
    h.sim
        .handle
        .faults()
        .timeout_after_effect_next("nexus.create_tenant", 1);
    h.tenant(|t| {
        t.spec.ucs = None;
        t.spec.deletion_policy = DeletionPolicy::Delete;
    });
    h.api
        .wait_for(WAIT, |_| {
            h.sim
                .handle
                .snapshot()
                .tenants
                .contains_key(DEMO_CC_T100)
                .then_some(())
        })
        .await
        .expect("the create reached Nexus");
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |api| {
            api.get_as::<DigitalChannelsTenant>(NS, "t100")
                .is_none()
                .then_some(())
        })
        .await
        .expect("the tenant is gone");
    let snapshot = h.sim.handle.snapshot();
    assert!(
        !snapshot.tenants.contains_key(DEMO_CC_T100),
        "no Nexus tenant leaked"
    );
    assert_eq!(snapshot.creates("nexus.create_tenant"), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_refused_before_any_write_is_deleted_without_a_call() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.tenant(|t| {
        t.spec.contact_center_domain = Some("no-such-domain".into());
        t.spec.deletion_policy = DeletionPolicy::Delete;
    });
    h.tenant_condition(
        "Ready",
        ConditionStatus::False,
        Some("ContactCenterNotFound"),
    )
    .await;
    let calls = h.sim.handle.snapshot().calls.values().sum::<u64>();
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |api| {
            api.get_as::<DigitalChannelsTenant>(NS, "t100")
                .is_none()
                .then_some(())
        })
        .await
        .expect("the tenant is gone");
    assert_eq!(
        h.sim.handle.snapshot().calls.values().sum::<u64>(),
        calls,
        "no upstream call"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_take_the_environments_secrets() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    for (i, taken) in ["prod-fingerprint-key", "prod-nexus-client"]
        .iter()
        .enumerate()
    {
        let name = format!("thief{i}");
        let mut t = second_tenant(&h, &name, if i == 0 { "t100" } else { "t200" }, &name);
        t.spec.output_secret_name = Some(taken.to_string());
        h.api.apply_as(&t);
        assert_eq!(ready_reason(&h, &name).await, "Conflict", "{taken}");
        let secret = h.api.get_as::<Secret>(NS, taken).unwrap();
        assert!(
            secret
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty(),
            "{taken} was given an owner, whose deletion would collect it"
        );
        assert!(!secret.data.unwrap().contains_key("xapikey"));
    }
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_name_too_long_for_the_default_output_secret_is_refused_before_any_create() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let name = "t".repeat(240);
    let mut t = second_tenant(&h, &name, "t100", "t100");
    t.spec.credentials_secret.name = "t100-user".into();
    h.api.apply_as(&t);
    let ready = h
        .api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, &name)?;
            find(&t.status.as_ref()?.conditions, "Ready").cloned()
        })
        .await
        .unwrap();
    assert_eq!(ready.reason, "InvalidSpec", "{}", ready.message);
    assert!(
        ready.message.contains("spec.outputSecretName"),
        "{}",
        ready.message
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_transient_error_reading_the_environments_secrets_is_retried() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    // The tenant's first read of the environment's Secrets fails with a 500.
    h.api.fail_next(Verb::Get, "secrets", 500);
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_resource_without_a_finalizer_leaves_the_readiness_gauge() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.contact_center_id = Some("not-a-uuid".into()));
    h.tenant_condition("Ready", ConditionStatus::False, Some("InvalidSpec"))
        .await;
    let key = digital_channels_operator::controller::keys::ObjectKey::new(KIND, NS, "t100");
    h.api
        .wait_for(WAIT, |_| {
            (h.ctx.is_ready(&key) == Some(false)).then_some(())
        })
        .await
        .expect("counted as not ready");
    h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    h.api
        .wait_for(WAIT, |_| h.ctx.is_ready(&key).is_none().then_some(()))
        .await
        .expect("forgotten once deleted");
    h.stop().await;
}

/// The Nexus tenant forgotten upstream, as by a Nexus whose database was restored.
async fn lose_nexus_tenant(h: &Harness) {
    let client_secret = h
        .api
        .get_as::<Secret>(NS, "prod-nexus-client")
        .unwrap()
        .data
        .unwrap();
    let client_secret = String::from_utf8(client_secret["client-secret"].0.clone()).unwrap();
    let http = HttpClient::new(&http_config()).unwrap();
    let auth = GwsAuthClient::new(http.clone(), &h.sim.url());
    let grant = Grant::Password {
        username: format!("{DEMO_CC_T100}\\nexus"),
        password: SecretString::new("nexus_password"),
    };
    let token = auth
        .token("nexus_client", &SecretString::new(client_secret), &grant)
        .await
        .unwrap();
    let nexus = NexusClient::new(http, &h.sim.url());
    assert!(
        nexus
            .delete_tenant(&token.access_token, DEMO_CC_T100)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_pass_on_a_stale_cache_never_rolls_back_the_record() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.ucs = None);
    h.both_ready().await;
    h.settle().await;
    // From here the operator's cache of tenants lags behind what is stored.
    h.api.hold_watch_events("digitalchannelstenants");
    lose_nexus_tenant(&h).await;
    h.api
        .delete(&ResourceKey::of::<Secret>(), NS, "t100-digital-channels");
    let recreated = h
        .api
        .wait_for(WAIT, |_| {
            let key = h.output_key()?;
            (h.sim.handle.snapshot().creates("nexus.create_tenant") == 2).then_some(key)
        })
        .await
        .expect("re-created with a new key");
    let digest = api_key_digest(&SecretString::new(recreated.clone()));
    h.api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, "t100")?;
            (t.status?.api_key_digest.as_deref() == Some(&digest)).then_some(())
        })
        .await
        .expect("the new key's digest is recorded");

    // A failing pass on the stale cache (triggered through the Secret watch).
    h.sim.handle.faults().fail_next("nexus.get_tenant", 20, 500);
    let checks = h.sim.handle.snapshot().calls("nexus.get_tenant");
    h.secret(
        "t100-user",
        &[
            ("username", "nexus"),
            ("password", "nexus_password"),
            ("x", "1"),
        ],
    );
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().calls("nexus.get_tenant") > checks).then_some(())
        })
        .await
        .expect("a pass ran");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = h.get_tenant().unwrap().status.unwrap();
    assert_eq!(
        stored.api_key_digest.as_deref(),
        Some(digest.as_str()),
        "rolled back"
    );
    assert!(stored.operation_id.is_some());
    h.api.release_watch_events("digitalchannelstenants");
    h.sim.handle.faults().clear();
    let t = h
        .tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert_eq!(
        t.status.unwrap().api_key_digest,
        Some(digest),
        "the record stands"
    );
    assert_eq!(h.output_key(), Some(recreated));
    assert_eq!(h.sim.handle.snapshot().creates("nexus.create_tenant"), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_nexus_tenant_gone_while_its_key_row_remains_is_not_ready() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|t| t.spec.ucs = None);
    h.both_ready().await;
    h.settle().await;
    let key = h.output_key().unwrap();
    // A drift check: this Nexus's tenant GET answers (the route exists).
    let gets = h.sim.handle.snapshot().calls("nexus.get_tenant");
    h.tenant(|t| {
        t.spec.ucs = None;
        t.metadata.labels = Some([("look".to_string(), "once".to_string())].into());
    });
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().calls("nexus.get_tenant") > gets).then_some(())
        })
        .await
        .expect("looked at");
    h.settle().await;
    // Nexus lost the tenant; its nex_apikeys row is still there.
    lose_nexus_tenant(&h).await;
    sqlx::query("INSERT INTO nex_apikeys (id, name, tenantid) VALUES ($1, 't100', $2)")
        .bind(&key)
        .bind(DEMO_CC_T100)
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    h.tenant(|t| {
        t.spec.ucs = None;
        t.metadata.labels = Some([("look".to_string(), "again".to_string())].into());
    });
    let t = h
        .tenant_condition(
            "TenantProvisioned",
            ConditionStatus::False,
            Some("TenantMissing"),
        )
        .await;
    let message = find(&conditions(&t), "TenantProvisioned")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("nex_apikeys"), "{message}");
    assert_eq!(
        h.sim.handle.snapshot().creates("nexus.create_tenant"),
        1,
        "no new key"
    );
    assert_eq!(h.output_key(), Some(key));
    h.stop().await;
}

#[tokio::test]
async fn an_environment_pass_on_a_stale_cache_never_rolls_back_its_record() {
    use digital_channels_operator::api::DigitalChannelsEnvironment;
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    let digest_of = |api: &common::fake_apiserver::FakeApiServer| {
        let env = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
        env.status?.client_secret_digest
    };
    let before = digest_of(&h.api).unwrap();
    // From here the operator's cache of environments lags behind what is stored.
    h.api.hold_watch_events("digitalchannelsenvironments");
    h.secret(
        "prod-nexus-client",
        &[(
            "client-secret",
            "a-rotated-client-secret-of-43-characters-xx",
        )],
    );
    let rotated = h
        .api
        .wait_for(WAIT, |api| digest_of(api).filter(|d| *d != before))
        .await
        .expect("the rotated secret is pushed and recorded");
    // A failing pass on the stale cache (triggered through the Secret watch).
    h.sim.handle.faults().fail_next("auth.get_client", 20, 500);
    let gets = h.sim.handle.snapshot().calls("auth.get_client");
    h.secret(
        "gws-ops",
        &[("username", "ops"), ("password", "ops"), ("x", "1")],
    );
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().calls("auth.get_client") > gets).then_some(())
        })
        .await
        .expect("a pass ran");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(digest_of(&h.api), Some(rotated), "rolled back");
    h.api.release_watch_events("digitalchannelsenvironments");
    h.sim.handle.faults().clear();
    h.stop().await;
}
