//! Environments with their Secrets read, kept for their tenants: a wave of a thousand tenants
//! would otherwise read the same four Secrets a thousand times. An entry holds while neither
//! the environment (its resourceVersion) nor one of the Secrets it read has changed; the
//! Secret watch drops what a changed Secret touches.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;

use crate::api::DigitalChannelsEnvironment;
use crate::runbook::environment::ResolvedEnvironment;

#[derive(Default)]
pub struct ResolvedEnvironments {
    entries: Mutex<HashMap<(String, String), Entry>>,
    /// Moves on every Secret change: a read that began before one is not kept, since the
    /// change may have come while its requests were in flight.
    epoch: std::sync::atomic::AtomicU64,
    /// One per environment, held while its Secrets are read: a wave of its tenants that find
    /// no entry waits for one read instead of each making its own. Environments are few.
    reading: Mutex<HashMap<(String, String), ReadLock>>,
}

type ReadLock = std::sync::Arc<tokio::sync::Mutex<()>>;

struct Entry {
    version: Option<String>,
    secrets: Vec<String>,
    resolved: ResolvedEnvironment,
}

fn key(env: &DigitalChannelsEnvironment) -> (String, String) {
    (env.namespace().unwrap_or_default(), env.name_any())
}

impl ResolvedEnvironments {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was read for this version of the environment, if nothing changed since.
    pub fn get(&self, env: &DigitalChannelsEnvironment) -> Option<ResolvedEnvironment> {
        let entries = self.lock();
        let entry = entries.get(&key(env))?;
        (entry.version == env.metadata.resource_version).then(|| entry.resolved.clone())
    }

    /// Waits for a read of this environment's Secrets in progress; hold the guard while
    /// reading, and look again with [`Self::get`] first.
    pub async fn reading(
        &self,
        env: &DigitalChannelsEnvironment,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.reading.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key(env)).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Where Secret changes stand: take it before reading, give it to [`Self::keep`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps what was read, unless a Secret changed since `epoch` (it may be stale).
    pub fn keep(
        &self,
        env: &DigitalChannelsEnvironment,
        resolved: &ResolvedEnvironment,
        epoch: u64,
    ) {
        let entry = Entry {
            version: env.metadata.resource_version.clone(),
            secrets: super::environment_secret_names(env),
            resolved: resolved.clone(),
        };
        let mut entries = self.lock();
        if self.epoch() == epoch {
            entries.insert(key(env), entry);
        }
    }

    /// A Secret changed: what was read from it is stale, and so may be a read in flight.
    pub fn secret_changed(&self, namespace: &str, secret: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self::drop_readers(&mut entries, namespace, secret);
    }

    /// The operator itself wrote a tenant's output Secret, which no environment reads: a
    /// read in flight stays good. Without this, a wave of tenants writing their output
    /// Secrets would keep any read of the environment from being kept.
    pub fn own_secret_written(&self, namespace: &str, secret: &str) {
        Self::drop_readers(&mut self.lock(), namespace, secret);
    }

    fn drop_readers(entries: &mut HashMap<(String, String), Entry>, namespace: &str, secret: &str) {
        entries
            .retain(|(ns, _), entry| ns != namespace || !entry.secrets.iter().any(|s| s == secret));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(version: &str) -> DigitalChannelsEnvironment {
        let mut env: DigitalChannelsEnvironment = serde_yaml_ng::from_str(
            r#"
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {name: prod, namespace: dc}
spec:
  authUrl: https://auth.example.com
  gwsUrl: https://gws.example.com
  nexusUrl: https://nexus.example.com
  opsCredentialsSecret: {name: gws-ops}
  database: {urlSecret: {name: nexus-db, key: url}}
"#,
        )
        .unwrap();
        env.metadata.resource_version = Some(version.to_string());
        env
    }

    fn resolved(env: &DigitalChannelsEnvironment) -> ResolvedEnvironment {
        ResolvedEnvironment {
            name: env.name_any(),
            spec: env.spec.clone(),
            ops: crate::secret::Credentials {
                username: "ops".into(),
                password: "ops".into(),
            },
            client_secret_ref: env.spec.client_secret_ref(&env.name_any()),
            client_secret: "s".into(),
            fingerprint_key: None,
            database_url: "postgres://db".into(),
            database_url_from: "Secret dc/nexus-db key url".into(),
            ca_pem: None,
            managed_redirect_uri: None,
        }
    }

    #[test]
    fn an_entry_holds_until_the_environment_or_one_of_its_secrets_changes() {
        let cache = ResolvedEnvironments::default();
        let v1 = env("1");
        cache.keep(&v1, &resolved(&v1), cache.epoch());
        assert!(cache.get(&v1).is_some());
        assert!(
            cache.get(&env("2")).is_none(),
            "a new version of the environment"
        );

        cache.secret_changed("dc", "unrelated");
        cache.secret_changed("other", "nexus-db");
        assert!(cache.get(&v1).is_some(), "other Secrets change nothing");
        cache.secret_changed("dc", "nexus-db");
        assert!(cache.get(&v1).is_none(), "its database Secret changed");
    }

    #[test]
    fn a_read_that_a_secret_change_overtook_is_not_kept() {
        let cache = ResolvedEnvironments::default();
        let v1 = env("1");
        let before = cache.epoch();
        // The Secret changes while the read's requests are in flight.
        cache.secret_changed("dc", "gws-ops");
        cache.keep(&v1, &resolved(&v1), before);
        assert!(
            cache.get(&v1).is_none(),
            "a possibly stale read is not kept"
        );
    }

    #[test]
    fn the_operator_s_own_secret_writes_drop_their_readers_but_not_reads_in_flight() {
        let cache = ResolvedEnvironments::default();
        let v1 = env("1");
        let before = cache.epoch();
        cache.own_secret_written("dc", "t100-digital-channels");
        cache.keep(&v1, &resolved(&v1), before);
        assert!(cache.get(&v1).is_some(), "a tenant's output Secret written");
        cache.own_secret_written("dc", "nexus-db");
        assert!(cache.get(&v1).is_none(), "a Secret it read was rewritten");
    }
}
