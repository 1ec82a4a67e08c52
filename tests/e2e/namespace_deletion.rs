//! Deleting a whole namespace that holds an environment and tenants of both deletion
//! policies completes: no namespace stays Terminating on the operator's finalizer.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;

use crate::harness::{Scenario, Scope, cluster, wait_for};
use crate::resources::{apply_environment, apply_secrets, apply_tenant};

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deleting_a_namespace_with_resources_completes_within_a_minute() {
    let Some(client) = cluster("namespace_deletion").await else {
        return;
    };
    let mut s = Scenario::new(client.clone(), "nsdel", Scope::Namespaces).await;
    s.start_operator("replica-a");
    apply_secrets(&s).await;
    apply_environment(&s, "prod", "Delete").await;
    apply_tenant(&s, "t100", "prod", "t100", "Delete").await;
    apply_tenant(&s, "t200", "prod", "t200", "Retain").await;
    s.wait_tenant_ready("t100").await;
    s.wait_tenant_ready("t200").await;
    s.wait_environment_ready("prod").await;

    let namespaces: Api<Namespace> = Api::all(client);
    let started = Instant::now();
    s.namespace_deleted();
    namespaces
        .delete(&s.ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    wait_for(
        "the namespace to be deleted",
        WITHIN,
        || {
            format!(
                "{}\n{}",
                crate::harness::kubectl(&[
                    "get",
                    "namespace",
                    &s.ns,
                    "-o",
                    "jsonpath={.status}",
                    "--ignore-not-found"
                ]),
                s.context()
            )
        },
        || async { matches!(namespaces.get_opt(&s.ns).await, Ok(None)).then_some(()) },
    )
    .await;
    println!(
        "e2e namespace_deletion: namespace gone {:?} after the delete",
        started.elapsed()
    );
    s.finish().await;
}
