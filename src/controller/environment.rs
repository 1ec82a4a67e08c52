//! The DigitalChannelsEnvironment controller. One pass:
//!
//! ```text
//! reconcile ─ pass::current ─ pass::reconcile_pass ─ apply
//!   ├ dereference: the spec's problems, the caches, an environment managing the same client
//!   ├ gate::gate (pure) ─ held: gate::hold → write
//!   └ Proceed: run_steps (finalizer; runbook::environment with the StatusJournal)
//!              → record_run: conditions, NexusRestarted → pass::plan_next → write
//! ```

use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::conditions::{ENVIRONMENT_RULES, ready, step_conditions, suspended, types};
use super::context::Context;
use super::gate::{Dependency, Facts, Gate, gate, hold};
use super::identity;
use super::keys::ObjectKey;
use super::manual_restart::{NEXUS_RESTARTED_FOR_ANNOTATION, NexusRecord, Row, manual_restart};
use super::nexus_restart::{self, Rollout};
use super::pass::{PassEnd, plan_next, publish_status, retry_at};
use super::secrets::KubeSecretStore;
use super::status::{add_finalizer, apply_status, has_finalizer, remove_finalizer};
use super::{Error, KIND_ENVIRONMENT, now_rfc3339, reconcile_pass};
use crate::api::common::normal_url;
use crate::api::conditions::{Condition, ConditionStatus, find, merge_conditions, without};
use crate::api::environment::TAKE_OVER_CLIENT_ANNOTATION;
use crate::api::switches::Switch;
use crate::api::validation::environment_problems;
use crate::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, EnvironmentStatus,
};
use crate::runbook::Reason;
use crate::runbook::environment::{
    ClientManager, CreateJournal, EnvironmentRun, Management, delete_environment_managed,
    read_environment, run_environment_journaled,
};
use crate::runbook::report::Step;

pub async fn reconcile(
    env: Arc<DigitalChannelsEnvironment>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Some(env) = super::current(&ctx, env).await? else {
        return Ok(Action::await_change());
    };
    reconcile_pass(&ctx, env.as_ref(), apply(&env, &ctx), cleanup(&env, &ctx)).await
}

fn key(env: &DigitalChannelsEnvironment) -> ObjectKey {
    ObjectKey::of(env)
}

async fn apply(env: &DigitalChannelsEnvironment, ctx: &Context) -> Result<Action, Error> {
    let ns = env.namespace().unwrap_or_default();
    let api: Api<DigitalChannelsEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    let previous = env.status.clone().unwrap_or_default();
    if super::new_reconcile_request(&env.metadata, previous.last_handled_reconcile_at.as_ref()) {
        ctx.succeeded(&key(env));
    }
    if let Switch::NotUnderstood(said) = Switch::of(&env.metadata, TAKE_OVER_CLIENT_ANNOTATION) {
        let note = format!(
            "{said} Set it to \"true\" to take over an OAuth client this environment did not make, or remove it."
        );
        // Published every pass; the recorder counts repeats into one event.
        ctx.event(
            &env.object_ref(&()),
            true,
            "AnnotationNotUnderstood",
            "Reconcile",
            note,
        )
        .await;
    }
    match gate(dereference(env, ctx).await) {
        Gate::Proceed(()) => {
            let (run, previous) = run_steps(ctx, &api, env, previous).await?;
            record_run(ctx, &api, env, previous, &run).await
        }
        Gate::Suspended => {
            let fresh = suspended(&previous.conditions);
            write(ctx, &api, env, &previous, fresh, StatusDetails::default()).await?;
            Ok(Action::await_change())
        }
        held => held_pass(ctx, &api, env, &previous, &held).await,
    }
}

/// What the gate decides on: the spec, the caches, and another environment managing the
/// same client (an environment depends on nothing else).
async fn dereference(env: &DigitalChannelsEnvironment, ctx: &Context) -> Facts<()> {
    let problems = environment_problems(&env.spec);
    let caches_listed = match env.spec.suspend || !problems.is_empty() {
        true => false,
        false => ctx.caches.ready(Duration::from_secs(30)).await,
    };
    Facts {
        suspended: env.spec.suspend,
        problems,
        dependency: Dependency::Usable(()),
        caches_listed,
        rival: caches_listed
            .then(|| identity::environment_conflict(&ctx.caches, env))
            .flatten(),
    }
}

/// A pass the gate held: its status, if any, and what next.
async fn held_pass(
    ctx: &Context,
    api: &Api<DigitalChannelsEnvironment>,
    env: &DigitalChannelsEnvironment,
    previous: &EnvironmentStatus,
    verdict: &Gate<()>,
) -> Result<Action, Error> {
    // `apply` sends only such verdicts here.
    let Some(held) = hold(verdict, &previous.conditions, ctx.config.max_backoff) else {
        return Ok(Action::await_change());
    };
    if let Some(conditions) = held.conditions {
        let details = StatusDetails {
            next_retry_at: retry_at(held.retry_in),
            ..StatusDetails::default()
        };
        write(ctx, api, env, previous, conditions, details).await?;
    }
    if held.not_ready {
        ctx.set_ready(env, false);
    }
    Ok(held.action)
}

/// The steps, the finalizer and the journal's record before the first upstream write.
/// Gives the run and the status as the journal left it, what this pass's write compares with.
async fn run_steps(
    ctx: &Context,
    api: &Api<DigitalChannelsEnvironment>,
    env: &DigitalChannelsEnvironment,
    previous: EnvironmentStatus,
) -> Result<(EnvironmentRun, EnvironmentStatus), Error> {
    // Before the first upstream write: a deletion that comes while a create is in flight
    // then waits for the cleanup instead of leaving what the create made.
    if !has_finalizer(env) {
        add_finalizer(api, env).await?;
    }
    let store = KubeSecretStore::new(
        ctx.client.clone(),
        &env.namespace().unwrap_or_default(),
        None,
    )
    .recording(&ctx.own_writes);
    let journal = StatusJournal {
        api,
        name: env.name_any(),
        previous: previous.clone(),
        written: std::sync::Mutex::new(None),
    };
    let run =
        run_environment_journaled(&ctx.runbook, env, &store, &management(env), Some(&journal))
            .await;
    let previous = journal.into_written().unwrap_or(previous);
    Ok((run, previous))
}

/// A pass's outcome in status: a condition per step, NexusRestarted, Ready and the record.
async fn record_run(
    ctx: &Context,
    api: &Api<DigitalChannelsEnvironment>,
    env: &DigitalChannelsEnvironment,
    previous: EnvironmentStatus,
    run: &EnvironmentRun,
) -> Result<Action, Error> {
    let mut fresh = step_conditions(ENVIRONMENT_RULES, &run.report, &previous.conditions);
    let mut requeue_soon = None;
    let mut nexus = NexusRecord {
        loaded: previous.nexus_gapi_digest.clone(),
        restart_for: previous.nexus_restart_for.clone(),
    };
    if let Some(deployment) = &env.spec.nexus_deployment {
        let deployment_ns = deployment
            .namespace
            .clone()
            .unwrap_or_else(|| env.namespace().unwrap_or_default());
        // The row as it is now; Nexus must have loaded exactly this one.
        let row = run
            .resolved
            .as_ref()
            .filter(|_| matches!(run.report.outcome_of(Step::GapiRegistered), Some(Ok(o)) if o.in_sync()))
            .and_then(|r| r.gapi_digest());
        let (condition, wait, record) = match env.spec.management_policy.observes() {
            true => observed_nexus(&previous.conditions, &nexus, row),
            false => {
                let at = (deployment_ns.as_str(), deployment.name.as_str());
                nexus_condition(ctx, &previous.conditions, &nexus, row, at.0, at.1).await?
            }
        };
        fresh.push(condition);
        requeue_soon = wait;
        nexus = record;
    }
    let mut all = fresh.clone();
    all.push(ready(
        &fresh,
        "The OAuth client is registered and verified, and nex_gapis holds GWS.",
    ));
    if env.spec.nexus_deployment.is_none() {
        // Beside Ready, not part of it: the restart is the user's to make.
        let (record, condition) = restart_by_hand(ctx, env, &nexus, run).await;
        all.extend(condition);
        nexus = record;
    }
    // Decided before the write, which records when a failure is retried.
    let next = plan_next(
        ctx,
        (KIND_ENVIRONMENT, ENVIRONMENT_RULES),
        &key(env),
        &run.report,
        requeue_soon,
    );
    let details = StatusDetails {
        next_retry_at: next.retry_at(),
        ..details_of(env, run, nexus)
    };
    let wrote_ready = write(ctx, api, env, &previous, all, details).await?;
    ctx.set_ready(env, wrote_ready);
    Ok(next.done(ctx, &key(env)))
}

/// Without a Deployment to restart: a changed row owes a restart by hand, said in
/// NexusRestarted and in one event until the user acknowledges it.
async fn restart_by_hand(
    ctx: &Context,
    env: &DigitalChannelsEnvironment,
    record: &NexusRecord,
    run: &EnvironmentRun,
) -> (NexusRecord, Option<Condition>) {
    let step = run.report.outcome_of(Step::GapiRegistered);
    let digest = run
        .resolved
        .as_ref()
        // An observed row that differs is not the row the digest would name.
        .filter(|_| matches!(step, Some(Ok(o)) if o.in_sync()))
        .and_then(|r| r.gapi_digest());
    let row = Row {
        digest: digest.as_deref(),
        written: matches!(step, Some(Ok(outcome)) if outcome.changed()),
    };
    let acknowledged = env.annotations().get(NEXUS_RESTARTED_FOR_ANNOTATION);
    let ns = env.namespace().unwrap_or_default();
    let at = (
        ns.as_str(),
        env.metadata.name.as_deref().unwrap_or_default(),
    );
    let unknown = row.digest.is_none();
    let (after, mut condition) = manual_restart(record, row, acknowledged.map(String::as_str), at);
    let before = env
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let said_before = find(before, types::NEXUS_RESTARTED)
        .filter(|c| c.reason == Reason::ManualStepRequired.as_str())
        .cloned();
    // The row step did not run this pass: what was owed is still owed, and still said.
    if unknown && after.restart_for.is_some() {
        condition = condition.or_else(|| said_before.clone());
    }
    // Said once, when it first shows (a new row, or a Deployment removed while one was owed).
    if let Some(c) = &condition
        && (said_before.is_none() || after.restart_for != record.restart_for)
    {
        let reference = env.object_ref(&());
        let note = c.message.clone();
        ctx.event(
            &reference,
            true,
            "NexusRestartRequired",
            "NexusRestart",
            note,
        )
        .await;
    }
    (after, condition)
}

/// Records in status, right before the client create leaves, that the client may exist:
/// a crash between the create and the pass's status write then leaves a record, and a
/// cleanup looks for the client instead of leaving it.
struct StatusJournal<'a> {
    api: &'a Api<DigitalChannelsEnvironment>,
    name: String,
    previous: EnvironmentStatus,
    /// The status written, if any.
    written: std::sync::Mutex<Option<EnvironmentStatus>>,
}

impl StatusJournal<'_> {
    fn into_written(self) -> Option<EnvironmentStatus> {
        self.written.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl CreateJournal for StatusJournal<'_> {
    async fn before_create(&self, client_id: &str) -> Result<(), String> {
        let mut status = self.previous.clone();
        status.managed_client_id = Some(client_id.to_string());
        apply_status(self.api, &self.name, &self.previous, &status)
            .await
            .map_err(|e| kube_reason(&e))?;
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        Ok(())
    }
}

/// What a pass records in status besides conditions.
fn details_of(
    env: &DigitalChannelsEnvironment,
    run: &EnvironmentRun,
    nexus: NexusRecord,
) -> StatusDetails {
    // Once GWS Auth verifiably holds the client secret, tenants may use it.
    // Observed drift or absence holds nothing: nothing to record of it.
    let verified =
        matches!(run.report.outcome_of(Step::ClientVerified), Some(Ok(o)) if o.in_sync());
    let registered =
        matches!(run.report.outcome_of(Step::ClientRegistered), Some(Ok(o)) if o.in_sync());
    StatusDetails {
        managed_client_id: match run.client_ours {
            Some(true) => Some(Some(env.spec.client.id.clone())),
            Some(false) => Some(None),
            None => None,
        },
        nexus: Some(nexus),
        client_secret_name: run
            .resolved
            .as_ref()
            .map(|r| r.client_secret_ref.name.clone()),
        client_redirect_uri: registered.then(|| normal_url(&env.spec.nexus_url)),
        client_secret_digest: run
            .resolved
            .as_ref()
            .filter(|_| verified)
            .and_then(|r| r.client_secret_digest()),
        next_retry_at: None,
    }
}

/// The operator manages the client for this resource; it takes over one that is not its
/// own only when the user's annotation says so.
fn management(env: &DigitalChannelsEnvironment) -> Management {
    Management {
        manager: ClientManager::Operator {
            namespace: env.namespace().unwrap_or_default(),
            name: env.name_any(),
        },
        take_over: Switch::of(&env.metadata, TAKE_OVER_CLIENT_ANNOTATION).is_on(),
    }
}

/// What a pass learnt besides conditions; `None` keeps what status had.
#[derive(Default)]
struct StatusDetails {
    /// `Some(None)`: the client is not (or no longer) this environment's.
    managed_client_id: Option<Option<String>>,
    client_secret_name: Option<String>,
    client_redirect_uri: Option<String>,
    client_secret_digest: Option<String>,
    nexus: Option<NexusRecord>,
    /// `status.nextRetryAt`: cleared unless this pass retries a failure.
    next_retry_at: Option<String>,
}

/// Writes status when it changed, publishes an event when Ready changed. Returns Ready.
async fn write(
    ctx: &Context,
    api: &Api<DigitalChannelsEnvironment>,
    env: &DigitalChannelsEnvironment,
    previous: &EnvironmentStatus,
    fresh: Vec<Condition>,
    details: StatusDetails,
) -> Result<bool, Error> {
    let conditions = merge_conditions(
        &previous.conditions,
        fresh,
        env.metadata.generation,
        &now_rfc3339(),
    );
    let status = EnvironmentStatus {
        observed_generation: env.metadata.generation,
        managed_client_id: details
            .managed_client_id
            .unwrap_or_else(|| previous.managed_client_id.clone()),
        client_secret_name: details
            .client_secret_name
            .or_else(|| previous.client_secret_name.clone()),
        client_redirect_uri: details
            .client_redirect_uri
            .or_else(|| previous.client_redirect_uri.clone()),
        client_secret_digest: details
            .client_secret_digest
            .or_else(|| previous.client_secret_digest.clone()),
        nexus_gapi_digest: match &details.nexus {
            Some(n) => n.loaded.clone(),
            None => previous.nexus_gapi_digest.clone(),
        },
        nexus_restart_for: match &details.nexus {
            Some(n) => n.restart_for.clone(),
            None => previous.nexus_restart_for.clone(),
        },
        last_handled_reconcile_at: crate::api::reconcile_requested(&env.metadata)
            .cloned()
            .or_else(|| previous.last_handled_reconcile_at.clone()),
        next_retry_at: details.next_retry_at,
        conditions,
    };
    publish_status(ctx, api, env, (previous, &status), |s| &s.conditions).await
}

/// NexusRestarted: restart while the running Nexus has not loaded the current row (`row`),
/// then follow the rollout. Every failure becomes the condition (never an error of the
/// pass), and the record of what was loaded and what is in flight goes to status.
async fn nexus_condition(
    ctx: &Context,
    previous: &[Condition],
    record: &NexusRecord,
    row: Option<String>,
    namespace: &str,
    name: &str,
) -> Result<(Condition, Option<Duration>, NexusRecord), Error> {
    let condition = |status, reason: &str, message: String| {
        Condition::new(types::NEXUS_RESTARTED, status, reason, message)
    };
    let backoff_key = ObjectKey::new("Deployment", namespace, name);
    let Some(row) = row else {
        // The row step failed this pass: nothing to compare with; keep what was.
        let kept = find(previous, types::NEXUS_RESTARTED)
            .cloned()
            .unwrap_or_else(|| {
                condition(
                    ConditionStatus::Unknown,
                    Reason::Pending.as_str(),
                    "Waiting for nex_gapis to be registered.".to_string(),
                )
            });
        return Ok((kept, None, record.clone()));
    };
    // Status from a version without this record, that saw Nexus load the row: adopt it
    // rather than restart Nexus for the upgrade.
    let upgraded = record.loaded.is_none()
        && record.restart_for.is_none()
        && find(previous, types::NEXUS_RESTARTED)
            .is_some_and(|c| c.status == ConditionStatus::True);
    if upgraded || record.loaded.as_deref() == Some(row.as_str()) {
        // What Observe said of it is not what Manage says.
        let done = find(previous, types::NEXUS_RESTARTED)
            .filter(|c| c.status == ConditionStatus::True && c.reason != Reason::InSync.as_str())
            .cloned()
            .unwrap_or_else(|| {
                condition(
                    ConditionStatus::True,
                    Reason::UpToDate.as_str(),
                    "Nexus has read the current nex_gapis row.".to_string(),
                )
            });
        let settled = NexusRecord {
            loaded: Some(row),
            restart_for: None,
        };
        return Ok((done, None, settled));
    }
    let in_flight = NexusRecord {
        loaded: record.loaded.clone(),
        restart_for: Some(row.clone()),
    };
    let old = restart_in_flight(previous, record, &row);
    // Owed and not in flight for this row (new, changed again, or a pass that restarted
    // could not record it): restart.
    let Some(old) = old else {
        let (c, wait) = restart_nexus(ctx, namespace, name, &backoff_key).await;
        return Ok((c, wait, in_flight));
    };
    let (c, wait) = follow_restart(ctx, &old, namespace, name, &backoff_key).await?;
    let record = if c.status == ConditionStatus::True {
        NexusRecord {
            loaded: Some(row),
            restart_for: None,
        }
    } else {
        in_flight
    };
    Ok((c, wait, record))
}

/// Restarts the Nexus Deployment (as `kubectl rollout restart`): RollingOut, or
/// RestartFailed on the backoff.
async fn restart_nexus(
    ctx: &Context,
    namespace: &str,
    name: &str,
    backoff_key: &ObjectKey,
) -> (Condition, Option<Duration>) {
    let condition = |status, reason: Reason, message: String| {
        Condition::new(types::NEXUS_RESTARTED, status, reason.as_str(), message)
    };
    match nexus_restart::restart(&ctx.client, namespace, name, &now_rfc3339()).await {
        Ok(()) => {
            ctx.succeeded(backoff_key);
            (
                condition(
                    ConditionStatus::False,
                    Reason::RollingOut,
                    format!(
                        "Restarted Deployment {namespace}/{name} so that Nexus reads nex_gapis; waiting for the rollout."
                    ),
                ),
                Some(Duration::from_secs(5)),
            )
        }
        Err(e) => (
            condition(
                ConditionStatus::False,
                Reason::RestartFailed,
                format!(
                    "Cannot restart Deployment {namespace}/{name} ({}): check spec.nexusDeployment and the chart's nexusRestart RBAC, or restart Nexus by hand and remove spec.nexusDeployment.",
                    kube_reason(&e)
                ),
            ),
            Some(ctx.backoff(backoff_key, None)),
        ),
    }
}

/// The condition of a restart in flight for `row`: only as a restart says it (not a restart
/// owed by hand before the Deployment was set, nor an observation); anything else restarts.
fn restart_in_flight(previous: &[Condition], record: &NexusRecord, row: &str) -> Option<Condition> {
    find(previous, types::NEXUS_RESTARTED)
        .filter(|_| record.restart_for.as_deref() == Some(row))
        .filter(|c| {
            matches!(
                Reason::parse(&c.reason),
                Some(Reason::RestartFailed | Reason::RollingOut | Reason::RolloutStuck)
            )
        })
        .cloned()
}

/// A restart in flight: retry a failed one, follow a rollout.
async fn follow_restart(
    ctx: &Context,
    old: &Condition,
    namespace: &str,
    name: &str,
    backoff_key: &ObjectKey,
) -> Result<(Condition, Option<Duration>), Error> {
    match (old.status, Reason::parse(&old.reason)) {
        (ConditionStatus::False, Some(Reason::RestartFailed)) => {
            Ok(restart_nexus(ctx, namespace, name, backoff_key).await)
        }
        (ConditionStatus::False, Some(Reason::RollingOut | Reason::RolloutStuck)) => {
            let (condition, next) =
                match nexus_restart::rollout_status(&ctx.client, namespace, name).await {
                    Ok((rollout, restarted_at)) => {
                        let at = Deployment { namespace, name };
                        rollout_condition(&at, rollout, restarted_at, ctx.config.rollout_timeout)
                    }
                    Err(e) => (
                        Condition::new(
                            types::NEXUS_RESTARTED,
                            ConditionStatus::False,
                            Reason::RestartFailed.as_str(),
                            format!(
                                "Cannot read Deployment {namespace}/{name} ({}).",
                                kube_reason(&e)
                            ),
                        ),
                        Next::Backoff,
                    ),
                };
            let wait = match next {
                Next::Done => None,
                Next::In(wait) => Some(wait),
                Next::Backoff => Some(ctx.backoff(backoff_key, None)),
            };
            Ok((condition, wait))
        }
        _ => Ok((old.clone(), None)),
    }
}

/// The Nexus Deployment a restart is for.
struct Deployment<'a> {
    namespace: &'a str,
    name: &'a str,
}

/// When to look at a restart again.
#[derive(Debug, PartialEq)]
enum Next {
    Done,
    In(Duration),
    Backoff,
}

/// NexusRestarted for a rollout as the Deployment shows it, restarted at `restarted_at`: a
/// pure decision. The message names the restart time, not the elapsed time, so that it stays
/// the same from pass to pass and writes no status.
fn rollout_condition(
    at: &Deployment<'_>,
    rollout: Rollout,
    restarted_at: Option<String>,
    timeout: Duration,
) -> (Condition, Next) {
    let (namespace, name) = (at.namespace, at.name);
    let condition = |status, reason: Reason, message: String| {
        Condition::new(types::NEXUS_RESTARTED, status, reason.as_str(), message)
    };
    let since = restarted_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| jiff::Timestamp::now().duration_since(t).unsigned_abs())
        .unwrap_or_default();
    let started = restarted_at.unwrap_or_else(|| "an unknown time".to_string());
    let (f, t) = (ConditionStatus::False, ConditionStatus::True);
    match rollout {
        Rollout::Done => (
            condition(
                t,
                Reason::RolledOut,
                format!("Deployment {namespace}/{name} rolled out with the new nex_gapis row."),
            ),
            Next::Done,
        ),
        Rollout::Missing => (
            condition(
                f,
                Reason::RestartFailed,
                format!(
                    "Deployment {namespace}/{name} does not exist; check spec.nexusDeployment."
                ),
            ),
            Next::Backoff,
        ),
        Rollout::InProgress(detail) if since > timeout => (
            condition(
                f,
                Reason::RolloutStuck,
                format!(
                    "Deployment {namespace}/{name}, restarted at {started}, has not rolled out: {detail}. Check its pods."
                ),
            ),
            Next::In(Duration::from_secs(30)),
        ),
        Rollout::InProgress(detail) => (
            condition(
                f,
                Reason::RollingOut,
                format!(
                    "Waiting for Deployment {namespace}/{name}, restarted at {started}: {detail}."
                ),
            ),
            Next::In(Duration::from_secs(5)),
        ),
    }
}

/// The API server's message, without anything from our request.
fn kube_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string(),
    }
}

async fn cleanup(env: &DigitalChannelsEnvironment, ctx: &Context) -> Result<Action, Error> {
    let ns = env.namespace().unwrap_or_default();
    let api: Api<DigitalChannelsEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    if !has_finalizer(env) {
        ctx.forget(&key(env), env.metadata.uid.as_deref());
        return Ok(Action::await_change());
    }
    let previous = env.status.clone().unwrap_or_default();
    if let Some(why) = blocking_tenants(ctx, env).await? {
        let blocked = Condition::new(
            types::READY,
            ConditionStatus::False,
            Reason::DeletionBlocked.as_str(),
            why,
        );
        let mut fresh: Vec<Condition> = without(&previous.conditions, types::READY);
        fresh.push(blocked);
        write(ctx, &api, env, &previous, fresh, StatusDetails::default()).await?;
        // The tenants' deletion triggers us through the watch; this is the safety net.
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    if deletion_policy(env) == DeletionPolicy::Delete {
        if let Some(wait) = delete_upstream(ctx, &api, env, &previous).await? {
            return Ok(wait);
        }
    } else {
        ctx.event(
            &env.object_ref(&()),
            false,
            "Retained",
            "Cleanup",
            retained_note(env).to_string(),
        )
        .await;
    }
    remove_finalizer(&api, env).await?;
    ctx.forget(&key(env), env.metadata.uid.as_deref());
    Ok(Action::await_change())
}

/// Why the environment's deletion must wait: with Delete, every tenant of it must go first
/// (the client serves them all); with Retain, those with deletionPolicy Delete, whose
/// cleanup needs this environment to reach Nexus.
async fn blocking_tenants(
    ctx: &Context,
    env: &DigitalChannelsEnvironment,
) -> Result<Option<String>, Error> {
    let (ns, name) = (env.namespace().unwrap_or_default(), env.name_any());
    let policy = deletion_policy(env);
    let tenants: Api<DigitalChannelsTenant> = Api::namespaced(ctx.client.clone(), &ns);
    let users: Vec<String> = tenants
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|t| t.spec.environment_ref.name == name)
        .filter(|t| {
            policy == DeletionPolicy::Delete
                || super::tenant::deletion_policy(t) == DeletionPolicy::Delete
        })
        .map(|t| t.name_any())
        .collect();
    if users.is_empty() {
        return Ok(None);
    }
    let why = match policy {
        DeletionPolicy::Delete => format!(
            "deletionPolicy is Delete and {} tenant(s) still use this environment: {}. Delete them first; the OAuth client and nex_gapis row are removed after.",
            users.len(),
            users.join(", ")
        ),
        DeletionPolicy::Retain => format!(
            "{} tenant(s) with deletionPolicy Delete need this environment to delete their Nexus tenant: {}. Delete them first (or set their deletionPolicy to Retain); this environment goes after.",
            users.len(),
            users.join(", ")
        ),
    };
    Ok(Some(why))
}

/// `deletionPolicy: Delete`: the OAuth client and the `nex_gapis` row, when status records
/// that this environment made them; nothing is called otherwise. `Some` when the cleanup
/// must wait (a failure shown on Ready); `None` when the finalizer may go.
async fn delete_upstream(
    ctx: &Context,
    api: &Api<DigitalChannelsEnvironment>,
    env: &DigitalChannelsEnvironment,
    previous: &EnvironmentStatus,
) -> Result<Option<Action>, Error> {
    let ns = env.namespace().unwrap_or_default();
    let event = |warning: bool, reason: &'static str, message: String| async move {
        ctx.event(&env.object_ref(&()), warning, reason, "Cleanup", message)
            .await;
    };
    if !previous.records_client(&env.spec.client.id) {
        let nothing =
            "This environment made no OAuth client or nex_gapis row: nothing to delete upstream.";
        event(false, "Deleted", nothing.to_string()).await;
        return Ok(None);
    }
    let store = KubeSecretStore::new(ctx.client.clone(), &ns, None);
    let manager = management(env).manager;
    let outcome = match read_environment(env, &store).await {
        Ok(resolved) => delete_environment_managed(&ctx.runbook, &resolved, &manager).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(None) => {
            let done = "Deleted the OAuth client and the nex_gapis row.";
            event(false, "Deleted", done.to_string()).await;
        }
        Ok(Some(elsewhere)) => {
            let left = format!(
                "The OAuth client is managed elsewhere now (its description says \"{elsewhere}\"): it and its nex_gapis row are left in place."
            );
            event(true, "CleanupSkipped", left).await;
        }
        // The Secrets are gone (typically the whole namespace is being deleted): the
        // cleanup can never succeed, so let go loudly instead of hanging.
        Err(e) if super::cleanup_can_never_succeed(ctx, &ns, &e).await => {
            let left = format!(
                "Cannot delete the OAuth client and nex_gapis row: {}. They are left in place.",
                e.message
            );
            event(true, "CleanupSkipped", left).await;
        }
        Err(e) => {
            let failed = Condition::new(
                types::READY,
                ConditionStatus::False,
                Reason::DeletionBlocked.as_str(),
                format!(
                    "Deleting the OAuth client and nex_gapis row failed: {}. Fix it, or set deletionPolicy: Retain to let go.",
                    e.message
                ),
            );
            let mut fresh: Vec<Condition> = without(&previous.conditions, types::READY);
            fresh.push(failed);
            let next = PassEnd::retry(ctx.backoff(&key(env), e.retry_after));
            let details = StatusDetails {
                next_retry_at: next.retry_at(),
                ..StatusDetails::default()
            };
            write(ctx, api, env, previous, fresh, details).await?;
            return Ok(Some(next.action));
        }
    }
    Ok(None)
}

/// NexusRestarted under Observe, which restarts nothing: Nexus is taken to have read the
/// `nex_gapis` row found in sync (`row`), so that Manage restarts it only for a row it changes.
fn observed_nexus(
    previous: &[Condition],
    record: &NexusRecord,
    row: Option<String>,
) -> (Condition, Option<Duration>, NexusRecord) {
    let Some(row) = row else {
        let kept = find(previous, types::NEXUS_RESTARTED)
            .cloned()
            .unwrap_or_else(|| {
                Condition::new(
                    types::NEXUS_RESTARTED,
                    ConditionStatus::Unknown,
                    Reason::Pending.as_str(),
                    "Waiting for nex_gapis to be in sync.",
                )
            });
        return (kept, None, record.clone());
    };
    // A restart still owed for this row (one that failed, or one owed by hand) is not
    // forgotten by looking: Manage makes it once switched back.
    let owed = record.restart_for.as_deref() == Some(row.as_str())
        || record.loaded.as_deref().is_some_and(|loaded| loaded != row);
    if owed {
        let drifted = Condition::new(
            types::NEXUS_RESTARTED,
            ConditionStatus::False,
            Reason::Drifted.as_str(),
            "Nexus has not been seen to load the current nex_gapis row: Manage would restart it.",
        );
        let kept = NexusRecord {
            loaded: record.loaded.clone(),
            restart_for: Some(row),
        };
        return (drifted, None, kept);
    }
    let taken = Condition::new(
        types::NEXUS_RESTARTED,
        ConditionStatus::True,
        Reason::InSync.as_str(),
        "managementPolicy Observe restarts nothing: Nexus is taken to have read the nex_gapis row as found, \
         and Manage restarts it only after changing that row.",
    );
    let loaded = NexusRecord {
        loaded: Some(row),
        restart_for: None,
    };
    (taken, None, loaded)
}

/// The deletion policy that applies: an observed environment deletes nothing upstream.
fn deletion_policy(env: &DigitalChannelsEnvironment) -> DeletionPolicy {
    env.spec
        .management_policy
        .deletion(env.spec.deletion_policy)
}

fn retained_note(env: &DigitalChannelsEnvironment) -> &'static str {
    match env.spec.management_policy.observes() {
        true => {
            "managementPolicy Observe: nothing is deleted upstream; the OAuth client and nex_gapis row are left in place."
        }
        false => "deletionPolicy Retain: the OAuth client and nex_gapis row are left in place.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_is_followed_to_its_end_or_said_to_be_stuck() {
        let at = Deployment {
            namespace: "nexus",
            name: "nexus",
        };
        let timeout = Duration::from_secs(600);
        let long_ago = Some("2026-01-01T00:00:00Z".to_string());
        let just_now = Some(jiff::Timestamp::now().to_string());
        let waiting = || Rollout::InProgress("1 of 2 updated".into());
        // (rollout, restarted at, status, reason, next)
        let table = [
            (
                Rollout::Done,
                just_now.clone(),
                ConditionStatus::True,
                "RolledOut",
                Next::Done,
            ),
            (
                Rollout::Missing,
                just_now.clone(),
                ConditionStatus::False,
                "RestartFailed",
                Next::Backoff,
            ),
            (
                waiting(),
                just_now.clone(),
                ConditionStatus::False,
                "RollingOut",
                Next::In(Duration::from_secs(5)),
            ),
            (
                waiting(),
                None,
                ConditionStatus::False,
                "RollingOut",
                Next::In(Duration::from_secs(5)),
            ),
            (
                waiting(),
                long_ago,
                ConditionStatus::False,
                "RolloutStuck",
                Next::In(Duration::from_secs(30)),
            ),
        ];
        for (rollout, restarted_at, status, reason, next) in table {
            let (c, n) = rollout_condition(&at, rollout, restarted_at.clone(), timeout);
            assert_eq!(
                (c.status, c.reason.as_str(), n),
                (status, reason, next),
                "{restarted_at:?}"
            );
            assert!(c.message.contains("nexus/nexus"), "{}", c.message);
        }
    }
}

/// Found by review: a restart owed by hand, then a Deployment set; a restart owed under
/// Manage, then a detour through Observe.
#[cfg(test)]
mod restart_owed_tests {
    use super::*;
    use crate::controller::context::ControllerConfig;

    fn context() -> Context {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client, never connected");
        let connector = crate::runbook::RealConnector::new(Default::default());
        Context::new(
            client,
            crate::runbook::Runbook::new(std::sync::Arc::new(connector)),
            ControllerConfig::default(),
        )
    }

    /// A restart owed by hand (no nexusDeployment), then the user follows the message's own
    /// advice and sets spec.nexusDeployment: the operator must restart Nexus (or at least
    /// not keep NexusRestarted False ManualStepRequired forever).
    #[tokio::test]
    async fn adding_nexus_deployment_while_a_manual_restart_is_owed_restarts_nexus() {
        let ctx = context();
        let (old, row) = (
            "OLDdigest0000000000".to_string(),
            "NEWdigest0000000000".to_string(),
        );
        let record = NexusRecord {
            loaded: Some(old.clone()),
            restart_for: None,
        };
        // The pass without nexusDeployment: owed.
        let (owed, condition) = manual_restart(
            &record,
            Row {
                digest: Some(&row),
                written: true,
            },
            None,
            ("ns", "prod"),
        );
        let condition = condition.expect("owed");
        assert!(
            condition
                .message
                .contains("Or set spec.nexusDeployment and the operator restarts it")
        );
        // The next pass, now with nexusDeployment: previous conditions and record as written.
        let previous = vec![condition];
        let (c, _wait, after) =
            nexus_condition(&ctx, &previous, &owed, Some(row.clone()), "nexus", "nexus")
                .await
                .expect("no error");
        // Fails today: the ManualStepRequired condition is returned unchanged, no restart is
        // attempted (a restart against 127.0.0.1:9 would say RestartFailed), and the record
        // stays in flight: Ready stays False for ever.
        assert_ne!(c.reason, "ManualStepRequired", "stuck: {c:?} {after:?}");
    }

    /// A restart owed under Manage (RestartFailed: RBAC missing) survives a detour through
    /// Observe: Observe writes nothing, but must not forget that Nexus still runs the old row.
    #[test]
    fn observe_does_not_forget_a_restart_owed_under_manage() {
        let (old, row) = ("OLDdigest".to_string(), "NEWdigest".to_string());
        let previous = vec![Condition::new(
            types::NEXUS_RESTARTED,
            ConditionStatus::False,
            "RestartFailed",
            "Cannot restart Deployment nexus/nexus (403 Forbidden)",
        )];
        let owed = NexusRecord {
            loaded: Some(old),
            restart_for: Some(row.clone()),
        };
        let (c, _, after) = observed_nexus(&previous, &owed, Some(row.clone()));
        // Fails today: True InSync, and the record says Nexus loaded the new row, so the
        // switch back to Manage finds loaded == row and never restarts Nexus.
        assert_ne!(
            after.loaded.as_deref(),
            Some(row.as_str()),
            "{c:?} {after:?}"
        );
    }
}
