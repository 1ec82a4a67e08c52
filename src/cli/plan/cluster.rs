//! `plan` against the resources of a cluster: listed (one namespace, or all), each
//! environment planned with its Secrets read from the cluster, then its tenants. The only
//! requests to Kubernetes are LIST of both kinds and GET of Secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use super::{Plan, Planner, changes};
use crate::api::environment::TAKE_OVER_CLIENT_ANNOTATION;
use crate::api::{DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::controller::secrets::KubeSecretStore;
use crate::runbook::Connector;
use crate::runbook::environment::{ClientManager, Management};

/// Which resources: a namespace (`None`: all), and a name (an environment with its tenants,
/// or a tenant with its environment).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub namespace: Option<String>,
    pub name: Option<String>,
}

async fn list<K>(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<K>, String>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            format!(
                "cannot list {kind}s: {}",
                crate::controller::kube_message(&e)
            )
        })?
        .items;
    items.sort_by_key(|r| (r.namespace(), r.name_any()));
    Ok(items)
}

/// The plan of the selected resources.
pub async fn plan_cluster(
    client: &kube::Client,
    upstream: Arc<dyn Connector>,
    selection: &Selection,
) -> Result<Plan, String> {
    let ns = selection.namespace.as_deref();
    let envs: Vec<DigitalChannelsEnvironment> = list(client, ns).await?;
    let tenants: Vec<DigitalChannelsTenant> = list(client, ns).await?;
    let picked = pick(&envs, &tenants, selection.name.as_deref());
    if let Some(name) = &selection.name
        && picked.is_empty()
    {
        let place = ns.map_or("any namespace".to_string(), |n| format!("namespace {n}"));
        return Err(format!(
            "no DigitalChannelsEnvironment or DigitalChannelsTenant named {name} in {place}"
        ));
    }
    let planner = Planner::new(upstream, changes::KUBERNETES);
    let mut plan = Plan::default();
    for (env_key, env_tenants) in picked {
        let env = envs
            .iter()
            .find(|e| (e.namespace().unwrap_or_default(), e.name_any()) == env_key);
        plan_group(&planner, client, env, &env_tenants, &tenants, &mut plan).await;
    }
    planner.check_no_write(&mut plan);
    Ok(plan)
}

type Key = (String, String);

/// The tenants to plan, by the environment they name (which may not exist).
fn pick<'t>(
    envs: &[DigitalChannelsEnvironment],
    tenants: &'t [DigitalChannelsTenant],
    name: Option<&str>,
) -> BTreeMap<Key, Vec<&'t DigitalChannelsTenant>> {
    let env_of = |t: &DigitalChannelsTenant| {
        (
            t.namespace().unwrap_or_default(),
            t.spec.environment_ref.name.clone(),
        )
    };
    let mut groups: BTreeMap<Key, Vec<&DigitalChannelsTenant>> = BTreeMap::new();
    for e in envs
        .iter()
        .filter(|e| name.is_none_or(|n| e.name_any() == n))
    {
        groups.insert(
            (e.namespace().unwrap_or_default(), e.name_any()),
            Vec::new(),
        );
    }
    // Picked by its environment (before any group a tenant's own name adds), or by name.
    let by_environment: Vec<Key> = groups.keys().cloned().collect();
    for t in tenants {
        let key = env_of(t);
        if by_environment.contains(&key) || name.is_none_or(|n| t.name_any() == n) {
            groups.entry(key).or_default().push(t);
        }
    }
    groups
}

/// One environment (when it exists) and the tenants picked of it.
async fn plan_group(
    planner: &Planner,
    client: &kube::Client,
    env: Option<&DigitalChannelsEnvironment>,
    picked: &[&DigitalChannelsTenant],
    all: &[DigitalChannelsTenant],
    plan: &mut Plan,
) {
    let mut state = super::resource::EnvState::default();
    if let Some(env) = env {
        let ns = env.namespace().unwrap_or_default();
        let store = KubeSecretStore::new(client.clone(), &ns, None);
        let management = management(env);
        if env.metadata.deletion_timestamp.is_some() {
            let users = users(env, all);
            let deleting = planner
                .environment_deletion(env, &store, &management, &users)
                .await;
            plan.resources.push(deleting);
            state = super::resource::EnvState::failing(format!(
                "DigitalChannelsEnvironment {} is being deleted: its tenants are not provisioned",
                env.name_any()
            ));
        } else {
            let (env_plan, env_state) = planner.environment(env, &store, &management).await;
            plan.resources.push(env_plan);
            state = env_state;
        }
    }
    let stores: Vec<KubeSecretStore> = picked
        .iter()
        .map(|t| {
            let ns = t.namespace().unwrap_or_default();
            KubeSecretStore::new(client.clone(), &ns, t.controller_owner_ref(&()))
        })
        .collect();
    let tenants = picked.iter().zip(&stores);
    let planned = futures::stream::iter(tenants)
        .map(|(t, store)| planner.tenant(t, env, &state, store))
        .buffered(super::TENANTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    plan.resources.extend(planned);
}

/// As the controller manages the client: for this resource, taking over only when asked.
fn management(env: &DigitalChannelsEnvironment) -> Management {
    Management {
        manager: ClientManager::Operator {
            namespace: env.namespace().unwrap_or_default(),
            name: env.name_any(),
        },
        take_over: env
            .annotations()
            .get(TAKE_OVER_CLIENT_ANNOTATION)
            .is_some_and(|v| v == "true"),
    }
}

/// The tenants that hold an environment's deletion back, as the controller counts them:
/// all of its tenants with Delete, those with Delete themselves with Retain.
fn users(env: &DigitalChannelsEnvironment, all: &[DigitalChannelsTenant]) -> Vec<String> {
    let policy = env
        .spec
        .management_policy
        .deletion(env.spec.deletion_policy);
    all.iter()
        .filter(|t| {
            t.namespace() == env.namespace() && t.spec.environment_ref.name == env.name_any()
        })
        .filter(|t| {
            policy == DeletionPolicy::Delete
                || t.spec.management_policy.deletion(t.spec.deletion_policy)
                    == DeletionPolicy::Delete
        })
        .map(ResourceExt::name_any)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::samples;

    #[test]
    fn a_name_picks_an_environment_with_its_tenants_or_a_tenant_with_its_environment() {
        let envs = [samples::environment()];
        let mut elsewhere = samples::tenant("t300", None);
        elsewhere.spec.environment_ref.name = "other".into();
        let tenants = [
            samples::tenant("t100", None),
            samples::tenant("t200", None),
            elsewhere,
        ];
        let picked = |name: Option<&str>| -> Vec<String> {
            pick(&envs, &tenants, name)
                .into_iter()
                .map(|((_, env), ts)| {
                    let names: Vec<String> = ts.iter().map(|t| t.name_any()).collect();
                    format!("{env}: {}", names.join(" "))
                })
                .collect()
        };
        assert_eq!(picked(None), ["other: t300", "prod: t100 t200"]);
        assert_eq!(picked(Some("prod")), ["prod: t100 t200"]);
        assert_eq!(picked(Some("t100")), ["prod: t100"]);
        assert_eq!(picked(Some("t300")), ["other: t300"]);
        assert_eq!(picked(Some("nothing")), Vec::<String>::new());
    }
}
