//! Health that GitOps tools read: the kstatus conditions (`Reconciling`, `Stalled`) on the
//! statuses the operator really writes (both controllers against the in-memory API server and
//! the simulator), and the Argo CD health checks of `integrations/argocd/`, run by a real Lua
//! 5.1 (Argo CD's gopher-lua is 5.1), against their own fixtures in Argo CD's layout and
//! against those same statuses. `docs/gitops-health.md` shows the ConfigMap tested here.

#[path = "common/argo_health.rs"]
mod argo_health;
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use argo_health::{ArgoHealth, argo_health, customizations};
use common::fake_apiserver::ResourceKey;
use common::operator::{Harness, NS};
use digital_channels_operator::api::conditions::{Condition, ConditionStatus, find};
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

const KINDS: [&str; 2] = ["DigitalChannelsEnvironment", "DigitalChannelsTenant"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_file(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_argocd_health_checks_pass_their_own_tests() {
    for kind in KINDS {
        let dir = customizations(kind);
        let tests = yaml_file(&dir.join("health_test.yaml"));
        let cases = tests["tests"].as_array().expect("tests: a list");
        let mut used = BTreeSet::new();
        let mut statuses = BTreeSet::new();
        for case in cases {
            let input = case["inputPath"].as_str().expect("inputPath");
            used.insert(input.to_string());
            let object = yaml_file(&dir.join(input));
            assert_eq!(object["kind"], kind, "{kind}/{input}");
            let want = &case["healthStatus"];
            let got = argo_health(kind, &object);
            assert_eq!(
                got.status,
                want["status"].as_str().unwrap(),
                "{kind}/{input}"
            );
            assert_eq!(
                got.message,
                want["message"].as_str().unwrap_or_default(),
                "{kind}/{input}"
            );
            statuses.insert(got.status);
        }
        // Every fixture is tested, and every health the script can give is met.
        let fixtures: BTreeSet<String> = fs::read_dir(dir.join("testdata"))
            .unwrap()
            .map(|e| format!("testdata/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert_eq!(
            used, fixtures,
            "{kind}: fixtures without a test, or tests without one"
        );
        let all: BTreeSet<String> = ["Degraded", "Healthy", "Progressing", "Suspended"]
            .map(String::from)
            .into();
        assert_eq!(statuses, all, "{kind}");
    }
}

/// `integrations/argocd/argocd-cm.yaml` holds the scripts, and the docs show that file.
#[test]
fn the_argocd_configmap_holds_the_scripts_and_the_docs_show_it() {
    let path = root().join("integrations/argocd/argocd-cm.yaml");
    let text = read(&path);
    let cm = yaml_file(&path);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    for kind in KINDS {
        let key = format!("resource.customizations.health.digitalchannels.dev_{kind}");
        assert_eq!(
            cm["data"][&key].as_str(),
            Some(read(&customizations(kind).join("health.lua")).as_str()),
            "{key} differs from {kind}/health.lua"
        );
    }
    let docs = read(&root().join("docs/gitops-health.md"));
    assert!(
        docs.contains(&text),
        "docs/gitops-health.md does not show integrations/argocd/argocd-cm.yaml as it is"
    );
}

// ---------------------------------------------------------------------------------------------
// The statuses the operator writes
// ---------------------------------------------------------------------------------------------

/// The stored object, as the API server serves it (what kubectl, Flux and Argo CD read).
fn stored<K: kube::Resource<DynamicType = ()>>(h: &Harness, name: &str) -> Value {
    h.api
        .objects(&ResourceKey::of::<K>(), Some(NS))
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not stored"))
}

fn conditions_of(object: &Value) -> Vec<Condition> {
    serde_json::from_value(object["status"]["conditions"].clone()).expect("conditions")
}

/// Reconciling and Stalled as written, with the generation they and status were written for.
fn kstatus(object: &Value) -> (ConditionStatus, ConditionStatus, String) {
    let conditions = conditions_of(object);
    let generation = object["metadata"]["generation"].as_i64();
    assert_eq!(
        object["status"]["observedGeneration"].as_i64(),
        generation,
        "status.observedGeneration: {object:#}"
    );
    let get = |type_| {
        let c = find(&conditions, type_)
            .unwrap_or_else(|| panic!("no {type_} condition: {object:#}"))
            .clone();
        assert_eq!(c.observed_generation, generation, "{type_}");
        assert!(c.last_transition_time.is_some(), "{type_}");
        c
    };
    let (reconciling, stalled) = (get("Reconciling"), get("Stalled"));
    let ready = find(&conditions, "Ready").map(|c| c.reason.clone());
    // Both carry Ready's reason (Suspended while suspended).
    let reason = if find(&conditions, "Suspended").is_some() {
        "Suspended".to_string()
    } else {
        ready.expect("a Ready condition")
    };
    assert_eq!((&reconciling.reason, &stalled.reason), (&reason, &reason));
    (reconciling.status, stalled.status, reason)
}

fn message_of(object: &Value, type_: &str) -> String {
    find(&conditions_of(object), type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

const T: ConditionStatus = ConditionStatus::True;
const F: ConditionStatus = ConditionStatus::False;

#[tokio::test]
async fn ready_resources_are_current_and_healthy() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    for (kind, object) in [
        (KINDS[0], stored::<DigitalChannelsEnvironment>(&h, "prod")),
        (KINDS[1], stored::<DigitalChannelsTenant>(&h, "t100")),
    ] {
        let (reconciling, stalled, reason) = kstatus(&object);
        assert_eq!(
            (reconciling, stalled, reason.as_str()),
            (F, F, "Provisioned"),
            "{kind}"
        );
        let health = argo_health(kind, &object);
        assert_eq!(
            health,
            ArgoHealth {
                status: "Healthy".into(),
                message: message_of(&object, "Ready"),
            },
            "{kind}"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn failures_that_need_a_change_stall_and_are_degraded() {
    let h = Harness::start().await;
    h.api.delete_as::<Secret>(NS, "gws-ops");
    h.env(|_| {});
    h.tenant(|t| t.spec.contact_center_id = Some("not-a-uuid".into()));
    h.env_condition("Stalled", T, Some("SecretNotFound")).await;
    h.tenant_condition("Stalled", T, Some("InvalidSpec")).await;
    for (kind, object, reason) in [
        (
            KINDS[0],
            stored::<DigitalChannelsEnvironment>(&h, "prod"),
            "SecretNotFound",
        ),
        (
            KINDS[1],
            stored::<DigitalChannelsTenant>(&h, "t100"),
            "InvalidSpec",
        ),
    ] {
        assert_eq!(kstatus(&object), (F, T, reason.to_string()), "{kind}");
        let stalled = message_of(&object, "Stalled");
        assert_eq!(stalled, message_of(&object, "Ready"), "{kind}");
        let health = argo_health(kind, &object);
        assert_eq!(
            health,
            ArgoHealth {
                status: "Degraded".into(),
                message: stalled,
            },
            "{kind}"
        );
    }

    // Fixed: Stalled turns False, and Argo CD sees it Healthy.
    h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
    h.env_condition("Ready", T, None).await;
    let env = stored::<DigitalChannelsEnvironment>(&h, "prod");
    assert_eq!(kstatus(&env), (F, F, "Provisioned".to_string()));
    assert_eq!(argo_health(KINDS[0], &env).status, "Healthy");
    h.stop().await;
}

#[tokio::test]
async fn waiting_and_transient_failures_reconcile_and_are_progressing() {
    let h = Harness::start().await;
    // An upstream that answers 503 for as long as the test looks.
    h.sim
        .handle
        .faults()
        .fail_next("nexus.create_tenant", 10_000, 503);
    h.tenant(|_| {});
    h.tenant_condition("Reconciling", T, Some("WaitingForEnvironment"))
        .await;
    let waiting = stored::<DigitalChannelsTenant>(&h, "t100");
    assert_eq!(
        kstatus(&waiting),
        (T, F, "WaitingForEnvironment".to_string())
    );
    let health = argo_health(KINDS[1], &waiting);
    assert_eq!(
        health,
        ArgoHealth {
            status: "Progressing".into(),
            message: message_of(&waiting, "Ready"),
        }
    );

    h.env(|_| {});
    h.tenant_condition("Reconciling", T, Some("UpstreamUnavailable"))
        .await;
    let retrying = stored::<DigitalChannelsTenant>(&h, "t100");
    assert_eq!(
        kstatus(&retrying),
        (T, F, "UpstreamUnavailable".to_string())
    );
    let health = argo_health(KINDS[1], &retrying);
    assert_eq!(health.status, "Progressing");
    assert_eq!(health.message, message_of(&retrying, "Ready"));
    h.stop().await;
}

#[tokio::test]
async fn a_suspended_resource_is_neither_reconciling_nor_stalled() {
    let h = Harness::start().await;
    h.env(|e| e.spec.suspend = true);
    h.tenant(|t| t.spec.suspend = true);
    h.env_condition("Suspended", T, None).await;
    h.tenant_condition("Suspended", T, None).await;
    for (kind, object) in [
        (KINDS[0], stored::<DigitalChannelsEnvironment>(&h, "prod")),
        (KINDS[1], stored::<DigitalChannelsTenant>(&h, "t100")),
    ] {
        assert_eq!(kstatus(&object), (F, F, "Suspended".to_string()), "{kind}");
        let health = argo_health(kind, &object);
        assert_eq!(
            health,
            ArgoHealth {
                status: "Suspended".into(),
                message: message_of(&object, "Suspended"),
            },
            "{kind}"
        );
    }
    h.stop().await;
}

/// A spec edit not acted on yet (the operator is stopped): the stored status is of the older
/// generation, so Argo CD says Progressing whatever the conditions say, as kstatus does.
#[tokio::test]
async fn an_edit_not_yet_observed_is_progressing() {
    let mut h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", T, None).await;
    h.settle().await;
    assert_eq!(
        argo_health(KINDS[0], &stored::<DigitalChannelsEnvironment>(&h, "prod")).status,
        "Healthy"
    );
    h.stop.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut h.task).await;
    h.env(|e| e.spec.client.access_token_expiration_timeout += 60);
    let edited = stored::<DigitalChannelsEnvironment>(&h, "prod");
    assert_ne!(
        edited["metadata"]["generation"],
        edited["status"]["observedGeneration"]
    );
    assert_eq!(
        argo_health(KINDS[0], &edited),
        ArgoHealth {
            status: "Progressing".into(),
            message: "Waiting for the operator to act on the current spec".into(),
        }
    );
}
