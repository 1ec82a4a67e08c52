//! One resource's plan: its steps run observed behind the guards, then what they reported
//! turned into changes ([`super::changes`]); a deletion's cleanup run against upstreams
//! that record the deletes.

use std::sync::Arc;

use super::changes::{self, EnvironmentSight, SecretPurposes, TenantSight};
use super::guard::{GuardedConnector, Seen, Writes};
use super::store::PlanStore;
use super::{Plan, ResourcePlan};
use crate::api::common::normal_url;
use crate::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, ManagementPolicy,
};
use crate::runbook::environment::{
    Management, ResolvedEnvironment, fingerprint_key_ref, read_environment, resolve_environment,
    run_environment_managed,
};
use crate::runbook::report::{Outcome, RunReport, Step};
use crate::runbook::secrets::SecretStore;
use crate::runbook::tenant::{
    CHAT_SERVICE_SETTING, CreatedRecord, annotations, delete_tenant, run_tenant,
};
use crate::runbook::{Connector, Runbook};

pub const ENVIRONMENT: &str = "DigitalChannelsEnvironment";
pub const TENANT: &str = "DigitalChannelsTenant";

/// Runs the plans of a set of resources, sharing one guarded runbook (its token cache and
/// contact-center lists), so that a plan costs the requests of one pass.
pub struct Planner {
    runbook: Runbook,
    seen: Arc<Seen>,
    upstream: Arc<dyn Connector>,
    /// Where Secrets go: `Kubernetes`, or the output directory.
    secrets_at: &'static str,
}

/// What the tenants need of their environment's plan.
#[derive(Default)]
pub struct EnvState {
    resolved: Option<ResolvedEnvironment>,
    /// The client would be created or given its secret: no tenant token before.
    client_pending: bool,
    /// Why the tenants cannot be looked at, when the environment could not.
    failed: Option<String>,
}

impl EnvState {
    /// No tenant of this environment can be looked at, for `why`.
    pub fn failing(why: String) -> Self {
        Self {
            failed: Some(why),
            ..Self::default()
        }
    }
}

impl Planner {
    pub fn new(upstream: Arc<dyn Connector>, secrets_at: &'static str) -> Self {
        let seen = Arc::new(Seen::default());
        let guarded = GuardedConnector::new(upstream.clone(), Writes::Refuse, seen.clone());
        Self {
            runbook: Runbook::new(Arc::new(guarded)),
            seen,
            upstream,
            secrets_at,
        }
    }

    /// A step that asked to write during an observed pass is a fault of the step code: the
    /// write was not sent, and the plan says so and fails.
    pub fn check_no_write(&self, plan: &mut Plan) {
        let writes = self.seen.writes();
        if writes.is_empty() {
            return;
        }
        let said: Vec<String> = writes.iter().map(ToString::to_string).collect();
        let error = format!(
            "a step asked to write while observing (nothing was sent; please report it): {}",
            said.join("; ")
        );
        if let Some(first) = plan.resources.first_mut() {
            first.errors.push(error);
        }
    }

    /// The environment's plan, and what its tenants need of it.
    pub async fn environment(
        &self,
        env: &DigitalChannelsEnvironment,
        store: &dyn SecretStore,
        management: &Management,
    ) -> (ResourcePlan, EnvState) {
        let mut plan = ResourcePlan::new(ENVIRONMENT, &env.metadata, env.spec.management_policy);
        if env.spec.suspend {
            plan.notes
                .push("suspended: a pass makes no call and changes nothing".to_string());
            let resolved = read_environment(env, store).await.ok();
            return (
                plan,
                EnvState {
                    resolved,
                    ..EnvState::default()
                },
            );
        }
        let plan_store = PlanStore::new(store);
        if env.spec.management_policy == ManagementPolicy::Manage {
            // What Manage's first steps would make (a client secret, the fingerprint key),
            // made in the plan's memory, so that the observed pass looks with them.
            let mut made = RunReport::default();
            resolve_environment(env, &plan_store, true, &mut made).await;
        }
        let observed = observed_environment(env);
        let run = run_environment_managed(&self.runbook, &observed, &plan_store, management).await;
        let wanted = match &run.resolved {
            Some(r) => Some(r.clone()),
            None => read_environment(&observed, &plan_store).await.ok(),
        }
        .map(|r| r.registration(&management.manager));
        let found = self
            .seen
            .client(&env.spec.auth_url, &env.spec.client.id)
            .flatten();
        let name = plan.name.clone();
        let secret_ref = env.spec.client_secret_ref(&name);
        let sight = EnvironmentSight {
            report: &run.report,
            client_id: &env.spec.client.id,
            wanted: wanted.as_ref(),
            found: found.as_ref(),
            gws_url: &normal_url(&env.spec.gws_url),
            client_secret_name: &secret_ref.name,
            restarts: restarts(env, self.secrets_at),
            applies: env.spec.management_policy == ManagementPolicy::Manage,
        };
        changes::environment(&sight, &mut plan);
        let fingerprint = fingerprint_key_ref(&name).name;
        let purposes = SecretPurposes {
            client_secret: Some(&secret_ref.name),
            fingerprint_key: Some(&fingerprint),
            system: self.secrets_at,
        };
        changes::secrets(&plan_store.planned(), &purposes, &mut plan);
        let state = EnvState {
            client_pending: client_pending(&run.report),
            failed: run.resolved.is_none().then(|| {
                format!("DigitalChannelsEnvironment {name} could not be looked at (see its errors)")
            }),
            resolved: run.resolved,
        };
        (plan, state)
    }

    /// A tenant's plan, with its environment's (`env` is `None` when it does not exist).
    pub async fn tenant(
        &self,
        t: &DigitalChannelsTenant,
        env: Option<&DigitalChannelsEnvironment>,
        state: &EnvState,
        store: &dyn SecretStore,
    ) -> ResourcePlan {
        let mut plan = ResourcePlan::new(TENANT, &t.metadata, t.spec.management_policy);
        let Some(env) = env else {
            plan.errors.push(format!(
                "DigitalChannelsEnvironment {} does not exist",
                t.spec.environment_ref.name
            ));
            return plan;
        };
        if t.metadata.deletion_timestamp.is_some() {
            self.tenant_deletion(t, env, store, &mut plan).await;
            return plan;
        }
        if t.spec.suspend {
            plan.notes
                .push("suspended: a pass makes no call and changes nothing".to_string());
            return plan;
        }
        match (&state.resolved, &state.failed) {
            (Some(resolved), _) => {
                self.observe_tenant(t, resolved, state, store, &mut plan)
                    .await
            }
            (None, failed) => plan.errors.push(failed.clone().unwrap_or_else(|| {
                "the environment is suspended: nothing is looked at".to_string()
            })),
        }
        plan
    }

    async fn observe_tenant(
        &self,
        t: &DigitalChannelsTenant,
        resolved: &ResolvedEnvironment,
        state: &EnvState,
        store: &dyn SecretStore,
        plan: &mut ResourcePlan,
    ) {
        let plan_store = PlanStore::new(store);
        let observed = observed_tenant(t);
        let run = run_tenant(&self.runbook, &observed, resolved, &plan_store).await;
        let cc = run.contact_center_id.clone();
        let pending = state.client_pending && token_refused(&run.report);
        let key_rows = match (&cc, pending) {
            (Some(cc), true) => self.key_rows(resolved, cc, &t.spec.tenant_name).await,
            _ => None,
        };
        let settings = cc
            .as_deref()
            .and_then(|cc| self.seen.settings(resolved.spec.environment_url(), cc));
        let setting = settings
            .iter()
            .flatten()
            .find(|s| s.name == CHAT_SERVICE_SETTING)
            .cloned();
        let previous = plan_store
            .read_output(&run.output_secret_name)
            .await
            .ok()
            .flatten();
        let recorded_ucs = t
            .status
            .as_ref()
            .and_then(|s| s.ucs_url.clone())
            .or_else(|| previous.and_then(|p| p.annotations.get(annotations::UCS_URL).cloned()));
        let (nexus_url, gws_url) = (
            normal_url(&resolved.spec.nexus_url),
            normal_url(&resolved.spec.gws_url),
        );
        let sight = TenantSight {
            report: &run.report,
            tenant_name: &t.spec.tenant_name,
            contact_center: cc.as_deref(),
            nexus_url: &nexus_url,
            gws_url: &gws_url,
            type_: &t.spec.type_,
            genesys_tenant_id: t.spec.genesys_tenant_id,
            setting: setting.as_ref(),
            ucs_wanted: t.spec.ucs.as_ref().map(|u| u.url.as_str()),
            ucs_recorded: recorded_ucs.as_deref(),
            output_secret: &run.output_secret_name,
            secrets_at: self.secrets_at,
            applies: t.spec.management_policy == ManagementPolicy::Manage,
            client_pending: state.client_pending,
            key_rows,
        };
        changes::tenant(&sight, plan);
        let purposes = SecretPurposes {
            client_secret: None,
            fingerprint_key: None,
            system: self.secrets_at,
        };
        changes::secrets(&plan_store.planned(), &purposes, plan);
    }

    /// How many `nex_apikeys` rows the tenant has (a look at Nexus's table).
    async fn key_rows(&self, env: &ResolvedEnvironment, cc: &str, name: &str) -> Option<usize> {
        let db = self.runbook.connector.nexus_db(&env.database_url).ok()?;
        db.find_api_keys(cc, name).await.ok().map(|rows| rows.len())
    }

    /// What the environment's cleanup would delete. `users`: the names of the tenants that
    /// hold its deletion back.
    pub async fn environment_deletion(
        &self,
        env: &DigitalChannelsEnvironment,
        store: &dyn SecretStore,
        management: &Management,
        users: &[String],
    ) -> ResourcePlan {
        let mut plan = ResourcePlan::new(ENVIRONMENT, &env.metadata, env.spec.management_policy);
        let policy = env
            .spec
            .management_policy
            .deletion(env.spec.deletion_policy);
        if !users.is_empty() {
            plan.notes.push(format!(
                "the deletion waits for its tenant(s) {} to go first",
                users.join(", ")
            ));
        }
        if policy == DeletionPolicy::Retain {
            plan.notes.push(retained(
                env.spec.management_policy,
                "the OAuth client and nex_gapis row",
            ));
            return plan;
        }
        let recorded = env
            .status
            .as_ref()
            .is_some_and(|s| s.records_client(&env.spec.client.id));
        if !recorded {
            plan.notes.push(
                "this environment made no OAuth client or nex_gapis row: nothing to delete"
                    .to_string(),
            );
            return plan;
        }
        let (runbook, seen) = self.recording();
        let deleted = match read_environment(env, store).await {
            Ok(resolved) => {
                crate::runbook::environment::delete_environment_managed(
                    &runbook,
                    &resolved,
                    &management.manager,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match deleted {
            Ok(Some(elsewhere)) => plan.notes.push(format!(
                "the OAuth client is managed elsewhere now (\"{elsewhere}\"): it and its row are left in place"
            )),
            Ok(None) => {
                let found = seen.client(&env.spec.auth_url, &env.spec.client.id).flatten().is_some();
                for attempt in seen.writes() {
                    plan.changes.extend(changes::deleted(&attempt, found));
                }
            }
            Err(e) => plan.errors.push(format!("cleanup: {}: {}", e.reason, e.message)),
        }
        plan
    }

    async fn tenant_deletion(
        &self,
        t: &DigitalChannelsTenant,
        env: &DigitalChannelsEnvironment,
        store: &dyn SecretStore,
        plan: &mut ResourcePlan,
    ) {
        let policy = t.spec.management_policy.deletion(t.spec.deletion_policy);
        if policy == DeletionPolicy::Retain {
            plan.notes
                .push(retained(t.spec.management_policy, "the Nexus tenant"));
            return;
        }
        let record = CreatedRecord::of(&t.status.clone().unwrap_or_default());
        let (runbook, seen) = self.recording();
        let deleted = match read_environment(env, store).await {
            Ok(resolved) => delete_tenant(&runbook, t, &resolved, store, &record).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(_) => {
                for attempt in seen.writes() {
                    plan.changes.extend(changes::deleted(&attempt, true));
                }
                if plan.changes.is_empty() {
                    plan.notes
                        .push("this tenant made no Nexus tenant: nothing to delete".to_string());
                }
            }
            Err(e) => plan
                .errors
                .push(format!("cleanup: {}: {}", e.reason, e.message)),
        }
    }

    /// A runbook whose deletes are recorded, not sent.
    fn recording(&self) -> (Runbook, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let connector = GuardedConnector::new(self.upstream.clone(), Writes::Record, seen.clone());
        (Runbook::new(Arc::new(connector)), seen)
    }
}

fn retained(policy: ManagementPolicy, what: &str) -> String {
    match policy {
        ManagementPolicy::Observe => {
            format!("deletion: managementPolicy Observe deletes nothing upstream; {what} stay(s)")
        }
        ManagementPolicy::Manage => format!("deletion: deletionPolicy Retain; {what} stay(s)"),
    }
}

/// The environment as its observed pass sees it.
fn observed_environment(env: &DigitalChannelsEnvironment) -> DigitalChannelsEnvironment {
    let mut observed = env.clone();
    observed.spec.management_policy = ManagementPolicy::Observe;
    observed
}

/// The tenant as its observed pass sees it: its contact center pinned once recorded, as
/// the controller pins it.
fn observed_tenant(t: &DigitalChannelsTenant) -> DigitalChannelsTenant {
    let mut observed = t.clone();
    observed.spec.management_policy = ManagementPolicy::Observe;
    let recorded = t.status.as_ref().and_then(|s| s.contact_center_id.clone());
    if observed.spec.contact_center_id.is_none()
        && let Some(cc) = recorded
    {
        observed.spec.contact_center_id = Some(cc);
        observed.spec.contact_center_domain = None;
    }
    observed
}

/// Who restarts Nexus after the row changes: the controller, for `spec.nexusDeployment`;
/// `provision` restarts nothing.
fn restarts(env: &DigitalChannelsEnvironment, secrets_at: &str) -> Option<String> {
    if secrets_at != changes::KUBERNETES {
        return None;
    }
    let d = env.spec.nexus_deployment.as_ref()?;
    let ns = d
        .namespace
        .clone()
        .or_else(|| env.metadata.namespace.clone())
        .unwrap_or_default();
    Some(format!("{ns}/{}", d.name))
}

/// Whether the environment's client would be created or given its secret.
fn client_pending(report: &RunReport) -> bool {
    matches!(
        report.outcome_of(Step::ClientRegistered),
        Some(Ok(Outcome::Missing(_)))
    ) || matches!(
        report.outcome_of(Step::ClientVerified),
        Some(Ok(Outcome::Drifted(_)))
    )
}

fn token_refused(report: &RunReport) -> bool {
    matches!(
        report.outcome_of(Step::TenantToken),
        Some(Err(e)) if e.reason == crate::runbook::report::Reason::Unauthorized
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeConnector, samples};

    /// A write asked for while observing is not sent, and the plan fails saying so.
    #[tokio::test]
    async fn a_write_asked_for_fails_the_plan() {
        let fakes = Arc::new(FakeConnector::default());
        let planner = Planner::new(fakes.clone(), changes::KUBERNETES);
        let mut plan = Plan::default();
        let env = samples::environment();
        let meta = &env.metadata;
        plan.resources.push(ResourcePlan::new(
            ENVIRONMENT,
            meta,
            ManagementPolicy::Manage,
        ));
        planner.check_no_write(&mut plan);
        assert_eq!(plan.exit_code(), 0, "no write, no error");

        let auth = planner
            .runbook
            .connector
            .gws_auth("https://a", None)
            .unwrap();
        let ops = crate::secret::Credentials {
            username: "ops".into(),
            password: "ops".into(),
        };
        assert!(auth.delete_client(&ops, "nexus_client").await.is_err());
        planner.check_no_write(&mut plan);
        assert_eq!(plan.exit_code(), 1);
        assert!(plan.resources[0].errors[0].contains("delete_client nexus_client"));
        assert_eq!(fakes.log.writes(), Vec::<&str>::new());
    }
}
