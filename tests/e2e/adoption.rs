//! Taking over tenants enabled by hand, on the real API server, as docs/management-policy.md
//! says to: the simulator seeded as a runbook by hand leaves it (client, `nex_gapis` row,
//! settings, PlatformUCS, tenants and their `nex_apikeys` rows); the environment observed,
//! then managed; the tenants observed (no create, every key found, each Secret right), then
//! managed. Every write request is counted: none while observed, and on each switch exactly
//! the ones the conditions announced.

use std::sync::Arc;

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::runbook::{RealConnector, Runbook};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200};
use digital_channels_operator::upstream::http::HttpConfig;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::by_hand::{HAND_DESCRIPTION, HAND_SECRET, HandPlace, HandTenant, enable_by_hand};
use crate::harness::{READY_TIMEOUT, Scenario, Scope, cluster, condition};

/// The simulator's requests that write (a token grant is a look), as `METHOD path`, from the
/// `from`-th on.
async fn writes_since(s: &Scenario, from: usize) -> Vec<String> {
    let all: Vec<Value> = reqwest::get(format!("{}/_sim/requests", s.sim.url))
        .await
        .expect("simulator")
        .json()
        .await
        .expect("requests");
    let mut writes: Vec<String> = all[from.min(all.len())..]
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default(),
                r["path"].as_str().unwrap_or_default(),
            )
        })
        .filter(|(method, path)| {
            !path.starts_with("/_sim") && *method != "GET" && *path != "/auth/v3/oauth/token"
        })
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    writes.sort();
    writes
}

async fn requests(s: &Scenario) -> usize {
    let all: Vec<Value> = reqwest::get(format!("{}/_sim/requests", s.sim.url))
        .await
        .expect("simulator")
        .json()
        .await
        .expect("requests");
    all.len()
}

async fn secret(s: &Scenario, name: &str, pairs: &[(&str, &str)]) {
    let data: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let manifest = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    s.apply::<Secret>(manifest).await;
}

fn environment(s: &Scenario, policy: &str) -> Value {
    json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "prod"},
        "spec": {
            "authUrl": s.sim.url, "gwsUrl": s.sim.url, "nexusUrl": s.sim.url,
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
            "managementPolicy": policy,
        }
    })
}

fn tenant(name: &str, policy: &str, ucs: bool) -> Value {
    let mut t = json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsTenant",
        "metadata": {"name": name},
        "spec": {
            "environmentRef": {"name": "prod"},
            "contactCenterDomain": name,
            "tenantName": name,
            "credentialsSecret": {"name": "nexus-user"},
            "managementPolicy": policy,
            // Observed, Delete deletes nothing: the policy wins.
            "deletionPolicy": "Delete",
        }
    });
    if ucs {
        t["spec"]["ucs"] = json!({"url": crate::by_hand::HAND_UCS});
    }
    t
}

/// `type=status/reason` of a condition, or what is missing.
fn said(conditions: &[digital_channels_operator::api::Condition], type_: &str) -> String {
    condition(conditions, type_)
        .map(|c| format!("{type_}={:?}/{}", c.status, c.reason))
        .unwrap_or_else(|| format!("{type_} absent"))
}

#[tokio::test]
async fn tenants_enabled_by_hand_are_observed_then_taken_over_without_a_create() {
    let Some(client) =
        cluster("tenants_enabled_by_hand_are_observed_then_taken_over_without_a_create").await
    else {
        return;
    };
    let mut s = Scenario::new(client, "adoption", Scope::Namespaces).await;
    digital_channels_operator::upstream::http::install_crypto_provider();
    let rb = Runbook::new(Arc::new(RealConnector::new(HttpConfig::default())));
    let place = HandPlace {
        base_url: &s.sim.url,
        gws_url: &s.sim.url,
        database_url: &s.sim.database_url,
    };
    let hand = [
        HandTenant {
            name: "t100",
            contact_center_id: DEMO_CC_T100,
            ucs: true,
        },
        HandTenant {
            name: "t200",
            contact_center_id: DEMO_CC_T200,
            ucs: false,
        },
    ];
    let keys = enable_by_hand(&rb, &place, &hand).await;

    secret(&s, "gws-ops", &[("username", "ops"), ("password", "ops")]).await;
    secret(&s, "nexus-db", &[("url", &s.sim.database_url.clone())]).await;
    secret(
        &s,
        "nexus-user",
        &[("username", "nexus"), ("password", "nexus_password")],
    )
    .await;
    // Step 1 of the procedure: the client's current secret, supplied.
    secret(&s, "prod-nexus-client", &[("client-secret", HAND_SECRET)]).await;
    s.start_operator("replica-a");
    let from = requests(&s).await;

    // Observe the environment: the description is the one drift.
    s.apply::<DigitalChannelsEnvironment>(environment(&s, "Observe"))
        .await;
    let env = s
        .wait_until(
            "prod",
            "observed",
            READY_TIMEOUT,
            |e: &DigitalChannelsEnvironment| {
                e.status.as_ref().is_some_and(|st| {
                    said(&st.conditions, "GapiRegistered") == "GapiRegistered=True/InSync"
                })
            },
        )
        .await;
    let conditions = env.status.unwrap().conditions;
    assert_eq!(
        said(&conditions, "ClientRegistered"),
        "ClientRegistered=False/Drifted"
    );
    assert_eq!(
        said(&conditions, "ClientVerified"),
        "ClientVerified=True/InSync"
    );
    let drift = &condition(&conditions, "ClientRegistered").unwrap().message;
    assert!(
        drift.contains(HAND_DESCRIPTION) && !drift.contains(HAND_SECRET),
        "{drift}"
    );
    assert_eq!(writes_since(&s, from).await, Vec::<String>::new());

    // Manage it: the description, and nothing else.
    s.apply::<DigitalChannelsEnvironment>(environment(&s, "Manage"))
        .await;
    s.wait_environment_ready("prod").await;
    assert_eq!(
        writes_since(&s, from).await,
        ["PUT /auth/v3/ops/clients/nexus_client"]
    );

    // Observe the tenants: every key found and in its Secret, nothing written.
    let from = requests(&s).await;
    for (name, ucs) in [("t100", true), ("t200", false)] {
        s.apply::<DigitalChannelsTenant>(tenant(name, "Observe", ucs))
            .await;
    }
    for (i, (name, cc)) in [("t100", DEMO_CC_T100), ("t200", DEMO_CC_T200)]
        .into_iter()
        .enumerate()
    {
        let t = s.wait_tenant_ready(name).await;
        let conditions = t.status.unwrap().conditions;
        assert_eq!(said(&conditions, "Ready"), "Ready=True/InSync", "{name}");
        assert_eq!(
            said(&conditions, "TenantProvisioned"),
            "TenantProvisioned=True/InSync",
            "{name}"
        );
        if i == 0 {
            assert_eq!(
                said(&conditions, "UcsRegistered"),
                "UcsRegistered=Unknown/NotObservable"
            );
        }
        let output = s
            .api::<Secret>()
            .get(&format!("{name}-digital-channels"))
            .await
            .expect("output Secret");
        let data = output.data.expect("data");
        assert_eq!(
            data["xapikey"].0,
            keys[i].expose().as_bytes(),
            "{name}: the key made by hand"
        );
        assert_eq!(data["contactCenterId"].0, cc.as_bytes());
        assert_eq!(data["tenantName"].0, name.as_bytes());
    }
    assert_eq!(writes_since(&s, from).await, Vec::<String>::new());

    // Manage them: only PlatformUCS, which Observe could not see, is registered; no create.
    for (name, ucs) in [("t100", true), ("t200", false)] {
        s.apply::<DigitalChannelsTenant>(tenant(name, "Manage", ucs))
            .await;
    }
    for name in ["t100", "t200"] {
        s.wait_until(
            name,
            "Ready (Provisioned)",
            READY_TIMEOUT,
            |t: &DigitalChannelsTenant| {
                t.status
                    .as_ref()
                    .is_some_and(|st| said(&st.conditions, "Ready") == "Ready=True/Provisioned")
            },
        )
        .await;
    }
    assert_eq!(
        writes_since(&s, from).await,
        [format!(
            "POST /nexus/v3/provisioning/services/{DEMO_CC_T100}/PlatformUCS"
        )]
    );
    let state = s.sim.state().await;
    assert_eq!(
        state["tenants"].as_object().map(|m| m.len()),
        Some(2),
        "{state}"
    );
    s.finish().await;
}
