//! Health that GitOps tools read, on a real API server: a Ready environment and tenant, a
//! tenant whose credentials Secret is missing (Stalled) and an environment whose upstreams are
//! down (Reconciling) get the kstatus conditions of docs/gitops-health.md, `kubectl wait`
//! behaves as that page says, and Argo CD's health check reads each as it should.

use std::time::Duration;

use serde_json::{Value, json};

use crate::argo_health::{argo_health, customizations};
use crate::harness::{
    READY_TIMEOUT, ROOT, Scenario, Scope, cluster, free_port, kubectl, kubectl_stdin,
};
use crate::resources::{apply_environment, apply_secrets, apply_tenant, tenant_manifest};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::api::DigitalChannelsTenant;

/// `kubectl wait` as the cluster admin: whether the condition was met within `timeout`.
fn kubectl_wait(s: &Scenario, resource: &str, condition: &str, timeout: Duration) -> bool {
    let timeout = format!("--timeout={}s", timeout.as_secs());
    let args = [
        "-n",
        s.ns.as_str(),
        "wait",
        resource,
        &format!("--for=condition={condition}"),
        &timeout,
    ];
    // No stdin: kubectl_stdin only for its Output, which kubectl() would assert on.
    kubectl_stdin(&args, "").status.success()
}

/// The object as the API server serves it.
fn served(s: &Scenario, resource: &str) -> Value {
    serde_json::from_str(&kubectl(&["-n", &s.ns, "get", resource, "-o", "json"])).expect("JSON")
}

/// (status, reason) of a condition, and that it was written for the current generation.
fn condition(object: &Value, type_: &str) -> (String, String) {
    let generation = &object["metadata"]["generation"];
    assert_eq!(&object["status"]["observedGeneration"], generation);
    let c = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_}: {object:#}"));
    assert_eq!(&c["observedGeneration"], generation, "{type_}");
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.to_string(), reason.to_string())
}

/// An environment whose GWS Auth, GWS and Nexus are a port nothing listens on.
async fn apply_environment_down(s: &Scenario) {
    let down = format!("http://127.0.0.1:{}", free_port());
    s.apply::<DigitalChannelsEnvironment>(json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "down"},
        "spec": {
            "authUrl": down, "gwsUrl": down, "nexusUrl": down,
            "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
        },
    }))
    .await;
}

#[tokio::test]
async fn health_conditions_and_kubectl_wait_on_a_real_api_server() {
    let Some(client) = cluster("health_conditions_and_kubectl_wait_on_a_real_api_server").await
    else {
        return;
    };
    let mut s = Scenario::new(client, "health", Scope::Namespaces).await;
    apply_secrets(&s).await;
    s.start_operator("replica-a");
    apply_environment(&s, "prod", "Retain").await;
    apply_tenant(&s, "t100", "prod", "t100", "Retain").await;
    let missing = json!({"credentialsSecret": {"name": "no-such-secret"}});
    s.apply::<DigitalChannelsTenant>(tenant_manifest("t200", "prod", "t200", "Retain", missing))
        .await;
    apply_environment_down(&s).await;

    // kubectl wait, as docs/gitops-health.md uses it.
    let wait = READY_TIMEOUT;
    assert!(kubectl_wait(&s, "dct/t100", "Ready", wait), "t100 Ready");
    assert!(kubectl_wait(&s, "dce/prod", "Ready", wait), "prod Ready");
    assert!(kubectl_wait(&s, "dct/t100", "Reconciling=false", wait));
    assert!(
        kubectl_wait(&s, "dct/t200", "Stalled", wait),
        "t200 Stalled"
    );
    assert!(kubectl_wait(&s, "dct/t200", "Reconciling=false", wait));
    assert!(
        kubectl_wait(&s, "dce/down", "Reconciling", wait),
        "down Reconciling"
    );
    let short = Duration::from_secs(3);
    assert!(
        !kubectl_wait(&s, "dct/t200", "Ready", short),
        "t200 is not Ready"
    );
    assert!(!kubectl_wait(&s, "dce/down", "Reconciling=false", short));

    // The statuses themselves, and what Argo CD makes of them.
    let cases = [
        ("dce/prod", "False", "False", "Provisioned", "Healthy"),
        ("dct/t100", "False", "False", "Provisioned", "Healthy"),
        ("dct/t200", "False", "True", "SecretNotFound", "Degraded"),
        (
            "dce/down",
            "True",
            "False",
            "UpstreamUnavailable",
            "Progressing",
        ),
    ];
    for (resource, reconciling, stalled, reason, health) in cases {
        let object = served(&s, resource);
        assert_eq!(
            condition(&object, "Reconciling"),
            pair(reconciling, reason),
            "{resource}"
        );
        assert_eq!(
            condition(&object, "Stalled"),
            pair(stalled, reason),
            "{resource}"
        );
        assert_eq!(condition(&object, "Ready").1, reason, "{resource}");
        let kind = object["kind"].as_str().unwrap();
        assert_eq!(argo_health(kind, &object).status, health, "{resource}");
    }

    // The Argo CD ConfigMap of the docs, as kubectl reads it, holds the script.
    let cm: Value = serde_json::from_str(&kubectl(&[
        "create",
        "--dry-run=client",
        "-o",
        "json",
        "-f",
        &format!("{ROOT}/integrations/argocd/argocd-cm.yaml"),
    ]))
    .expect("JSON");
    for kind in ["DigitalChannelsEnvironment", "DigitalChannelsTenant"] {
        let lua = std::fs::read_to_string(customizations(kind).join("health.lua")).unwrap();
        let key = format!("resource.customizations.health.digitalchannels.dev_{kind}");
        assert_eq!(cm["data"][&key].as_str(), Some(lua.as_str()), "{key}");
    }
    s.finish().await;
}
