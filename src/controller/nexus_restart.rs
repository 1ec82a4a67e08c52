//! Restarting Nexus the way `kubectl rollout restart` does, because Nexus reads
//! `nex_gapis` only at start-up, and telling when the rollout is done.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::api::FIELD_MANAGER;

/// The annotation `kubectl rollout restart` sets; any change of it rolls the pods.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Where a rollout stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Rollout {
    Done,
    InProgress(String),
    Missing,
}

pub async fn restart(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    at: &str,
) -> Result<(), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Strategic(&patch))
        .await
        .map(drop)
}

/// Where the rollout stands, and when we last restarted it (the annotation's value).
pub async fn rollout_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(Rollout, Option<String>), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(name).await? {
        None => (Rollout::Missing, None),
        Some(d) => {
            let restarted_at = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(RESTARTED_AT).cloned());
            (judge(&d), restarted_at)
        }
    })
}

/// The same test `kubectl rollout status` makes.
pub fn judge(d: &Deployment) -> Rollout {
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Rollout::InProgress("no status yet".to_string());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Rollout::InProgress("waiting for the rollout to be observed".to_string());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        return Rollout::InProgress(format!("{updated} of {wanted} replicas updated"));
    }
    if total > updated {
        return Rollout::InProgress(format!(
            "{} old replicas pending termination",
            // Counts from the API server: saturating, so a nonsensical one cannot panic.
            total.saturating_sub(updated)
        ));
    }
    if available < updated {
        return Rollout::InProgress(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Rollout::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        total: i32,
        available: i32,
    ) -> Deployment {
        Deployment {
            metadata: kube::api::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                replicas: Some(total),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn table() {
        assert_eq!(judge(&deployment(2, 2, 2, 2, 2, 2)), Rollout::Done);
        assert!(matches!(
            judge(&deployment(3, 2, 2, 2, 2, 2)),
            Rollout::InProgress(_)
        ));
        assert!(matches!(
            judge(&deployment(2, 2, 2, 1, 2, 2)),
            Rollout::InProgress(_)
        ));
        assert!(matches!(
            judge(&deployment(2, 2, 2, 2, 3, 2)),
            Rollout::InProgress(_)
        ));
        assert!(matches!(
            judge(&deployment(2, 2, 2, 2, 2, 1)),
            Rollout::InProgress(_)
        ));
        // Counts the API server would refuse, as a broken one might send them: no overflow.
        assert!(matches!(
            judge(&deployment(2, 2, i32::MIN, -1, i32::MAX, 0)),
            Rollout::InProgress(_)
        ));
        assert!(matches!(
            judge(&deployment(i64::MAX, i64::MIN, 1, 1, 1, 1)),
            Rollout::InProgress(_)
        ));
    }
}
