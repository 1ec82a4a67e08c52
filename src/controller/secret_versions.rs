//! Which events of the Secret watch are changes. A watch that comes back after an API server
//! restart or a compacted history lists every Secret again; passing each on would start a
//! pass of every resource that uses one, and every upstream call with it, though nothing
//! changed. Remembering each Secret's resourceVersion tells a change from a repeat, and a
//! Secret deleted while the watch was down from one that is still there. The first list
//! tells every Secret, as a new watch must.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::runtime::watcher::Event;

type SecretMeta = PartialObjectMeta<Secret>;
type Key = (String, String);

/// The versions of the Secrets seen so far, by namespace and name.
#[derive(Default)]
pub struct SecretVersions {
    seen: HashMap<Key, String>,
    /// The Secrets of the list in progress, if one is.
    listing: Option<HashSet<Key>>,
}

impl SecretVersions {
    /// The Secrets `event` changes: new, changed or deleted since last seen.
    pub fn changes(&mut self, event: Event<SecretMeta>) -> Vec<SecretMeta> {
        match event {
            Event::Init => {
                self.listing = Some(HashSet::new());
                vec![]
            }
            Event::InitApply(secret) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(key(&secret));
                }
                self.record(&secret).then_some(secret).into_iter().collect()
            }
            Event::InitDone => self.end_of_list(),
            Event::Apply(secret) => self.record(&secret).then_some(secret).into_iter().collect(),
            Event::Delete(secret) => {
                self.seen.remove(&key(&secret));
                vec![secret]
            }
        }
    }

    /// Records `secret`'s version; true when it differs from the one seen before.
    fn record(&mut self, secret: &SecretMeta) -> bool {
        let version = secret.resource_version().unwrap_or_default();
        self.seen.insert(key(secret), version.clone()).as_ref() != Some(&version)
    }

    /// The Secrets seen before but not in the list just completed: deleted while the watch
    /// was down.
    fn end_of_list(&mut self) -> Vec<SecretMeta> {
        let listed = self.listing.take().unwrap_or_default();
        self.seen
            .extract_if(|k, _| !listed.contains(k))
            .map(|((namespace, name), _)| deleted(namespace, name))
            .collect()
    }
}

fn key(secret: &SecretMeta) -> Key {
    (secret.namespace().unwrap_or_default(), secret.name_any())
}

/// What the users of a Secret deleted unseen need to know of it: its namespace and name.
fn deleted(namespace: String, name: String) -> SecretMeta {
    secret_with(ObjectMeta {
        namespace: Some(namespace),
        name: Some(name),
        ..ObjectMeta::default()
    })
}

/// A Secret as the metadata-only watch shows it, from its metadata.
pub(crate) fn secret_with(metadata: ObjectMeta) -> SecretMeta {
    PartialObjectMeta {
        types: None,
        metadata,
        _phantom: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, version: &str) -> SecretMeta {
        let mut s = deleted("dc".into(), name.into());
        s.metadata.resource_version = Some(version.into());
        s
    }

    fn names(secrets: Vec<SecretMeta>) -> Vec<String> {
        secrets.iter().map(|s| s.name_any()).collect()
    }

    /// Feeds a list of `(name, version)` as a watcher (re)list does; returns what changed.
    fn list(versions: &mut SecretVersions, secrets: &[(&str, &str)]) -> Vec<String> {
        let mut changed = names(versions.changes(Event::Init));
        for (name, version) in secrets {
            changed.extend(names(
                versions.changes(Event::InitApply(secret(name, version))),
            ));
        }
        changed.extend(names(versions.changes(Event::InitDone)));
        changed
    }

    #[test]
    fn what_a_watch_event_changes() {
        let mut v = SecretVersions::default();
        let none: Vec<String> = vec![];
        // The first list tells every Secret: a pass that read one before the watch had
        // listed may have read an older version.
        assert_eq!(
            list(&mut v, &[("a", "1"), ("b", "1")]),
            ["a", "b"],
            "first list"
        );
        assert_eq!(
            list(&mut v, &[("a", "1"), ("b", "1")]),
            none,
            "relist, no change"
        );
        assert_eq!(
            list(&mut v, &[("a", "2"), ("c", "1")]),
            ["a", "c", "b"],
            "relist: a changed, c new, b deleted while the watch was down"
        );
        assert_eq!(names(v.changes(Event::Apply(secret("a", "3")))), ["a"]);
        assert_eq!(
            names(v.changes(Event::Apply(secret("a", "3")))),
            none,
            "a repeat"
        );
        assert_eq!(names(v.changes(Event::Delete(secret("a", "3")))), ["a"]);
        assert_eq!(
            list(&mut v, &[("c", "1")]),
            none,
            "a, deleted and told, is not told again"
        );
    }
}
