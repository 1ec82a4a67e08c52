//! The CRD types: what users write in manifests and read back in status.

pub mod common;
pub mod conditions;
pub mod environment;
pub mod tenant;
pub mod validation;

pub use common::{CredentialsSecretRef, DeletionPolicy, ManagementPolicy, SecretKeyRef};
pub use conditions::{Condition, ConditionStatus};
pub use environment::{
    DigitalChannelsEnvironment, DigitalChannelsEnvironmentSpec, EnvironmentStatus,
};
pub use tenant::{DigitalChannelsTenant, DigitalChannelsTenantSpec, TenantStatus};

/// API group of both kinds.
pub const GROUP: &str = "digitalchannels.dev";
/// Finalizer guarding the external objects of both kinds.
pub const FINALIZER: &str = "digitalchannels.dev/cleanup";
/// Field manager for every server-side apply.
pub const FIELD_MANAGER: &str = "dc-operator";
/// Annotation with which a user acknowledges the manual DesignerEnv step.
pub const DESIGNER_ENV_ANNOTATION: &str = "digitalchannels.dev/designer-env-configured";
/// Set to a new value (a timestamp, say) to ask for a pass now, whatever the backoff; each
/// value is honoured once, and `status.lastHandledReconcileAt` echoes it.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "digitalchannels.dev/reconcile-requested-at";

/// The value of [`RECONCILE_REQUESTED_ANNOTATION`], if set.
pub fn reconcile_requested(meta: &kube::api::ObjectMeta) -> Option<&String> {
    meta.annotations
        .as_ref()?
        .get(RECONCILE_REQUESTED_ANNOTATION)
}

/// Labels on everything the operator creates.
pub fn managed_labels() -> std::collections::BTreeMap<String, String> {
    [
        ("app.kubernetes.io/managed-by", "dc-operator"),
        ("app.kubernetes.io/part-of", "digital-channels"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Both CRDs as one multi-document YAML, exactly what `dc-operator crds` prints and `crds/` holds.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    [
        DigitalChannelsEnvironment::crd(),
        DigitalChannelsTenant::crd(),
    ]
    .iter()
    .map(|crd| serde_yaml_ng::to_string(crd).expect("a CRD always serializes"))
    .collect::<Vec<_>>()
    .join("---\n")
}

/// Each CRD with the file name it has under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    use kube::CustomResourceExt;
    [
        DigitalChannelsEnvironment::crd(),
        DigitalChannelsTenant::crd(),
    ]
    .iter()
    .map(|crd| {
        let name = crd.spec.names.plural.clone();
        (
            format!("{name}.yaml"),
            serde_yaml_ng::to_string(crd).expect("a CRD always serializes"),
        )
    })
    .collect()
}
