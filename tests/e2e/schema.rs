//! What the CRD schema refuses, judged by the real API server (CEL transition rules and
//! patterns are not evaluated anywhere else): identity fields cannot change once set.

use digital_channels_operator::api::DigitalChannelsTenant;
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
            "tenantName is immutable",
        ),
    ] {
        let message = try_apply(&api, &edit(base, change)).await.expect_err(what);
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            message.to_lowercase().contains("delete this tenant") || what == "tenant name changed",
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
