//! Who owns what upstream. Two tenants on one Nexus must never share a contact center or a
//! tenant name (the second would be handed the first's Nexus tenant and key), and two
//! environments must never manage the same client id on one GWS Auth (each would reset the
//! other's client secret on every pass). The older resource keeps its claim; the newer one
//! is refused with a condition that names the older.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::common::trim_url;
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

/// The controllers' caches of both kinds, one store per watched scope.
#[derive(Default)]
pub struct Caches {
    tenants: RwLock<Vec<Store<DigitalChannelsTenant>>>,
    environments: RwLock<Vec<Store<DigitalChannelsEnvironment>>>,
    /// One per store: set once its watch has listed everything. Not `Store::wait_until_ready`:
    /// kube-runtime 5 wakes one waiter of a store, and the controller's runner is one.
    synced: RwLock<Vec<Arc<AtomicBool>>>,
}

impl Caches {
    pub fn register_tenants(&self, store: Store<DigitalChannelsTenant>, synced: Arc<AtomicBool>) {
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        self.synced_push(synced);
    }

    pub fn register_environments(
        &self,
        store: Store<DigitalChannelsEnvironment>,
        synced: Arc<AtomicBool>,
    ) {
        self.environments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        self.synced_push(synced);
    }

    fn synced_push(&self, synced: Arc<AtomicBool>) {
        self.synced
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(synced);
    }

    /// Waits (at most `within`) until every cache has listed once: before that an empty
    /// cache would hide a rival. Returns whether they are.
    pub async fn ready(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all = self
                .synced
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .all(|s| s.load(Ordering::Acquire));
            if all {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn tenants(&self) -> Vec<Arc<DigitalChannelsTenant>> {
        let stores = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        stores.iter().flat_map(|s| s.state()).collect()
    }

    fn environments(&self) -> Vec<Arc<DigitalChannelsEnvironment>> {
        let stores = self.environments.read().unwrap_or_else(|e| e.into_inner());
        stores.iter().flat_map(|s| s.state()).collect()
    }
}

/// Who keeps a claim, first to last: one that already acts upstream (it carries the
/// finalizer, added with its first external object), then the older (creation time has
/// whole seconds only), then by namespace and name, so that both sides agree.
fn age_key<K: kube::Resource>(o: &K) -> (bool, Option<jiff::Timestamp>, String, String) {
    let meta = o.meta();
    (
        !has_finalizer(o),
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn has_finalizer<K: kube::Resource>(o: &K) -> bool {
    o.meta()
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == crate::api::FINALIZER)
}

/// An older resource that still claims: one being deleted keeps its claim while it holds
/// the finalizer, since its cleanup may still delete what it claimed.
fn is_other<K: kube::Resource>(me: &K, other: &K) -> bool {
    let meta = other.meta();
    let claiming = meta.deletion_timestamp.is_none() || has_finalizer(other);
    claiming && meta.uid != me.meta().uid && age_key(other) < age_key(me)
}

/// The contact center a tenant has claimed: resolved, or named in its spec.
fn claimed_contact_center(t: &DigitalChannelsTenant) -> Option<&str> {
    t.status
        .as_ref()
        .and_then(|s| s.contact_center_id.as_deref())
        .or(t.spec.contact_center_id.as_deref())
}

/// Why `tenant`, on the Nexus at `nexus_url`, must not proceed: an older tenant there
/// claims the same contact center, domain or tenant name.
pub fn tenant_conflict(
    caches: &Caches,
    tenant: &DigitalChannelsTenant,
    nexus_url: &str,
) -> Option<String> {
    let environments = caches.environments();
    let nexus_of = |t: &DigitalChannelsTenant| {
        environments
            .iter()
            .find(|e| e.namespace() == t.namespace() && e.name_any() == t.spec.environment_ref.name)
            .map(|e| trim_url(&e.spec.nexus_url).to_string())
    };
    let mut rivals: Vec<Arc<DigitalChannelsTenant>> = caches
        .tenants()
        .into_iter()
        .filter(|o| is_other(tenant, o.as_ref()))
        .filter(|o| match nexus_of(o) {
            Some(url) => url == trim_url(nexus_url),
            // Its environment is not known: it counts only if it has acted upstream (it
            // holds the finalizer), on whatever Nexus; one that never acted claims nothing.
            None => has_finalizer(o.as_ref()),
        })
        .collect();
    rivals.sort_by_key(|o| age_key(o.as_ref()));
    rivals.iter().find_map(|o| {
        let what = if o.spec.tenant_name == tenant.spec.tenant_name {
            format!("the tenant name {}", tenant.spec.tenant_name)
        } else if let (Some(a), Some(b)) = (claimed_contact_center(o), claimed_contact_center(tenant))
            && a == b
        {
            format!("the contact center {a}")
        } else if let (Some(a), Some(b)) = (
            &o.spec.contact_center_domain,
            &tenant.spec.contact_center_domain,
        ) && a == b
            && claimed_contact_center(tenant).is_none()
        {
            format!("the contact center domain {a}")
        } else {
            return None;
        };
        Some(format!(
            "DigitalChannelsTenant {}/{} already uses {what} on the Nexus at {}; two tenants cannot share it. \
             Delete one of them, or give this one its own contact center and tenant name.",
            o.namespace().unwrap_or_default(),
            o.name_any(),
            trim_url(nexus_url)
        ))
    })
}

/// Why `env` must not proceed: an older environment manages the same client id on the same
/// GWS Auth.
pub fn environment_conflict(caches: &Caches, env: &DigitalChannelsEnvironment) -> Option<String> {
    let mut rivals: Vec<Arc<DigitalChannelsEnvironment>> = caches
        .environments()
        .into_iter()
        .filter(|o| is_other(env, o.as_ref()))
        .filter(|o| {
            trim_url(&o.spec.auth_url) == trim_url(&env.spec.auth_url)
                && o.spec.client.id == env.spec.client.id
        })
        .collect();
    rivals.sort_by_key(|o| age_key(o.as_ref()));
    rivals.first().map(|o| {
        format!(
            "DigitalChannelsEnvironment {}/{} already manages the OAuth client {} on {}; two environments would \
             reset each other's client secret. Use that environment, or another client id (spec.client.id).",
            o.namespace().unwrap_or_default(),
            o.name_any(),
            env.spec.client.id,
            trim_url(&env.spec.auth_url)
        )
    })
}
