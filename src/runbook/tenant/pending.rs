//! Keys from a create answer that are not in their output Secret yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::common::trim_url;
use crate::secret::SecretString;

/// API keys that Nexus's create answer gave but that are not in their output Secret yet
/// (its write failed): the only copy, kept and used by the next pass until it is written.
/// A restart loses them; the key is then recovered from the tenant's `nex_apikeys` row.
#[derive(Clone, Default)]
pub struct PendingKeys(Arc<Mutex<HashMap<String, SecretString>>>);

impl PendingKeys {
    fn slot(nexus_url: &str, contact_center_id: &str) -> String {
        format!("{}|{contact_center_id}", trim_url(nexus_url))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretString>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn keep(&self, nexus_url: &str, contact_center_id: &str, key: &SecretString) {
        self.lock()
            .insert(Self::slot(nexus_url, contact_center_id), key.clone());
    }

    pub(super) fn get(&self, nexus_url: &str, contact_center_id: &str) -> Option<SecretString> {
        self.lock()
            .get(&Self::slot(nexus_url, contact_center_id))
            .cloned()
    }

    pub(super) fn written(&self, nexus_url: &str, contact_center_id: &str) {
        self.lock()
            .remove(&Self::slot(nexus_url, contact_center_id));
    }
}
