//! What `status` shows, decided without I/O: environments and tenants, as read from the
//! cluster, become a tree of groups (an environment and its tenants), each resource with
//! its steps, its state, its next retry and the one thing to do.

use std::collections::BTreeMap;

use serde::Serialize;

use super::advice::advice_for;
use crate::api::conditions::{Condition, ConditionStatus, find};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant, ManagementPolicy};
use crate::controller::kstatus::{Health, health};
use crate::runbook::Reason;

/// Everything shown, and whether it is all Ready (the exit code).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estate {
    pub ready: bool,
    pub environments: Vec<Group>,
}

/// An environment and its tenants. `environment` is `None` when the tenants name an
/// environment that does not exist (the "missing environment" node).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub namespace: String,
    pub name: String,
    pub environment: Option<Resource>,
    /// Shown for its selected tenants only: not part of the exit code, its steps not shown.
    pub context_only: bool,
    /// What to do about a missing environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_do: Option<String>,
    pub tenants: Vec<Resource>,
}

/// One resource: its Ready, state, steps, policy and what to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    pub state: State,
    pub management_policy: ManagementPolicy,
    pub suspended: bool,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// The `Ready` condition, if written yet.
    pub ready_condition: Option<Condition>,
    /// Every other condition but the kstatus ones, steps first in run order.
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_do: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_center_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_secret_name: Option<String>,
}

/// Where a resource stands, as kstatus readers (`kubectl wait`, Flux, Argo CD) see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum State {
    /// Ready for its current spec.
    Current,
    /// Working toward Ready, or retrying a transient failure (`Reconciling=True`).
    Reconciling,
    /// Nothing changes without a change somewhere (`Stalled=True`).
    Stalled,
    /// `spec.suspend` is true.
    Suspended,
    /// Being deleted.
    Deleting,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "Current",
            State::Reconciling => "Reconciling",
            State::Stalled => "Stalled",
            State::Suspended => "Suspended",
            State::Deleting => "Deleting",
        }
    }
}

/// The conditions shown in the resource's own row (Ready) or summed up in its state.
const SUMMARISED: [&str; 3] = ["Ready", "Reconciling", "Stalled"];

/// The order steps are shown in: as a pass runs them; others after, as written.
const STEP_ORDER: [&str; 11] = [
    "EnvironmentReady",
    "ClientRegistered",
    "ClientVerified",
    "GapiRegistered",
    "NexusRestarted",
    "ContactCenterResolved",
    "ChatServiceRegistered",
    "UcsRegistered",
    "TenantProvisioned",
    "DesignerEnvConfigured",
    "Suspended",
];

/// What a resource's metadata and status say, whatever its kind.
pub struct Observed<'a> {
    pub kind: &'static str,
    pub meta: &'a kube::api::ObjectMeta,
    pub policy: ManagementPolicy,
    pub suspend: bool,
    pub observed_generation: Option<i64>,
    pub conditions: &'a [Condition],
    pub next_retry_at: Option<&'a String>,
}

/// A resource as shown.
pub fn resource(o: Observed<'_>) -> Resource {
    let ready_condition = find(o.conditions, "Ready").cloned();
    let mut conditions: Vec<Condition> = o
        .conditions
        .iter()
        .filter(|c| !SUMMARISED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    conditions.sort_by_key(|c| {
        STEP_ORDER
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(STEP_ORDER.len())
    });
    let ready = ready_condition
        .as_ref()
        .is_some_and(|c| c.status == ConditionStatus::True);
    let state = state(&o);
    Resource {
        kind: o.kind,
        namespace: o.meta.namespace.clone().unwrap_or_default(),
        name: o.meta.name.clone().unwrap_or_default(),
        ready,
        state,
        management_policy: o.policy,
        suspended: o.suspend,
        generation: o.meta.generation,
        observed_generation: o.observed_generation,
        to_do: to_do(ready_condition.as_ref(), &conditions),
        // Only while a failure is retried: a Ready resource's is stale.
        next_retry_at: o.next_retry_at.filter(|_| !ready).cloned(),
        ready_condition,
        conditions,
        contact_center_id: None,
        output_secret_name: None,
    }
}

/// The state: deletion first, then a spec the operator has not acted on yet, then what the
/// written conditions say (`Suspended`, `Stalled`, `Reconciling`, `Ready`), then what kstatus
/// derives from `Ready` when those are not written yet.
fn state(o: &Observed<'_>) -> State {
    let is_true =
        |type_: &str| find(o.conditions, type_).is_some_and(|c| c.status == ConditionStatus::True);
    if o.meta.deletion_timestamp.is_some() {
        return State::Deleting;
    }
    if o.observed_generation != o.meta.generation {
        return State::Reconciling;
    }
    if is_true("Suspended") {
        return State::Suspended;
    }
    if is_true("Stalled") {
        return State::Stalled;
    }
    if is_true("Reconciling") {
        return State::Reconciling;
    }
    match health(o.conditions) {
        Health::Current => State::Current,
        Health::InProgress => State::Reconciling,
        Health::Stalled => State::Stalled,
        Health::Suspended => State::Suspended,
    }
}

/// The one thing to do: about Ready when it is not True; else about the first step that
/// is False with something to do (the DesignerEnv step, a Nexus restart by hand, the
/// environment of a Ready tenant); nothing when all holds.
pub fn to_do(ready: Option<&Condition>, steps: &[Condition]) -> Option<String> {
    let Some(ready) = ready else {
        return Some(
            "wait for the operator's first pass; if none comes, check that dc-operator run \
             is running and watches this namespace"
                .to_string(),
        );
    };
    if ready.status != ConditionStatus::True {
        return match Reason::parse(&ready.reason) {
            Some(reason) => advice_for("Ready", reason).map(str::to_string),
            None => Some("read the message".to_string()),
        };
    }
    steps
        .iter()
        .filter(|c| c.status == ConditionStatus::False)
        .find_map(|c| {
            let advice = advice_for(&c.type_, Reason::parse(&c.reason)?)?;
            Some(format!("{}: {advice}", c.type_))
        })
}

/// An environment as shown.
pub fn environment(env: &DigitalChannelsEnvironment) -> Resource {
    let status = env.status.clone().unwrap_or_default();
    resource(Observed {
        kind: "DigitalChannelsEnvironment",
        meta: &env.metadata,
        policy: env.spec.management_policy,
        suspend: env.spec.suspend,
        observed_generation: status.observed_generation,
        conditions: &status.conditions,
        next_retry_at: status.next_retry_at.as_ref(),
    })
}

/// A tenant as shown.
pub fn tenant(t: &DigitalChannelsTenant) -> Resource {
    let status = t.status.clone().unwrap_or_default();
    Resource {
        contact_center_id: status.contact_center_id.clone(),
        output_secret_name: status.output_secret_name.clone(),
        ..resource(Observed {
            kind: "DigitalChannelsTenant",
            meta: &t.metadata,
            policy: t.spec.management_policy,
            suspend: t.spec.suspend,
            observed_generation: status.observed_generation,
            conditions: &status.conditions,
            next_retry_at: status.next_retry_at.as_ref(),
        })
    }
}

/// Which resources NAME selects: an environment (with its tenants) or a tenant; every
/// resource without a NAME.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub name: Option<String>,
}

impl Selection {
    fn environment(&self, name: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
    }

    fn tenant(&self, t: &DigitalChannelsTenant) -> bool {
        let name = t.metadata.name.as_deref().unwrap_or_default();
        self.name.as_deref().is_none_or(|n| n == name)
            || self.environment(&t.spec.environment_ref.name)
    }
}

/// The estate: one group per environment (sorted by namespace and name, with a missing
/// environment's group where its name sorts), its selected tenants sorted by name. `None`
/// when NAME selects nothing.
pub fn estate(
    environments: &[DigitalChannelsEnvironment],
    tenants: &[DigitalChannelsTenant],
    selection: &Selection,
) -> Option<Estate> {
    type Key = (String, String);
    let key = |ns: &Option<String>, name: &str| (ns.clone().unwrap_or_default(), name.to_string());
    let mut groups: BTreeMap<Key, (Option<&DigitalChannelsEnvironment>, Vec<Resource>)> =
        BTreeMap::new();
    for env in environments {
        let name = env.metadata.name.as_deref().unwrap_or_default();
        groups
            .entry(key(&env.metadata.namespace, name))
            .or_default()
            .0 = Some(env);
    }
    for t in tenants.iter().filter(|t| selection.tenant(t)) {
        let group = key(&t.metadata.namespace, &t.spec.environment_ref.name);
        groups.entry(group).or_default().1.push(tenant(t));
    }
    let environments: Vec<Group> = groups
        .into_iter()
        .filter_map(|((namespace, name), (env, mut tenants))| {
            let selected = selection.environment(&name);
            if !selected && tenants.is_empty() {
                return None;
            }
            tenants.sort_by(|a, b| a.name.cmp(&b.name));
            let to_do = env
                .is_none()
                .then(|| missing_environment(&namespace, &name));
            Some(Group {
                environment: env.map(environment),
                context_only: !selected,
                to_do,
                namespace,
                name,
                tenants,
            })
        })
        .collect();
    if selection.name.is_some() && environments.is_empty() {
        return None;
    }
    let ready = environments.iter().all(Group::ready);
    Some(Estate {
        ready,
        environments,
    })
}

impl Group {
    /// Whether what it shows counts as Ready: its tenants, and its environment unless it is
    /// there for context only (a missing one is not Ready).
    pub fn ready(&self) -> bool {
        let environment = self.context_only || self.environment.as_ref().is_some_and(|e| e.ready);
        environment && self.tenants.iter().all(|t| t.ready)
    }
}

fn missing_environment(namespace: &str, name: &str) -> String {
    format!(
        "create DigitalChannelsEnvironment {name} in namespace {namespace}, or point these \
         tenants' environmentRef at one that exists"
    )
}
