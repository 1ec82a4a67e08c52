//! What the CRD schema refuses, judged by the real API server (CEL transition rules and
//! patterns are not evaluated anywhere else): identity fields cannot change once set.

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{USER_MANAGER, cluster, create_namespace, shared_scope};
use crate::resources::tenant_manifest;

async fn try_apply(api: &Api<DigitalChannelsTenant>, manifest: &Value) -> Result<(), String> {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    api.patch(
        name,
        &PatchParams::apply(USER_MANAGER).force(),
        &Patch::Apply(manifest),
    )
    .await
    .map(drop)
    .map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    })
}

#[tokio::test]
async fn identity_fields_cannot_change_and_the_output_secret_name_must_be_valid() {
    let Some(client) = cluster("schema_identity").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-schema-{:04x}", rand::random::<u16>());
    create_namespace(&client, &ns, &[]).await;
    let api: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), &ns);

    let by_domain = tenant_manifest(
        "a",
        "prod",
        "t100",
        "Retain",
        json!({"outputSecretName": "a-out"}),
    );
    try_apply(&api, &by_domain).await.expect("a valid tenant");
    let by_id = tenant_manifest(
        "b",
        "prod",
        "t200",
        "Retain",
        json!({"contactCenterDomain": null, "contactCenterId": "9c1f5d2a-3b7e-4c8d-a6f0-2e4b8d9c7a15"}),
    );
    try_apply(&api, &by_id).await.expect("a valid tenant");

    let edit = |base: &Value, change: Value| {
        let mut m = base.clone();
        for (k, v) in change.as_object().expect("object") {
            if v.is_null() {
                m["spec"].as_object_mut().expect("spec").remove(k);
            } else {
                m["spec"][k] = v.clone();
            }
        }
        m
    };
    for (what, base, change, expected) in [
        (
            "domain changed",
            &by_domain,
            json!({"contactCenterDomain": "t200"}),
            "contactCenterDomain cannot be changed",
        ),
        (
            "domain removed",
            &by_domain,
            json!({"contactCenterDomain": null}),
            "contactCenterDomain cannot be changed",
        ),
        (
            "id changed",
            &by_id,
            json!({"contactCenterId": "578ec98e-f07c-46ad-9675-f36c22f3ba9f"}),
            "contactCenterId cannot be changed",
        ),
        (
            "output Secret renamed",
            &by_domain,
            json!({"outputSecretName": "elsewhere"}),
            "outputSecretName cannot be changed",
        ),
        (
            "output Secret name added",
            &by_id,
            json!({"outputSecretName": "b-out"}),
            "outputSecretName cannot be changed",
        ),
        (
            "environment changed",
            &by_domain,
            json!({"environmentRef": {"name": "other"}}),
            "environmentRef cannot be changed",
        ),
        (
            "tenant name changed",
            &by_domain,
            json!({"tenantName": "renamed"}),
            "tenantName cannot be changed",
        ),
    ] {
        let message = try_apply(&api, &edit(base, change)).await.expect_err(what);
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            message.to_lowercase().contains("delete this tenant"),
            "{what} says what to do: {message}"
        );
    }
    let bad_name = tenant_manifest(
        "c",
        "prod",
        "t100",
        "Retain",
        json!({"outputSecretName": "Not_A_Secret"}),
    );
    let message = try_apply(&api, &bad_name)
        .await
        .expect_err("invalid Secret name");
    assert!(message.contains("outputSecretName"), "{message}");

    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}

fn environment_manifest(spec: Value) -> Value {
    let mut base = json!({
        "authUrl": "https://auth.example.com",
        "gwsUrl": "https://gws.example.com",
        "nexusUrl": "https://nexus.example.com",
        "opsCredentialsSecret": {"name": "gws-ops"},
        "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
    });
    for (k, v) in spec.as_object().expect("object") {
        if v.is_null() {
            base.as_object_mut().expect("spec").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "prod"},
        "spec": base,
    })
}

async fn try_apply_env(
    api: &Api<DigitalChannelsEnvironment>,
    manifest: &Value,
) -> Result<(), String> {
    api.patch(
        "prod",
        &PatchParams::apply(USER_MANAGER).force(),
        &Patch::Apply(manifest),
    )
    .await
    .map(drop)
    .map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    })
}

#[tokio::test]
async fn environment_identity_is_fixed_once_provisioned_whatever_its_spelling() {
    let Some(client) = cluster("schema_environment_identity").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-schema-env-{:04x}", rand::random::<u16>());
    create_namespace(&client, &ns, &[]).await;
    let api: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), &ns);

    let original = environment_manifest(json!({}));
    try_apply_env(&api, &original)
        .await
        .expect("a valid environment");
    // Nothing made upstream yet: a typo can still be fixed in place.
    let fixed = environment_manifest(json!({"gwsUrl": "https://gws2.example.com"}));
    try_apply_env(&api, &fixed)
        .await
        .expect("an unprovisioned environment can be edited");
    try_apply_env(&api, &original).await.expect("and back");

    // The record the operator writes once it made (or adopted) the client.
    api.patch_status(
        "prod",
        &PatchParams::apply("dc-operator").force(),
        &Patch::Apply(json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsEnvironment",
            "status": {"managedClientId": "nexus_client"},
        })),
    )
    .await
    .expect("status written");

    for (what, change, expected) in [
        (
            "another GWS",
            json!({"gwsUrl": "https://gws2.example.com"}),
            "gwsUrl cannot change",
        ),
        (
            "another GWS path",
            json!({"gwsUrl": "https://gws.example.com/other"}),
            "gwsUrl cannot change",
        ),
        (
            "another GWS Auth",
            json!({"authUrl": "https://auth2.example.com"}),
            "authUrl cannot change",
        ),
        (
            "another Nexus",
            json!({"nexusUrl": "http://nexus.example.com"}),
            "nexusUrl cannot change",
        ),
        (
            "an Environment API apart from authUrl",
            json!({"environmentUrl": "https://env.example.com"}),
            "environmentUrl (default authUrl) cannot change",
        ),
        (
            "another client id",
            json!({"client": {"id": "nexus_client_2"}}),
            "client.id cannot change",
        ),
        (
            "another database Secret",
            json!({"database": {"urlSecret": {"name": "other-db", "key": "url"}}}),
            "database.urlSecret cannot change",
        ),
    ] {
        let message = try_apply_env(&api, &environment_manifest(change))
            .await
            .expect_err(what);
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            message.contains("create a new DigitalChannelsEnvironment"),
            "{what} says what to do instead: {message}"
        );
    }

    // Other spellings of the same services, and the defaults spelt out, change nothing
    // upstream: accepted.
    for (what, change) in [
        (
            "a trailing slash",
            json!({"gwsUrl": "https://gws.example.com/"}),
        ),
        ("letter case", json!({"gwsUrl": "https://GWS.Example.com"})),
        (
            "the default port",
            json!({"nexusUrl": "https://nexus.example.com:443/"}),
        ),
        (
            "auth URL spelt",
            json!({"authUrl": "https://Auth.example.com/"}),
        ),
        (
            "environmentUrl equal to authUrl",
            json!({"environmentUrl": "https://auth.example.com/"}),
        ),
        (
            "the default client id spelt out",
            json!({"client": {"id": "nexus_client"}}),
        ),
        (
            "a setting that is not identity",
            json!({"deletionPolicy": "Delete", "client": {"accessTokenExpirationTimeout": 600}}),
        ),
    ] {
        try_apply_env(&api, &environment_manifest(change))
            .await
            .unwrap_or_else(|m| panic!("{what} is refused: {m}"));
    }

    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}

/// `kubectl get dct` shows where the DesignerEnv step stands (the step left by hand once the
/// tenant is Ready), from the DesignerEnvConfigured condition's reason.
#[tokio::test]
async fn kubectl_get_shows_the_designer_env_step() {
    let Some(client) = cluster("schema_designer_env_column").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-columns-{:04x}", rand::random::<u16>());
    create_namespace(&client, &ns, &[]).await;
    let api: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), &ns);
    try_apply(
        &api,
        &tenant_manifest("a", "prod", "t100", "Retain", json!({})),
    )
    .await
    .expect("a valid tenant");
    let condition = json!({
        "type": "DesignerEnvConfigured", "status": "False", "reason": "ManualStepRequired",
        "message": "In Agent Setup ...", "lastTransitionTime": "2026-01-01T00:00:00Z",
    });
    api.patch_status(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [condition]}})),
    )
    .await
    .expect("status written");
    let table = crate::harness::kubectl(&["-n", &ns, "get", "dct", "a"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let row = lines.next().unwrap_or_default();
    assert!(header.contains(&"DESIGNER ENV"), "{table}");
    assert!(row.contains("ManualStepRequired"), "{table}");

    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}
