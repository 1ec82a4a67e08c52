//! Shapes shared by both kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub key: String,
}

/// A Secret holding a username and a password, in the same namespace as the resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key holding the username.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub username_key: String,
    /// Key holding the password.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_string()
}

fn default_password_key() -> String {
    "password".to_string()
}

/// What happens to the external objects when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the external objects in place; only the Kubernetes side goes.
    #[default]
    Retain,
    /// Delete the external objects the operator created.
    Delete,
}

/// Pattern for `http://` and `https://` URLs: the API server checks it, so a typo is refused at apply time.
pub const URL_PATTERN: &str = r"^https?://[^\s/$.?#][^\s]*$";
/// Longest URL accepted.
pub const URL_MAX_LENGTH: usize = 2048;
/// A DNS subdomain (RFC 1123), what the API server requires of the name of a Secret, a
/// Deployment or a custom resource (at most 253 characters, checked apart).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS label (RFC 1123), what the API server requires of a namespace name (at most 63
/// characters, checked apart).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A key of a Secret's data, as the API server requires it.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// Not empty, and no whitespace at either end: a name that differs from what was meant by
/// a space nobody sees.
pub const TRIMMED_PATTERN: &str = r"^\S(.*\S)?$";
/// The largest number the Genesys services are known to keep (a 32-bit signed integer).
pub const INT32_MAX: i64 = 2_147_483_647;
/// Pattern for a UUID (a contact center id).
pub const UUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Strips trailing slashes so URLs join with API paths predictably.
pub fn trim_url(url: &str) -> &str {
    url.trim_end_matches('/')
}
