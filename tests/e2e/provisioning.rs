//! The path of docs/install.md and docs/walkthrough.md: `examples/simulator/` applied into a namespace, both resources Ready,
//! the output Secret written, and `deletionPolicy: Delete` cleaning the simulator up.

use std::time::Duration;

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::simulator::DEMO_CC_T100;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;

use crate::harness::{Scenario, Scope, cluster};

#[tokio::test]
async fn the_examples_provision_and_clean_up() {
    let Some(client) = cluster("the_examples_provision_and_clean_up").await else {
        return;
    };
    let mut s = Scenario::new(client, "examples", Scope::Namespaces).await;
    s.start_operator("replica-a");
    s.apply_examples();

    let tenant = s.wait_tenant_ready("t100").await;
    let status = tenant.status.expect("status");
    assert_eq!(status.contact_center_id.as_deref(), Some(DEMO_CC_T100));
    s.wait_environment_ready("prod").await;

    let output = s
        .api::<Secret>()
        .get("t100-digital-channels")
        .await
        .expect("output Secret");
    let data = output.data.clone().expect("data");
    for key in ["xapikey", "contactCenterId", "tenantName", "nexusUrl"] {
        assert!(data.contains_key(key), "output Secret lacks {key}");
    }
    assert_eq!(data["contactCenterId"].0, DEMO_CC_T100.as_bytes());
    let owners = output.metadata.owner_references.expect("owner");
    assert!(owners.iter().any(|o| o.kind == "DigitalChannelsTenant"
        && o.name == "t100"
        && Some(&o.uid) == tenant.metadata.uid.as_ref()));

    let metrics = s.operators[0].metrics().await;
    assert!(
        metrics.contains("dc_operator_reconcile_total{"),
        "{metrics}"
    );

    // The examples use deletionPolicy Delete: the simulator loses the tenant and the client.
    s.api::<DigitalChannelsTenant>()
        .delete("t100", &DeleteParams::default())
        .await
        .expect("delete tenant");
    s.api::<DigitalChannelsEnvironment>()
        .delete("prod", &DeleteParams::default())
        .await
        .expect("delete environment");
    s.wait_gone::<DigitalChannelsTenant>("t100", Duration::from_secs(60))
        .await;
    s.wait_gone::<DigitalChannelsEnvironment>("prod", Duration::from_secs(60))
        .await;
    let state = s.sim.state().await;
    assert_eq!(
        state["tenants"].as_object().map(|m| m.len()),
        Some(0),
        "{state}"
    );
    assert_eq!(
        state["clients"].as_object().map(|m| m.len()),
        Some(0),
        "{state}"
    );
    s.finish().await;
}
