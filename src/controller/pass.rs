//! One pass of either controller: the resource as stored when the cache lags, the pass in
//! a span with its metrics and a panic contained, and what it tells the logs and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runbook::report::RunReport;

use kube::Api;
use kube::runtime::controller::Action;

use super::*;
use crate::api::conditions::{Condition, ConditionStatus, find};
use crate::telemetry::metrics;
use crate::telemetry::metrics::{KindLabel, KindResult};

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
pub(crate) async fn reconcile_pass<K, Apply, Cleanup>(
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
    let key = super::keys::ObjectKey::of(object);
    // A pass that left the resource not Ready failed, though the reconcile itself worked:
    // step failures are conditions, not errors.
    let outcome = match &result {
        Err(_) => "error",
        Ok(_) if ctx.is_ready(&key) == Some(false) => "failed",
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

pub(crate) fn record_reconcile(
    kind: &str,
    started: Instant,
    outcome: &str,
    result: &Result<Action, Error>,
) {
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
pub(crate) fn is_progress(reason: &str) -> bool {
    crate::runbook::Reason::parse(reason).is_some_and(crate::runbook::Reason::is_progress)
}

/// A status write, logged at the level it deserves: a failure at WARN with what to do.
pub(crate) fn log_status(ready: &Condition) {
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
pub(crate) fn new_reconcile_request(
    meta: &kube::api::ObjectMeta,
    handled: Option<&String>,
) -> bool {
    crate::api::reconcile_requested(meta).is_some_and(|r| Some(r) != handled)
}

/// Time to Ready: from creation, or from when Ready last turned False (a spec change or
/// an outage), to now.
pub(crate) fn observe_time_to_ready(
    kind: &str,
    meta: &kube::api::ObjectMeta,
    previous: &[Condition],
) {
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

pub(crate) fn error_policy<K: kube::Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    // The same key as the reconcilers use, so that a success resets it.
    let key = super::keys::ObjectKey::of(object.as_ref());
    tracing::warn!(resource = %key, error = %error, "will retry");
    Action::requeue(ctx.backoff(&key, None))
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

/// How a pass ends: its requeue, and the wait when that requeue retries a failure on the
/// backoff (what `status.nextRetryAt` says), not a resync nor a planned look soon.
pub struct PassEnd {
    pub action: Action,
    pub retry_in: Option<Duration>,
    /// Every step held: the backoff starts afresh, once the pass's status is written.
    pub succeeded: bool,
}

impl PassEnd {
    /// A retry of a failure after `wait`.
    pub fn retry(wait: Duration) -> Self {
        PassEnd {
            action: Action::requeue(wait),
            retry_in: Some(wait),
            succeeded: false,
        }
    }

    /// No retry of a failure: `action` is a resync, a look soon, or a wait for a change.
    pub fn other(action: Action) -> Self {
        PassEnd {
            action,
            retry_in: None,
            succeeded: false,
        }
    }

    /// `status.nextRetryAt` for this end of a pass.
    pub fn retry_at(&self) -> Option<String> {
        retry_at(self.retry_in)
    }

    /// The requeue, once the pass's status is written: a success resets the backoff only
    /// then, so that a status write that keeps failing still backs off.
    pub fn done(self, ctx: &Context, key: &super::keys::ObjectKey) -> Action {
        if self.succeeded {
            ctx.succeeded(key);
        }
        self.action
    }
}

/// Now plus `wait`, in RFC 3339 to the second: when a failing pass is retried.
pub fn retry_at(wait: Option<Duration>) -> Option<String> {
    let wait = jiff::SignedDuration::try_from(wait?).ok()?;
    let at = jiff::Timestamp::now().checked_add(wait).ok()?;
    Some(at.round(jiff::Unit::Second).unwrap_or(at).to_string())
}

/// Requeue policy: a transient failure retries with backoff, a permanent one waits for a
/// change (with the slow drift check as a safety net), success resyncs. Decided before the
/// pass's one status write, which records when a failure is retried; see [`PassEnd::done`].
pub fn plan_next(
    ctx: &Context,
    (kind, rules): (&str, &[super::conditions::ConditionRule]),
    key: &super::keys::ObjectKey,
    report: &RunReport,
    soon: Option<Duration>,
) -> PassEnd {
    if let Some((step, e)) = report.failure() {
        // Named as the condition it shows on, so the metric and the status agree.
        let step = super::conditions::condition_of(rules, step.step);
        crate::telemetry::metrics().record_step_failure(kind, step, e.reason.as_str());
    }
    match report.failure() {
        Some((_, e)) if e.transient => PassEnd::retry(ctx.backoff(key, e.retry_after)),
        // Its fix is a change the watches bring (a Secret, the environment): wait for it;
        // the slow drift check is the safety net.
        Some((_, e)) if e.reason.fixed_in_kubernetes() => {
            PassEnd::other(Action::requeue(ctx.resync()))
        }
        // An upstream said no: the fix may be made there, out of sight (a password set in
        // GWS, a contact center created). Try again on the resource's backoff.
        Some(_) => PassEnd::retry(ctx.backoff(key, None)),
        None => PassEnd {
            succeeded: true,
            ..PassEnd::other(Action::requeue(soon.unwrap_or_else(|| ctx.resync())))
        },
    }
}

/// The one status writer of both kinds: adds `Reconciling` and `Stalled` (derived from Ready,
/// see [`super::kstatus`]), writes `status` when it differs from `previous` (with server-side
/// apply), remembers what it wrote (see [`current`]), and tells of a Ready transition: a log
/// line, an event, and the time to Ready. Returns whether Ready is True.
pub(crate) async fn publish_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    (previous, status): (&S, &S),
    conditions: fn(&S) -> &[Condition],
) -> Result<bool, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq + super::kstatus::WithConditions,
{
    let meta = object.meta();
    let status = &status.with_kstatus(conditions(previous), meta.generation, &now_rfc3339());
    let uid = meta.uid.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    let wrote = match super::status::apply_status(api, name, previous, status).await {
        Ok(wrote) => wrote,
        Err(e) => {
            // It may have been stored all the same (a lost answer): read it next time.
            ctx.status_unknown(uid);
            return Err(e.into());
        }
    };
    ctx.saw_status(uid, &Some(status));
    let (before, now) = (conditions(previous), conditions(status));
    if wrote && let Some(ready) = find(now, "Ready") {
        log_status(ready);
    }
    if let Some(c) = super::status::ready_transition(before, now) {
        let warning = c.status != ConditionStatus::True && !is_progress(&c.reason);
        let reference = object.object_ref(&());
        ctx.event(
            &reference,
            warning,
            &c.reason,
            "Reconcile",
            c.message.clone(),
        )
        .await;
        // Only a way into Ready counts: a planned step on the way (not a warning) is not one.
        // A new reason on a Ready that stays True (a policy switch) is no way into Ready.
        let was_ready = find(before, "Ready").is_some_and(|r| r.status == ConditionStatus::True);
        if c.status == ConditionStatus::True && !was_ready {
            observe_time_to_ready(&K::kind(&()), meta, before);
        }
    }
    Ok(super::status::is_ready(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_step_on_the_way_to_ready_is_not_a_warning() {
        assert!(is_progress("RollingOut"));
        assert!(!is_progress("RestartFailed"));
        assert!(!is_progress("Unauthorized"));
    }
}
