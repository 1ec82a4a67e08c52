//! The chart's RBAC on the real API server: it is enough (every scenario runs with exactly
//! these rights, cluster-wide included here), it is narrow (`kubectl auth can-i` as the
//! ServiceAccount), and a missing rule is caught with the API server's Forbidden answer.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Scenario, Scope, can_i, cluster, kind_of, wait_for};

#[tokio::test]
async fn the_chart_grants_narrow_rights_in_both_modes() {
    let Some(client) = cluster("rbac_narrow").await else {
        return;
    };
    // watchNamespaces: rights in the watched namespace only.
    let s = Scenario::new(client.clone(), "rbac-ns", Scope::Namespaces).await;
    let kc = s.sa_kubeconfig.clone();
    let (ns, op_ns) = (s.ns.as_str(), s.op_ns.as_str());
    // What it needs, so that the "no" answers below mean something.
    for args in [
        vec!["list", "secrets", "-n", ns],
        vec!["watch", "secrets", "-n", ns],
        vec!["patch", "secrets", "-n", ns],
        vec![
            "patch",
            "digitalchannelstenants.digitalchannels.dev/status",
            "-n",
            ns,
        ],
        vec!["create", "events.events.k8s.io", "-n", ns],
        vec![
            "update",
            "leases.coordination.k8s.io/digital-channels-operator",
            "-n",
            op_ns,
        ],
    ] {
        assert!(
            can_i(&kc, &args),
            "watchNamespaces: the operator needs to {args:?}"
        );
    }
    for args in [
        vec!["get", "secrets", "-n", op_ns],
        vec!["list", "secrets", "-n", "default"],
        vec!["list", "secrets", "--all-namespaces"],
        vec!["delete", "secrets", "-n", ns],
        vec!["create", "pods", "-n", ns],
        vec!["create", "pods", "-n", op_ns],
        vec![
            "delete",
            "digitalchannelstenants.digitalchannels.dev",
            "-n",
            ns,
        ],
        vec![
            "update",
            "leases.coordination.k8s.io/someone-elses-lease",
            "-n",
            op_ns,
        ],
        vec!["get", "namespaces/default"],
    ] {
        assert!(
            !can_i(&kc, &args),
            "watchNamespaces: the operator must not {args:?}"
        );
    }
    s.finish().await;

    // Cluster-wide: it reads Secrets everywhere by design, but deletes none and creates no Pod.
    let s = Scenario::new(client, "rbac-cw", Scope::ClusterWide).await;
    let kc = s.sa_kubeconfig.clone();
    assert!(can_i(&kc, &["list", "secrets", "--all-namespaces"]));
    for args in [
        vec!["delete", "secrets", "-n", "default"],
        vec!["delete", "secrets", "-n", s.ns.as_str()],
        vec!["create", "pods", "-n", s.ns.as_str()],
        vec!["create", "pods", "-n", "default"],
        vec!["delete", "namespaces"],
        vec![
            "create",
            "digitalchannelstenants.digitalchannels.dev",
            "-n",
            "default",
        ],
    ] {
        assert!(
            !can_i(&kc, &args),
            "cluster-wide: the operator must not {args:?}"
        );
    }
    s.finish().await;
}

#[tokio::test]
async fn cluster_wide_mode_provisions_with_the_cluster_role() {
    let Some(client) = cluster("rbac_cluster_wide").await else {
        return;
    };
    // Exclusive: this operator watches every namespace, so no other scenario runs meanwhile.
    let mut s = Scenario::new(client, "cluster", Scope::ClusterWide).await;
    s.start_operator("replica-a");
    s.apply_examples();
    s.wait_tenant_ready("t100").await;
    s.wait_environment_ready("prod").await;
    s.finish().await;
}

/// Drops the status rule from the rendered rules: the operator cannot write status.
fn without_status_rule(docs: &mut [Value]) {
    for doc in docs.iter_mut().filter(|d| kind_of(d).ends_with("Role")) {
        if let Some(rules) = doc["rules"].as_array_mut() {
            rules.retain(|r| {
                !r["resources"].as_array().is_some_and(|rs| {
                    rs.iter()
                        .any(|x| x.as_str().is_some_and(|x| x.ends_with("/status")))
                })
            });
        }
    }
}

#[tokio::test]
async fn a_missing_rule_fails_the_scenario_with_the_forbidden_answer() {
    let Some(client) = cluster("rbac_missing_rule").await else {
        return;
    };
    let mut s =
        Scenario::with_rbac_edit(client, "norule", Scope::Namespaces, without_status_rule).await;
    s.start_operator("replica-a");
    s.apply_examples();
    let forbidden = wait_for(
        "the operator to meet a Forbidden answer",
        Duration::from_secs(60),
        || s.context(),
        || async {
            let lines = s.operators[0].forbidden_lines();
            (!lines.is_empty()).then_some(lines)
        },
    )
    .await;
    assert!(
        forbidden
            .iter()
            .any(|l| l.contains("/status") || l.contains("status")),
        "the answer names what was refused: {forbidden:?}"
    );
    // What every other scenario's teardown checks: here it reports the refusal.
    let report = s
        .forbidden_report()
        .expect("a missing rule must fail the scenario");
    assert!(report.contains("cannot patch resource"), "{report}");
    s.finish_without_checks().await;
}
