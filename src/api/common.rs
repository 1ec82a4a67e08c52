//! Shapes shared by both kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret holding a username and a password, in the same namespace as the resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the username.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key holding the password.
    #[serde(default = "default_password_key")]
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
/// Pattern for a UUID (a contact center id).
pub const UUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Strips trailing slashes so URLs join with API paths predictably.
pub fn trim_url(url: &str) -> &str {
    url.trim_end_matches('/')
}
