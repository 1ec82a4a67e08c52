//! The Nexus database in memory: `nex_gapis` rows and `nex_apikeys` rows.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{CallLog, Faked, Script, lock};
use crate::api::common::same_url;
use crate::secret::SecretString;
use crate::upstream::System;
use crate::upstream::error::Result;
use crate::upstream::nexus_db::{ApiKeyName, GapiRow, NexusDb};

const SYSTEM: System = System::NexusDb;

/// One `nex_apikeys` row: `id` is the key itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    /// `None` where the table has no `tenantid` column.
    pub tenant_id: Option<String>,
}

#[derive(Default)]
struct State {
    gapis: Vec<GapiRow>,
    api_keys: Vec<ApiKeyRow>,
}

/// Nexus's tables, both present and empty; `nex_apikeys` with a `tenantid` column.
pub struct FakeNexusDb {
    pub log: CallLog,
    pub script: Script,
    state: Mutex<State>,
}

impl Default for FakeNexusDb {
    fn default() -> Self {
        Self::new(CallLog::default())
    }
}

impl FakeNexusDb {
    pub fn new(log: CallLog) -> Self {
        Self {
            log,
            script: Script::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// A `nex_gapis` row written elsewhere (by hand, in another spelling).
    pub fn put_gapi(&self, url: &str, client_id: &str, secret: &str) {
        lock(&self.state).gapis.push(GapiRow {
            url: url.to_string(),
            client_id: client_id.to_string(),
            client_secret: SecretString::new(secret),
        });
    }

    /// Every `nex_gapis` row.
    pub fn gapis(&self) -> Vec<GapiRow> {
        lock(&self.state).gapis.clone()
    }

    /// A `nex_apikeys` row (Nexus writes one per tenant it provisions).
    pub fn put_api_key(&self, row: ApiKeyRow) {
        lock(&self.state).api_keys.push(row);
    }

    /// Removes the rows of this key.
    pub fn remove_api_key(&self, id: &str) {
        lock(&self.state).api_keys.retain(|r| r.id != id);
    }

    pub fn api_keys(&self) -> Vec<ApiKeyRow> {
        lock(&self.state).api_keys.clone()
    }
}

impl Faked for FakeNexusDb {
    fn books(&self) -> (&CallLog, &Script, System) {
        (&self.log, &self.script, SYSTEM)
    }
}

#[async_trait]
impl NexusDb for FakeNexusDb {
    async fn find_gapis(&self, url: &str, client_id: &str) -> Result<Vec<GapiRow>> {
        self.run("find_gapis", client_id, || {
            let state = lock(&self.state);
            let rows = state.gapis.iter();
            Ok(rows
                .filter(|r| r.client_id == client_id && same_url(&r.url, url))
                .cloned()
                .collect())
        })
    }

    async fn insert_gapi(&self, url: &str, client_id: &str, secret: &SecretString) -> Result<()> {
        self.run("insert_gapi", url, || {
            self.put_gapi(url, client_id, secret.expose());
            Ok(())
        })
    }

    async fn update_gapi_secret(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<u64> {
        self.run("update_gapi_secret", url, || {
            let mut state = lock(&self.state);
            let rows = state.gapis.iter_mut();
            let mut changed = 0;
            for row in rows.filter(|r| r.url == url && r.client_id == client_id) {
                row.client_secret = secret.clone();
                changed += 1;
            }
            Ok(changed)
        })
    }

    async fn delete_gapis(&self, url: &str, client_id: &str) -> Result<u64> {
        self.run("delete_gapis", url, || {
            let mut state = lock(&self.state);
            let before = state.gapis.len();
            state
                .gapis
                .retain(|r| !(r.url == url && r.client_id == client_id));
            Ok((before - state.gapis.len()) as u64)
        })
    }

    async fn find_api_keys(&self, tenant_id: &str, name: &str) -> Result<Vec<SecretString>> {
        self.run("find_api_keys", name, || {
            let state = lock(&self.state);
            let ours = |r: &&ApiKeyRow| {
                r.name == name
                    && r.tenant_id
                        .as_deref()
                        .is_none_or(|t| t.eq_ignore_ascii_case(tenant_id))
            };
            let keys = state.api_keys.iter().filter(ours);
            Ok(keys.map(|r| SecretString::new(r.id.clone())).collect())
        })
    }

    async fn list_api_key_names(&self) -> Result<Vec<ApiKeyName>> {
        self.run("list_api_key_names", "", || {
            let state = lock(&self.state);
            let mut rows: Vec<ApiKeyName> = state
                .api_keys
                .iter()
                .map(|r| ApiKeyName {
                    name: r.name.clone(),
                    tenant_id: r.tenant_id.clone(),
                })
                .collect();
            rows.sort();
            Ok(rows)
        })
    }
}
