//! `DigitalChannelsTenant`: one per contact center. Owns the per-tenant steps.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    CredentialsSecretRef, DNS_SUBDOMAIN_PATTERN, DeletionPolicy, INT32_MAX, ManagementPolicy,
    SecretKeyRef, TRIMMED_PATTERN, URL_MAX_LENGTH, URL_PATTERN, UUID_PATTERN,
};
use super::conditions::{Condition, conditions_schema};

/// Desired state of a contact center enabled for Digital Channels.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "digitalchannels.dev",
    version = "v1alpha1",
    kind = "DigitalChannelsTenant",
    namespaced,
    shortname = "dct",
    status = "TenantStatus",
    doc = "A contact center enabled for Digital Channels: chatservice-uri, the Nexus tenant and its API key.",
    // Ready, Reason, Policy and Suspended come first, added by `api::crds` for both kinds.
    printcolumn(
        name = "Contact Center",
        type_ = "string",
        json_path = ".status.contactCenterId"
    ),
    // The step left by hand once Ready: ManualStepRequired until the annotation says it is done.
    printcolumn(
        name = "Designer Env",
        type_ = "string",
        description = "Reason of DesignerEnvConfigured: ManualStepRequired (to do in Agent Setup), Acknowledged",
        json_path = ".status.conditions[?(@.type==\"DesignerEnvConfigured\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // The default output Secret, <metadata.name>-digital-channels, must be a name the API
    // server takes: refused at apply, not after the Nexus tenant was created.
    validation = Rule::new("has(self.spec.outputSecretName) || size(self.metadata.name) <= 236").message(DEFAULT_OUTPUT_NAME_TOO_LONG)
)]
#[x_kube(validation = Rule::new("!(has(self.contactCenterId) && has(self.contactCenterDomain))").message("set contactCenterId or contactCenterDomain, not both"))]
// Identity: changing these would orphan the Nexus tenant or leave its key behind.
#[x_kube(validation = Rule::new("(has(self.contactCenterId) ? self.contactCenterId : '') == (has(oldSelf.contactCenterId) ? oldSelf.contactCenterId : '')").message(IMMUTABLE_CONTACT_CENTER_ID))]
#[x_kube(validation = Rule::new("(has(self.contactCenterDomain) ? self.contactCenterDomain : '') == (has(oldSelf.contactCenterDomain) ? oldSelf.contactCenterDomain : '')").message(IMMUTABLE_CONTACT_CENTER_DOMAIN))]
#[x_kube(validation = Rule::new("(has(self.outputSecretName) ? self.outputSecretName : '') == (has(oldSelf.outputSecretName) ? oldSelf.outputSecretName : '')").message(IMMUTABLE_OUTPUT_SECRET_NAME))]
#[serde(rename_all = "camelCase")]
pub struct DigitalChannelsTenantSpec {
    /// The DigitalChannelsEnvironment this tenant belongs to, in the same namespace.
    #[x_kube(validation = Rule::new("self == oldSelf").message(IMMUTABLE_ENVIRONMENT_REF))]
    pub environment_ref: EnvironmentRef,
    /// Contact center id (UUID). Discovered when absent: by `contactCenterDomain`, or the only contact center.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(UUID_PATTERN))]
    pub contact_center_id: Option<String>,
    /// Picks the contact center whose domains contain this value (e.g. `t100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub contact_center_domain: Option<String>,
    /// Nexus tenant name. Immutable: Nexus has no rename.
    #[schemars(length(min = 1, max = 128), pattern(TRIMMED_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(IMMUTABLE_TENANT_NAME))]
    pub tenant_name: String,
    /// Sent to Nexus as `genesystemenantid`.
    #[serde(default = "default_genesys_tenant_id")]
    #[schemars(range(min = 0, max = INT32_MAX))]
    pub genesys_tenant_id: i64,
    /// Nexus tenant type.
    #[serde(default = "default_tenant_type", rename = "type")]
    #[schemars(length(min = 1, max = 128), pattern(TRIMMED_PATTERN))]
    pub type_: String,
    /// Secret with the tenant Person used for the password grant.
    pub credentials_secret: CredentialsSecretRef,
    /// When present, the PlatformUCS service is registered in Nexus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucs: Option<UcsSpec>,
    /// Name of the output Secret (keys xapikey, contactCenterId, tenantName, nexusUrl). Default `<metadata.name>-digital-channels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_NAME_PATTERN))]
    pub output_secret_name: Option<String>,
    /// Retain (default) leaves the Nexus tenant when the resource is deleted; Delete removes it and its PlatformUCS service.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Manage (default) creates and repairs upstream; Observe only looks: each step condition says InSync, Drifted or Missing, nothing is written upstream, and a deletion leaves the Nexus tenant and its PlatformUCS service in place whatever deletionPolicy says.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// When true the operator makes no external calls for this tenant.
    #[serde(default)]
    pub suspend: bool,
}

/// A Secret name: a DNS subdomain (RFC 1123), as the API server requires.
pub const SECRET_NAME_PATTERN: &str = DNS_SUBDOMAIN_PATTERN;

const IMMUTABLE_CONTACT_CENTER_ID: &str = "contactCenterId cannot be changed: it names the Nexus tenant. To use another \
     contact center, delete this tenant (its deletionPolicy decides what happens to the Nexus tenant) and create a new one";
const IMMUTABLE_CONTACT_CENTER_DOMAIN: &str = "contactCenterDomain cannot be changed: it chose the Nexus tenant. To use \
     another contact center, delete this tenant (its deletionPolicy decides what happens to the Nexus tenant) and create a new one";
const IMMUTABLE_TENANT_NAME: &str = "tenantName cannot be changed: Nexus has no rename. To use another tenant \
     name, delete this tenant (its deletionPolicy decides what happens to the Nexus tenant) and create a new one";
const IMMUTABLE_OUTPUT_SECRET_NAME: &str = "outputSecretName cannot be changed: the API key would stay in the old Secret. \
     Copy the Secret yourself, or delete this tenant and create a new one";
const DEFAULT_OUTPUT_NAME_TOO_LONG: &str = "metadata.name is too long for the default output Secret name \
     (<metadata.name>-digital-channels, at most 253 characters): set spec.outputSecretName, or use a name of at most 236 characters";
const IMMUTABLE_ENVIRONMENT_REF: &str = "environmentRef cannot be changed: the tenant is provisioned through that \
     environment. Delete this tenant and create a new one in the other environment";

fn default_genesys_tenant_id() -> i64 {
    1
}

fn default_tenant_type() -> String {
    "PureEngage".to_string()
}

/// A DigitalChannelsEnvironment in the same namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct EnvironmentRef {
    /// Name of the DigitalChannelsEnvironment.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// The Universal Contact Service connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UcsSpec {
    /// UCS entry point URL.
    #[schemars(length(max = URL_MAX_LENGTH), pattern(URL_PATTERN))]
    pub url: String,
    /// Secret key with the `x-api-key` for the PlatformUCS call. Default: the tenant's GWS access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<SecretKeyRef>,
}

/// Observed state of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The resolved contact center id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_center_id: Option<String>,
    /// The Secret holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_secret_name: Option<String>,
    /// Nexus's operationId from the tenant provisioning answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// SHA-256 (first 16 bytes, base64url) of the API key the operator recorded: tells that
    /// key from one edited in the output Secret. The key cannot be derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_digest: Option<String>,
    /// The PlatformUCS URL the operator registered (no GET of the service is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucs_url: Option<String>,
    /// HMAC of the tenant user's credentials the Nexus tenant holds, keyed with the
    /// environment's fingerprint key: a rotated password is noticed without keeping it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_fingerprint: Option<String>,
    /// The last `digitalchannels.dev/reconcile-requested-at` value a pass was run for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// When the operator next retries a pass that failed (RFC 3339), on its backoff. Absent
    /// when the last pass succeeded, or when its failure waits for a change in the cluster
    /// (the spec, a Secret, the environment) rather than for time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    /// Ready, ContactCenterResolved, ChatServiceRegistered, UcsRegistered, TenantProvisioned, DesignerEnvConfigured, Suspended.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl DigitalChannelsTenantSpec {
    /// The output Secret name, with the contract's default.
    pub fn output_secret_name(&self, resource_name: &str) -> String {
        self.output_secret_name
            .clone()
            .unwrap_or_else(|| format!("{resource_name}-digital-channels"))
    }
}
