//! Who owns what upstream. Two tenants on one Nexus must never share a contact center or a
//! tenant name (the second would be handed the first's Nexus tenant and key), and two
//! environments must never manage the same client id on one GWS Auth (each would reset the
//! other's client secret on every pass). The older resource keeps its claim; the newer one
//! is refused with a condition that names the older.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::common::{normal_url, same_url};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::runbook::contact_center;
use crate::upstream::environment::ContactCenter;

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

    /// Whether the cache of the key's kind still holds its resource: a pass that ends after
    /// its resource's deletion was seen must not count it again.
    pub fn holds(&self, key: &crate::controller::keys::ObjectKey) -> bool {
        use kube::runtime::reflector::ObjectRef;
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        if key.kind == crate::controller::KIND_TENANT {
            let stores = self.tenants.read().unwrap_or_else(|e| e.into_inner());
            let at = ObjectRef::<DigitalChannelsTenant>::new(name).within(ns);
            stores.iter().any(|s| s.get(&at).is_some())
        } else {
            let stores = self.environments.read().unwrap_or_else(|e| e.into_inner());
            let at = ObjectRef::<DigitalChannelsEnvironment>::new(name).within(ns);
            stores.iter().any(|s| s.get(&at).is_some())
        }
    }

    /// The environment as the cache last saw it, if a cache holds it. Tenants are woken by
    /// the cache's own changes (see `watches::environment_triggers`), so a pass started by
    /// one reads that version or a newer one.
    pub fn environment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DigitalChannelsEnvironment>> {
        use kube::runtime::reflector::ObjectRef;
        let at = ObjectRef::<DigitalChannelsEnvironment>::new(name).within(namespace);
        let stores = self.environments.read().unwrap_or_else(|e| e.into_inner());
        stores.iter().find_map(|s| s.get(&at))
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

/// The contact center a tenant claims: resolved and recorded, named by id, or as
/// [`contact_center::choose`] resolves it in `centers` (by its domain, or the only one).
fn claimed_contact_center(t: &DigitalChannelsTenant, centers: &[ContactCenter]) -> Option<String> {
    let recorded = t.status.as_ref().and_then(|s| s.contact_center_id.clone());
    recorded
        .or_else(|| t.spec.contact_center_id.clone())
        .or_else(|| {
            // By its domain, or, naming neither, the only contact center there is.
            let domain = t.spec.contact_center_domain.as_deref();
            let chosen = contact_center::choose(centers, None, domain).ok()?;
            Some(chosen.id.clone())
        })
}

/// What an older tenant on the same Nexus shares with `me`, whose contact center resolved
/// to `my_cc` (not known yet: `None`): its tenant name or its contact center, compared as
/// Nexus and GWS compare them (UUIDs and names whatever their letter case).
fn shared_with(
    me: &DigitalChannelsTenant,
    my_cc: Option<&str>,
    other: &DigitalChannelsTenant,
    centers: &[ContactCenter],
) -> Option<String> {
    if other
        .spec
        .tenant_name
        .eq_ignore_ascii_case(&me.spec.tenant_name)
    {
        return Some(format!("the tenant name {}", me.spec.tenant_name));
    }
    let my_cc = my_cc?;
    let theirs = claimed_contact_center(other, centers)?;
    theirs
        .eq_ignore_ascii_case(my_cc)
        .then(|| format!("the contact center {my_cc}"))
}

/// Why `me`, whose contact center resolved to `my_cc` on the Nexus at `nexus_url`, must not
/// write anything upstream: an older tenant there claims the same contact center or tenant
/// name. Before the contact center is resolved (`None`), the tenant name alone is compared.
/// A pure decision over the cached resources and the contact-center list.
pub fn tenant_rival(
    me: &DigitalChannelsTenant,
    my_cc: Option<&str>,
    nexus_url: &str,
    tenants: &[Arc<DigitalChannelsTenant>],
    environments: &[Arc<DigitalChannelsEnvironment>],
    centers: &[ContactCenter],
) -> Option<String> {
    let nexus_of = |t: &DigitalChannelsTenant| {
        environments
            .iter()
            .find(|e| e.namespace() == t.namespace() && e.name_any() == t.spec.environment_ref.name)
            .map(|e| e.spec.nexus_url.clone())
    };
    let mut rivals: Vec<&Arc<DigitalChannelsTenant>> = tenants
        .iter()
        .filter(|o| is_other(me, o.as_ref()))
        .filter(|o| match nexus_of(o) {
            Some(url) => same_url(&url, nexus_url),
            // Its environment is not known: it counts only if it has acted upstream (it
            // holds the finalizer), on whatever Nexus; one that never acted claims nothing.
            None => has_finalizer(o.as_ref()),
        })
        .collect();
    rivals.sort_by_key(|o| age_key(o.as_ref()));
    rivals.iter().find_map(|o| {
        let what = shared_with(me, my_cc, o, centers)?;
        Some(format!(
            "DigitalChannelsTenant {}/{} already uses {what} on the Nexus at {}; two tenants cannot share it. \
             Delete one of them, or give this one its own contact center and tenant name.",
            o.namespace().unwrap_or_default(),
            o.name_any(),
            normal_url(nexus_url)
        ))
    })
}

impl Caches {
    /// [`tenant_rival`] over the controllers' caches.
    pub fn tenant_rival(
        &self,
        me: &DigitalChannelsTenant,
        my_cc: Option<&str>,
        nexus_url: &str,
        centers: &[ContactCenter],
    ) -> Option<String> {
        let (tenants, environments) = (self.tenants(), self.environments());
        tenant_rival(me, my_cc, nexus_url, &tenants, &environments, centers)
    }

    /// Whether the tenant with this uid is still in the cache and still claims (see
    /// `is_other`): a claim of one that is gone is free again.
    pub fn tenant_claims(&self, uid: &str) -> bool {
        self.tenants().iter().any(|t| {
            t.metadata.uid.as_deref() == Some(uid)
                && (t.metadata.deletion_timestamp.is_none() || has_finalizer(t.as_ref()))
        })
    }
}

/// Claims taken by the passes of this process, between a tenant's resolution and its first
/// upstream write. The caches show a claim only once its status is written: two new tenants
/// that resolve to one contact center in the same moment would both pass a check of the
/// caches alone. The first to take the claim here proceeds; the other is refused.
#[derive(Default)]
pub struct Claims(Mutex<HashMap<String, Claimant>>);

/// Who holds a claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimant {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

impl Claims {
    /// The claim keys of a tenant on one Nexus: its contact center and its tenant name.
    pub fn keys(nexus_url: &str, contact_center_id: &str, tenant_name: &str) -> Vec<String> {
        let nexus = normal_url(nexus_url);
        vec![
            format!("{nexus}|cc|{}", contact_center_id.to_ascii_lowercase()),
            format!("{nexus}|name|{}", tenant_name.to_ascii_lowercase()),
        ]
    }

    /// Takes `keys` for `me` (dropping any other key it held), unless another claimant that
    /// is still `alive` holds one: then that claimant, and nothing is taken.
    pub fn take(
        &self,
        keys: &[String],
        me: &Claimant,
        alive: impl Fn(&str) -> bool,
    ) -> Result<(), Claimant> {
        let mut claims = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let held = keys
            .iter()
            .filter_map(|k| claims.get(k))
            .find(|c| c.uid != me.uid && alive(&c.uid));
        if let Some(other) = held {
            return Err(other.clone());
        }
        claims.retain(|_, c| c.uid != me.uid);
        for k in keys {
            claims.insert(k.clone(), me.clone());
        }
        Ok(())
    }

    /// Lets go of every claim of `uid` (its resource is gone).
    pub fn release(&self, uid: &str) {
        let mut claims = self.0.lock().unwrap_or_else(|e| e.into_inner());
        claims.retain(|_, c| c.uid != uid);
    }
}

/// Why `env` must not proceed: an older environment manages the same client id on the same
/// GWS Auth.
pub fn environment_conflict(caches: &Caches, env: &DigitalChannelsEnvironment) -> Option<String> {
    let mut rivals: Vec<Arc<DigitalChannelsEnvironment>> = caches
        .environments()
        .into_iter()
        .filter(|o| is_other(env, o.as_ref()))
        .filter(|o| {
            normal_url(&o.spec.auth_url) == normal_url(&env.spec.auth_url)
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
            normal_url(&env.spec.auth_url)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CC: &str = "578ec98e-f07c-46ad-9675-f36c22f3ba9f";
    const OTHER_CC: &str = "9c1f5d2a-3b7e-4c8d-a6f0-2e4b8d9c7a15";

    /// A tenant on environment `prod`, created at `second` past the epoch.
    fn tenant(name: &str, second: i64, spec: serde_json::Value) -> Arc<DigitalChannelsTenant> {
        let mut spec_json = serde_json::json!({
            "environmentRef": {"name": "prod"},
            "tenantName": name,
            "credentialsSecret": {"name": "user"},
        });
        spec_json
            .as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let created = jiff::Timestamp::from_second(second).unwrap().to_string();
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "digitalchannels.dev/v1alpha1",
                "kind": "DigitalChannelsTenant",
                // It holds the finalizer: it acts upstream (on whatever Nexus; no
                // environment is cached in these tables).
                "metadata": {"name": name, "namespace": "dc", "uid": format!("{name}-uid"),
                             "creationTimestamp": created, "finalizers": [crate::api::FINALIZER]},
                "spec": spec_json,
            }))
            .unwrap(),
        )
    }

    fn centers() -> Vec<ContactCenter> {
        [(CC, "t100"), (OTHER_CC, "t200")]
            .iter()
            .map(|(id, domain)| ContactCenter {
                id: id.to_string(),
                environment_id: None,
                domains: vec![domain.to_string()],
            })
            .collect()
    }

    #[test]
    fn an_older_tenant_claiming_the_contact_center_in_other_words_is_a_rival() {
        use serde_json::json;
        let upper = CC.to_uppercase();
        let only = vec![centers().remove(0)];
        // (the older tenant's spec, the list, whether `me` (by id CC) is refused)
        let table: Vec<(serde_json::Value, Vec<ContactCenter>, bool)> = vec![
            (json!({"contactCenterId": CC}), centers(), true),
            (json!({"contactCenterId": upper}), centers(), true),
            (json!({"contactCenterDomain": "t100"}), centers(), true),
            (json!({"contactCenterDomain": "T100"}), centers(), true),
            (json!({"contactCenterDomain": "t200"}), centers(), false),
            (json!({"contactCenterId": OTHER_CC}), centers(), false),
            // Neither id nor domain: the only contact center is its.
            (json!({}), only, true),
            (json!({}), centers(), false),
        ];
        for (spec, list, refused) in table {
            let older = tenant("older", 1, spec.clone());
            let me = tenant("me", 2, json!({"contactCenterId": CC}));
            let why = tenant_rival(&me, Some(CC), "https://nexus", &[older], &[], &list);
            assert_eq!(why.is_some(), refused, "{spec} {why:?}");
        }
    }

    #[test]
    fn a_tenant_name_is_compared_whatever_its_letter_case() {
        let older = tenant("T100", 1, serde_json::json!({"contactCenterId": OTHER_CC}));
        let me = tenant("t100", 2, serde_json::json!({"contactCenterId": CC}));
        let why = tenant_rival(&me, None, "https://nexus", &[older], &[], &centers());
        assert!(why.is_some_and(|w| w.contains("tenant name")));
    }
}
