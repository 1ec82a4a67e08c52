//! The DigitalChannelsTenant controller. One pass, top to bottom:
//!
//! ```text
//! reconcile ─ pass::current (a fresh read when the cache is stale)
//!   └ pass::reconcile_pass (metrics, panics) ─ apply
//!       ├ dereference: the spec's problems, the environment with its Secrets, the caches,
//!       │              a rival for the tenant name                          (Kubernetes reads)
//!       ├ gate::gate: Suspended | Invalid | Waiting | Conflict | Proceed            (pure)
//!       ├ held: gate::hold → write                       (no upstream call, status only)
//!       └ Proceed: provision_pass
//!           ├ runbook::tenant::run_tenant_claiming: the steps; TenantClaim::claim before the
//!           │                            first upstream write        (runbook → upstream)
//!           └ record_run: conditions (conditions.rs) → pass::plan_next → write
//!                         → pass::publish_status
//! ```
//!
//! Deletion goes `reconcile_pass` → `cleanup` → `runbook::tenant::delete_tenant`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::conditions::{TENANT_RULES, ready, step_conditions, suspended, types};
use super::context::Context;
use super::gate::{Dependency, Facts, Gate, Wait, environment_serves_tenants, gate, hold};
use super::identity::{Claimant, Claims};
use super::keys::ObjectKey;
use super::pass::{PassEnd, plan_next, publish_status};
use super::secrets::KubeSecretStore;
use super::status::{add_finalizer, has_finalizer, is_ready, remove_finalizer};
use super::{Error, KIND_TENANT, now_rfc3339, reconcile_pass};
use crate::api::conditions::{Condition, ConditionStatus, find, merge_conditions, without};
use crate::api::validation::tenant_problems_named;
use crate::api::{DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, TenantStatus};
use crate::runbook::environment::{ResolvedEnvironment, read_environment};
use crate::runbook::report::{Outcome, Reason, RunReport, Step, StepError};
use crate::runbook::tenant::{
    ClaimBeforeWrites, CreatedRecord, TenantRun, delete_tenant, run_tenant_claiming,
};
use crate::upstream::environment::ContactCenter;

pub async fn reconcile(
    tenant: Arc<DigitalChannelsTenant>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Some(tenant) = super::current(&ctx, tenant).await? else {
        return Ok(Action::await_change());
    };
    reconcile_pass(
        &ctx,
        tenant.as_ref(),
        apply(&tenant, &ctx),
        cleanup(&tenant, &ctx),
    )
    .await
}

fn key(t: &DigitalChannelsTenant) -> ObjectKey {
    ObjectKey::of(t)
}

fn owner_reference(t: &DigitalChannelsTenant) -> Option<OwnerReference> {
    t.controller_owner_ref(&())
}

/// The tenant's environment for a pass: from the cache, which the trigger that woke the
/// pass has already reached; read from the API server only when the cache has not seen it
/// (yet: an environment applied with its tenants may arrive after them).
async fn environment_for_pass(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Option<DigitalChannelsEnvironment>, Error> {
    let ns = t.namespace().unwrap_or_default();
    match ctx.caches.environment(&ns, &t.spec.environment_ref.name) {
        Some(env) => Ok(Some(env.as_ref().clone())),
        None => fetch_environment(t, ctx).await,
    }
}

/// The tenant's environment, if it exists.
async fn fetch_environment(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Option<DigitalChannelsEnvironment>, Error> {
    let ns = t.namespace().unwrap_or_default();
    let envs: Api<DigitalChannelsEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    Ok(envs.get_opt(&t.spec.environment_ref.name).await?)
}

/// The tenant's environment as the gate sees it: usable once Ready for its current
/// generation with its Secrets read; catching up while it works on an edit after it was
/// Ready; failing otherwise.
async fn environment_of(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Dependency<ResolvedEnvironment>, Error> {
    let failing = |why: String| Dependency::Failing { why, retry: false };
    let ns = t.namespace().unwrap_or_default();
    let env_name = &t.spec.environment_ref.name;
    let Some(env) = environment_for_pass(t, ctx).await? else {
        return Ok(failing(format!(
            "DigitalChannelsEnvironment {env_name} does not exist in namespace {ns}."
        )));
    };
    if env.metadata.deletion_timestamp.is_some() {
        return Ok(failing(format!(
            "DigitalChannelsEnvironment {env_name} is being deleted."
        )));
    }
    // Its status is as last applied, but its spec may have been edited since: a tenant must
    // not act on a spec the environment itself has not applied.
    if env.spec.suspend {
        return Ok(failing(format!(
            "DigitalChannelsEnvironment {env_name} is suspended (spec.suspend): its tenants make no call either."
        )));
    }
    let status = env.status.clone().unwrap_or_default();
    let current = status.observed_generation == env.metadata.generation;
    let serves = environment_serves_tenants(env.spec.management_policy, &status.conditions);
    match (current, serves) {
        (true, true) => {}
        // Working on its spec (a new environment's first pass, or an edit): its status write
        // wakes the tenant, and saying "not Ready" meanwhile would only write and flap.
        (false, _) => return Ok(Dependency::CatchingUp),
        (true, false) => {
            let why = find(&status.conditions, types::READY)
                // The reason only: its message may change from pass to pass, and copying it
                // would rewrite every tenant's status each time.
                .map(|c| format!(" ({})", c.reason))
                .unwrap_or_default();
            return Ok(failing(format!(
                "DigitalChannelsEnvironment {env_name} is not Ready yet{why}."
            )));
        }
    }
    Ok(match environment_secrets(&env, ctx).await {
        Ok(resolved) => match client_secret_pushed(env_name, &status, resolved) {
            Ok(resolved) => Dependency::Usable(resolved),
            Err(why) => failing(why),
        },
        Err(e) => Dependency::Failing {
            why: format!(
                "DigitalChannelsEnvironment {env_name}'s Secrets cannot be read: {}",
                e.message
            ),
            retry: e.transient,
        },
    })
}

/// The environment's Secrets, read once per environment version and shared by its tenants
/// (the tenants that miss at once wait for one read).
async fn environment_secrets(
    env: &DigitalChannelsEnvironment,
    ctx: &Context,
) -> Result<ResolvedEnvironment, StepError> {
    if let Some(resolved) = ctx.resolved_environments.get(env) {
        return Ok(resolved);
    }
    let _one_read_at_a_time = ctx.resolved_environments.reading(env).await;
    if let Some(resolved) = ctx.resolved_environments.get(env) {
        return Ok(resolved);
    }
    let store = KubeSecretStore::new(
        ctx.client.clone(),
        &env.namespace().unwrap_or_default(),
        None,
    );
    let epoch = ctx.resolved_environments.epoch();
    let read = read_environment(env, &store).await;
    if let Ok(resolved) = &read {
        ctx.resolved_environments.keep(env, resolved, epoch);
    }
    read
}

/// A client secret rotated in its Secret but not yet pushed to GWS Auth would make every
/// token grant fail: wait for the environment, whose status change releases the tenant.
fn client_secret_pushed(
    env_name: &str,
    status: &crate::api::EnvironmentStatus,
    resolved: ResolvedEnvironment,
) -> Result<ResolvedEnvironment, String> {
    let current = resolved.client_secret_digest();
    if current.is_some() && status.client_secret_digest == current {
        Ok(resolved)
    } else {
        Err(format!(
            "DigitalChannelsEnvironment {env_name} has not yet verified its current client secret with GWS Auth."
        ))
    }
}

async fn apply(t: &DigitalChannelsTenant, ctx: &Context) -> Result<Action, Error> {
    let ns = t.namespace().unwrap_or_default();
    let api: Api<DigitalChannelsTenant> = Api::namespaced(ctx.client.clone(), &ns);
    let previous = t.status.clone().unwrap_or_default();
    if super::new_reconcile_request(&t.metadata, previous.last_handled_reconcile_at.as_ref()) {
        ctx.succeeded(&key(t));
    }
    match gate(dereference(t, ctx).await?) {
        Gate::Proceed(env) => provision_pass(ctx, &api, t, &previous, env).await,
        Gate::Suspended => suspended_pass(ctx, &api, t, &previous).await,
        Gate::Waiting(Wait::Dependency { why, retry }) => {
            environment_failing(ctx, &api, t, &previous, why, retry).await
        }
        held => held_pass(ctx, &api, t, &previous, &held).await,
    }
}

/// What the gate decides on: the spec, the environment with its Secrets (looked up only
/// when the spec lets the pass go on), the caches, and a rival for the tenant name.
async fn dereference(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Facts<ResolvedEnvironment>, Error> {
    let problems = tenant_problems_named(&t.name_any(), &t.spec);
    let dependency = match t.spec.suspend || !problems.is_empty() {
        true => Dependency::NotLookedUp,
        false => environment_of(t, ctx).await?,
    };
    let caches_listed = match &dependency {
        Dependency::Usable(_) => ctx.caches.ready(Duration::from_secs(30)).await,
        _ => false,
    };
    // A tenant name is claimed whatever the contact center: said before any call. The
    // contact center is compared once resolved, in the claim (`TenantClaim`).
    let rival = match &dependency {
        Dependency::Usable(env) if caches_listed => {
            ctx.caches.tenant_rival(t, None, &env.spec.nexus_url, &[])
        }
        _ => None,
    };
    Ok(Facts {
        suspended: t.spec.suspend,
        problems,
        dependency,
        caches_listed,
        rival,
    })
}

/// A pass the gate held the same way for both kinds: its status, if any, and what next.
async fn held_pass(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    verdict: &Gate<ResolvedEnvironment>,
) -> Result<Action, Error> {
    // `apply` sends only such verdicts here.
    let Some(held) = hold(verdict, &previous.conditions, ctx.config.max_backoff) else {
        return Ok(Action::await_change());
    };
    if let Some(conditions) = held.conditions {
        let details = StatusDetails::retrying(held.retry_in);
        write(ctx, api, t, previous, conditions, Some(details)).await?;
    }
    if held.not_ready {
        ctx.set_ready(t, false);
    }
    Ok(held.action)
}

/// The environment fails: said on the tenant in a condition of its own. A tenant whose own
/// effects hold (provisioned, its output Secret in place) stays Ready: its key keeps working
/// with Nexus whatever the environment's operations password or GWS do meanwhile.
async fn environment_failing(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    why: String,
    retry: bool,
) -> Result<Action, Error> {
    // Ready is kept only for the spec it was computed for: an edit waits for the environment.
    let same_spec = previous.observed_generation == t.metadata.generation;
    let broken = match is_ready(&previous.conditions) && same_spec {
        true => {
            claim_broken(
                t,
                ctx,
                previous,
                (
                    "its environment fails",
                    "it is rebuilt once the environment is Ready again",
                ),
            )
            .await
        }
        false => Some(Ok(why.clone())),
    };
    let mut fresh: Vec<Condition> = previous
        .conditions
        .iter()
        .filter(|c| {
            ![types::READY, types::SUSPENDED, types::ENVIRONMENT_READY].contains(&c.type_.as_str())
        })
        .cloned()
        .collect();
    fresh.push(environment_condition(Err(&why)));
    match &broken {
        None => fresh.extend(find(&previous.conditions, types::READY).cloned()),
        Some(Ok(message) | Err(message)) => fresh.push(Condition::new(
            types::READY,
            ConditionStatus::False,
            Reason::WaitingForEnvironment.as_str(),
            message,
        )),
    }
    // The environment's changes trigger this tenant through the watch; a read that failed
    // is tried again, since nothing watched will change.
    let next = match retry || matches!(broken, Some(Err(_))) {
        true => PassEnd::retry(ctx.backoff(&key(t), None)),
        false => PassEnd::other(Action::await_change()),
    };
    let details = StatusDetails::retrying(next.retry_in);
    write(ctx, api, t, previous, fresh, Some(details)).await?;
    ctx.set_ready(t, broken.is_none());
    Ok(next.action)
}

/// The tenant's own condition for its environment.
fn environment_condition(state: Result<&str, &str>) -> Condition {
    match state {
        Ok(env_name) => Condition::new(
            types::ENVIRONMENT_READY,
            ConditionStatus::True,
            Reason::Verified.as_str(),
            format!(
                "DigitalChannelsEnvironment {env_name} serves its tenants: its client secret is verified and nex_gapis holds it."
            ),
        ),
        Err(why) => Condition::new(
            types::ENVIRONMENT_READY,
            ConditionStatus::False,
            Reason::WaitingForEnvironment.as_str(),
            why,
        ),
    }
}

const SUSPENDED_CLAIM: (&str, &str) = (
    "spec.suspend is true",
    "resume (spec.suspend: false) to rebuild it",
);

/// A suspended tenant: no external call; what Ready claims in the cluster is checked.
async fn suspended_pass(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
) -> Result<Action, Error> {
    let mut fresh = suspended(&previous.conditions);
    let claim = claim_broken(t, ctx, previous, SUSPENDED_CLAIM).await;
    // A failed read is looked at again; a gone Secret's return is seen by the watch.
    let next = match &claim {
        Some(Err(_)) => PassEnd::retry(ctx.backoff(&key(t), None)),
        _ => PassEnd::other(Action::await_change()),
    };
    if let Some(why) = claim.map(|c| c.unwrap_or_else(|e| e)) {
        fresh = without(&fresh, types::READY);
        fresh.push(Condition::new(
            types::READY,
            ConditionStatus::False,
            Reason::Suspended.as_str(),
            why,
        ));
        ctx.set_ready(t, false);
    }
    let details = StatusDetails::retrying(next.retry_in);
    write(ctx, api, t, previous, fresh, Some(details)).await?;
    Ok(next.action)
}

/// The steps, with the tenant's claim made before the first upstream write, and their
/// outcome recorded in status.
async fn provision_pass(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    env: ResolvedEnvironment,
) -> Result<Action, Error> {
    // Once provisioned, the contact center is pinned: a new contact center in GWS must not
    // make discovery pick another one and provision a second tenant.
    let mut pinned = t.clone();
    if pinned.spec.contact_center_id.is_none()
        && let Some(cc) = &previous.contact_center_id
    {
        pinned.spec.contact_center_id = Some(cc.clone());
        pinned.spec.contact_center_domain = None;
    }
    let store = KubeSecretStore::new(
        ctx.client.clone(),
        &t.namespace().unwrap_or_default(),
        owner_reference(t),
    )
    .recording(&ctx.own_writes);
    let claim = TenantClaim {
        ctx,
        api,
        tenant: t,
        nexus_url: &env.spec.nexus_url,
    };
    let run = run_tenant_claiming(&ctx.runbook, &pinned, &env, &store, &claim).await;

    record_run(ctx, api, t, previous, &run).await
}

/// A pass's outcome in status: a condition per step, Ready, DesignerEnv and the record.
async fn record_run(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    run: &TenantRun,
) -> Result<Action, Error> {
    let rules: Vec<_> = TENANT_RULES
        .iter()
        .filter(|r| r.type_ != types::UCS_REGISTERED || t.spec.ucs.is_some())
        .collect();
    let mut fresh = Vec::new();
    for rule in rules {
        fresh.extend(step_conditions(
            std::slice::from_ref(rule),
            &run.report,
            &previous.conditions,
        ));
    }
    let designer = designer_condition(&run.report, &previous.conditions);
    // The Ready event says what is left by hand, so that it need not be a second event.
    let ready_message = match designer.reason == Reason::ManualStepRequired.as_str() {
        true => {
            "The tenant is provisioned and its API key is in the output Secret. One step is left to do by hand: see DesignerEnvConfigured."
        }
        false => "The tenant is provisioned and its API key is in the output Secret.",
    };
    let mut all = fresh.clone();
    all.push(ready(&fresh, ready_message));
    all.push(designer);
    // Beside Ready, not part of it: the environment was usable for this pass.
    all.push(environment_condition(Ok(&t.spec.environment_ref.name)));
    // Decided before the write, which records when a failure is retried.
    let next = plan_next(ctx, (KIND_TENANT, TENANT_RULES), &key(t), &run.report, None);
    let details = StatusDetails {
        contact_center_id: run.contact_center_id.clone(),
        operation_id: run.operation_id.clone(),
        output_secret_name: Some(run.output_secret_name.clone()),
        api_key_digest: run.api_key_digest.clone(),
        ucs_url: run.ucs_url.clone(),
        credentials_fingerprint: run.credentials_fingerprint.clone(),
        next_retry_at: next.retry_at(),
    };
    let is_ready = write(ctx, api, t, previous, all, Some(details)).await?;
    ctx.set_ready(t, is_ready);
    Ok(next.done(ctx, &key(t)))
}

/// The tenant's claim, made once its contact center is resolved and before anything is
/// written upstream: no older tenant on the same Nexus may claim the same contact center or
/// tenant name (in the caches, or in a pass of this process that has not written its status
/// yet), and the finalizer is on before the first write, so a deletion cannot skip the
/// cleanup of what the pass is about to create.
struct TenantClaim<'a> {
    ctx: &'a Context,
    api: &'a Api<DigitalChannelsTenant>,
    tenant: &'a DigitalChannelsTenant,
    nexus_url: &'a str,
}

#[async_trait::async_trait]
impl ClaimBeforeWrites for TenantClaim<'_> {
    async fn claim(&self, cc: &str, centers: &[ContactCenter]) -> Result<(), StepError> {
        let (ctx, t) = (self.ctx, self.tenant);
        if let Some(why) = ctx
            .caches
            .tenant_rival(t, Some(cc), self.nexus_url, centers)
        {
            return Err(StepError::permanent(Reason::Conflict, why));
        }
        let me = Claimant {
            uid: t.metadata.uid.clone().unwrap_or_default(),
            namespace: t.namespace().unwrap_or_default(),
            name: t.name_any(),
        };
        let keys = Claims::keys(self.nexus_url, cc, &t.spec.tenant_name);
        if let Err(other) = ctx
            .claims
            .take(&keys, &me, |uid| ctx.caches.tenant_claims(uid))
        {
            return Err(StepError::permanent(
                Reason::Conflict,
                format!(
                    "DigitalChannelsTenant {}/{} is being provisioned with the contact center {cc} or the tenant name {} \
                     on the same Nexus; two tenants cannot share them. Delete one of them, or give this one its own \
                     contact center and tenant name.",
                    other.namespace, other.name, t.spec.tenant_name
                ),
            ));
        }
        add_finalizer(self.api, t).await.map_err(|e| {
            StepError::transient(
                Reason::UpstreamUnavailable,
                format!(
                    "cannot add the finalizer before the first upstream write (Kubernetes API: {})",
                    super::kube_message(&e)
                ),
            )
        })
    }
}

/// While suspended, or while the environment fails, nothing external is checked, but what
/// Ready claims in the cluster is: a provisioned tenant whose output Secret is gone is not
/// Ready. `None` while it holds; `Err` when the Secret could not be read. `while_` says why
/// nothing external is checked, `remedy` how the Secret comes back.
async fn claim_broken(
    t: &DigitalChannelsTenant,
    ctx: &Context,
    previous: &TenantStatus,
    (while_, remedy): (&str, &str),
) -> Option<Result<String, String>> {
    let name = previous.output_secret_name.as_ref()?;
    let store = KubeSecretStore::new(ctx.client.clone(), &t.namespace().unwrap_or_default(), None);
    match crate::runbook::SecretStore::read_output(&store, name).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(Ok(format!(
            "{while_} and the output Secret {name} is gone: {remedy}."
        ))),
        Err(e) => Some(Err(format!(
            "{while_} and the output Secret {name} cannot be read: {}",
            e.to_step_error("output").message
        ))),
    }
}

fn designer_condition(report: &RunReport, previous: &[Condition]) -> Condition {
    match report
        .steps
        .iter()
        .find(|s| s.step == Step::DesignerEnvConfigured)
    {
        Some(s) if s.result == Ok(Outcome::ManualStepRequired) => Condition::new(
            types::DESIGNER_ENV_CONFIGURED,
            ConditionStatus::False,
            Reason::ManualStepRequired.as_str(),
            &s.detail,
        ),
        Some(_) => Condition::new(
            types::DESIGNER_ENV_CONFIGURED,
            ConditionStatus::True,
            Reason::Acknowledged.as_str(),
            "The DesignerEnv transaction was set by hand and acknowledged.",
        ),
        None => find(previous, types::DESIGNER_ENV_CONFIGURED)
            .cloned()
            .unwrap_or_else(|| {
                Condition::new(
                    types::DESIGNER_ENV_CONFIGURED,
                    ConditionStatus::Unknown,
                    Reason::Pending.as_str(),
                    "Shown once the tenant is provisioned.",
                )
            }),
    }
}

#[derive(Default)]
struct StatusDetails {
    contact_center_id: Option<String>,
    operation_id: Option<String>,
    output_secret_name: Option<String>,
    api_key_digest: Option<String>,
    ucs_url: Option<String>,
    credentials_fingerprint: Option<String>,
    /// `status.nextRetryAt`: cleared unless this pass retries a failure.
    next_retry_at: Option<String>,
}

impl StatusDetails {
    /// Only the time of the retry of a failure, after `retry_in`.
    fn retrying(retry_in: Option<Duration>) -> Self {
        StatusDetails {
            next_retry_at: super::pass::retry_at(retry_in),
            ..StatusDetails::default()
        }
    }
}

async fn write(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    fresh: Vec<Condition>,
    details: Option<StatusDetails>,
) -> Result<bool, Error> {
    let details = details.unwrap_or_default();
    let conditions = merge_conditions(
        &previous.conditions,
        fresh,
        t.metadata.generation,
        &now_rfc3339(),
    );
    let status = TenantStatus {
        observed_generation: t.metadata.generation,
        contact_center_id: details
            .contact_center_id
            .or_else(|| previous.contact_center_id.clone()),
        output_secret_name: details
            .output_secret_name
            .or_else(|| previous.output_secret_name.clone()),
        operation_id: details
            .operation_id
            .or_else(|| previous.operation_id.clone()),
        api_key_digest: details
            .api_key_digest
            .or_else(|| previous.api_key_digest.clone()),
        // Dropped with spec.ucs, so that a later spec.ucs registers again.
        ucs_url: match t.spec.ucs {
            Some(_) => details.ucs_url.or_else(|| previous.ucs_url.clone()),
            None => None,
        },
        credentials_fingerprint: details
            .credentials_fingerprint
            .or_else(|| previous.credentials_fingerprint.clone()),
        last_handled_reconcile_at: crate::api::reconcile_requested(&t.metadata)
            .cloned()
            .or_else(|| previous.last_handled_reconcile_at.clone()),
        next_retry_at: details.next_retry_at,
        conditions,
    };
    let ready = publish_status(ctx, api, t, (previous, &status), |s| &s.conditions).await?;
    let reference = t.object_ref(&());
    let designer_before =
        find(&previous.conditions, types::DESIGNER_ENV_CONFIGURED).map(|c| &c.reason);
    // Turning Ready, the Ready event already points at the step left by hand.
    let became_ready = super::status::ready_transition(&previous.conditions, &status.conditions)
        .is_some_and(|c| c.status == ConditionStatus::True);
    if let Some(c) = find(&status.conditions, types::DESIGNER_ENV_CONFIGURED)
        && c.reason == Reason::ManualStepRequired.as_str()
        && designer_before != Some(&c.reason)
        && !became_ready
    {
        ctx.event(
            &reference,
            false,
            Reason::ManualStepRequired.as_str(),
            "DesignerEnv",
            c.message.clone(),
        )
        .await;
    }
    Ok(ready)
}

async fn cleanup(t: &DigitalChannelsTenant, ctx: &Context) -> Result<Action, Error> {
    let ns = t.namespace().unwrap_or_default();
    let api: Api<DigitalChannelsTenant> = Api::namespaced(ctx.client.clone(), &ns);
    if !has_finalizer(t) {
        // Never claimed anything upstream: nothing to clean, no call made.
        forget(ctx, t);
        return Ok(Action::await_change());
    }
    let previous = t.status.clone().unwrap_or_default();
    let (event, note) = if deletion_policy(t) == DeletionPolicy::Delete {
        let record = CreatedRecord::of(&previous);
        let outcome = match resolvable_environment(t, ctx).await? {
            Ok(env) => {
                let store = KubeSecretStore::new(ctx.client.clone(), &ns, None);
                delete_tenant(&ctx.runbook, t, &env, &store, &record).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(deleted) => ("Deleted", deleted.describe()),
            // The environment or the Secrets are gone (typically the namespace is being
            // deleted): the cleanup can never succeed, so let go loudly instead of hanging.
            Err(e) if super::cleanup_can_never_succeed(ctx, &ns, &e).await => (
                "CleanupSkipped",
                format!(
                    "Cannot delete the Nexus tenant: {}. It is left in place.",
                    e.message
                ),
            ),
            Err(e) => return deletion_blocked(ctx, &api, t, &previous, e).await,
        }
    } else {
        ("Retained", retained_note(t).to_string())
    };
    // Logged as well as evented: events expire after an hour, the log is kept.
    let skipped = event == "CleanupSkipped";
    match skipped {
        true => tracing::warn!(outcome = event, "{note}"),
        false => tracing::info!(outcome = event, "{note}"),
    }
    ctx.event(&t.object_ref(&()), skipped, event, "Cleanup", note)
        .await;
    remove_finalizer(&api, t).await?;
    forget(ctx, t);
    Ok(Action::await_change())
}

/// A cleanup that failed and can succeed later holds the deletion, and says why.
async fn deletion_blocked(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
    e: StepError,
) -> Result<Action, Error> {
    let mut fresh: Vec<Condition> = without(&previous.conditions, types::READY);
    fresh.push(Condition::new(
        types::READY,
        ConditionStatus::False,
        Reason::DeletionBlocked.as_str(),
        format!(
            "Deleting the Nexus tenant failed: {}. Fix it, or set deletionPolicy: Retain to let go of the Nexus tenant.",
            e.message
        ),
    ));
    let next = PassEnd::retry(
        ctx.backoff(&key(t), e.retry_after)
            .max(Duration::from_secs(5)),
    );
    write(
        ctx,
        api,
        t,
        previous,
        fresh,
        Some(StatusDetails::retrying(next.retry_in)),
    )
    .await?;
    Ok(next.action)
}

/// Everything the process keeps about a tenant that is gone (see [`Context::forget`]).
fn forget(ctx: &Context, t: &DigitalChannelsTenant) {
    ctx.forget(&key(t), t.metadata.uid.as_deref());
}

/// For deletion the environment need not be Ready, only readable.
async fn resolvable_environment(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Result<ResolvedEnvironment, StepError>, Error> {
    let Some(env) = fetch_environment(t, ctx).await? else {
        return Ok(Err(StepError::permanent(
            Reason::WaitingForEnvironment,
            format!(
                "DigitalChannelsEnvironment {} no longer exists",
                t.spec.environment_ref.name
            ),
        )));
    };
    let store = KubeSecretStore::new(ctx.client.clone(), &t.namespace().unwrap_or_default(), None);
    Ok(read_environment(&env, &store).await)
}

/// The deletion policy that applies: an observed tenant deletes nothing upstream.
pub(crate) fn deletion_policy(t: &DigitalChannelsTenant) -> DeletionPolicy {
    t.spec.management_policy.deletion(t.spec.deletion_policy)
}

fn retained_note(t: &DigitalChannelsTenant) -> &'static str {
    match t.spec.management_policy.observes() {
        true => {
            "managementPolicy Observe: nothing is deleted upstream; the Nexus tenant is left in place."
        }
        false => "deletionPolicy Retain: the Nexus tenant is left in place.",
    }
}
