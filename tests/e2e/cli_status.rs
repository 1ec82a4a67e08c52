//! `dc-operator status` and `kubectl dc status` against the real API server: resources with
//! the statuses a healthy and a broken estate have, written through the status subresource
//! (the schema of `crds/` judges them, `nextRetryAt` included); the exact tree and the exit
//! code of each. And `dc-operator run` for real: the next retry it writes, and removes once
//! Ready, as the status command shows them.

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{
    OPERATOR_BIN, Scenario, Scope, USER_MANAGER, cluster, create_namespace, shared_scope,
};
use crate::status_estates::{
    HEALTHY_TREE, broken_tree, env_object, in_an_hour, normalised, ready_tenant_conditions,
    tenant_object, waiting_conditions,
};

/// Applies the object's spec as a user would, then its status through `/status`.
async fn put(client: &kube::Client, ns: &str, object: Value) {
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let mut spec = object.clone();
    spec.as_object_mut().expect("object").remove("status");
    let status = json!({"status": object["status"]});
    let apply = PatchParams::apply(USER_MANAGER).force();
    match object["kind"].as_str() {
        Some("DigitalChannelsEnvironment") => {
            let api: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), ns);
            api.patch(&name, &apply, &Patch::Apply(&spec))
                .await
                .expect("apply");
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("status");
        }
        _ => {
            let api: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), ns);
            api.patch(&name, &apply, &Patch::Apply(&spec))
                .await
                .expect("apply");
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("status");
        }
    }
}

/// The program (the binary, or kubectl with the plugin link on PATH) with these arguments,
/// against the cluster of KUBECONFIG: its exit code and output.
fn status(program: &str, args: &[&str], path: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command.output().expect("run status");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_shows_a_healthy_and_a_broken_estate_from_the_real_api_server() {
    let Some(client) = cluster("cli_status").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-status-{:04x}", rand::random::<u16>());
    create_namespace(&client, &ns, &[]).await;

    put(&client, &ns, env_object(&ns, true, None)).await;
    let ready = tenant_object(&ns, "t100", "prod", ready_tenant_conditions());
    put(&client, &ns, ready).await;
    let (code, stdout, stderr) = status(OPERATOR_BIN, &["status", "-n", &ns], None);
    assert_eq!(normalised(&stdout), HEALTHY_TREE, "\n{stdout}{stderr}");
    assert_eq!(code, Some(0), "all Ready");

    put(&client, &ns, env_object(&ns, false, Some(&in_an_hour()))).await;
    let waiting = tenant_object(&ns, "t400", "staging", waiting_conditions(&ns));
    put(&client, &ns, waiting).await;
    let stored: DigitalChannelsEnvironment = Api::namespaced(client.clone(), &ns)
        .get("prod")
        .await
        .expect("prod");
    assert!(
        stored.status.unwrap().next_retry_at.is_some(),
        "the schema keeps nextRetryAt"
    );
    let (code, stdout, stderr) = status(OPERATOR_BIN, &["status", "-n", &ns], None);
    assert_eq!(normalised(&stdout), broken_tree(&ns), "\n{stdout}{stderr}");
    assert_eq!(code, Some(1), "not all Ready");

    // The same through kubectl, the binary linked as its plugin.
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(OPERATOR_BIN, dir.path().join("kubectl-dc")).expect("link");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/kubectl");
    let (code, stdout, stderr) = status(kubectl, &["dc", "status", "-n", &ns], Some(&path));
    assert_eq!(normalised(&stdout), broken_tree(&ns), "\n{stdout}{stderr}");
    assert_eq!(code, Some(1), "kubectl passes the plugin's exit code on");
    let (code, stdout, _) = status(kubectl, &["dc", "status", "t100", "-n", &ns], Some(&path));
    assert_eq!(code, Some(0), "t100 alone is Ready:\n{stdout}");

    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}

/// A tenant user GWS refuses is retried on the backoff and status says when, and what to
/// do; once the Secret holds the password GWS has, it is Ready and the retry is gone (the
/// real server drops the field its manager stops sending).
#[tokio::test]
async fn the_operator_s_next_retry_and_what_to_do_until_ready() {
    use digital_channels_operator::api::conditions::find;
    let Some(client) = cluster("cli_status_operator").await else {
        return;
    };
    let mut s = Scenario::new(client, "status", Scope::Namespaces).await;
    let cc = digital_channels_operator::simulator::DEMO_CC_T100;
    s.sim
        .set_tenant_user_password(cc, "nexus", "changed-in-gws-7")
        .await;
    s.start_operator("replica-a");
    s.apply_examples();
    let refused = s
        .wait_until(
            "t100",
            "Unauthorized with a next retry",
            std::time::Duration::from_secs(90),
            |t: &DigitalChannelsTenant| {
                t.status.as_ref().is_some_and(|s| {
                    s.next_retry_at.is_some()
                        && find(&s.conditions, "TenantProvisioned")
                            .is_some_and(|c| c.reason == "Unauthorized")
                })
            },
        )
        .await;
    let ns = s.ns.clone();
    let (code, stdout, _) = status(OPERATOR_BIN, &["status", "t100", "-n", &ns], None);
    assert_eq!(code, Some(1), "{stdout}");
    let to_do =
        "│  to do: fix the Secret named in the message (ops user, tenant user, database URL)";
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with(to_do)),
        "{stdout}"
    );
    assert!(
        stdout.contains("│  next retry: in ") || stdout.contains("│  next retry: due now"),
        "{stdout}\n{refused:?}"
    );

    s.api::<k8s_openapi::api::core::v1::Secret>()
        .patch(
            "t100-nexus-user",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "changed-in-gws-7"}})),
        )
        .await
        .expect("fix the password");
    let ready = s.wait_tenant_ready("t100").await;
    assert_eq!(ready.status.expect("status").next_retry_at, None);
    s.wait_environment_ready("prod").await;
    let (code, stdout, _) = status(OPERATOR_BIN, &["status", "-n", &ns], None);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("next retry"), "{stdout}");
    s.finish().await;
}
