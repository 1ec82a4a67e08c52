//! What every reconcile shares: the Kubernetes client, the runbook, events, backoff and
//! the readiness gauge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::keys::ObjectKey;
use crate::runbook::Runbook;
use crate::telemetry::metrics;
use crate::telemetry::metrics::KindReady;

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// How often a Ready resource is checked for drift (jittered ±10 %).
    pub resync_interval: Duration,
    /// Longest wait between retries of a failing resource.
    pub max_backoff: Duration,
    /// First wait after a failure.
    pub initial_backoff: Duration,
    /// How long a Nexus rollout may take before the condition says it is stuck.
    pub rollout_timeout: Duration,
    /// The pod's name (`run --pod-name`, env `POD_NAME`): the reporting instance of Events.
    pub pod_name: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(600),
            max_backoff: Duration::from_secs(300),
            initial_backoff: Duration::from_secs(5),
            rollout_timeout: Duration::from_secs(600),
            pod_name: None,
        }
    }
}

/// The longest `Retry-After` obeyed when it is longer than `--max-backoff`.
pub const RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);

/// The lock's data even when a pass panicked while holding it: each change of these maps is
/// one call, so a poisoned map is still whole, and refusing it would make every later
/// pass panic too.
fn tolerant<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Context {
    pub client: kube::Client,
    /// Both kinds as the controllers see them, to refuse a second claim on one upstream.
    pub caches: super::identity::Caches,
    /// Claims of this process's passes not yet visible in the caches.
    pub claims: super::identity::Claims,
    pub runbook: Runbook,
    pub config: ControllerConfig,
    /// Secrets the operator wrote, so their watch events trigger no pass.
    pub own_writes: super::secrets::OwnWrites,
    /// Environments' Secrets as read for their tenants.
    pub resolved_environments: super::resolved::ResolvedEnvironments,
    recorder: Recorder,
    failures: Mutex<HashMap<ObjectKey, u32>>,
    /// Each resource's readiness, with its uid, so that a resource forgotten after a relist
    /// releases its claims and the rest of what is kept by uid.
    readiness: Mutex<HashMap<ObjectKey, (bool, Option<String>)>>,
    /// The status this process last wrote or read afresh for each resource (by uid), to
    /// tell a stale cache from a current one: its digest (`None`: unknown), since a
    /// thousand statuses as JSON trees are megabytes.
    last_status: Mutex<HashMap<String, Option<u64>>>,
}

impl Context {
    pub fn new(client: kube::Client, runbook: Runbook, config: ControllerConfig) -> Self {
        let reporter = Reporter {
            controller: "dc-operator".to_string(),
            instance: config.pod_name.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            caches: super::identity::Caches::default(),
            claims: super::identity::Claims::default(),
            client,
            runbook,
            config,
            own_writes: super::secrets::OwnWrites::default(),
            resolved_environments: Default::default(),
            failures: Mutex::default(),
            readiness: Mutex::default(),
            last_status: Mutex::default(),
        }
    }

    /// The wait before the next try of a failing resource: exponential with jitter,
    /// capped, reset by [`Context::succeeded`]. A `Retry-After` longer than that wins, even
    /// past the cap.
    pub fn backoff(&self, key: &ObjectKey, retry_after: Option<Duration>) -> Duration {
        let mut failures = tolerant(&self.failures);
        let n = failures.entry(key.clone()).or_insert(0);
        let exp = self
            .config
            .initial_backoff
            .saturating_mul(2u32.saturating_pow((*n).min(16)));
        *n += 1;
        let capped = exp.min(self.config.max_backoff);
        let jittered = capped.mul_f64(rand::random_range(0.8..=1.2));
        // The upstream said when to come back: earlier would only be refused again. Within
        // reason: a bad header or a skewed clock must not park a resource for a day.
        let ceiling = self.config.max_backoff.max(RETRY_AFTER_CEILING);
        match retry_after {
            Some(after) if after > jittered => after.min(ceiling),
            _ => jittered,
        }
    }

    pub fn succeeded(&self, key: &ObjectKey) {
        tolerant(&self.failures).remove(key);
    }

    /// The drift-check interval with ±10 % jitter, so resources do not all check at once.
    pub fn resync(&self) -> Duration {
        self.config
            .resync_interval
            .mul_f64(rand::random_range(0.9..=1.1))
    }

    /// Publishes an event; failures are logged, never fatal.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }

    /// Readiness as last recorded by [`Context::set_ready`].
    pub fn is_ready(&self, key: &ObjectKey) -> Option<bool> {
        tolerant(&self.readiness).get(key).map(|(ready, _)| *ready)
    }

    /// Records a resource's readiness for the `resources` gauge.
    pub fn set_ready<K: kube::Resource<DynamicType = ()>>(&self, object: &K, ready: bool) {
        let key = ObjectKey::of(object);
        let mut map = tolerant(&self.readiness);
        // Gone from the cache meanwhile (its deletion was seen during the pass): forgotten
        // already, and not counted again.
        match self.caches.holds(&key) {
            true => map.insert(key.clone(), (ready, object.meta().uid.clone())),
            false => map.remove(&key),
        };
        publish_readiness(&map, key.kind);
    }

    fn unset_ready(&self, key: &ObjectKey) {
        let mut map = tolerant(&self.readiness);
        map.remove(key);
        publish_readiness(&map, key.kind);
    }

    /// Remembers the status a resource now has, as this process wrote or read it.
    pub fn saw_status(&self, uid: &str, status: &impl serde::Serialize) {
        let digest = status_digest(status);
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(uid.to_string(), digest);
    }

    /// After a status write whose outcome is unknown (it failed, but may have been stored):
    /// the next pass reads the stored object rather than trust the cache.
    pub fn status_unknown(&self, uid: &str) {
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(uid.to_string(), None);
    }

    /// Whether `cached` is not the status this process last saw the resource with: the
    /// cache has not caught up with a write (or someone else wrote since), and a pass built
    /// on it could roll back or drop a record.
    pub fn status_differs(&self, uid: &str, cached: &impl serde::Serialize) -> bool {
        let last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        last.get(uid)
            .is_some_and(|seen| seen.is_none() || *seen != status_digest(cached))
    }

    /// Forgets everything kept about a resource that is gone: its backoff, its place in the
    /// readiness gauge, its last status, its claims and any key still waiting for its Secret.
    pub fn forget(&self, key: &ObjectKey, uid: Option<&str>) {
        self.succeeded(key);
        self.unset_ready(key);
        if let Some(uid) = uid {
            self.claims.release(uid);
            self.runbook.pending_keys.forget_tenant(uid);
            let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
            last.remove(uid);
        }
    }

    /// After a relist: forgets the resources of `kind` in `namespace` (all when `None`)
    /// that are not in `present`, whose deletion the watch never showed.
    pub fn keep_only(&self, kind: &'static str, namespace: Option<&str>, present: &[ObjectKey]) {
        let gone: Vec<(ObjectKey, Option<String>)> = tolerant(&self.readiness)
            .iter()
            .filter(|(key, _)| key.kind == kind)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.namespace == ns))
            .filter(|(key, _)| !present.contains(key))
            .map(|(key, (_, uid))| (key.clone(), uid.clone()))
            .collect();
        for (key, uid) in gone {
            self.forget(&key, uid.as_deref());
        }
    }
}

/// The `resources` gauge of one kind, from the readiness map.
/// A status's digest: of its JSON tree, so that a typed status and the same status read
/// back as JSON agree.
fn status_digest(status: &impl serde::Serialize) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let tree = serde_json::to_value(status).ok()?;
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(&tree).ok()?.hash(&mut hasher);
    Some(hasher.finish())
}

fn publish_readiness(map: &HashMap<ObjectKey, (bool, Option<String>)>, kind: &'static str) {
    for ready in [true, false] {
        let count = map
            .iter()
            .filter(|(key, (r, _))| key.kind == kind && *r == ready)
            .count();
        metrics()
            .resources
            .get_or_create(&KindReady {
                kind: kind.to_string(),
                ready: ready.to_string(),
            })
            .set(count as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client, never connected");
        let connector = crate::runbook::RealConnector::new(Default::default());
        Context::new(
            client,
            Runbook::new(std::sync::Arc::new(connector)),
            ControllerConfig::default(),
        )
    }

    #[tokio::test]
    async fn a_status_seen_typed_is_recognised_read_back_as_json() {
        use crate::api::conditions::{Condition, ConditionStatus};
        let ctx = context();
        let mut status = crate::api::TenantStatus {
            conditions: vec![Condition::new(
                "Ready",
                ConditionStatus::True,
                "Provisioned",
                "",
            )],
            ..Default::default()
        };
        ctx.saw_status("u1", &Some(status.clone()));
        let read_back = serde_json::to_value(&status).unwrap();
        assert!(!ctx.status_differs("u1", &read_back), "the same status");
        assert!(!ctx.status_differs("u2", &read_back), "one never seen");
        status.contact_center_id = Some("cc".into());
        assert!(
            ctx.status_differs("u1", &Some(status.clone())),
            "another status"
        );
        ctx.status_unknown("u1");
        assert!(
            ctx.status_differs("u1", &read_back),
            "unknown differs from any"
        );
    }

    /// Panics while holding `lock`, as a pass might: the mutex is poisoned after.
    fn poison<T: Send>(lock: &Mutex<T>) {
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _held = lock.lock();
                    panic!("a pass panics while it holds the lock");
                })
                .join();
        });
        assert!(lock.is_poisoned());
    }

    /// One panicking pass must not make every later pass panic on a poisoned lock.
    #[tokio::test]
    async fn the_backoff_and_readiness_survive_a_poisoned_lock() {
        let ctx = context();
        poison(&ctx.failures);
        poison(&ctx.readiness);
        let key = ObjectKey::new(KIND, "ns", "a");
        let first = ctx.backoff(&key, None);
        assert!(
            first <= ctx.config.initial_backoff.mul_f64(1.2),
            "{first:?}"
        );
        ctx.succeeded(&key);
        let env = cache_environment(&ctx, "ns", "a");
        ctx.set_ready(&env, true);
        assert_eq!(ctx.is_ready(&key), Some(true));
        ctx.forget(&key, None);
        assert_eq!(ctx.is_ready(&key), None);
    }

    const KIND: &str = crate::controller::KIND_ENVIRONMENT;

    fn environment(namespace: &str, name: &str) -> crate::api::DigitalChannelsEnvironment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsEnvironment",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "spec": {"authUrl": "https://auth", "gwsUrl": "https://gws", "nexusUrl": "https://nexus",
                     "opsCredentialsSecret": {"name": "ops"},
                     "database": {"urlSecret": {"name": "db", "key": "url"}}},
        }))
        .expect("an environment")
    }

    /// Puts an environment into the context's caches, as its watch would.
    fn cache_environment(
        ctx: &Context,
        namespace: &str,
        name: &str,
    ) -> crate::api::DigitalChannelsEnvironment {
        use kube::runtime::watcher::Event;
        let env = environment(namespace, name);
        let (store, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&Event::Apply(env.clone()));
        let synced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        ctx.caches.register_environments(store, synced);
        env
    }

    /// A pass that ends after its resource's deletion was seen does not count it again.
    #[tokio::test]
    async fn a_resource_gone_from_the_cache_is_not_counted_again() {
        let ctx = context();
        let here = cache_environment(&ctx, "ns", "here");
        ctx.set_ready(&here, false);
        ctx.set_ready(&environment("ns", "gone"), false);
        assert_eq!(ctx.is_ready(&ObjectKey::of(&here)), Some(false));
        assert_eq!(ctx.is_ready(&ObjectKey::new(KIND, "ns", "gone")), None);
    }

    /// A resource whose deletion a relist found forgets all it held, its claims included:
    /// else a new resource could never claim what the deleted one had claimed.
    #[tokio::test]
    async fn a_relist_releases_the_claims_of_what_is_gone() {
        use super::super::identity::{Claimant, Claims};
        let ctx = context();
        let gone = cache_environment(&ctx, "ns", "gone");
        ctx.set_ready(&gone, true);
        let keys = Claims::keys("https://nexus", "cc", "t");
        let claimant = |uid: &str| Claimant {
            uid: uid.into(),
            namespace: "ns".into(),
            name: uid.into(),
        };
        ctx.claims
            .take(&keys, &claimant("uid-gone"), |_| true)
            .expect("free");
        ctx.keep_only(KIND, Some("other-ns"), &[]);
        assert_eq!(
            ctx.is_ready(&ObjectKey::of(&gone)),
            Some(true),
            "another namespace"
        );
        ctx.keep_only(KIND, Some("ns"), &[]);
        assert_eq!(ctx.is_ready(&ObjectKey::of(&gone)), None);
        assert!(
            ctx.claims
                .take(&keys, &claimant("uid-new"), |_| true)
                .is_ok()
        );
    }
}
