//! Writing status: once per pass, with server-side apply, and only when it changed.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::conditions::{Condition, ConditionStatus, find};
use crate::api::{FIELD_MANAGER, FINALIZER};

/// Applies `status` when it differs from `previous`. Returns whether it wrote.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    name: &str,
    previous: &S,
    status: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if previous == status {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// Adds our finalizer unless present. The resourceVersion makes it a compare-and-swap,
/// so a concurrent change of the list is never lost. A conflict (the cached object is older
/// than the stored one) is settled on the stored object, read once.
pub async fn add_finalizer<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match patch_finalizer_in(api, object).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let name = object.meta().name.as_deref().unwrap_or_default();
            match api.get_opt(name).await? {
                Some(stored) => patch_finalizer_in(api, &stored).await,
                None => Err(kube::Error::Api(s)),
            }
        }
        other => other,
    }
}

async fn patch_finalizer_in<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = object.meta();
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}
    });
    api.patch(
        meta.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Removes our finalizer, keeping everyone else's.
pub async fn remove_finalizer<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = object.meta();
    let finalizers: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| f.as_str() != FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}
    });
    match api
        .patch(
            meta.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn has_finalizer<K: Resource>(object: &K) -> bool {
    object
        .meta()
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// A transition worth an event: Ready changed status or reason.
pub fn ready_transition<'a>(
    previous: &[Condition],
    current: &'a [Condition],
) -> Option<&'a Condition> {
    let now = find(current, "Ready")?;
    match find(previous, "Ready") {
        Some(old) if old.status == now.status && old.reason == now.reason => None,
        _ => Some(now),
    }
}

/// True when the conditions say Ready.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, "Ready").is_some_and(|c| c.status == ConditionStatus::True)
}
