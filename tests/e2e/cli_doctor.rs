//! `dc-operator doctor` on the real API server: the CRDs and the versions this binary serves,
//! the chart's ServiceAccount rights by SubjectAccessReview (all granted; then one rule removed
//! and named), and the leader Lease (held and renewed; then stale once its holder is killed).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::harness::{OPERATOR_BIN, Scenario, Scope, cluster, kind_of, kubectl, wait_for};

/// The ServiceAccount the chart rendered in the release namespace.
fn service_account(s: &Scenario) -> String {
    let names = kubectl(&["-n", &s.op_ns, "get", "serviceaccounts", "-o", "name"]);
    let name = names
        .lines()
        .map(|l| l.trim_start_matches("serviceaccount/"))
        .find(|n| *n != "default")
        .expect("the chart's ServiceAccount")
        .to_string();
    format!("{}/{name}", s.op_ns)
}

/// `doctor -n NS --service-account ...` as the cluster admin: (exit code, stdout).
fn doctor(s: &Scenario, extra: &[&str]) -> (i32, String) {
    let sa = service_account(s);
    let mut args = vec!["doctor", "-n", &s.ns, "--service-account", &sa];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(OPERATOR_BIN)
        .args(&args)
        .output()
        .expect("dc-operator doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty() || out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn line<'a>(text: &'a str, title: &str) -> &'a str {
    // "  ✓ Title  message": the mark, a space, then the title.
    text.lines()
        .find(|l| {
            l.trim_start()
                .chars()
                .skip(2)
                .collect::<String>()
                .starts_with(title)
        })
        .unwrap_or_else(|| panic!("no line {title:?} in:\n{text}"))
}

#[tokio::test]
async fn doctor_checks_the_crds_the_rights_and_the_lease() {
    let Some(client) = cluster("doctor").await else {
        return;
    };
    let mut s = Scenario::new(client.clone(), "doctor", Scope::Namespaces).await;
    s.start_operator("doctor-a");
    s.apply_examples();
    s.wait_environment_ready("prod").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &s.op_ns);
    wait_for(
        "the Lease to be held",
        Duration::from_secs(60),
        || s.context(),
        || async {
            leases
                .get_opt("digital-channels-operator")
                .await
                .ok()
                .flatten()
        },
    )
    .await;

    let (code, text) = doctor(&s, &[]);
    eprintln!("doctor on a healthy cluster:\n{text}");
    for crd in ["digitalchannelsenvironments", "digitalchannelstenants"] {
        let l = line(&text, &format!("CRD {crd}.digitalchannels.dev"));
        assert!(
            l.contains("✓") && l.ends_with("serves v1alpha1 (this binary: v1alpha1)"),
            "{text}"
        );
    }
    let rights = line(&text, "ServiceAccount rights");
    assert!(
        rights.contains("✓") && rights.contains("may do all"),
        "{text}"
    );
    let lease = line(
        &text,
        &format!("Leader Lease {}/digital-channels-operator", s.op_ns),
    );
    assert!(
        lease.contains("✓ ") && lease.contains("held by doctor-a, renewed"),
        "{text}"
    );
    // The environment of the examples over plain http: warnings, no failure.
    assert!(line(&text, "Tenant user").contains("✓"), "{text}");
    assert_eq!(code, 0, "{text}");

    let (_, json) = doctor(&s, &["-o", "json", "prod"]);
    let report: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["checks"][0]["group"], "Cluster");

    // Killed, the holder renews no more: once the renewal is older than twice the lease's
    // duration, the Lease is stale. The renewal is set back rather than waited for.
    s.operators[0].kill();
    let past = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600),
    );
    leases
        .patch(
            "digital-channels-operator",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"renewTime": past}})),
        )
        .await
        .expect("set the renewal back");
    let (code, text) = doctor(&s, &[]);
    let lease = line(
        &text,
        &format!("Leader Lease {}/digital-channels-operator", s.op_ns),
    );
    assert!(
        lease.contains("✗ ") && lease.contains("stale: held by doctor-a, not renewed for 10m"),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");
    s.finish_without_checks().await;
}

/// The chart's RBAC without the Role rule for events: doctor names what is missing.
fn without_event_rule(docs: &mut [Value]) {
    for doc in docs.iter_mut().filter(|d| kind_of(d) == "Role") {
        if let Some(rules) = doc["rules"].as_array_mut() {
            rules.retain(|r| {
                !r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == "events"))
            });
        }
    }
}

#[tokio::test]
async fn doctor_names_a_right_the_service_account_lacks() {
    let Some(client) = cluster("doctor_rights").await else {
        return;
    };
    let s = Scenario::with_rbac_edit(client, "doctor-rbac", Scope::Namespaces, without_event_rule)
        .await;
    let (code, text) = doctor(&s, &[]);
    let rights = line(&text, "ServiceAccount rights");
    assert!(rights.contains("✗ "), "{text}");
    let ns = &s.ns;
    assert!(
        rights.ends_with(&format!(
            "may not: create events.events.k8s.io -n {ns}; patch events.events.k8s.io -n {ns}"
        )),
        "{text}"
    );
    // No operator ran: no Lease, a warning; no environment in the namespace, a warning.
    assert!(line(&text, "Leader Lease").contains("! "), "{text}");
    assert!(
        line(&text, "Environments").contains("no DigitalChannelsEnvironment"),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");
    s.finish_without_checks().await;
}
