//! `dc-operator plan -n` on the real API server: against resources applied before any pass
//! (everything to create), after the operator made them Ready (nothing), after a drift by
//! hand (that update), and for a tenant being deleted (what its cleanup would delete), with
//! terraform's exit codes; no Kubernetes object changes (every resourceVersion stays) and no
//! write request reaches the simulator. And `dc-operator import ENV -n` of an estate enabled
//! by hand: its manifests, applied with `kubectl apply`, find every key once observed.

use std::process::Command;

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

use crate::by_hand::{HAND_SECRET, HandPlace, HandTenant, enable_by_hand};
use crate::harness::{OPERATOR_BIN, Scenario, Scope, cluster, kubectl_stdin};

/// Every object plan could touch in the namespace, with its resourceVersion.
async fn versions(s: &Scenario) -> Vec<String> {
    let lp = ListParams::default();
    let mut all = Vec::new();
    for secret in s.api::<Secret>().list(&lp).await.expect("Secrets") {
        all.push(format!(
            "Secret/{}@{:?}",
            secret.name_any(),
            secret.resource_version()
        ));
    }
    for e in s
        .api::<DigitalChannelsEnvironment>()
        .list(&lp)
        .await
        .expect("dce")
    {
        all.push(format!("dce/{}@{:?}", e.name_any(), e.resource_version()));
    }
    for t in s
        .api::<DigitalChannelsTenant>()
        .list(&lp)
        .await
        .expect("dct")
    {
        all.push(format!("dct/{}@{:?}", t.name_any(), t.resource_version()));
    }
    all.sort();
    all
}

/// The simulator's requests that write (a token grant is a look).
async fn writes(s: &Scenario) -> Vec<String> {
    let all: Vec<Value> = reqwest::get(format!("{}/_sim/requests", s.sim.url))
        .await
        .expect("simulator")
        .json()
        .await
        .expect("requests");
    all.iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default(),
                r["path"].as_str().unwrap_or_default(),
            )
        })
        .filter(|(m, p)| !p.starts_with("/_sim") && *m != "GET" && *p != "/auth/v3/oauth/token")
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

/// `dc-operator plan ARGS` as the cluster admin: exit code and stdout; no object changes
/// and no upstream write while it runs.
async fn plan(s: &Scenario, args: &[&str]) -> (i32, String) {
    let (before, written) = (versions(s).await, writes(s).await);
    let output = Command::new(OPERATOR_BIN)
        .arg("plan")
        .args(args)
        .output()
        .expect("dc-operator plan");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        versions(s).await,
        before,
        "an object changed: {stdout}{stderr}"
    );
    assert_eq!(writes(s).await, written, "an upstream write: {stdout}");
    (output.status.code().unwrap_or(-1), stdout)
}

async fn apply_estate(s: &Scenario) {
    for (name, pairs) in [
        ("gws-ops", json!({"username": "ops", "password": "ops"})),
        ("nexus-db", json!({"url": s.sim.database_url})),
        (
            "nexus-user",
            json!({"username": "nexus", "password": "nexus_password"}),
        ),
    ] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": pairs});
        s.apply::<Secret>(secret).await;
    }
    let env = json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "prod"},
        "spec": {
            "authUrl": s.sim.url, "gwsUrl": s.sim.url, "nexusUrl": s.sim.url,
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
        }
    });
    s.apply::<DigitalChannelsEnvironment>(env).await;
    for name in ["t100", "t200"] {
        let t = json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsTenant",
            "metadata": {"name": name},
            "spec": {
                "environmentRef": {"name": "prod"},
                "contactCenterDomain": name,
                "tenantName": name,
                "credentialsSecret": {"name": "nexus-user"},
                "deletionPolicy": "Delete",
            }
        });
        s.apply::<DigitalChannelsTenant>(t).await;
    }
}

#[tokio::test]
async fn plan_previews_a_namespace_and_changes_no_object() {
    let Some(client) = cluster("plan_previews_a_namespace_and_changes_no_object").await else {
        return;
    };
    let mut s = Scenario::new(client, "plan", Scope::Namespaces).await;
    apply_estate(&s).await;
    let ns = s.ns.clone();

    // Before any pass: everything to create, the client secret and keys included.
    let (code, said) = plan(&s, &["-n", &ns]).await;
    assert_eq!(code, 2, "{said}");
    for wanted in [
        "+ OAuth client nexus_client (GWS Auth)",
        "+ nex_gapis row (Nexus database)",
        "+ Secret prod-nexus-client (Kubernetes)",
        "+ Secret t200-digital-channels (Kubernetes)",
        "Plan: 10 to create, 0 to update, 0 to delete.",
    ] {
        assert!(said.contains(wanted), "{wanted}: {said}");
    }

    // Made Ready by the operator, which is then stopped: nothing to change.
    let replica = s.start_operator("replica-a");
    s.wait_environment_ready("prod").await;
    for name in ["t100", "t200"] {
        s.wait_tenant_ready(name).await;
    }
    s.operators[replica].kill();
    let (code, said) = plan(&s, &["-n", &ns]).await;
    assert_eq!(code, 0, "{said}");
    assert!(
        said.ends_with("No changes: a pass would change nothing.\n"),
        "{said}"
    );
    let (code, said) = plan(&s, &["t100", "-n", &ns, "-o", "json"]).await;
    let json: Value = serde_json::from_str(&said).expect("JSON");
    let names: Vec<&str> = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        (code, names),
        (0, vec!["prod", "t100"]),
        "a tenant with its environment"
    );
    let (code, said) = plan(&s, &["nothing-of-that-name", "-n", &ns]).await;
    assert_eq!(code, 1, "{said}");

    // A drift by hand: exactly that update.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect(&s.sim.database_url)
        .await
        .expect("database");
    sqlx::query("UPDATE nex_gapis SET clientsecret = 'changed-by-hand'")
        .execute(&pool)
        .await
        .expect("update");
    let (code, said) = plan(&s, &["-n", &ns]).await;
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("~ nex_gapis row (Nexus database)\n      clientsecret: (secret) differs"),
        "{said}"
    );
    assert!(
        said.ends_with("Plan: 0 to create, 1 to update, 0 to delete.\n"),
        "{said}"
    );
    assert!(!said.contains("changed-by-hand"));

    // A tenant being deleted (the operator is stopped, the finalizer holds it): what its
    // cleanup would delete.
    s.api::<DigitalChannelsTenant>()
        .delete("t200", &DeleteParams::default())
        .await
        .expect("delete");
    let (code, said) = plan(&s, &["t200", "-n", &ns]).await;
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("DigitalChannelsTenant"), "{said}");
    assert!(
        said.contains(&format!(
            "- Nexus tenant at contact center {DEMO_CC_T200} (Nexus)"
        )),
        "{said}"
    );
    s.finish().await;
}

async fn secret(s: &Scenario, name: &str, data: Value) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    s.apply::<Secret>(secret).await;
}

#[tokio::test]
async fn import_of_an_estate_enabled_by_hand_yields_manifests_that_find_every_key() {
    let Some(client) =
        cluster("import_of_an_estate_enabled_by_hand_yields_manifests_that_find_every_key").await
    else {
        return;
    };
    let mut s = Scenario::new(client, "import", Scope::Namespaces).await;
    let http = digital_channels_operator::upstream::http::HttpConfig::default();
    let rb = digital_channels_operator::runbook::Runbook::new(std::sync::Arc::new(
        digital_channels_operator::runbook::RealConnector::new(http),
    ));
    let place = HandPlace {
        base_url: &s.sim.url,
        gws_url: &s.sim.url,
        database_url: &s.sim.database_url,
    };
    let hand = [("t100", DEMO_CC_T100), ("t200", DEMO_CC_T200)].map(|(name, cc)| HandTenant {
        name,
        contact_center_id: cc,
        ucs: false,
    });
    let keys = enable_by_hand(&rb, &place, &hand).await;
    let user = json!({"username": "nexus", "password": "nexus_password"});
    secret(&s, "gws-ops", json!({"username": "ops", "password": "ops"})).await;
    secret(&s, "nexus-db", json!({"url": s.sim.database_url})).await;
    secret(
        &s,
        "prod-nexus-client",
        json!({"client-secret": HAND_SECRET}),
    )
    .await;
    secret(&s, "nexus-user", user.clone()).await;
    let env = json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "prod"},
        "spec": {
            "authUrl": s.sim.url, "gwsUrl": s.sim.url, "nexusUrl": s.sim.url,
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
            "managementPolicy": "Observe",
        }
    });
    s.apply::<DigitalChannelsEnvironment>(env).await;
    let written = writes(&s).await;

    let ns = s.ns.clone();
    let args = [
        "import",
        "prod",
        "-n",
        &ns,
        "--tenant-user-secret",
        "nexus-user",
    ];
    let output = Command::new(OPERATOR_BIN)
        .args(args)
        .output()
        .expect("import");
    let yaml = String::from_utf8_lossy(&output.stdout).into_owned();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{said}{yaml}");
    // The user Secrets the manifests name, then the manifests as they are.
    for name in ["t100", "t200"] {
        secret(&s, &format!("{name}-nexus-user"), user.clone()).await;
    }
    let applied = kubectl_stdin(&["apply", "-f", "-"], &yaml);
    let applied_said = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{applied_said}\n{yaml}");

    s.start_operator("replica-a");
    for (name, key) in ["t100", "t200"].iter().zip(&keys) {
        let t = s.wait_tenant_ready(name).await;
        assert_eq!(
            t.spec.management_policy,
            digital_channels_operator::api::ManagementPolicy::Observe
        );
        let output = s
            .api::<Secret>()
            .get(&format!("{name}-digital-channels"))
            .await
            .expect("output Secret");
        let data = output.data.expect("data");
        assert_eq!(
            data["xapikey"].0,
            key.expose().as_bytes(),
            "{name}: the key made by hand"
        );
    }
    assert_eq!(writes(&s).await, written, "nothing written upstream");
    s.finish().await;
}
