//! The runbook's [`SecretStore`] for `provision`: Secrets from the given manifests, and
//! what the operator must keep (a generated client secret, each tenant's output Secret)
//! as 0600 manifests in the output directory, read back on the next run.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use super::manifests::{Bundle, SecretManifest, secret_manifest};
use crate::runbook::secrets::{OutputRecord, SecretError, SecretStore, WriteOutcome, key_of};
use crate::secret::SecretString;

pub struct FileStore {
    output_dir: PathBuf,
    namespace: Option<String>,
    secrets: Mutex<BTreeMap<String, SecretManifest>>,
}

impl FileStore {
    /// Secrets from the manifests, overlaid with what earlier runs wrote to `output_dir`.
    pub fn new(
        given: &[SecretManifest],
        output_dir: &Path,
        namespace: Option<String>,
    ) -> Result<Self, String> {
        let mut secrets: BTreeMap<String, SecretManifest> =
            given.iter().map(|s| (s.name.clone(), s.clone())).collect();
        if output_dir.is_dir() {
            let mut written = Bundle::default();
            let entries = std::fs::read_dir(output_dir)
                .map_err(|e| format!("{}: {e}", output_dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    written.add_file(&path)?;
                }
            }
            for s in written.secrets {
                secrets.insert(s.name.clone(), s);
            }
        }
        Ok(Self {
            output_dir: output_dir.to_path_buf(),
            namespace,
            secrets: Mutex::new(secrets),
        })
    }

    /// Whether the files (or an earlier run's output) hold `key` of Secret `name`.
    pub fn check(&self, name: &str, key: &str) -> Result<(), SecretError> {
        let secrets = self.secrets.lock().expect("store lock");
        key_of(name, key, secrets.get(name).map(|s| &s.data)).map(|_| ())
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.output_dir.join(format!("{name}.yaml"))
    }

    fn write_file(&self, manifest: &SecretManifest) -> Result<(), SecretError> {
        let unavailable = |e: std::io::Error| SecretError::Unavailable {
            name: manifest.name.clone(),
            message: format!(
                "cannot write {}: {e}",
                self.path_of(&manifest.name).display()
            ),
        };
        std::fs::create_dir_all(&self.output_dir).map_err(unavailable)?;
        let text = secret_manifest(
            &manifest.name,
            self.namespace.as_deref(),
            &manifest.data,
            &manifest.annotations,
        );
        let path = self.path_of(&manifest.name);
        let tmp = path.with_extension("yaml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(unavailable)?;
        file.write_all(text.as_bytes()).map_err(unavailable)?;
        file.sync_all().map_err(unavailable)?;
        std::fs::rename(&tmp, &path).map_err(unavailable)
    }
}

#[async_trait]
impl SecretStore for FileStore {
    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let secrets = self.secrets.lock().expect("store lock");
        key_of(name, key, secrets.get(name).map(|s| &s.data)).map_err(|e| match e {
            SecretError::NotFound { name, .. } => SecretError::NotFound {
                name,
                in_files: true,
            },
            other => other,
        })
    }

    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        let manifest = {
            let mut secrets = self.secrets.lock().expect("store lock");
            let entry = secrets
                .entry(name.to_string())
                .or_insert_with(|| SecretManifest {
                    name: name.to_string(),
                    ..SecretManifest::default()
                });
            if let Some(existing) = entry.data.get(key) {
                return Ok(existing.clone());
            }
            entry.data.insert(key.to_string(), value.clone());
            entry.clone()
        };
        self.write_file(&manifest)?;
        Ok(value.clone())
    }

    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError> {
        let secrets = self.secrets.lock().expect("store lock");
        Ok(secrets.get(name).map(|s| OutputRecord {
            data: s.data.clone(),
            annotations: s.annotations.clone(),
        }))
    }

    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError> {
        let manifest = SecretManifest {
            name: name.to_string(),
            data: record.data.clone(),
            annotations: record.annotations.clone(),
        };
        let outcome = {
            let secrets = self.secrets.lock().expect("store lock");
            match secrets.get(name) {
                Some(old)
                    if old.data == manifest.data && old.annotations == manifest.annotations =>
                {
                    return Ok(WriteOutcome::Unchanged);
                }
                Some(_) => WriteOutcome::Updated,
                None => WriteOutcome::Created,
            }
        };
        self.write_file(&manifest)?;
        self.secrets
            .lock()
            .expect("store lock")
            .insert(name.to_string(), manifest);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a cluster there is no namespace to create a Secret in: a Secret missing from
    /// the files (as `provision --dry-run` and `plan -f` meet it) says to add its manifest.
    #[tokio::test]
    async fn a_secret_missing_from_the_files_says_to_add_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&[], dir.path(), Some("dc".into())).unwrap();
        let error = store.read("gws-ops", "username").await.unwrap_err();
        let message = error.to_step_error("GWS ops credentials").message;
        assert_eq!(
            message,
            "Secret gws-ops (GWS ops credentials) is not in the files; add its manifest with -f"
        );
    }
}
