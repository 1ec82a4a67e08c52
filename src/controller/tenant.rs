//! The DigitalChannelsTenant controller: wait for the environment → run the steps →
//! output Secret → status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::conditions::{
    TENANT_RULES, conflict, invalid_spec, ready, step_conditions, suspended, types,
};
use super::context::Context;
use super::identity::{Claimant, Claims};
use super::pass::{next_action, publish_status};
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

fn key(t: &DigitalChannelsTenant) -> String {
    format!(
        "{}/{}/{}",
        KIND_TENANT,
        t.namespace().unwrap_or_default(),
        t.name_any()
    )
}

fn owner_reference(t: &DigitalChannelsTenant) -> Option<OwnerReference> {
    t.controller_owner_ref(&())
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

/// Why a tenant waits for its environment, and whether only a retry can end the wait: the
/// environment's changes wake the tenant through the watch, but a Secret that could not be
/// read this time (a 500, a timeout) changes nothing that is watched.
struct Waiting {
    why: String,
    retry: bool,
}

impl From<String> for Waiting {
    fn from(why: String) -> Self {
        Waiting { why, retry: false }
    }
}

/// The environment, once it is Ready, with its Secrets read; else why the tenant waits.
async fn ready_environment(
    t: &DigitalChannelsTenant,
    ctx: &Context,
) -> Result<Result<ResolvedEnvironment, Waiting>, Error> {
    let ns = t.namespace().unwrap_or_default();
    let env_name = &t.spec.environment_ref.name;
    let Some(env) = fetch_environment(t, ctx).await? else {
        return Ok(Err(format!(
            "DigitalChannelsEnvironment {env_name} does not exist in namespace {ns}."
        )
        .into()));
    };
    if env.metadata.deletion_timestamp.is_some() {
        return Ok(Err(format!(
            "DigitalChannelsEnvironment {env_name} is being deleted."
        )
        .into()));
    }
    let status = env.status.clone().unwrap_or_default();
    let current = status.observed_generation == env.metadata.generation;
    if !current || !is_ready(&status.conditions) {
        let why = find(&status.conditions, types::READY)
            // The reason only: its message may change from pass to pass, and copying it
            // would rewrite every tenant's status each time.
            .map(|c| format!(" ({})", c.reason))
            .unwrap_or_default();
        return Ok(Err(format!(
            "DigitalChannelsEnvironment {env_name} is not Ready yet{why}."
        )
        .into()));
    }
    let store = KubeSecretStore::new(ctx.client.clone(), &ns, None);
    let read = match ctx.resolved_environments.get(&env) {
        Some(resolved) => Ok(resolved),
        None => {
            let epoch = ctx.resolved_environments.epoch();
            let read = read_environment(&env, &store).await;
            if let Ok(resolved) = &read {
                ctx.resolved_environments.keep(&env, resolved, epoch);
            }
            read
        }
    };
    let resolved = match read {
        Ok(resolved) => resolved,
        Err(e) => {
            return Ok(Err(Waiting {
                why: format!(
                    "DigitalChannelsEnvironment {env_name}'s Secrets cannot be read: {}",
                    e.message
                ),
                retry: e.transient,
            }));
        }
    };
    Ok(client_secret_pushed(env_name, &status, resolved).map_err(Waiting::from))
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
    if t.spec.suspend {
        return suspended_pass(ctx, &api, t, &previous).await;
    }
    match gate(ctx, &api, t, &previous).await? {
        Ok(env) => provision_pass(ctx, &api, t, &previous, env).await,
        Err(action) => Ok(action),
    }
}

/// A suspended tenant: no external call; what Ready claims in the cluster is checked.
async fn suspended_pass(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
) -> Result<Action, Error> {
    let mut fresh = suspended(&previous.conditions);
    let claim = suspended_claim_broken(t, ctx, previous).await;
    // A failed read is looked at again; a gone Secret's return is seen by the watch.
    let next = match &claim {
        Some(Err(_)) => Action::requeue(ctx.backoff(&key(t), None)),
        _ => Action::await_change(),
    };
    if let Some(why) = claim.map(|c| c.unwrap_or_else(|e| e)) {
        fresh = without(&fresh, types::READY);
        fresh.push(Condition::new(
            types::READY,
            ConditionStatus::False,
            Reason::Suspended.as_str(),
            why,
        ));
        ctx.set_ready(KIND_TENANT, &key(t), Some(false));
    }
    write(ctx, api, t, previous, fresh, None).await?;
    Ok(next)
}

/// What holds a tenant back before any upstream call: an invalid spec, its environment, the
/// caches not listed yet, another tenant holding its name. `Err` is the action of a pass
/// that stops here (its status written); `Ok` the environment to proceed with.
async fn gate(
    ctx: &Context,
    api: &Api<DigitalChannelsTenant>,
    t: &DigitalChannelsTenant,
    previous: &TenantStatus,
) -> Result<Result<ResolvedEnvironment, Action>, Error> {
    let problems = tenant_problems_named(&t.name_any(), &t.spec);
    if !problems.is_empty() {
        let fresh = invalid_spec(&previous.conditions, &problems);
        write(ctx, api, t, previous, fresh, None).await?;
        ctx.set_ready(KIND_TENANT, &key(t), Some(false));
        return Ok(Err(Action::await_change()));
    }

    let env = match ready_environment(t, ctx).await? {
        Ok(env) => env,
        Err(waiting) => {
            let mut fresh: Vec<Condition> = previous
                .conditions
                .iter()
                .filter(|c| c.type_ != types::READY && c.type_ != types::SUSPENDED)
                .cloned()
                .collect();
            fresh.push(Condition::new(
                types::READY,
                ConditionStatus::False,
                Reason::WaitingForEnvironment.as_str(),
                waiting.why,
            ));
            write(ctx, api, t, previous, fresh, None).await?;
            ctx.set_ready(KIND_TENANT, &key(t), Some(false));
            // The environment's changes trigger this tenant through the watch; a read that
            // failed is tried again, since nothing watched will change.
            return Ok(Err(match waiting.retry {
                true => Action::requeue(ctx.backoff(&key(t), None)),
                false => Action::await_change(),
            }));
        }
    };

    if !ctx.caches.ready(Duration::from_secs(30)).await {
        // Without complete caches a rival could go unseen: look again soon.
        return Ok(Err(Action::requeue(Duration::from_secs(5))));
    }
    // A tenant name is claimed whatever the contact center: said before any call. The
    // contact center is compared once resolved, in the claim (`TenantClaim`).
    if let Some(why) = ctx.caches.tenant_rival(t, None, &env.spec.nexus_url, &[]) {
        let fresh = conflict(&previous.conditions, &why);
        write(ctx, api, t, previous, fresh, None).await?;
        ctx.set_ready(KIND_TENANT, &key(t), Some(false));
        // The other tenant's deletion is not watched from here: look again later.
        return Ok(Err(Action::requeue(ctx.config.max_backoff)));
    }

    Ok(Ok(env))
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
    let mut all = fresh.clone();
    all.push(ready(
        &fresh,
        "The tenant is provisioned and its API key is in the output Secret.",
    ));
    all.push(designer_condition(&run.report, &previous.conditions));
    let details = StatusDetails {
        contact_center_id: run.contact_center_id.clone(),
        operation_id: run.operation_id.clone(),
        output_secret_name: Some(run.output_secret_name.clone()),
        api_key_digest: run.api_key_digest.clone(),
        ucs_url: run.ucs_url.clone(),
        credentials_fingerprint: run.credentials_fingerprint.clone(),
    };
    let is_ready = write(ctx, api, t, previous, all, Some(details)).await?;
    ctx.set_ready(KIND_TENANT, &key(t), Some(is_ready));
    Ok(next_action(
        ctx,
        (KIND_TENANT, TENANT_RULES),
        &key(t),
        &run.report,
        None,
    ))
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

/// While suspended nothing external is checked, but what Ready claims in the cluster is: a
/// provisioned tenant whose output Secret is gone is not Ready. `None` while it holds;
/// `Err` when the Secret could not be read.
async fn suspended_claim_broken(
    t: &DigitalChannelsTenant,
    ctx: &Context,
    previous: &TenantStatus,
) -> Option<Result<String, String>> {
    let name = previous.output_secret_name.as_ref()?;
    let store = KubeSecretStore::new(ctx.client.clone(), &t.namespace().unwrap_or_default(), None);
    match crate::runbook::SecretStore::read_output(&store, name).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(Ok(format!(
            "spec.suspend is true and the output Secret {name} is gone: resume (spec.suspend: false) to rebuild it."
        ))),
        Err(e) => Some(Err(format!(
            "spec.suspend is true and the output Secret {name} cannot be read: {}",
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
        conditions,
    };
    let ready = publish_status(ctx, api, t, (previous, &status), |s| &s.conditions).await?;
    let reference = t.object_ref(&());
    let designer_before =
        find(&previous.conditions, types::DESIGNER_ENV_CONFIGURED).map(|c| &c.reason);
    if let Some(c) = find(&status.conditions, types::DESIGNER_ENV_CONFIGURED)
        && c.reason == Reason::ManualStepRequired.as_str()
        && designer_before != Some(&c.reason)
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
    tracing::info!(outcome = event, "{note}");
    ctx.event(
        &t.object_ref(&()),
        event == "CleanupSkipped",
        event,
        "Cleanup",
        note,
    )
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
    write(ctx, api, t, previous, fresh, None).await?;
    Ok(Action::requeue(
        ctx.backoff(&key(t), e.retry_after)
            .max(Duration::from_secs(5)),
    ))
}

/// Everything the process keeps about a tenant that is gone (see [`Context::forget`]).
fn forget(ctx: &Context, t: &DigitalChannelsTenant) {
    ctx.forget(KIND_TENANT, &key(t), t.metadata.uid.as_deref());
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
