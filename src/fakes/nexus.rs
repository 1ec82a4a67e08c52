//! Nexus provisioning in memory: tenants, their PlatformUCS services, and the `nex_apikeys`
//! row each tenant create writes into the fake database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{ApiKeyRow, CallLog, FakeGwsAuth, FakeNexusDb, Faked, Script, lock, unauthorized};
use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::nexus::{NexusApi, ProvisionedTenant, TenantInfo, TenantRequest};
use crate::upstream::{ErrorKind, System, UpstreamError};

const SYSTEM: System = System::Nexus;

#[derive(Default)]
struct State {
    /// Contact center id (lower-cased) → the tenant and the password it holds.
    tenants: HashMap<String, (TenantInfo, String)>,
    /// Contact center id (lower-cased) → PlatformUCS URL.
    ucs: HashMap<String, String>,
    created: u64,
    /// The (assumed) tenant GET is not served: every GET answers 404, as an unknown route.
    no_tenant_get: bool,
}

/// Nexus, trusting the bearer tokens the fake GWS Auth issued.
pub struct FakeNexus {
    pub log: CallLog,
    pub script: Script,
    auth: Arc<FakeGwsAuth>,
    db: Arc<FakeNexusDb>,
    state: Mutex<State>,
}

fn not_found(operation: &'static str) -> UpstreamError {
    UpstreamError::new(SYSTEM, operation, ErrorKind::NotFound, "not found").with_status(404)
}

impl FakeNexus {
    pub fn new(log: CallLog, auth: Arc<FakeGwsAuth>, db: Arc<FakeNexusDb>) -> Self {
        Self {
            log,
            script: Script::default(),
            auth,
            db,
            state: Mutex::new(State::default()),
        }
    }

    /// The tenant GET answers 404 whatever the tenant: a Nexus without that route.
    pub fn without_tenant_get(&self) {
        lock(&self.state).no_tenant_get = true;
    }

    /// The tenant at a contact center, as Nexus holds it.
    pub fn tenant(&self, contact_center_id: &str) -> Option<TenantInfo> {
        let state = lock(&self.state);
        let key = contact_center_id.to_ascii_lowercase();
        state.tenants.get(&key).map(|t| t.0.clone())
    }

    /// The password Nexus keeps for the tenant (to talk to GWS).
    pub fn tenant_password(&self, contact_center_id: &str) -> Option<String> {
        let state = lock(&self.state);
        let key = contact_center_id.to_ascii_lowercase();
        state.tenants.get(&key).map(|t| t.1.clone())
    }

    /// Removes a tenant behind the operator's back (its key row stays).
    pub fn remove_tenant(&self, contact_center_id: &str) {
        lock(&self.state)
            .tenants
            .remove(&contact_center_id.to_ascii_lowercase());
    }

    /// Removes a PlatformUCS registration behind the operator's back.
    pub fn remove_ucs(&self, contact_center_id: &str) {
        lock(&self.state)
            .ucs
            .remove(&contact_center_id.to_ascii_lowercase());
    }

    /// The PlatformUCS URL registered for a contact center.
    pub fn ucs(&self, contact_center_id: &str) -> Option<String> {
        let state = lock(&self.state);
        state
            .ucs
            .get(&contact_center_id.to_ascii_lowercase())
            .cloned()
    }

    fn bearer(&self, token: &SecretString, operation: &'static str) -> Result<()> {
        if self.auth.is_live(token.expose()) {
            Ok(())
        } else {
            Err(unauthorized(SYSTEM, operation, "invalid bearer token"))
        }
    }

    /// `x-api-key`: a live GWS access token or a key of `nex_apikeys` (as the simulator).
    fn api_key(&self, key: &SecretString, operation: &'static str) -> Result<()> {
        let known = self.db.api_keys().iter().any(|r| r.id == key.expose());
        if known || self.auth.is_live(key.expose()) {
            Ok(())
        } else {
            Err(unauthorized(SYSTEM, operation, "invalid x-api-key"))
        }
    }

    fn info(tenant: &TenantRequest) -> TenantInfo {
        TenantInfo {
            id: tenant.contact_center_id.clone(),
            name: Some(tenant.name.clone()),
            type_: Some(tenant.type_.clone()),
            backendurl: Some(tenant.backend_url.clone()),
            username: Some(tenant.username.clone()),
            genesystemenantid: Some(tenant.genesys_tenant_id),
        }
    }

    fn create(&self, tenant: &TenantRequest) -> Result<ProvisionedTenant> {
        const OP: &str = "create_tenant";
        let mut state = lock(&self.state);
        let key = tenant.contact_center_id.to_ascii_lowercase();
        if state.tenants.contains_key(&key) {
            let e = UpstreamError::new(SYSTEM, OP, ErrorKind::Conflict, "Resource already exists");
            return Err(e.with_status(409));
        }
        state.created += 1;
        let api_key = format!("xapikey-{}-{}", tenant.name, state.created);
        let entry = (Self::info(tenant), tenant.password.expose().to_string());
        state.tenants.insert(key, entry);
        self.db.put_api_key(ApiKeyRow {
            id: api_key.clone(),
            name: tenant.name.clone(),
            tenant_id: Some(tenant.contact_center_id.clone()),
        });
        Ok(ProvisionedTenant {
            api_key: SecretString::new(api_key),
            operation_id: Some(format!("operation-{}", state.created)),
        })
    }
}

impl Faked for FakeNexus {
    fn books(&self) -> (&CallLog, &Script, System) {
        (&self.log, &self.script, SYSTEM)
    }
}

#[async_trait]
impl NexusApi for FakeNexus {
    async fn register_ucs(
        &self,
        api_key: &SecretString,
        contact_center_id: &str,
        ucs_url: &str,
    ) -> Result<()> {
        const OP: &str = "register_ucs";
        self.run(OP, contact_center_id, || {
            self.api_key(api_key, OP)?;
            // A repeated registration replaces the service (as the simulator).
            let key = contact_center_id.to_ascii_lowercase();
            lock(&self.state).ucs.insert(key, ucs_url.to_string());
            Ok(())
        })
    }

    async fn delete_ucs(&self, api_key: &SecretString, contact_center_id: &str) -> Result<bool> {
        const OP: &str = "delete_ucs";
        self.run(OP, contact_center_id, || {
            self.api_key(api_key, OP)?;
            let key = contact_center_id.to_ascii_lowercase();
            Ok(lock(&self.state).ucs.remove(&key).is_some())
        })
    }

    async fn create_tenant(
        &self,
        bearer: &SecretString,
        tenant: &TenantRequest,
    ) -> Result<ProvisionedTenant> {
        const OP: &str = "create_tenant";
        self.run(OP, &tenant.contact_center_id, || {
            self.bearer(bearer, OP)?;
            self.create(tenant)
        })
    }

    async fn get_tenant(
        &self,
        bearer: &SecretString,
        contact_center_id: &str,
    ) -> Result<Option<TenantInfo>> {
        const OP: &str = "get_tenant";
        self.run(OP, contact_center_id, || {
            self.bearer(bearer, OP)?;
            if lock(&self.state).no_tenant_get {
                return Ok(None);
            }
            Ok(self.tenant(contact_center_id))
        })
    }

    async fn update_tenant(&self, bearer: &SecretString, tenant: &TenantRequest) -> Result<()> {
        const OP: &str = "update_tenant";
        self.run(OP, &tenant.contact_center_id, || {
            self.bearer(bearer, OP)?;
            let mut state = lock(&self.state);
            let key = tenant.contact_center_id.to_ascii_lowercase();
            let Some(found) = state.tenants.get_mut(&key) else {
                return Err(not_found(OP));
            };
            *found = (Self::info(tenant), tenant.password.expose().to_string());
            Ok(())
        })
    }

    async fn delete_tenant(&self, bearer: &SecretString, contact_center_id: &str) -> Result<bool> {
        const OP: &str = "delete_tenant";
        self.run(OP, contact_center_id, || {
            self.bearer(bearer, OP)?;
            let key = contact_center_id.to_ascii_lowercase();
            Ok(lock(&self.state).tenants.remove(&key).is_some())
        })
    }
}
