//! The cluster's part: the CRDs and the versions this binary serves, the operator's
//! ServiceAccount rights (SubjectAccessReview), and the leader Lease. Verdicts are pure
//! functions; the reads are a thin layer over kube.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;

use super::check::{Report, Verdict};
use super::rights::{Ask, asks};
use crate::controller::leader::LEASE_NAME;

pub const GROUP: &str = "Cluster";

const APPLY_CRDS: &str = "apply this binary's CRDs: dc-operator crds | kubectl apply --server-side -f - (helm install and upgrade do it)";

/// The versions a CRD serves.
fn served(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.clone())
        .collect()
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// One CRD as installed, against this binary's.
pub fn crd(
    installed: Option<&CustomResourceDefinition>,
    ours: &CustomResourceDefinition,
) -> Verdict {
    let wanted = served(ours);
    let Some(installed) = installed else {
        return Verdict::failure("not installed", APPLY_CRDS);
    };
    let serves = served(installed);
    let missing: Vec<&String> = wanted.iter().filter(|v| !serves.contains(v)).collect();
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Verdict::failure(
            format!(
                "serves {}; this binary needs {}",
                or_none(&serves),
                missing.join(", ")
            ),
            APPLY_CRDS,
        );
    }
    if !established(installed) {
        return Verdict::failure(
            "not Established: the API server does not serve it yet",
            "kubectl describe crd: its conditions say why (a name conflict, a schema refused)",
        );
    }
    Verdict::ok(format!(
        "serves {} (this binary: {})",
        serves.join(", "),
        wanted.join(", ")
    ))
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no version".to_string()
    } else {
        items.join(", ")
    }
}

/// The answers of the API server to every question, for one ServiceAccount.
pub fn rights(user: &str, answers: &[(Ask, Result<bool, String>)]) -> Verdict {
    if let Some((_, Err(e))) = answers.iter().find(|(_, a)| a.is_err()) {
        return Verdict::warning(
            format!("cannot ask the API server: {e}"),
            "run doctor as a user who may create subjectaccessreviews (cluster admin)",
        );
    }
    let denied: Vec<String> = answers
        .iter()
        .filter(|(_, a)| matches!(a, Ok(false)))
        .map(|(ask, _)| ask.describe())
        .collect();
    if denied.is_empty() {
        return Verdict::ok(format!(
            "{user} may do all {} things it needs",
            answers.len()
        ));
    }
    Verdict::failure(
        format!("{user} may not: {}", denied.join("; ")),
        "install the chart's RBAC for this ServiceAccount (rbac.create: true, watchNamespaces, \
         nexusRestart), or grant the rules docs/install.md lists; --service-account names another",
    )
}

/// "3s", "4m10s", "2h5m".
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// What the leader Lease says: who holds it, and how long ago it was renewed on this
/// machine's clock (negative ages, a clock ahead, count as now).
pub fn lease(
    namespace: &str,
    found: Option<(Option<&str>, Option<Duration>, Duration)>,
) -> Verdict {
    let pods =
        format!("kubectl -n {namespace} get pods; kubectl -n {namespace} logs deploy/<release>");
    let Some((holder, renewed_ago, duration)) = found else {
        return Verdict::warning(
            format!("no Lease {LEASE_NAME} in namespace {namespace}: no operator has taken it"),
            format!(
                "start the operator there ({pods}), or name its namespace with --service-account NS/NAME; with leader election off there is no Lease"
            ),
        );
    };
    let limit = age(duration);
    match (holder.filter(|h| !h.is_empty()), renewed_ago) {
        (None, _) => Verdict::failure(
            "released: no replica holds it",
            format!("is the operator running? {pods}"),
        ),
        (Some(h), Some(ago)) if ago <= duration => Verdict::ok(format!(
            "held by {h}, renewed {} ago (lease duration {limit})",
            age(ago)
        )),
        (Some(h), Some(ago)) if ago <= duration * 2 => Verdict::warning(
            format!(
                "held by {h}, renewed {} ago, past its lease duration {limit}",
                age(ago)
            ),
            "the leader is slow to renew, or this machine's clock differs from its node's: look again",
        ),
        (Some(h), ago) => Verdict::failure(
            format!(
                "stale: held by {h}, not renewed for {} (lease duration {limit})",
                ago.map(age).unwrap_or_else(|| "ever".into())
            ),
            format!(
                "the leader stopped renewing: {pods}; a standby replica takes over once it expires"
            ),
        ),
    }
}

/// The CRD check of both kinds. `false` when the operator's kinds cannot be read.
pub async fn check_crds(report: &mut Report, client: &kube::Client) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut all = true;
    for ours in crate::api::crds() {
        let name = ours.metadata.name.clone().unwrap_or_default();
        let verdict = match api.get_opt(&name).await {
            Ok(found) => crd(found.as_ref(), &ours),
            Err(e) => Verdict::failure(
                format!("cannot read it: {}", crate::controller::kube_message(&e)),
                "check the kubeconfig, and your right to get customresourcedefinitions",
            ),
        };
        all &= verdict.status != super::check::Status::Failure;
        report.push(
            GROUP,
            &format!("crd:{name}"),
            &format!("CRD {name}"),
            verdict,
        );
    }
    all
}

/// The ServiceAccount's rights for resources in `watched`.
pub async fn check_rights(
    report: &mut Report,
    client: &kube::Client,
    service_account: (&str, &str),
    watched: &str,
    nexus: &[(String, String)],
) {
    let (sa_ns, sa_name) = service_account;
    let user = format!("system:serviceaccount:{sa_ns}:{sa_name}");
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut answers = Vec::new();
    for ask in asks(watched, sa_ns, nexus) {
        let review = review(&user, sa_ns, &ask);
        let answer = match api.create(&PostParams::default(), &review).await {
            Ok(done) => Ok(done.status.is_some_and(|s| s.allowed)),
            Err(e) => Err(crate::controller::kube_message(&e)),
        };
        let failed = answer.is_err();
        answers.push((ask, answer));
        if failed {
            break;
        }
    }
    let verdict = rights(&format!("ServiceAccount {sa_ns}/{sa_name}"), &answers);
    report.push(GROUP, "rights", "ServiceAccount rights", verdict);
}

fn review(user: &str, sa_ns: &str, ask: &Ask) -> SubjectAccessReview {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{sa_ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(ask.group.clone()),
                resource: some(&ask.resource),
                subresource: some(&ask.subresource),
                verb: some(&ask.verb),
                namespace: some(&ask.namespace),
                name: some(&ask.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The leader Lease in the operator's namespace.
pub async fn check_lease(report: &mut Report, client: &kube::Client, namespace: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let verdict = match api.get_opt(LEASE_NAME).await {
        Ok(None) => lease(namespace, None),
        Ok(Some(found)) => {
            let spec = found.spec.unwrap_or_default();
            let now = jiff::Timestamp::now();
            let ago = spec.renew_time.map(|t| {
                let secs = now.duration_since(t.0).as_secs();
                Duration::from_secs(secs.max(0) as u64)
            });
            let duration =
                Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
            lease(
                namespace,
                Some((spec.holder_identity.as_deref(), ago, duration)),
            )
        }
        Err(e) => Verdict::warning(
            format!("cannot read it: {}", crate::controller::kube_message(&e)),
            "check your right to get leases in the operator's namespace",
        ),
    };
    report.push(
        GROUP,
        "lease",
        &format!("Leader Lease {namespace}/{LEASE_NAME}"),
        verdict,
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::Status::{Failure, Ok as Good, Warning};
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    fn installed(versions: &[(&str, bool)], established: bool) -> CustomResourceDefinition {
        let mut crd = crate::api::crds()[0].clone();
        let template = crd.spec.versions[0].clone();
        crd.spec.versions = versions
            .iter()
            .map(|(name, served)| {
                let mut v = template.clone();
                v.name = name.to_string();
                v.served = *served;
                v
            })
            .collect();
        crd.status = Some(CustomResourceDefinitionStatus {
            conditions: Some(vec![CustomResourceDefinitionCondition {
                type_: "Established".into(),
                status: if established { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        crd
    }

    #[test]
    fn crds_serve_the_versions_of_this_binary() {
        let ours = &crate::api::crds()[0];
        let cases = [
            (None, Failure, "not installed"),
            (
                Some(installed(&[("v1alpha1", true)], true)),
                Good,
                "serves v1alpha1 (this binary: v1alpha1)",
            ),
            (
                Some(installed(&[("v1alpha1", true), ("v1beta1", true)], true)),
                Good,
                "serves v1alpha1, v1beta1 (this binary: v1alpha1)",
            ),
            (
                Some(installed(&[("v1alpha0", true)], true)),
                Failure,
                "serves v1alpha0; this binary needs v1alpha1",
            ),
            (
                Some(installed(&[("v1alpha1", false)], true)),
                Failure,
                "serves no version; this binary needs v1alpha1",
            ),
            (
                Some(installed(&[("v1alpha1", true)], false)),
                Failure,
                "not Established: the API server does not serve it yet",
            ),
        ];
        for (found, status, message) in cases {
            let v = crd(found.as_ref(), ours);
            assert_eq!((v.status, v.message.as_str()), (status, message));
        }
    }

    #[test]
    fn rights_name_what_is_denied() {
        let all = asks("dc", "op", &[]);
        let yes: Vec<_> = all.iter().map(|a| (a.clone(), Ok(true))).collect();
        assert_eq!(rights("sa", &yes).status, Good);
        let mut some = yes.clone();
        some[0].1 = Ok(false);
        let v = rights("sa", &some);
        assert_eq!(v.status, Failure);
        assert_eq!(
            v.message,
            "sa may not: get digitalchannelsenvironments.digitalchannels.dev -n dc"
        );
        some[1].1 = Err("forbidden".into());
        assert_eq!(rights("sa", &some).status, Warning);
    }

    #[test]
    fn the_lease_is_held_and_renewed_within_its_duration() {
        let s = Duration::from_secs;
        let d = s(15);
        let cases = [
            (
                None,
                Warning,
                "no Lease digital-channels-operator in namespace op: no operator has taken it",
            ),
            (
                Some((Some("pod-a"), Some(s(3)), d)),
                Good,
                "held by pod-a, renewed 3s ago (lease duration 15s)",
            ),
            (
                Some((Some("pod-a"), Some(s(15)), d)),
                Good,
                "held by pod-a, renewed 15s ago (lease duration 15s)",
            ),
            (
                Some((Some("pod-a"), Some(s(25)), d)),
                Warning,
                "held by pod-a, renewed 25s ago, past its lease duration 15s",
            ),
            (
                Some((Some("pod-a"), Some(s(310)), d)),
                Failure,
                "stale: held by pod-a, not renewed for 5m10s (lease duration 15s)",
            ),
            (
                Some((Some("pod-a"), None, d)),
                Failure,
                "stale: held by pod-a, not renewed for ever (lease duration 15s)",
            ),
            (
                Some((Some(""), Some(s(1)), d)),
                Failure,
                "released: no replica holds it",
            ),
            (
                Some((None, None, d)),
                Failure,
                "released: no replica holds it",
            ),
        ];
        for (found, status, message) in cases {
            let v = lease("op", found);
            assert_eq!(
                (v.status, v.message.as_str()),
                (status, message),
                "{found:?}"
            );
        }
        assert_eq!(age(s(7300)), "2h1m");
    }
}
