//! Secrets in memory, as a namespace: what the runbook reads and the output Secrets it writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::runbook::secrets::{OutputRecord, SecretError, SecretStore, WriteOutcome, key_of};
use crate::secret::SecretString;

/// Secrets by name. Writes are logged by Secret name; `fail_writes` makes the next output
/// writes fail as an API server that is away; `foreign` names Secrets that are not the
/// operator's to write.
#[derive(Default)]
pub struct FakeSecretStore {
    secrets: Mutex<BTreeMap<String, OutputRecord>>,
    writes: Mutex<Vec<String>>,
    failing_writes: Mutex<usize>,
    foreign: Mutex<BTreeSet<String>>,
}

impl FakeSecretStore {
    pub fn put(&self, name: &str, pairs: &[(&str, &str)]) {
        let mut record = OutputRecord::default();
        for (k, v) in pairs {
            record.data.insert(k.to_string(), SecretString::new(*v));
        }
        lock(&self.secrets).insert(name.to_string(), record);
    }

    /// A whole record, annotations included (an output Secret of an earlier pass).
    pub fn put_record(&self, name: &str, record: OutputRecord) {
        lock(&self.secrets).insert(name.to_string(), record);
    }

    pub fn record(&self, name: &str) -> Option<OutputRecord> {
        lock(&self.secrets).get(name).cloned()
    }

    pub fn get(&self, name: &str, key: &str) -> Option<String> {
        let secrets = lock(&self.secrets);
        let value = secrets.get(name).and_then(|r| r.data.get(key));
        value.map(|v| v.expose().to_string())
    }

    pub fn remove(&self, name: &str) {
        lock(&self.secrets).remove(name);
    }

    /// The names of the Secrets written (created or changed), in order.
    pub fn writes(&self) -> Vec<String> {
        lock(&self.writes).clone()
    }

    /// The next `count` writes fail as unavailable.
    pub fn fail_writes(&self, count: usize) {
        *lock(&self.failing_writes) = count;
    }

    /// A Secret of this name exists and is someone else's.
    pub fn mark_foreign(&self, name: &str) {
        lock(&self.foreign).insert(name.to_string());
    }

    fn write_fails(&self, name: &str) -> Result<(), SecretError> {
        let mut failing = lock(&self.failing_writes);
        if *failing == 0 {
            return Ok(());
        }
        *failing -= 1;
        Err(SecretError::Unavailable {
            name: name.to_string(),
            message: "the API server is away (scripted)".to_string(),
        })
    }
}

#[async_trait]
impl SecretStore for FakeSecretStore {
    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let secrets = lock(&self.secrets);
        key_of(name, key, secrets.get(name).map(|s| &s.data))
    }

    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        let mut secrets = lock(&self.secrets);
        let entry = secrets.entry(name.to_string()).or_default();
        let kept = entry.data.entry(key.to_string()).or_insert_with(|| {
            lock(&self.writes).push(name.to_string());
            value.clone()
        });
        Ok(kept.clone())
    }

    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError> {
        Ok(self.record(name))
    }

    async fn check_output(&self, name: &str) -> Result<(), SecretError> {
        if lock(&self.foreign).contains(name) {
            return Err(SecretError::Conflict {
                name: name.to_string(),
                why: "it exists without the operator's labels".to_string(),
            });
        }
        Ok(())
    }

    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError> {
        self.write_fails(name)?;
        let mut secrets = lock(&self.secrets);
        let outcome = match secrets.get(name) {
            Some(old) if old == record => return Ok(WriteOutcome::Unchanged),
            Some(_) => WriteOutcome::Updated,
            None => WriteOutcome::Created,
        };
        secrets.insert(name.to_string(), record.clone());
        lock(&self.writes).push(name.to_string());
        Ok(outcome)
    }
}
