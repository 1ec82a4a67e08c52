//! Where the runbook reads credentials and writes what it must keep: a Kubernetes API for
//! the controllers, manifest files for `provision`.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::report::{Reason, StepError};
use crate::secret::{Credentials, SecretString};

/// Reading a Secret's key failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `in_files`: read from manifest files (`provision`, `plan -f`), where there is no
    /// namespace to create it in.
    #[error("Secret {name} not found")]
    NotFound { name: String, in_files: bool },
    #[error("Secret {name} has no key {key}")]
    KeyMissing { name: String, key: String },
    #[error("reading Secret {name} failed: {message}")]
    Unavailable { name: String, message: String },
    #[error("Secret {name} is not the operator's to write: {why}")]
    Conflict { name: String, why: String },
}

impl SecretError {
    /// As a step failure: a missing Secret is something to wait for, never terminal.
    pub fn to_step_error(&self, purpose: &str) -> StepError {
        match self {
            SecretError::NotFound { name, in_files } => StepError::permanent(
                Reason::SecretNotFound,
                match in_files {
                    false => format!(
                        "Secret {name} ({purpose}) does not exist; create it in this namespace"
                    ),
                    true => format!(
                        "Secret {name} ({purpose}) is not in the files; add its manifest with -f"
                    ),
                },
            ),
            SecretError::KeyMissing { name, key } => StepError::permanent(
                Reason::SecretKeyMissing,
                format!(
                    "Secret {name} ({purpose}) has no key {key}; add it or fix the key name in the spec"
                ),
            ),
            SecretError::Unavailable { .. } => {
                StepError::transient(Reason::UpstreamUnavailable, self.to_string())
            }
            SecretError::Conflict { .. } => StepError::permanent(
                Reason::Conflict,
                format!("{self}; choose another spec.outputSecretName"),
            ),
        }
    }
}

/// One key of a Secret's data (`None`: the Secret does not exist), or which of the two is
/// missing.
pub fn key_of(
    name: &str,
    key: &str,
    data: Option<&BTreeMap<String, SecretString>>,
) -> Result<SecretString, SecretError> {
    let data = data.ok_or_else(|| SecretError::NotFound {
        name: name.to_string(),
        in_files: false,
    })?;
    data.get(key)
        .cloned()
        .ok_or_else(|| SecretError::KeyMissing {
            name: name.to_string(),
            key: key.to_string(),
        })
}

/// What earlier runs recorded about a tenant, kept with its output Secret.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputRecord {
    /// The Secret's data (xapikey, contactCenterId, tenantName, nexusUrl).
    pub data: BTreeMap<String, SecretString>,
    /// Bookkeeping annotations (see `tenant::annotations`), never secret values.
    pub annotations: BTreeMap<String, String>,
}

impl OutputRecord {
    pub fn value(&self, key: &str) -> Option<&SecretString> {
        self.data.get(key).filter(|v| !v.is_empty())
    }
}

/// What a write changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Updated,
    Unchanged,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// One key of a Secret in the resource's namespace.
    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError>;

    /// Creates a Secret holding one generated key. Must not overwrite an existing key: when
    /// someone else created it meanwhile, returns the value that is there.
    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError>;

    /// How a person finds one key of a Secret, for messages: `Secret nexus-db key url`,
    /// with the namespace where there is one (never the value).
    fn locate(&self, name: &str, key: &str) -> String {
        format!("Secret {name} key {key}")
    }

    /// The output Secret as it is now, if it exists.
    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError>;

    /// Fails with `Conflict` when a Secret of this name exists and is not the operator's to
    /// write: asked before anything is created upstream, so that no key is made that could
    /// not be kept.
    async fn check_output(&self, _name: &str) -> Result<(), SecretError> {
        Ok(())
    }

    /// Writes the output Secret when it differs from `record`.
    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError>;

    /// A username and password from one Secret.
    async fn read_credentials(
        &self,
        name: &str,
        username_key: &str,
        password_key: &str,
    ) -> Result<Credentials, SecretError> {
        let username = self.read(name, username_key).await?;
        let password = self.read(name, password_key).await?;
        Ok(Credentials {
            username: username.expose().trim().to_string(),
            password,
        })
    }
}
