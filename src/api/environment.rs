//! `DigitalChannelsEnvironment`: one per GWS + Digital Channels deployment. Owns the steps
//! shared by all tenants: the OAuth client, its verification and the `nex_gapis` row.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CredentialsSecretRef, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, DeletionPolicy, INT32_MAX,
    ManagementPolicy, SecretKeyRef, TRIMMED_PATTERN, URL_MAX_LENGTH, URL_PATTERN, cel_normal_url,
};
use super::conditions::{Condition, conditions_schema};

/// Desired state of a Genesys environment enabled for Digital Channels.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "digitalchannels.dev",
    version = "v1alpha1",
    kind = "DigitalChannelsEnvironment",
    namespaced,
    shortname = "dce",
    status = "EnvironmentStatus",
    doc = "A GWS + Digital Channels (Nexus) deployment: the nexus_client OAuth client, its verification and the nex_gapis row.",
    // Ready, Reason, Policy and Suspended come first, added by `api::crds` for both kinds.
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // Identity, once provisioned: another value would leave what was made upstream behind
    // and make it all again elsewhere. Judged at the root, where status (the record that
    // something was made) is in view; another spelling of the same URL is no change.
    validation = identity_rule(IdentityField::AuthUrl),
    validation = identity_rule(IdentityField::EnvironmentUrl),
    validation = identity_rule(IdentityField::GwsUrl),
    validation = identity_rule(IdentityField::NexusUrl),
    validation = identity_rule(IdentityField::ClientId),
    validation = identity_rule(IdentityField::DatabaseUrlSecret)
)]
#[serde(rename_all = "camelCase")]
pub struct DigitalChannelsEnvironmentSpec {
    /// GWS Auth base URL; the operator calls `{authUrl}/auth/v3/...`.
    #[schemars(length(max = URL_MAX_LENGTH), pattern(URL_PATTERN))]
    #[x_kube(validation = Rule::new(r"!self.matches('/auth/v3(/|$)')").message(BASE_AUTH_URL))]
    pub auth_url: String,
    /// Environment API base URL (`/environment/v3`); defaults to `authUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = URL_MAX_LENGTH), pattern(URL_PATTERN))]
    #[x_kube(validation = Rule::new(r"!self.matches('/environment/v3(/|$)')").message(BASE_ENVIRONMENT_URL))]
    pub environment_url: Option<String>,
    /// GWS entry point: written to `nex_gapis.url` and sent to Nexus as `backendurl`.
    #[schemars(length(max = URL_MAX_LENGTH), pattern(URL_PATTERN))]
    pub gws_url: String,
    /// Digital Channels (Nexus) URL: `/nexus/v3` calls, the client's redirect URI and the `chatservice-uri` value.
    #[schemars(length(max = URL_MAX_LENGTH), pattern(URL_PATTERN))]
    #[x_kube(validation = Rule::new(r"!self.matches('/nexus/v3(/|$)')").message(BASE_NEXUS_URL))]
    pub nexus_url: String,
    /// Secret with the GWS Auth admin ("ops") user and its plaintext password.
    pub ops_credentials_secret: CredentialsSecretRef,
    /// The OAuth client Nexus uses to talk to GWS.
    #[serde(default)]
    pub client: ClientSpec,
    /// The Nexus PostgreSQL database that holds `nex_gapis`.
    pub database: DatabaseSpec,
    /// Extra trust for the Genesys services' TLS certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Nexus Deployment to restart (as `kubectl rollout restart`) when the `nex_gapis` row is inserted or its secret changes, because Nexus reads the table only at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexus_deployment: Option<DeploymentRef>,
    /// Retain (default) leaves the OAuth client and the nex_gapis row when the resource is deleted; Delete removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Manage (default) creates and repairs upstream; Observe only looks: each step condition says InSync, Drifted or Missing, nothing is written upstream, and a deletion leaves the OAuth client and the nex_gapis row in place whatever deletionPolicy says.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// When true the operator makes no external calls for this environment.
    #[serde(default)]
    pub suspend: bool,
}

/// Set to `"true"` on an environment to let it take over an OAuth client it did not make:
/// one made by hand whose secret differs from the Secret's (its secret is replaced), or one
/// whose description names another manager. Without it such a client is left untouched and
/// `ClientRegistered` says what was found.
pub const TAKE_OVER_CLIENT_ANNOTATION: &str = "digitalchannels.dev/take-over-client";

/// The API paths the operator adds to the base URLs: a URL that already holds one would be
/// called as `.../auth/v3/auth/v3/...`.
pub const API_PATHS: [(&str, &str); 3] = [
    ("spec.authUrl", "/auth/v3"),
    ("spec.environmentUrl", "/environment/v3"),
    ("spec.nexusUrl", "/nexus/v3"),
];
const BASE_AUTH_URL: &str =
    "authUrl is the base URL of GWS Auth, without /auth/v3: the operator adds the API path itself";
const BASE_ENVIRONMENT_URL: &str = "environmentUrl is the base URL of the Environment API, without /environment/v3: \
     the operator adds the API path itself";
const BASE_NEXUS_URL: &str =
    "nexusUrl is the base URL of Nexus, without /nexus/v3: the operator adds the API path itself";

/// The fields that name what the environment made upstream: the OAuth client (GWS Auth and
/// its id), the `nex_gapis` row (the GWS URL and the database), the Nexus and the
/// Environment service the tenants are provisioned through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityField {
    AuthUrl,
    EnvironmentUrl,
    GwsUrl,
    NexusUrl,
    ClientId,
    DatabaseUrlSecret,
}

impl IdentityField {
    pub const ALL: [IdentityField; 6] = [
        IdentityField::AuthUrl,
        IdentityField::EnvironmentUrl,
        IdentityField::GwsUrl,
        IdentityField::NexusUrl,
        IdentityField::ClientId,
        IdentityField::DatabaseUrlSecret,
    ];

    /// The field's path under the resource, as the API server names it in its answer.
    pub fn path(self) -> &'static str {
        match self {
            IdentityField::AuthUrl => ".spec.authUrl",
            IdentityField::EnvironmentUrl => ".spec.environmentUrl",
            IdentityField::GwsUrl => ".spec.gwsUrl",
            IdentityField::NexusUrl => ".spec.nexusUrl",
            IdentityField::ClientId => ".spec.client.id",
            IdentityField::DatabaseUrlSecret => ".spec.database.urlSecret",
        }
    }

    /// A CEL expression of the field's value in `o` (`self` or `oldSelf`), as the operator
    /// uses it: URLs in normal form, an absent optional field as its default.
    fn value(self, o: &str) -> String {
        match self {
            IdentityField::AuthUrl => cel_normal_url(&format!("{o}.spec.authUrl")),
            IdentityField::EnvironmentUrl => cel_normal_url(&format!(
                "(has({o}.spec.environmentUrl) ? {o}.spec.environmentUrl : {o}.spec.authUrl)"
            )),
            IdentityField::GwsUrl => cel_normal_url(&format!("{o}.spec.gwsUrl")),
            IdentityField::NexusUrl => cel_normal_url(&format!("{o}.spec.nexusUrl")),
            IdentityField::ClientId => format!(
                "((has({o}.spec.client) && has({o}.spec.client.id)) ? {o}.spec.client.id : 'nexus_client')"
            ),
            IdentityField::DatabaseUrlSecret => format!(
                "({o}.spec.database.urlSecret.name + '/' + {o}.spec.database.urlSecret.key)"
            ),
        }
    }

    /// What the API server answers when the field is changed: what to do instead.
    pub fn message(self) -> &'static str {
        match self {
            IdentityField::AuthUrl => {
                "authUrl cannot change once the environment is provisioned: the OAuth client lives in that GWS Auth. \
                 For another GWS, create a new DigitalChannelsEnvironment and delete this one (its deletionPolicy decides what happens to the client); \
                 another spelling of the same URL (letter case, a trailing slash, the default port) is accepted"
            }
            IdentityField::EnvironmentUrl => {
                "environmentUrl (default authUrl) cannot change once the environment is provisioned: the tenants' contact centers and settings live there. \
                 For another GWS, create a new DigitalChannelsEnvironment and delete this one; another spelling of the same URL is accepted"
            }
            IdentityField::GwsUrl => {
                "gwsUrl cannot change once the environment is provisioned: it names the nex_gapis row and every Nexus tenant's backend. \
                 For another GWS, create a new DigitalChannelsEnvironment and delete this one (its deletionPolicy decides what happens to the row); \
                 another spelling of the same URL (letter case, a trailing slash, the default port) is accepted"
            }
            IdentityField::NexusUrl => {
                "nexusUrl cannot change once the environment is provisioned: every tenant was provisioned in that Nexus and would be made again there with new keys. \
                 For another Nexus, create a new DigitalChannelsEnvironment (and tenants) and delete these; another spelling of the same URL is accepted"
            }
            IdentityField::ClientId => {
                "client.id cannot change once the environment is provisioned: the old OAuth client and its nex_gapis row would be left behind. \
                 For another client, create a new DigitalChannelsEnvironment and delete this one (deletionPolicy: Delete removes the old client and row)"
            }
            IdentityField::DatabaseUrlSecret => {
                "database.urlSecret cannot change once the environment is provisioned: another database would get a second nex_gapis row and every tenant again. \
                 To rotate the database password, edit the value in the Secret it names; for another Nexus database, create a new DigitalChannelsEnvironment and delete this one"
            }
        }
    }
}

/// The API server's rule for `field`: unchanged (in the operator's sense) once status holds
/// a record of something the environment made upstream.
pub fn identity_rule(field: IdentityField) -> kube::core::Rule {
    let provisioned = "(has(oldSelf.status) && (has(oldSelf.status.managedClientId) || has(oldSelf.status.clientRedirectUri)))";
    kube::core::Rule::new(format!(
        "!{provisioned} || {} == {}",
        field.value("self"),
        field.value("oldSelf")
    ))
    .message(field.message())
    .field_path(field.path())
}

/// The `nexus_client` OAuth client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    /// OAuth client id.
    #[serde(default = "default_client_id")]
    #[schemars(length(min = 1, max = 128), pattern(TRIMMED_PATTERN))]
    pub id: String,
    /// Where the client secret lives. Default: Secret `<metadata.name>-nexus-client`, key `client-secret`. Generated (32 random bytes) when absent, never regenerated once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeyRef>,
    /// Access token lifetime in seconds.
    #[serde(default = "default_access_timeout")]
    #[schemars(range(min = 60, max = INT32_MAX))]
    pub access_token_expiration_timeout: i64,
    /// Refresh token lifetime in seconds.
    #[serde(default = "default_refresh_timeout")]
    #[schemars(range(min = 60, max = INT32_MAX))]
    pub refresh_token_expiration_timeout: i64,
}

impl Default for ClientSpec {
    fn default() -> Self {
        Self {
            id: default_client_id(),
            secret: None,
            access_token_expiration_timeout: default_access_timeout(),
            refresh_token_expiration_timeout: default_refresh_timeout(),
        }
    }
}

fn default_client_id() -> String {
    "nexus_client".to_string()
}
fn default_access_timeout() -> i64 {
    43200
}
fn default_refresh_timeout() -> i64 {
    2_592_000
}

/// The Nexus database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding `postgres://user:pass@host:5432/nexus?sslmode=...`.
    pub url_secret: SecretKeyRef,
}

/// TLS settings for the Genesys services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret key holding a PEM CA bundle trusted in addition to the system roots.
    pub ca_secret: SecretKeyRef,
}

/// A Deployment, by name and namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRef {
    /// Deployment name.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Deployment namespace; defaults to the environment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// Observed state of the environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last `digitalchannels.dev/reconcile-requested-at` value a pass was run for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// When the operator next retries a pass that failed (RFC 3339), on its backoff. Absent
    /// when the last pass succeeded, or when its failure waits for a change in the cluster
    /// (the spec, a Secret, the environment) rather than for time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    /// Secret that holds the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_name: Option<String>,
    /// The redirect URI the operator set on the OAuth client (its `nexusUrl` then): replaced,
    /// not kept, when `nexusUrl` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_redirect_uri: Option<String>,
    /// The OAuth client this environment created (or sent a create for) or adopted: what its
    /// cleanup deletes, with the `nex_gapis` row. Absent: it made nothing upstream, and a
    /// cleanup calls nothing. Once set, the identity fields cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_client_id: Option<String>,
    /// HMAC (keyed with the environment's fingerprint key) of the client secret GWS Auth was
    /// last verified to hold: tenants wait while the Secret holds another one, not yet pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_digest: Option<String>,
    /// With `nexusDeployment`: an HMAC of the nex_gapis row the running Nexus has loaded (set
    /// when a restart's rollout completed). A row that differs means a restart is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexus_gapi_digest: Option<String>,
    /// With `nexusDeployment`: the same of the row a restart in flight was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexus_restart_for: Option<String>,
    /// Ready, ClientRegistered, ClientVerified, GapiRegistered, NexusRestarted, Suspended.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl EnvironmentStatus {
    /// Whether this status records that the environment made or adopted the client
    /// `client_id`; an older version's record (it registered or verified the client) counts.
    pub fn records_client(&self, client_id: &str) -> bool {
        self.managed_client_id.as_deref() == Some(client_id)
            || self.client_redirect_uri.is_some()
            || self.client_secret_digest.is_some()
    }
}

impl DigitalChannelsEnvironmentSpec {
    /// The Environment API base URL: `environmentUrl`, or `authUrl` when unset.
    pub fn environment_url(&self) -> &str {
        self.environment_url.as_deref().unwrap_or(&self.auth_url)
    }

    /// Where the client secret lives, with the contract's default.
    pub fn client_secret_ref(&self, resource_name: &str) -> SecretKeyRef {
        self.client.secret.clone().unwrap_or_else(|| SecretKeyRef {
            name: format!("{resource_name}-nexus-client"),
            key: "client-secret".to_string(),
        })
    }
}
