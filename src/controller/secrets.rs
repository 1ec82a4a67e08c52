//! The runbook's [`SecretStore`] backed by the Kubernetes API, in the resource's namespace.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};

use super::kube_message;
use crate::api::{FIELD_MANAGER, managed_labels};
use crate::runbook::secrets::{OutputRecord, SecretError, SecretStore, WriteOutcome, key_of};
use crate::runbook::tenant::keys;
use crate::secret::SecretString;

/// A store lives for one pass: it reads each Secret once (the output Secret is looked at
/// before, while and after it is written) and remembers what it wrote.
pub struct KubeSecretStore {
    api: Api<Secret>,
    namespace: String,
    /// Owner of the output Secret, so it goes with its tenant.
    owner: Option<OwnerReference>,
    own_writes: Option<OwnWrites>,
    seen: Mutex<HashMap<String, Option<Secret>>>,
}

pub use super::own_writes::OwnWrites;

impl KubeSecretStore {
    pub fn new(client: kube::Client, namespace: &str, owner: Option<OwnerReference>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            owner,
            own_writes: None,
            seen: Mutex::default(),
        }
    }

    /// Records the versions this store writes in `own_writes`.
    pub fn recording(mut self, own_writes: &OwnWrites) -> Self {
        self.own_writes = Some(own_writes.clone());
        self
    }

    /// Marks `name` as being written, when this store records its writes: see
    /// [`OwnWrites`].
    fn writing(&self, name: &str) -> Option<super::own_writes::InFlight> {
        let own = self.own_writes.as_ref()?;
        Some(own.begin(self.api.namespace().unwrap_or_default(), name))
    }

    /// Server-side apply of `secret`: the operator owns its keys; other fields stay as
    /// others set them.
    async fn apply(&self, name: &str, secret: &serde_json::Value) -> Result<Secret, SecretError> {
        let flight = self.writing(name);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let written = self.api.patch(name, &params, &Patch::Apply(secret)).await;
        if let Some(flight) = flight {
            flight.done(written.as_ref().ok().map(|s| &s.metadata));
        }
        written.map_err(|e| SecretError::Unavailable {
            name: name.to_string(),
            message: kube_message(&e),
        })
    }

    fn wrote(&self, name: &str, secret: &Secret) {
        self.remember(name, Some(secret.clone()));
    }

    fn remember(&self, name: &str, secret: Option<Secret>) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), secret);
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        if let Some(seen) = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(seen.clone());
        }
        let found = self
            .api
            .get_opt(name)
            .await
            .map_err(|e| SecretError::Unavailable {
                name: name.to_string(),
                message: kube_message(&e),
            })?;
        self.remember(name, found.clone());
        Ok(found)
    }
}

/// The operator's bookkeeping annotations on an output Secret.
fn operator_annotations(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("digitalchannels.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn decode(secret: &Secret) -> BTreeMap<String, SecretString> {
    let mut data: BTreeMap<String, SecretString> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                SecretString::new(String::from_utf8_lossy(&v.0).into_owned()),
            )
        })
        .collect();
    // stringData only shows up on objects that were never stored; kept for fakes and tests.
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), SecretString::new(v.clone()));
    }
    data
}

#[async_trait]
impl SecretStore for KubeSecretStore {
    fn locate(&self, name: &str, key: &str) -> String {
        format!("Secret {}/{name} key {key}", self.namespace)
    }

    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let data = self.get(name).await?.map(|s| decode(&s));
        key_of(name, key, data.as_ref())
    }

    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(managed_labels()),
                ..Default::default()
            },
            type_: Some("Opaque".to_string()),
            data: Some(
                [(
                    key.to_string(),
                    ByteString(value.expose().as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let flight = self.writing(name);
        let created = self.api.create(&PostParams::default(), &secret).await;
        if let Some(flight) = flight {
            flight.done(created.as_ref().ok().map(|s| &s.metadata));
        }
        match created {
            Ok(created) => {
                self.wrote(name, &created);
                Ok(value.clone())
            }
            // Someone created it meanwhile: use theirs, never overwrite a secret.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                match self.read(name, key).await {
                    // A conflict, then nothing there (deleted meanwhile, or the API server's
                    // answer was wrong): not a Secret to wait for, a create to try again soon.
                    Err(SecretError::NotFound { .. }) => Err(SecretError::Unavailable {
                        name: name.to_string(),
                        message: "the create conflicted but the Secret is not there; trying again"
                            .to_string(),
                    }),
                    found => found,
                }
            }
            Err(e) => Err(SecretError::Unavailable {
                name: name.to_string(),
                message: kube_message(&e),
            }),
        }
    }

    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError> {
        Ok(self.get(name).await?.map(|s| OutputRecord {
            data: decode(&s),
            annotations: operator_annotations(&s),
        }))
    }

    async fn check_output(&self, name: &str) -> Result<(), SecretError> {
        match self.get(name).await? {
            Some(s) => refuse_foreign(name, &s, self.owner.as_ref(), &OUTPUT_KEYS),
            None => Ok(()),
        }
    }

    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError> {
        let existing = self.get(name).await?;
        if let Some(s) = &existing {
            let keys: Vec<&str> = record.data.keys().map(String::as_str).collect();
            refuse_foreign(name, s, self.owner.as_ref(), &keys)?;
        }
        let outcome = match &existing {
            None => WriteOutcome::Created,
            Some(s) => {
                // Extra keys someone added are tolerated; ours must be exact.
                let current = decode(s);
                let same_data = record.data.iter().all(|(k, v)| current.get(k) == Some(v));
                // Exactly ours: one we no longer set must be dropped by the next apply.
                let same_annotations = operator_annotations(s) == record.annotations;
                let labels = s.metadata.labels.clone().unwrap_or_default();
                let same_labels = managed_labels()
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v));
                let owned = self.owner.as_ref().is_none_or(|o| {
                    s.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|r| r.uid == o.uid)
                });
                if same_data && same_annotations && same_labels && owned {
                    return Ok(WriteOutcome::Unchanged);
                }
                WriteOutcome::Updated
            }
        };
        let data: BTreeMap<String, ByteString> = record
            .data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.expose().as_bytes().to_vec())))
            .collect();
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": managed_labels(),
                "annotations": record.annotations,
                "ownerReferences": self.owner.iter().collect::<Vec<_>>(),
            },
            "type": "Opaque",
            "data": data,
        });
        let written = self.apply(name, &secret).await?;
        self.wrote(name, &written);
        Ok(outcome)
    }
}

/// The keys of an output Secret.
const OUTPUT_KEYS: [&str; 4] = [
    keys::API_KEY,
    keys::CONTACT_CENTER_ID,
    keys::TENANT_NAME,
    keys::NEXUS_URL,
];

/// An existing Secret is ours to write when its owner references say it is this tenant's,
/// or when nobody owns it and it holds nothing but the output keys (a user may create it by
/// hand with a recovered `xapikey`; a tenant re-created under the same name finds its old
/// one). Ownership is decided by owner UID, never by the operator's label: a Secret the
/// operator made for another resource (an environment's client secret or fingerprint key,
/// another tenant's output) is refused, never overwritten or taken over.
fn refuse_foreign(
    name: &str,
    secret: &Secret,
    owner: Option<&OwnerReference>,
    output_keys: &[&str],
) -> Result<(), SecretError> {
    let conflict = |why: String| {
        Err(SecretError::Conflict {
            name: name.to_string(),
            why,
        })
    };
    let references = secret.metadata.owner_references.iter().flatten();
    let mine = |r: &&OwnerReference| owner.is_some_and(|o| o.uid == r.uid);
    // Without an owner of our own (a read for cleanup), only a controller elsewhere counts.
    let foreign_owner = references
        .clone()
        .filter(|r| !mine(r))
        .find(|r| owner.is_some() || r.controller == Some(true));
    if let Some(other) = foreign_owner {
        return conflict(format!("it belongs to {} {}", other.kind, other.name));
    }
    if references.clone().any(|r| mine(&r)) {
        return Ok(());
    }
    let foreign_keys: Vec<&str> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .filter(|k| !output_keys.contains(k))
        .collect();
    if !foreign_keys.is_empty() {
        return conflict(format!(
            "it is not this tenant's and holds other keys ({})",
            foreign_keys.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(owners: &[(&str, bool)], labelled: bool, keys: &[&str]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                labels: labelled.then(managed_labels),
                owner_references: Some(
                    owners
                        .iter()
                        .map(|(uid, controller)| OwnerReference {
                            kind: "DigitalChannelsTenant".into(),
                            name: format!("owner-{uid}"),
                            uid: uid.to_string(),
                            controller: Some(*controller),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"v".to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn ownership_is_decided_by_owner_uid_never_by_the_label() {
        let me = OwnerReference {
            uid: "me".into(),
            ..Default::default()
        };
        let xapikey = [keys::API_KEY];
        // (owners, labelled, keys, ours to write)
        type Row<'a> = (&'a [(&'a str, bool)], bool, &'a [&'a str], bool);
        let table: &[Row] = &[
            (&[("me", true)], true, &xapikey, true),
            (&[("me", true)], true, &["xapikey", "extra"], true),
            (&[], false, &xapikey, true),
            (&[], true, &xapikey, true),
            // An environment's generated Secrets: labelled, unowned, other keys.
            (&[], true, &["fingerprint-key"], false),
            (&[], true, &["client-secret"], false),
            // A user's Secret with other keys.
            (&[], false, &["username", "password"], false),
            // Another tenant's output, whether or not it controls it.
            (&[("other", true)], true, &xapikey, false),
            (&[("other", false)], true, &xapikey, false),
            (&[("me", true), ("other", false)], true, &xapikey, false),
        ];
        for (owners, labelled, data, ours) in table {
            let s = secret(owners, *labelled, data);
            let result = refuse_foreign("s", &s, Some(&me), &OUTPUT_KEYS);
            assert_eq!(result.is_ok(), *ours, "{owners:?} {labelled} {data:?}");
        }
    }
}
