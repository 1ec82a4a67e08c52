//! Keys from a create answer that are not in their output Secret yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::common::normal_url;
use crate::secret::SecretString;

/// API keys that Nexus's create answer gave but that are not in their output Secret yet
/// (its write failed): the only copy, kept and used by the next pass until it is written.
/// Kept per tenant resource (its uid), so that no other resource, not even a new one of the
/// same name, can inherit one; forgotten when the resource goes. A restart loses them; the key
/// is then recovered from the tenant's `nex_apikeys` row.
#[derive(Clone, Default)]
pub struct PendingKeys(Arc<Mutex<HashMap<Slot, SecretString>>>);

/// Whose key: the resource's uid (empty for `provision`), the Nexus and the contact center.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    uid: String,
    place: String,
}

impl Slot {
    pub fn new(uid: &str, nexus_url: &str, contact_center_id: &str) -> Self {
        Self {
            uid: uid.to_string(),
            place: format!(
                "{}|{}",
                normal_url(nexus_url),
                contact_center_id.to_ascii_lowercase()
            ),
        }
    }
}

impl PendingKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, SecretString>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn keep(&self, slot: Slot, key: &SecretString) {
        self.lock().insert(slot, key.clone());
    }

    pub(super) fn get(&self, slot: &Slot) -> Option<SecretString> {
        self.lock().get(slot).cloned()
    }

    pub(super) fn written(&self, slot: &Slot) {
        self.lock().remove(slot);
    }

    /// Forgets the keys of a resource that is gone.
    pub fn forget_tenant(&self, uid: &str) {
        self.lock().retain(|slot, _| slot.uid != uid);
    }

    /// How many keys wait for their Secret.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_belongs_to_its_resource_only() {
        let keys = PendingKeys::default();
        let key = SecretString::new("k");
        keys.keep(Slot::new("uid-1", "https://nexus/", "CC"), &key);
        assert_eq!(
            keys.get(&Slot::new("uid-1", "https://nexus", "cc")),
            Some(key)
        );
        assert_eq!(keys.get(&Slot::new("uid-2", "https://nexus", "cc")), None);
        keys.forget_tenant("uid-1");
        assert!(keys.is_empty());
    }
}
