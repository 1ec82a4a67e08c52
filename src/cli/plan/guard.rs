//! The upstreams as `plan` sees them: every read goes through, and what the steps compare is
//! kept so that a change can be shown field by field; no write ever leaves the process.
//!
//! Under [`Writes::Refuse`] (the observed passes) a write is a fault of the step code: it is
//! answered with an error and kept, and the plan fails. Under [`Writes::Record`] (a deletion's
//! cleanup, which only Manage runs) a delete is kept as what the cleanup would delete and
//! answered as done, so that the cleanup code goes on to what it would delete next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::api::common::normal_url;
use crate::runbook::Connector;
use crate::secret::{Credentials, SecretString};
use crate::upstream::environment::{ContactCenter, Setting};
use crate::upstream::error::Result;
use crate::upstream::gws_auth::{ClientRegistration, Grant, OAuthClient, Token};
use crate::upstream::nexus::{ProvisionedTenant, TenantInfo, TenantRequest};
use crate::upstream::nexus_db::{ApiKeyName, GapiRow};
use crate::upstream::{
    EnvironmentApi, ErrorKind, GwsAuthApi, NexusApi, NexusDb, System, UpstreamError,
};

/// What a write is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Refused with an error: a look must not write.
    Refuse,
    /// A delete kept and answered as done; anything else refused.
    Record,
}

/// A write that a step asked for and that did not leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub system: System,
    pub operation: &'static str,
    /// What it was for: a client id, a contact center, "url clientid" (never a secret).
    pub target: String,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.system, self.operation, self.target)
    }
}

/// What the guarded clients saw and were asked, shared by all of them.
#[derive(Default)]
pub struct Seen {
    clients: Mutex<HashMap<String, Option<OAuthClient>>>,
    settings: Mutex<HashMap<String, Vec<Setting>>>,
    writes: Mutex<Vec<Attempt>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn at(url: &str, id: &str) -> String {
    format!("{}|{id}", normal_url(url))
}

impl Seen {
    /// The client as the last GET on this GWS Auth found it: `None` when never asked,
    /// `Some(None)` when it was absent.
    pub fn client(&self, auth_url: &str, client_id: &str) -> Option<Option<OAuthClient>> {
        lock(&self.clients).get(&at(auth_url, client_id)).cloned()
    }

    /// The settings of a contact center as last listed.
    pub fn settings(&self, environment_url: &str, contact_center_id: &str) -> Option<Vec<Setting>> {
        lock(&self.settings)
            .get(&at(environment_url, contact_center_id))
            .cloned()
    }

    /// Every write asked for, in order.
    pub fn writes(&self) -> Vec<Attempt> {
        lock(&self.writes).clone()
    }

    fn attempt(&self, system: System, operation: &'static str, target: String) {
        lock(&self.writes).push(Attempt {
            system,
            operation,
            target,
        });
    }
}

/// A [`Connector`] whose clients let reads through and no write.
pub struct GuardedConnector {
    inner: Arc<dyn Connector>,
    guard: Arc<Guard>,
}

struct Guard {
    writes: Writes,
    seen: Arc<Seen>,
}

impl Guard {
    /// A write that did not leave: kept, then answered by the mode (`done` when recorded).
    fn write<T>(
        &self,
        system: System,
        operation: &'static str,
        target: String,
        done: Option<T>,
    ) -> Result<T> {
        self.seen.attempt(system, operation, target);
        match (self.writes, done) {
            (Writes::Record, Some(value)) => Ok(value),
            _ => Err(UpstreamError::new(
                system,
                operation,
                ErrorKind::Rejected,
                "dc-operator plan writes nothing: the write was not sent",
            )),
        }
    }
}

impl GuardedConnector {
    pub fn new(inner: Arc<dyn Connector>, writes: Writes, seen: Arc<Seen>) -> Self {
        Self {
            inner,
            guard: Arc::new(Guard { writes, seen }),
        }
    }
}

impl Connector for GuardedConnector {
    fn gws_auth(&self, auth_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>> {
        Ok(Arc::new(Auth {
            inner: self.inner.gws_auth(auth_url, ca_pem)?,
            url: auth_url.to_string(),
            guard: self.guard.clone(),
        }))
    }

    fn environment(
        &self,
        environment_url: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Arc<dyn EnvironmentApi>> {
        Ok(Arc::new(Environment {
            inner: self.inner.environment(environment_url, ca_pem)?,
            url: environment_url.to_string(),
            guard: self.guard.clone(),
        }))
    }

    fn nexus(&self, nexus_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn NexusApi>> {
        Ok(Arc::new(Nexus {
            inner: self.inner.nexus(nexus_url, ca_pem)?,
            guard: self.guard.clone(),
        }))
    }

    fn nexus_db(&self, database_url: &SecretString) -> Result<Arc<dyn NexusDb>> {
        Ok(Arc::new(Db {
            inner: self.inner.nexus_db(database_url)?,
            guard: self.guard.clone(),
        }))
    }
}

struct Auth {
    inner: Arc<dyn GwsAuthApi>,
    url: String,
    guard: Arc<Guard>,
}

#[async_trait]
impl GwsAuthApi for Auth {
    async fn list_clients(&self, ops: &Credentials) -> Result<Vec<OAuthClient>> {
        self.inner.list_clients(ops).await
    }

    async fn get_client(&self, ops: &Credentials, client_id: &str) -> Result<Option<OAuthClient>> {
        let found = self.inner.get_client(ops, client_id).await?;
        lock(&self.guard.seen.clients).insert(at(&self.url, client_id), found.clone());
        Ok(found)
    }

    async fn create_client(
        &self,
        _: &Credentials,
        client: &ClientRegistration,
    ) -> Result<OAuthClient> {
        let target = client.client_id.clone();
        self.guard
            .write(System::GwsAuth, "create_client", target, None)
    }

    async fn update_client(&self, _: &Credentials, client_id: &str, _: &Value) -> Result<()> {
        let target = client_id.to_string();
        self.guard
            .write(System::GwsAuth, "update_client", target, None)
    }

    async fn delete_client(&self, _: &Credentials, client_id: &str) -> Result<bool> {
        let target = client_id.to_string();
        self.guard
            .write(System::GwsAuth, "delete_client", target, Some(true))
    }

    /// A token grant is a look: it changes nothing upstream.
    async fn token(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
    ) -> Result<Token> {
        self.inner.token(client_id, client_secret, grant).await
    }
}

struct Environment {
    inner: Arc<dyn EnvironmentApi>,
    url: String,
    guard: Arc<Guard>,
}

#[async_trait]
impl EnvironmentApi for Environment {
    async fn list_contact_centers(&self, ops: &Credentials) -> Result<Vec<ContactCenter>> {
        self.inner.list_contact_centers(ops).await
    }

    async fn list_settings(&self, ops: &Credentials, cc: &str) -> Result<Vec<Setting>> {
        let found = self.inner.list_settings(ops, cc).await?;
        lock(&self.guard.seen.settings).insert(at(&self.url, cc), found.clone());
        Ok(found)
    }

    async fn upsert_setting(&self, _: &Credentials, cc: &str, setting: &Setting) -> Result<()> {
        let target = format!("{} at {cc}", setting.name);
        self.guard
            .write(System::Environment, "upsert_setting", target, None)
    }
}

struct Nexus {
    inner: Arc<dyn NexusApi>,
    guard: Arc<Guard>,
}

#[async_trait]
impl NexusApi for Nexus {
    async fn register_ucs(&self, _: &SecretString, cc: &str, _: &str) -> Result<()> {
        let target = cc.to_string();
        self.guard
            .write(System::Nexus, "register_ucs", target, None)
    }

    async fn delete_ucs(&self, _: &SecretString, cc: &str) -> Result<bool> {
        let target = cc.to_string();
        self.guard
            .write(System::Nexus, "delete_ucs", target, Some(true))
    }

    async fn create_tenant(
        &self,
        _: &SecretString,
        tenant: &TenantRequest,
    ) -> Result<ProvisionedTenant> {
        let target = tenant.contact_center_id.clone();
        self.guard
            .write(System::Nexus, "create_tenant", target, None)
    }

    async fn get_tenant(&self, bearer: &SecretString, cc: &str) -> Result<Option<TenantInfo>> {
        self.inner.get_tenant(bearer, cc).await
    }

    async fn update_tenant(&self, _: &SecretString, tenant: &TenantRequest) -> Result<()> {
        let target = tenant.contact_center_id.clone();
        self.guard
            .write(System::Nexus, "update_tenant", target, None)
    }

    async fn delete_tenant(&self, _: &SecretString, cc: &str) -> Result<bool> {
        let target = cc.to_string();
        self.guard
            .write(System::Nexus, "delete_tenant", target, Some(true))
    }
}

struct Db {
    inner: Arc<dyn NexusDb>,
    guard: Arc<Guard>,
}

#[async_trait]
impl NexusDb for Db {
    async fn find_gapis(&self, url: &str, client_id: &str) -> Result<Vec<GapiRow>> {
        self.inner.find_gapis(url, client_id).await
    }

    async fn insert_gapi(&self, url: &str, client_id: &str, _: &SecretString) -> Result<()> {
        let target = format!("{url} {client_id}");
        self.guard
            .write(System::NexusDb, "insert_gapi", target, None)
    }

    async fn update_gapi_secret(
        &self,
        url: &str,
        client_id: &str,
        _: &SecretString,
    ) -> Result<u64> {
        let target = format!("{url} {client_id}");
        self.guard
            .write(System::NexusDb, "update_gapi_secret", target, None)
    }

    async fn delete_gapis(&self, url: &str, client_id: &str) -> Result<u64> {
        let target = format!("{url} {client_id}");
        self.guard
            .write(System::NexusDb, "delete_gapis", target, Some(1))
    }

    async fn find_api_keys(&self, tenant_id: &str, name: &str) -> Result<Vec<SecretString>> {
        self.inner.find_api_keys(tenant_id, name).await
    }

    async fn list_api_key_names(&self) -> Result<Vec<ApiKeyName>> {
        self.inner.list_api_key_names().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeConnector, WRITES};

    /// Every write method of every client, against fakes that would carry it out: none
    /// reaches them; refused, each is an error; recorded, only the deletes are answered.
    #[tokio::test]
    async fn no_write_reaches_an_upstream_in_either_mode() {
        for mode in [Writes::Refuse, Writes::Record] {
            let fakes = Arc::new(FakeConnector::default());
            let seen = Arc::new(Seen::default());
            let guarded = GuardedConnector::new(fakes.clone(), mode, seen.clone());
            let answered = write_everything(&guarded).await;
            assert_eq!(fakes.log.writes(), Vec::<&str>::new(), "{mode:?}");
            let mut asked: Vec<&str> = seen.writes().iter().map(|a| a.operation).collect();
            asked.sort_unstable();
            let mut every = WRITES.to_vec();
            every.sort_unstable();
            assert_eq!(asked, every, "{mode:?}: every write tried, and kept");
            let expected: Vec<&str> = match mode {
                Writes::Refuse => vec![],
                Writes::Record => vec![
                    "delete_client",
                    "delete_gapis",
                    "delete_tenant",
                    "delete_ucs",
                ],
            };
            assert_eq!(answered, expected, "{mode:?}");
        }
    }

    fn sample() -> (
        Credentials,
        SecretString,
        ClientRegistration,
        TenantRequest,
        Setting,
    ) {
        let s = SecretString::new("s");
        let url = "https://x.example.com";
        let ops = Credentials {
            username: "ops".into(),
            password: s.clone(),
        };
        let reg = ClientRegistration {
            client_id: "c".into(),
            secret: s.clone(),
            description: "d".into(),
            redirect_uri: url.into(),
            previous_redirect_uri: None,
            access_token_expiration_timeout: 1,
            refresh_token_expiration_timeout: 1,
        };
        let request = TenantRequest {
            contact_center_id: "cc".into(),
            name: "t".into(),
            type_: "PureEngage".into(),
            backend_url: url.into(),
            username: "u".into(),
            password: s.clone(),
            genesys_tenant_id: 1,
        };
        let setting = Setting {
            name: "chatservice-uri".into(),
            location: "/".into(),
            value: Value::Null,
            shared: false,
        };
        (ops, s, reg, request, setting)
    }

    /// Calls every write; the operations answered Ok, sorted.
    async fn write_everything(c: &GuardedConnector) -> Vec<&'static str> {
        let (ops, s, reg, request, setting) = sample();
        let url = "https://x.example.com";
        let auth = c.gws_auth(url, None).unwrap();
        let env = c.environment(url, None).unwrap();
        let (nexus, db) = (c.nexus(url, None).unwrap(), c.nexus_db(&s).unwrap());
        let answers = [
            (
                "create_client",
                auth.create_client(&ops, &reg).await.is_ok(),
            ),
            (
                "update_client",
                auth.update_client(&ops, "c", &Value::Null).await.is_ok(),
            ),
            ("delete_client", auth.delete_client(&ops, "c").await.is_ok()),
            (
                "upsert_setting",
                env.upsert_setting(&ops, "cc", &setting).await.is_ok(),
            ),
            (
                "register_ucs",
                nexus.register_ucs(&s, "cc", url).await.is_ok(),
            ),
            ("delete_ucs", nexus.delete_ucs(&s, "cc").await.is_ok()),
            (
                "create_tenant",
                nexus.create_tenant(&s, &request).await.is_ok(),
            ),
            (
                "update_tenant",
                nexus.update_tenant(&s, &request).await.is_ok(),
            ),
            ("delete_tenant", nexus.delete_tenant(&s, "cc").await.is_ok()),
            ("insert_gapi", db.insert_gapi(url, "c", &s).await.is_ok()),
            (
                "update_gapi_secret",
                db.update_gapi_secret(url, "c", &s).await.is_ok(),
            ),
            ("delete_gapis", db.delete_gapis(url, "c").await.is_ok()),
        ];
        let mut ok: Vec<&str> = answers
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(op, _)| *op)
            .collect();
        ok.sort_unstable();
        ok
    }
}
