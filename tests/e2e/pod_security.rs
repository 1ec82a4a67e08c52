//! The chart's rendered objects are accepted by the real API server, without a warning, in a
//! namespace that enforces the `restricted` Pod Security Standard.

use crate::harness::{
    cluster, create_namespace, helm_template, kind_of, kubectl_stdin, shared_scope,
};

#[tokio::test]
async fn the_chart_passes_restricted_pod_security_on_a_server_side_dry_run() {
    let Some(client) = cluster("restricted_pod_security").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-psa-{:04x}", rand::random::<u16>());
    let labels = [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/audit", "restricted"),
    ];
    create_namespace(&client, &ns, &labels).await;
    for (mode, sets) in [
        ("cluster-wide", vec![]),
        ("watchNamespaces", vec![format!("watchNamespaces={{{ns}}}")]),
        (
            "everything on",
            vec![
                "replicas=2".to_string(),
                "networkPolicy.enabled=true".to_string(),
                "nexusRestart.enabled=true".to_string(),
                format!("nexusRestart.namespaces={{{ns}}}"),
            ],
        ),
    ] {
        let docs = helm_template("dc-operator-psa", &ns, &sets);
        let kinds: Vec<&str> = docs.iter().map(kind_of).collect();
        assert!(kinds.contains(&"Deployment"), "{mode}: {kinds:?}");
        let stream = docs
            .iter()
            .map(|d| serde_yaml_ng::to_string(d).expect("YAML"))
            .collect::<Vec<_>>()
            .join("---\n");
        let out = kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "-n",
                &ns,
                "-f",
                "-",
            ],
            &stream,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{mode}: the API server refused the chart: {stderr}"
        );
        assert!(
            !stderr.to_ascii_lowercase().contains("warning"),
            "{mode}: the API server warned: {stderr}"
        );
        println!(
            "e2e restricted_pod_security: {mode}: {} objects accepted ({kinds:?})",
            docs.len()
        );
    }
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}
