//! The CRD types: what users write in manifests and read back in status.

pub mod common;
pub mod conditions;
pub mod environment;
pub mod reference;
pub mod switches;
pub mod tenant;
pub mod validation;

pub use common::{CredentialsSecretRef, DeletionPolicy, ManagementPolicy, SecretKeyRef};
pub use conditions::{Condition, ConditionStatus};
pub use environment::{
    DigitalChannelsEnvironment, DigitalChannelsEnvironmentSpec, EnvironmentStatus,
};
pub use tenant::{DigitalChannelsTenant, DigitalChannelsTenantSpec, TenantStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};

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

/// Both CRDs, each with the columns both kinds show first (`shared_columns`): what
/// `crds/` holds. Take a CRD from here, not from `crd()`, which lacks those columns.
pub fn crds() -> [CustomResourceDefinition; 2] {
    use kube::CustomResourceExt;
    [
        DigitalChannelsEnvironment::crd(),
        DigitalChannelsTenant::crd(),
    ]
    .map(|mut crd| {
        for version in &mut crd.spec.versions {
            let columns = version.additional_printer_columns.get_or_insert_default();
            columns.splice(0..0, shared_columns());
        }
        crd
    })
}

/// The Ready condition's status and reason, the management policy, and whether the resource
/// is suspended: written once, so that the two kinds show them alike.
fn shared_columns() -> [CustomResourceColumnDefinition; 4] {
    let column = |name: &str, type_: &str, json_path: &str| CustomResourceColumnDefinition {
        name: name.to_string(),
        type_: type_.to_string(),
        json_path: json_path.to_string(),
        ..CustomResourceColumnDefinition::default()
    };
    let ready = r#".status.conditions[?(@.type=="Ready")]"#;
    let policy = CustomResourceColumnDefinition {
        description: Some(
            "spec.managementPolicy: Manage, or Observe (looks, never writes upstream)".to_string(),
        ),
        ..column("Policy", "string", ".spec.managementPolicy")
    };
    [
        column("Ready", "string", &format!("{ready}.status")),
        column("Reason", "string", &format!("{ready}.reason")),
        policy,
        column("Suspended", "boolean", ".spec.suspend"),
    ]
}

/// Both CRDs as one multi-document YAML, exactly what `dc-operator crds` prints and `crds/` holds.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml_ng::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Each CRD with the file name it has under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
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
