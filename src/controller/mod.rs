//! The two controllers, one per kind, in one process: `dc-operator run`.

pub mod conditions;
pub mod context;
pub mod environment;
pub mod identity;
pub mod kube_client;
pub mod leader;
pub mod nexus_restart;
pub mod panics;
pub mod resolved;
pub mod secrets;
pub mod status;
pub mod tenant;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use context::{Context, ControllerConfig};

use crate::api::conditions::{Condition, ConditionStatus, find};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::telemetry::metrics;
use crate::telemetry::metrics::{KindLabel, KindResult};

pub const KIND_ENVIRONMENT: &str = "DigitalChannelsEnvironment";
pub const KIND_TENANT: &str = "DigitalChannelsTenant";

/// Errors that end a reconcile early: the Kubernetes API, or a panic inside the pass.
/// Upstream failures are conditions, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// Where the pass panicked (see [`panics::contained`]); never the panic's message.
    #[error("the pass panicked at {0} (an operator bug); it is retried on the backoff")]
    Panicked(String),
}

/// A Kubernetes error in words: kube's own Display of an API error appends a `Debug` dump
/// of the whole `Status`.
pub(crate) fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// The resource to run a pass on: the cached one, unless its status is not the one this
/// process last wrote or read (the cache lags behind a write), in which case the stored one,
/// read once. A pass built on a stale status would roll back or drop what the last pass
/// recorded (an API key's digest, an operation id). `None`: the resource is gone.
pub(crate) async fn current<K>(ctx: &Context, object: Arc<K>) -> Result<Option<Arc<K>>, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let meta = object.meta();
    let Some(uid) = meta.uid.clone() else {
        return Ok(Some(object));
    };
    let status_of = |o: &K| serde_json::to_value(o).unwrap_or_default()["status"].clone();
    if !ctx.status_differs(&uid, &status_of(&object)) {
        return Ok(Some(object));
    }
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    let stored = api
        .get_opt(meta.name.as_deref().unwrap_or_default())
        .await?;
    Ok(stored
        .filter(|s| s.meta().uid.as_deref() == Some(&uid))
        .map(|s| {
            ctx.saw_status(&uid, &status_of(&s));
            Arc::new(s)
        }))
}

/// Runs one pass (apply, or cleanup when the resource is being deleted) inside a span that
/// names the resource: kube-runtime's own span covers only the creation of the future, so
/// without ours the lines logged during the pass would not say which resource they are about.
async fn reconcile_pass<K, Apply, Cleanup>(
    ctx: &Context,
    object: &K,
    apply: Apply,
    cleanup: Cleanup,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = ()>,
    Apply: std::future::Future<Output = Result<Action, Error>>,
    Cleanup: std::future::Future<Output = Result<Action, Error>>,
{
    use tracing::Instrument;
    let kind = K::kind(&());
    let started = Instant::now();
    let meta = object.meta();
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        namespace = %meta.namespace.as_deref().unwrap_or_default(),
        resource = %meta.name.as_deref().unwrap_or_default()
    );
    // A panic is this resource's failure: kube-runtime would pass it on to the process.
    let result = if meta.deletion_timestamp.is_some() {
        panics::contained(cleanup.instrument(span.clone())).await
    } else {
        panics::contained(apply.instrument(span.clone())).await
    };
    let key = format!(
        "{kind}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    // A pass that left the resource not Ready failed, though the reconcile itself worked:
    // step failures are conditions, not errors.
    let outcome = match &result {
        Err(_) => "error",
        Ok(_) if ctx.is_ready(&kind, &key) == Some(false) => "failed",
        Ok(_) => "ok",
    };
    span.in_scope(|| record_reconcile(&kind, started, outcome, &result));
    if let Err(Error::Panicked(place)) = &result {
        let note = format!(
            "The operator failed internally (a panic at {place}) during this pass; other \
             resources are not affected and this one is retried on its backoff. Please \
             report it with the operator's log."
        );
        ctx.event(
            &object.object_ref(&()),
            true,
            "ReconcilePanicked",
            "Reconcile",
            note,
        )
        .await;
    }
    result
}

fn record_reconcile(kind: &str, started: Instant, outcome: &str, result: &Result<Action, Error>) {
    let m = metrics();
    m.reconcile_total
        .get_or_create(&KindResult {
            kind: kind.to_string(),
            result: outcome.to_string(),
        })
        .inc();
    m.reconcile_duration_seconds
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    match result {
        Err(e @ Error::Panicked(_)) => tracing::error!(kind, error = %e, "reconcile failed"),
        Err(e) => tracing::warn!(kind, error = %e, "reconcile failed"),
        Ok(_) => {}
    }
}

/// Reasons of a Ready that is False on the way to True, as planned (a Nexus rollout, a
/// first pass still pending): Normal events and INFO logs, not warnings.
fn is_progress(reason: &str) -> bool {
    matches!(reason, "RollingOut" | "Pending" | "WaitingForEnvironment")
}

/// A status write, logged at the level it deserves: a failure at WARN with what to do.
fn log_status(ready: &Condition) {
    let status = match ready.status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    };
    if ready.status == ConditionStatus::True || is_progress(&ready.reason) {
        tracing::info!(ready = status, reason = %ready.reason, "status updated");
    } else {
        tracing::warn!(ready = status, reason = %ready.reason, message = %ready.message, "not Ready");
    }
}

/// Whether the resource asks for a pass with a value of the reconcile-requested-at
/// annotation not handled yet: the pass runs now (its annotation changed) and the backoff
/// starts afresh.
fn new_reconcile_request(meta: &kube::api::ObjectMeta, handled: Option<&String>) -> bool {
    crate::api::reconcile_requested(meta).is_some_and(|r| Some(r) != handled)
}

/// Time to Ready: from creation, or from when Ready last turned False (a spec change or
/// an outage), to now.
fn observe_time_to_ready(kind: &str, meta: &kube::api::ObjectMeta, previous: &[Condition]) {
    let since = match find(previous, "Ready") {
        Some(c) if c.status != ConditionStatus::True => c
            .last_transition_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok()),
        _ => meta.creation_timestamp.as_ref().map(|t| t.0),
    };
    if let Some(since) = since {
        let seconds = jiff::Timestamp::now()
            .duration_since(since)
            .as_secs_f64()
            .max(0.0);
        metrics()
            .time_to_ready_seconds
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .observe(seconds);
    }
}

fn error_policy<K: kube::Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    // The same key as the reconcilers use, so that a success resets it.
    let key = format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default()
    );
    tracing::warn!(resource = %key, error = %error, "will retry");
    Action::requeue(ctx.backoff(&key, None))
}

/// kube-runtime reports a failed watch (a missing RBAC rule, an API server outage) only in the
/// controller's output stream, and retries it with backoff: log it, or it goes unseen.
/// Reconcile errors are logged by `record_reconcile`.
async fn log_watch_failure<K, E>(
    result: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, watcher::Error>>,
) where
    K: kube::Resource,
{
    if let Err(kube::runtime::controller::Error::QueueError(e)) = result {
        tracing::warn!(error = %e, "watch failed; retrying with backoff");
    }
}

/// Whether a failed cleanup can never succeed, so that holding the finalizer would only hang
/// the deletion: what it needs is gone (the environment, a Secret, a key), or its namespace is
/// being deleted, in which case its Secrets, and the Role that let the operator read them, go
/// first. Anything else (an upstream down, a refused credential) blocks the deletion instead.
pub(crate) async fn cleanup_can_never_succeed(
    ctx: &Context,
    namespace: &str,
    error: &crate::runbook::StepError,
) -> bool {
    use crate::runbook::Reason;
    if matches!(
        error.reason,
        Reason::WaitingForEnvironment | Reason::SecretNotFound | Reason::SecretKeyMissing
    ) {
        return true;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    namespaces
        .get_opt(namespace)
        .await
        .ok()
        .flatten()
        .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
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
fn users_of<K, S>(store: &Store<K>, secret: &S, names: fn(&K) -> Vec<String>) -> Vec<ObjectRef<K>>
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
fn api_for<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Fails with a clear message when the CRDs are not installed.
pub async fn check_crds(client: &kube::Client, namespace: Option<&str>) -> Result<(), String> {
    let hint = "the CRDs are not installed: kubectl apply -f crds/ (or install the Helm chart)";
    let lp = ListParams::default().limit(1);
    for result in [
        api_for::<DigitalChannelsEnvironment>(client, namespace)
            .list(&lp)
            .await
            .map(drop),
        api_for::<DigitalChannelsTenant>(client, namespace)
            .list(&lp)
            .await
            .map(drop),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(hint.to_string()),
            Err(e) => return Err(format!("cannot list the operator's kinds: {e}")),
        }
    }
    Ok(())
}

/// The watch of a controller's own kind and the cache it fills, without `managedFields`
/// (often larger than the object, and never read).
fn cached<K>(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
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
    let stream = watcher(
        api_for::<K>(&ctx.client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| o.meta_mut().managed_fields = None)
    .reflect(writer)
    .inspect(move |event| match event {
        Ok(watcher::Event::InitDone) => {
            listed.store(true, std::sync::atomic::Ordering::Release);
            forget_unlisted(&ctx, &reader, scope.as_deref());
        }
        // Gone without a pass (it had no finalizer): nothing may keep counting it.
        Ok(watcher::Event::Delete(o)) => {
            ctx.forget(kind_of::<K>(), &object_key(o), o.meta().uid.as_deref());
        }
        _ => {}
    })
    .applied_objects()
    .predicate_filter(asks_for_a_pass::<K>, PredicateConfig::default());
    (stream, store, synced)
}

/// The kind's name, as the readiness gauge and the backoff know it.
fn kind_of<K: kube::Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        KIND_TENANT => KIND_TENANT,
        _ => KIND_ENVIRONMENT,
    }
}

/// The key of a resource in the backoff and readiness maps.
fn object_key<K: kube::Resource<DynamicType = ()>>(o: &K) -> String {
    let meta = o.meta();
    format!(
        "{}/{}/{}",
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// After a (re)list, forgets the resources that were deleted while the watch was down.
fn forget_unlisted<K>(ctx: &Context, store: &Store<K>, namespace: Option<&str>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let present: Vec<String> = store
        .state()
        .iter()
        .map(|o| object_key(o.as_ref()))
        .collect();
    ctx.keep_only(kind_of::<K>(), namespace, &present);
}

/// What of a resource asks for a pass: its spec (the generation), labels, annotations (a
/// DesignerEnv acknowledgement) and deletion. Not its status nor its finalizers: those are
/// the operator's own writes, and a pass for them would repeat the one that made them
/// (every upstream read again). A status edited by hand is repaired at the resync.
fn asks_for_a_pass<K: kube::Resource>(object: &K) -> Option<u64> {
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

/// A Secret as the controllers see it: its metadata only.
type SecretMeta = PartialObjectMeta<Secret>;
type SecretTrigger = futures::channel::mpsc::UnboundedReceiver<Result<SecretMeta, watcher::Error>>;

/// One metadata-only watch of the scope's Secrets, shared by both controllers. Only names
/// matter (which resources use a Secret); a full watch would hold every Secret's data, and a
/// namespace's Helm release Secrets alone can fill the operator's memory.
fn secret_triggers(ctx: Arc<Context>, namespace: Option<&str>) -> (SecretTrigger, SecretTrigger) {
    use futures::channel::mpsc::unbounded;
    use kube::runtime::WatchStreamExt;
    let (to_envs, for_envs) = unbounded();
    let (to_tenants, for_tenants) = unbounded();
    // An Api of PartialObjectMeta makes metadata-only requests.
    let api = api_for::<SecretMeta>(&ctx.client, namespace);
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .touched_objects();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(secret) if secret_changed(&ctx, &secret) => {}
                Ok(mut secret) => {
                    secret.metadata.managed_fields = None;
                    let a = to_envs.unbounded_send(Ok(secret.clone())).is_ok();
                    let b = to_tenants.unbounded_send(Ok(secret)).is_ok();
                    if !a && !b {
                        break; // both controllers stopped
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Secret watch failed; retrying with backoff"),
            }
        }
    });
    (for_envs, for_tenants)
}

/// Drops what was read from a changed Secret; true when the change is the operator's own
/// write, which the pass that made it already knows: no trigger.
fn secret_changed(ctx: &Context, secret: &SecretMeta) -> bool {
    let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    ctx.resolved_environments.secret_changed(&namespace, &name);
    ctx.own_writes.is_own(&secret.metadata)
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

    let (stream, store, synced) = cached::<DigitalChannelsEnvironment>(&ctx, ns);
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

    let (stream, store, synced) = cached::<DigitalChannelsTenant>(&ctx, ns);
    let tenants = Controller::for_stream(stream, store).with_config(config);
    let tenant_store = tenants.store();
    ctx.caches.register_tenants(tenant_store.clone(), synced);
    let tenant_store_for_envs = tenant_store.clone();
    let tenants = tenants
        .watches_stream(tenant_secrets, move |secret| {
            users_of(&tenant_store, &secret, tenant_secret_names)
        })
        // An environment turning Ready releases its waiting tenants at once.
        .watches(
            api_for::<DigitalChannelsEnvironment>(&client, ns),
            watcher::Config::default(),
            move |env| {
                let ns = env.namespace();
                let name = env.name_any();
                tenant_store_for_envs
                    .state()
                    .iter()
                    .filter(|t| t.namespace() == ns && t.spec.environment_ref.name == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(tenant::reconcile, error_policy, ctx)
        .for_each(log_watch_failure);

    tokio::join!(envs, tenants);
}

/// Where the controllers look for `--namespace` values: each namespace once (two
/// controllers on one object would race each other's writes), in the order given. Blank
/// entries (`a,,b`, an empty `DC_NAMESPACE`) name nothing and are dropped; none left means
/// every namespace, as Kubernetes reads an empty namespace.
pub fn watch_scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let mut scopes: Vec<Option<String>> = Vec::new();
    for name in namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        if !scopes.iter().flatten().any(|seen| seen == name) {
            scopes.push(Some(name.to_string()));
        }
    }
    if scopes.is_empty() {
        scopes.push(None);
    }
    scopes
}

/// Settings of `dc-operator run`, parsed once from the command line.
pub struct RunSettings {
    pub namespaces: Vec<String>,
    pub concurrency: u16,
    pub leader_election: bool,
    pub leader_election_namespace: String,
    pub controller: ControllerConfig,
    /// This process's name in the Lease ([`leader::instance_identity`]).
    pub identity: String,
    /// The fence the Kubernetes client and the connector check: made with
    /// [`crate::fence::LeaderFence::for_election`] from `leader_election`; the elector
    /// drives it.
    pub fence: crate::fence::LeaderFence,
}

/// The whole `run`: check CRDs, wait for leadership, run the controllers until SIGTERM.
pub async fn run(
    client: kube::Client,
    runbook: crate::runbook::Runbook,
    settings: RunSettings,
    ready: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let scopes = watch_scopes(&settings.namespaces);
    for scope in &scopes {
        check_crds(&client, scope.as_deref()).await?;
    }
    ready.store(true, std::sync::atomic::Ordering::SeqCst);

    if settings.leader_election != settings.fence.is_elected() {
        return Err("internal error: the leader fence does not match --leader-election".into());
    }
    let mut elector_held = None;
    if settings.leader_election {
        let elector = Arc::new(
            leader::LeaderElector::new(
                client.clone(),
                &settings.leader_election_namespace,
                settings.identity.clone(),
                leader::LeaseTiming::default(),
            )
            .with_fence(settings.fence.clone()),
        );
        tokio::select! {
            _ = elector.wait_for_leadership() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let keeper = elector.clone();
        let renewing = tokio::spawn(async move {
            // A panic in the renewal ends here too, not in a process that goes on without
            // renewing.
            use futures::FutureExt;
            let renewal = std::panic::AssertUnwindSafe(keeper.keep_leadership())
                .catch_unwind()
                .await;
            // Another replica may lead from now on: the fence, closed now, lets no request
            // leave; and no waiting for in-flight passes, even during a graceful stop.
            // Kubernetes restarts the pod as a standby.
            match renewal {
                Ok(()) => tracing::error!("lost the leader lease; exiting at once"),
                Err(_) => tracing::error!("the leader lease renewal failed; exiting at once"),
            }
            std::process::exit(1);
        });
        elector_held = Some((elector, renewing));
    }

    let ctx = Arc::new(Context::new(client, runbook, settings.controller));
    let watched = match scopes.as_slice() {
        [None] => "all namespaces".to_string(),
        named => named
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    };
    tracing::info!(namespaces = %watched, "controllers starting");
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|scope| run_scope(ctx.clone(), scope, settings.concurrency, shutdown.clone())),
    )
    .await;
    if let Some((elector, renewing)) = &elector_held {
        // Stop renewing first, or the renewal could take the released lease again.
        renewing.abort();
        elector.release().await;
    }
    tracing::info!("controllers stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_error_reads_as_words_not_as_a_debug_dump() {
        let status =
            kube::core::Status::failure("tenants \"t\" is forbidden", "Forbidden").with_code(403);
        let error = Error::Kube(kube::Error::Api(Box::new(status)));
        let text = error.to_string();
        assert_eq!(
            text,
            "Kubernetes API: tenants \"t\" is forbidden (403 Forbidden)"
        );
    }

    /// `--namespace a,a` ran two controllers on the same objects.
    #[test]
    fn each_namespace_is_watched_once_in_the_order_given() {
        let all = vec![None];
        let some = |names: &[&str]| -> Vec<Option<String>> {
            names.iter().map(|n| Some(n.to_string())).collect()
        };
        for (given, scopes) in [
            (vec![], all.clone()),
            (vec![""], all.clone()),
            (vec!["", " "], all.clone()),
            (vec!["a"], some(&["a"])),
            (vec!["a", "a"], some(&["a"])),
            (vec!["b", "a", "b", "a"], some(&["b", "a"])),
            (vec!["a", "", "b"], some(&["a", "b"])),
            (vec![" a ", "a"], some(&["a"])),
        ] {
            let given: Vec<String> = given.into_iter().map(String::from).collect();
            assert_eq!(watch_scopes(&given), scopes, "{given:?}");
        }
    }

    #[test]
    fn a_planned_step_on_the_way_to_ready_is_not_a_warning() {
        assert!(is_progress("RollingOut"));
        assert!(!is_progress("RestartFailed"));
        assert!(!is_progress("Unauthorized"));
    }
}
