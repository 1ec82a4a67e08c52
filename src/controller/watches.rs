//! What starts a pass: the watch of each kind, its cache, the Secrets index, and the
//! other kind's changes that concern a resource.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::keys::{ObjectKey, kind_of};
use super::pass::error_policy;
use super::*;
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

/// kube-runtime reports a failed watch (a missing RBAC rule, an API server outage) only in the
/// controller's output stream, and retries it with backoff: log it, or it goes unseen.
/// Reconcile errors are logged by `record_reconcile`.
pub(crate) async fn log_watch_failure<K, E>(
    result: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, watcher::Error>>,
) where
    K: kube::Resource,
{
    if let Err(kube::runtime::controller::Error::QueueError(e)) = result {
        tracing::warn!(error = %e, "watch failed; retrying with backoff");
    }
}

/// Names of the Secrets an environment reads.
pub fn environment_secret_names(env: &DigitalChannelsEnvironment) -> Vec<String> {
    let spec = &env.spec;
    let mut names = vec![
        spec.ops_credentials_secret.name.clone(),
        spec.database.url_secret.name.clone(),
        spec.client_secret_ref(&env.name_any()).name,
        crate::runbook::environment::fingerprint_key_ref(&env.name_any()).name,
    ];
    if let Some(tls) = &spec.tls {
        names.push(tls.ca_secret.name.clone());
    }
    names
}

/// Names of the Secrets a tenant reads or writes.
pub fn tenant_secret_names(t: &DigitalChannelsTenant) -> Vec<String> {
    let mut names = vec![
        t.spec.credentials_secret.name.clone(),
        t.spec.output_secret_name(&t.name_any()),
    ];
    if let Some(key) = t.spec.ucs.as_ref().and_then(|u| u.api_key_secret.as_ref()) {
        names.push(key.name.clone());
    }
    names
}

/// The resources in `store` that reference `secret`: the index from a Secret to its
/// users, so a rotated password is picked up within seconds.
pub(crate) fn users_of<K, S>(
    store: &Store<K>,
    secret: &S,
    names: fn(&K) -> Vec<String>,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    S: ResourceExt,
{
    let ns = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns && names(o).contains(&name))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Where the controllers look: the whole cluster or one namespace.
pub(crate) fn api_for<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

use super::tap::{EnvironmentWakes, ListHeld, Tap};

/// The watch of a controller's own kind and the cache it fills, without `managedFields`
/// (often larger than the object, and never read). `tap` gets each change after the cache
/// holds it (a relist's at its end: see [`ListHeld`]), so a pass it starts reads that
/// version or a newer one from the cache.
pub(crate) fn cached<K>(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    tap: Option<Tap<K>>,
) -> (
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Store<K>,
    Arc<std::sync::atomic::AtomicBool>,
)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{PredicateConfig, WatchStreamExt};
    let (store, writer) = kube::runtime::reflector::store();
    // Set once the watch has listed everything: see `identity::Caches::ready`.
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listed = synced.clone();
    let (ctx, reader, scope) = (ctx.clone(), store.clone(), namespace.map(str::to_string));
    let mut held = ListHeld::default();
    let stream = watcher(
        api_for::<K>(&ctx.client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| o.meta_mut().managed_fields = None)
    .reflect(writer)
    .inspect(move |event| {
        match event {
            Ok(watcher::Event::InitDone) => {
                listed.store(true, std::sync::atomic::Ordering::Release);
                forget_unlisted(&ctx, &reader, scope.as_deref());
            }
            // Gone without a pass (it had no finalizer): nothing may keep counting it.
            Ok(watcher::Event::Delete(o)) => {
                ctx.forget(&ObjectKey::of(o), o.meta().uid.as_deref());
            }
            _ => {}
        }
        if let (Some(tap), Ok(event)) = (&tap, event) {
            for e in held.pass(event) {
                let _ = tap.unbounded_send(e);
            }
        }
    })
    .applied_objects()
    // A relist repeats every object: the filter's memory of what it passed on must outlast
    // the quiet between relists (kube-runtime forgets after an hour by default), or a relist
    // after a quiet hour passes every resource again. A day of deleted resources' hashes is
    // small.
    .predicate_filter(
        asks_for_a_pass::<K>,
        PredicateConfig::default().ttl(std::time::Duration::from_secs(24 * 3600)),
    );
    (stream, store, synced)
}

/// After a (re)list, forgets the resources that were deleted while the watch was down.
pub(crate) fn forget_unlisted<K>(ctx: &Context, store: &Store<K>, namespace: Option<&str>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let present: Vec<ObjectKey> = store
        .state()
        .iter()
        .map(|o| ObjectKey::of(o.as_ref()))
        .collect();
    ctx.keep_only(kind_of::<K>(), namespace, &present);
}

/// What of a resource asks for a pass: its spec (the generation), labels, annotations (a
/// DesignerEnv acknowledgement) and deletion. Not its status nor its finalizers: those are
/// the operator's own writes, and a pass for them would repeat the one that made them
/// (every upstream read again). A status edited by hand is repaired at the resync.
pub(crate) fn asks_for_a_pass<K: kube::Resource>(object: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let meta = object.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// The changes of environments that concern their tenants (see [`EnvironmentWakes`]): all
/// but those that only move what tenants do not read, such as `status.nextRetryAt`, which
/// each retry of a failing environment writes. `changes` is the environments' cache's tap: a
/// tenant woken by it finds the environment's new version in the cache (see [`cached`]).
pub(crate) fn environment_triggers(
    changes: futures::channel::mpsc::UnboundedReceiver<watcher::Event<DigitalChannelsEnvironment>>,
) -> impl futures::Stream<Item = Result<DigitalChannelsEnvironment, watcher::Error>> + Send + 'static
{
    let mut wakes = EnvironmentWakes::default();
    changes.flat_map(move |event| {
        let woken = wakes.on(event, concern_of);
        futures::stream::iter(woken.into_iter().map(Ok))
    })
}

/// What of an environment its tenants read: its spec and generation, whether it is being
/// deleted, and of its status the generation it applied, each condition's status and reason,
/// and the client it verified. Not the rest (the next retry, the managed client's id, the
/// Nexus restart's bookkeeping, condition messages and times): an environment writes those
/// on its way to Ready, and each would pass every one of its tenants for nothing.
fn concern_of(env: &DigitalChannelsEnvironment) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let status = env.status.clone().unwrap_or_default();
    let conditions: Vec<_> = status
        .conditions
        .iter()
        .map(|c| (&c.type_, format!("{:?}", c.status), &c.reason))
        .collect();
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(&env.spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    env.metadata.generation.hash(&mut hasher);
    env.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    status.observed_generation.hash(&mut hasher);
    conditions.hash(&mut hasher);
    status.client_secret_digest.hash(&mut hasher);
    status.client_secret_name.hash(&mut hasher);
    status.client_redirect_uri.hash(&mut hasher);
    hasher.finish()
}

/// A Secret as the controllers see it: its metadata only.
type SecretMeta = PartialObjectMeta<Secret>;
type SecretTrigger = futures::channel::mpsc::UnboundedReceiver<Result<SecretMeta, watcher::Error>>;

/// One metadata-only watch of the scope's Secrets, shared by both controllers. Only names
/// matter (which resources use a Secret); a full watch would hold every Secret's data, and a
/// namespace's Helm release Secrets alone can fill the operator's memory.
pub(crate) fn secret_triggers(
    ctx: Arc<Context>,
    namespace: Option<&str>,
) -> (SecretTrigger, SecretTrigger) {
    use futures::channel::mpsc::unbounded;
    use kube::runtime::WatchStreamExt;
    let (to_envs, for_envs) = unbounded();
    let (to_tenants, for_tenants) = unbounded();
    // An Api of PartialObjectMeta makes metadata-only requests.
    let api = api_for::<SecretMeta>(&ctx.client, namespace);
    // Events held while the operator wrote their Secret, released when it was not its own.
    let released = (ctx.own_writes.released(namespace))
        .map(|metadata| (super::secret_versions::secret_with(metadata), true));
    tokio::spawn(async move {
        let mut versions = super::secret_versions::SecretVersions::default();
        let watched = watcher(api, watcher::Config::default())
            .default_backoff()
            .flat_map(|item| {
                let changes = match item {
                    Ok(event) => versions.changes(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "Secret watch failed; retrying with backoff");
                        vec![]
                    }
                };
                futures::stream::iter(changes.into_iter().map(|s| (s, false)))
            });
        let changes = futures::stream::select(watched, released);
        futures::pin_mut!(changes);
        while let Some((mut secret, released)) = changes.next().await {
            // A released event was held as the operator's own and turned out someone else's.
            let wake = match released {
                true => foreign_change(&ctx, &secret),
                false => secret_changed(&ctx, &secret),
            };
            if !wake {
                continue;
            }
            secret.metadata.managed_fields = None;
            let a = to_envs.unbounded_send(Ok(secret.clone())).is_ok();
            let b = to_tenants.unbounded_send(Ok(secret)).is_ok();
            if !a && !b {
                return; // both controllers stopped
            }
        }
    });
    (for_envs, for_tenants)
}

/// Whether a Secret's change asks for a pass, dropping what was read from it: not when it
/// is the operator's own write, which the pass that made it already knows, nor while it is
/// held (see [`super::own_writes`]).
pub(crate) fn secret_changed(ctx: &Context, secret: &SecretMeta) -> bool {
    use super::own_writes::Seen;
    let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    // A tenant's output Secret is read by no environment: its writes, many in a wave, need
    // not spoil the environment reads in flight. An environment's own Secrets must.
    let output = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == KIND_TENANT);
    match ctx.own_writes.seen(&secret.metadata) {
        Seen::Own | Seen::Held if output => {
            ctx.resolved_environments
                .own_secret_written(&namespace, &name);
            false
        }
        Seen::Own | Seen::Held => {
            ctx.resolved_environments.secret_changed(&namespace, &name);
            false
        }
        Seen::Foreign => foreign_change(ctx, secret),
    }
}

/// Someone else changed a Secret: what was read from it is stale, and so may be a read in
/// flight. Its users get a pass.
fn foreign_change(ctx: &Context, secret: &SecretMeta) -> bool {
    let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    ctx.resolved_environments.secret_changed(&namespace, &name);
    true
}

/// Runs both controllers for one scope until `shutdown` fires.
pub async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    shutdown: CancellationToken,
) {
    // A panic in a pass is logged without its message, and becomes that pass's error.
    panics::install_hook();
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let config = ControllerRuntimeConfig::default().concurrency(concurrency);
    let (env_secrets, tenant_secrets) = secret_triggers(ctx.clone(), ns);

    let (env_changes, env_changes_for_tenants) = futures::channel::mpsc::unbounded();
    let (stream, store, synced) = cached::<DigitalChannelsEnvironment>(&ctx, ns, Some(env_changes));
    let envs = Controller::for_stream(stream, store).with_config(config.clone());
    let env_store = envs.store();
    ctx.caches.register_environments(env_store.clone(), synced);
    let envs = envs
        .watches_stream(env_secrets, move |secret| {
            users_of(&env_store, &secret, environment_secret_names)
        })
        // A tenant's deletion may unblock its environment's deletion. Other tenant changes
        // do not concern the environment: mapping them would re-check it on every status write.
        .watches(
            api_for::<DigitalChannelsTenant>(&client, ns),
            watcher::Config::default(),
            |t| {
                t.metadata.deletion_timestamp.as_ref()?;
                let env = ObjectRef::new(&t.spec.environment_ref.name);
                Some(match t.namespace() {
                    Some(ns) => env.within(&ns),
                    None => env,
                })
            },
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(environment::reconcile, error_policy, ctx.clone())
        .for_each(log_watch_failure);

    let (stream, store, synced) = cached::<DigitalChannelsTenant>(&ctx, ns, None);
    let tenants = Controller::for_stream(stream, store).with_config(config);
    let tenant_store = tenants.store();
    ctx.caches.register_tenants(tenant_store.clone(), synced);
    let tenant_store_for_envs = tenant_store.clone();
    let tenants = tenants
        .watches_stream(tenant_secrets, move |secret| {
            users_of(&tenant_store, &secret, tenant_secret_names)
        })
        // An environment turning Ready releases its waiting tenants at once.
        .watches_stream(environment_triggers(env_changes_for_tenants), move |env| {
            let ns = env.namespace();
            let name = env.name_any();
            tenant_store_for_envs
                .state()
                .iter()
                .filter(|t| t.namespace() == ns && t.spec.environment_ref.name == name)
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(tenant::reconcile, error_policy, ctx)
        .for_each(log_watch_failure);

    tokio::join!(envs, tenants);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{Condition, ConditionStatus};

    #[test]
    fn tenants_are_woken_by_what_they_read_of_an_environment_only() {
        let mut env: DigitalChannelsEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsEnvironment",
            "metadata": {"name": "prod", "namespace": "dc", "generation": 1, "resourceVersion": "1"},
            "spec": {
                "authUrl": "https://auth.example.com", "gwsUrl": "https://gws.example.com",
                "nexusUrl": "https://nexus.example.com",
                "opsCredentialsSecret": {"name": "ops"},
                "database": {"urlSecret": {"name": "db", "key": "url"}}
            },
            "status": {"nextRetryAt": "2030-01-01T00:00:00Z"}
        }))
        .unwrap();
        let base = concern_of(&env);
        env.metadata.resource_version = Some("2".into());
        env.status.as_mut().unwrap().next_retry_at = Some("2030-01-01T00:05:00Z".into());
        assert_eq!(concern_of(&env), base, "a retry's write alone");
        env.status.as_mut().unwrap().managed_client_id = Some("nexus_client".into());
        assert_eq!(
            concern_of(&env),
            base,
            "the client id recorded before its create"
        );
        let pending = Condition::new("Ready", ConditionStatus::False, "Provisioning", "step 1");
        env.status.as_mut().unwrap().conditions.push(pending);
        let provisioning = concern_of(&env);
        assert_ne!(provisioning, base, "a condition appeared");
        env.status.as_mut().unwrap().conditions[0].message = "step 2".into();
        assert_eq!(concern_of(&env), provisioning, "only its message moved");
        env.status.as_mut().unwrap().conditions.clear();
        env.status.as_mut().unwrap().client_secret_digest = Some("d1".into());
        assert_ne!(concern_of(&env), base, "the verified client secret changed");
        env.status.as_mut().unwrap().client_secret_digest = None;
        env.status.as_mut().unwrap().observed_generation = Some(1);
        assert_ne!(concern_of(&env), base, "the spec it applied changed");
        env.status.as_mut().unwrap().observed_generation = None;
        let ready = Condition::new("Ready", ConditionStatus::True, "Provisioned", "");
        env.status.as_mut().unwrap().conditions.push(ready);
        assert_ne!(concern_of(&env), base, "Ready changed");
        let mut edited = env.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(concern_of(&edited), concern_of(&env), "the spec changed");
    }
}
