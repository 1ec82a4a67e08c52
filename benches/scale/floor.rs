//! The floor: what an ideal operator would take on the same cluster, in the same run. A plain
//! client makes, per tenant, only the Kubernetes requests no operator can avoid (the tenant,
//! its environment and its credentials Secret read; the finalizer; the output Secret by
//! server-side apply; the status; two events) and waits the upstream critical path, C tenants
//! at a time, each starting as soon as the user's apply of it returns.

use std::time::{Duration, Instant};

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const MANAGER: &str = "dc-bench-floor";

/// The floor's time for `tenants` tenants, `concurrency` at a time, `upstream` of round trips
/// on each tenant's critical path; in a namespace of its own, deleted after.
pub async fn measure(
    client: &kube::Client,
    tenants: usize,
    concurrency: usize,
    upstream: Duration,
) -> Duration {
    let ns = format!("dc-floor-{:04x}", rand::random::<u16>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    setup(client, &ns).await;
    let started = Instant::now();
    futures::stream::iter(0..tenants)
        .map(|i| ideal_pass(client.clone(), ns.clone(), format!("cc{i}"), upstream))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let floor = started.elapsed();
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    floor
}

/// What the tenants read: their environment and their credentials Secret.
async fn setup(client: &kube::Client, ns: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = json!({"metadata": {"name": "tenant-user"}, "stringData": {"username": "nexus", "password": "p"}});
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(secret).expect("Secret"),
        )
        .await
        .expect("Secret");
    let envs: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), ns);
    let mut env = super::common::environment("http://127.0.0.1:9");
    env.metadata = kube::api::ObjectMeta {
        name: Some("prod".into()),
        ..Default::default()
    };
    envs.create(&PostParams::default(), &env)
        .await
        .expect("environment");
}

/// The user's apply of one tenant, then what an ideal operator does for it.
async fn ideal_pass(client: kube::Client, ns: String, name: String, upstream: Duration) {
    let tenants: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), &ns);
    let mut t = super::common::tenant(&name, &name, true);
    t.metadata = kube::api::ObjectMeta {
        name: Some(name.clone()),
        ..Default::default()
    };
    t.spec.credentials_secret.name = "tenant-user".to_string();
    let created = tenants
        .create(&PostParams::default(), &t)
        .await
        .expect("tenant");
    // Reads: the tenant, its environment, its credentials.
    let t = tenants.get(&name).await.expect("tenant read");
    let envs: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), &ns);
    envs.get("prod").await.expect("environment read");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.get("tenant-user").await.expect("Secret read");
    let finalizer = json!({"metadata": {"finalizers": ["digitalchannels.dev/cleanup"]}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("finalizer");
    tokio::time::sleep(upstream).await;
    output_and_status(&client, &ns, &name, &t).await;
    events(&client, &ns, &created).await;
}

async fn output_and_status(client: &kube::Client, ns: &str, name: &str, t: &DigitalChannelsTenant) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let output = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-digital-channels"), "ownerReferences": [{
            "apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsTenant",
            "name": name, "uid": t.metadata.uid, "controller": true}]},
        "stringData": {"xapikey": "k", "contactCenterId": name, "tenantName": name, "nexusUrl": "http://n"},
    });
    let apply = PatchParams::apply(MANAGER).force();
    secrets
        .patch(
            &format!("{name}-digital-channels"),
            &apply,
            &Patch::Apply(&output),
        )
        .await
        .expect("output Secret");
    let tenants: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), ns);
    let status = json!({
        "apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsTenant",
        "status": {"observedGeneration": t.metadata.generation, "contactCenterId": name,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned",
                                   "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    });
    tenants
        .patch_status(name, &apply, &Patch::Apply(&status))
        .await
        .expect("status");
}

/// Two events, as the operator's Ready transition and DesignerEnv reminder.
async fn events(client: &kube::Client, ns: &str, t: &DigitalChannelsTenant) {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for reason in ["Provisioned", "ManualStepRequired"] {
        let event = json!({
            // Named as kube's recorder names them: the object's name and a random suffix.
            "metadata": {"name": format!("{}.{:x}", t.metadata.name.as_deref().unwrap_or_default(), rand::random::<u64>())},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "dc-bench", "reportingInstance": "floor",
            "action": "Reconcile", "reason": reason, "type": "Normal", "note": "floor",
            "regarding": {"apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsTenant",
                          "namespace": ns, "name": t.metadata.name, "uid": t.metadata.uid},
        });
        let event: Event = serde_json::from_value(event).expect("event");
        events
            .create(&PostParams::default(), &event)
            .await
            .expect("event");
    }
}
