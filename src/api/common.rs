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

/// Whether the operator changes the external systems or only looks at them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create what is missing, repair what drifted, and delete per `deletionPolicy`.
    #[default]
    Manage,
    /// Look only: each step says whether what it would manage is in sync, drifted or missing,
    /// and nothing is written upstream (GWS, Nexus, PostgreSQL), not even on deletion.
    Observe,
}

impl ManagementPolicy {
    /// True when the steps only look.
    pub fn observes(self) -> bool {
        self == ManagementPolicy::Observe
    }

    /// The deletion policy that applies: an observed resource never deletes upstream,
    /// whatever its `deletionPolicy` says.
    pub fn deletion(self, policy: DeletionPolicy) -> DeletionPolicy {
        match self {
            ManagementPolicy::Manage => policy,
            ManagementPolicy::Observe => DeletionPolicy::Retain,
        }
    }
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

/// The one normal form of a base URL, used for every comparison and for every value the
/// operator writes upstream (`nex_gapis.url`, `backendurl`, the redirect URI, the
/// `chatservice-uri` value, the output Secret's `nexusUrl`): scheme and host in lower case,
/// the scheme's default port dropped, trailing slashes dropped. Two spellings of one
/// service then name one upstream object. The CRD's identity rules compare with the same
/// form (see [`cel_normal_url`]). A value that does not parse keeps its text, trimmed.
pub fn normal_url(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return url.trim().trim_end_matches('/').to_string();
    };
    // `Url` already lowers scheme and host and drops a default port; only the trailing
    // slashes of the path are left to drop, the query and fragment kept as they are.
    let before = &parsed[..url::Position::AfterPath];
    let after = &parsed[url::Position::AfterPath..];
    format!("{}{after}", before.trim_end_matches('/'))
}

/// Whether two URLs name the same service: equal in [`normal_url`] form.
pub fn same_url(a: &str, b: &str) -> bool {
    normal_url(a) == normal_url(b)
}

/// A CEL expression giving the normal form of the URL string `x` (an expression over
/// `self`/`oldSelf`), as [`normal_url`] makes it for the URLs the schema accepts
/// (`URL_PATTERN`): scheme and authority in lower case, `:443` of https and `:80` of http
/// dropped, trailing slashes of a URL without query or fragment dropped. For the CRD's
/// transition rules, so that only a change of service is refused, never a change of spelling.
pub fn cel_normal_url(x: &str) -> String {
    // The API server's CEL for CRDs has no cel.bind: each part is spelt out where used.
    // a: scheme and authority, lower case; r: the rest (path, query, fragment).
    let head = format!("{x}.find('^[^:/?#]+://[^/?#]*')");
    let a = format!("{head}.lowerAscii()");
    let r = format!("{x}.substring({head}.size())");
    format!(
        "(((({a}).startsWith('https://') && ({a}).endsWith(':443')) ? ({a}).substring(0, ({a}).size() - 4) \
         : ((({a}).startsWith('http://') && ({a}).endsWith(':80')) ? ({a}).substring(0, ({a}).size() - 3) : ({a}))) \
         + ((({r}).contains('?') || ({r}).contains('#')) ? ({r}) : ({r}).find('^.*[^/]')))"
    )
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn spellings_of_one_service_have_one_normal_form() {
        for (given, normal) in [
            ("https://gws.example.com", "https://gws.example.com"),
            ("https://gws.example.com/", "https://gws.example.com"),
            ("https://gws.example.com//", "https://gws.example.com"),
            ("HTTPS://GWS.Example.COM/", "https://gws.example.com"),
            ("https://gws.example.com:443/", "https://gws.example.com"),
            ("http://gws.example.com:80", "http://gws.example.com"),
            (
                "https://gws.example.com:8443/",
                "https://gws.example.com:8443",
            ),
            ("http://gws.example.com:443", "http://gws.example.com:443"),
            (
                "https://gws.example.com/GWS/",
                "https://gws.example.com/GWS",
            ),
            (
                "https://gws.example.com/a/?x=1",
                "https://gws.example.com/a?x=1",
            ),
            ("  https://gws.example.com/  ", "https://gws.example.com"),
            ("not a url/", "not a url"),
        ] {
            assert_eq!(normal_url(given), normal, "{given}");
        }
    }

    #[test]
    fn another_path_port_or_host_is_another_service() {
        for (a, b) in [
            ("https://gws.example.com", "https://gws2.example.com"),
            ("https://gws.example.com", "http://gws.example.com"),
            ("https://gws.example.com", "https://gws.example.com:8443"),
            ("https://gws.example.com/a", "https://gws.example.com/A"),
            ("https://gws.example.com/a", "https://gws.example.com"),
        ] {
            assert!(!same_url(a, b), "{a} vs {b}");
        }
        assert!(same_url(
            "https://GWS.example.com/",
            "https://gws.example.com"
        ));
    }
}
