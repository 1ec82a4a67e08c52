//! Nexus (Digital Channels) provisioning: the PlatformUCS service and the tenant.

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ErrorKind, Result, System, UpstreamError};
use super::gws_auth::urlencode;
use super::http::{Call, HttpClient};
use super::json::Obj;
use crate::api::common::normal_url;
use crate::secret::SecretString;

/// The body of a tenant create (and of the assumed update).
#[derive(Clone, Debug)]
pub struct TenantRequest {
    pub contact_center_id: String,
    pub name: String,
    pub type_: String,
    pub backend_url: String,
    pub username: String,
    /// The tenant user's password: Nexus keeps it to talk to GWS.
    pub password: SecretString,
    pub genesys_tenant_id: i64,
}

impl TenantRequest {
    fn body(&self) -> serde_json::Value {
        json!({
            "id": self.contact_center_id,
            "name": self.name,
            "type": self.type_,
            "backendurl": self.backend_url,
            "username": self.username,
            "token": self.password.expose(),
            "genesystemenantid": self.genesys_tenant_id,
        })
    }
}

/// What a tenant create hands back once, and only once.
#[derive(Clone, Debug)]
pub struct ProvisionedTenant {
    pub api_key: SecretString,
    pub operation_id: Option<String>,
}

/// A tenant as the (assumed) GET shows it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TenantInfo {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub backendurl: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub genesystemenantid: Option<i64>,
}

/// The Nexus provisioning operations.
#[async_trait]
pub trait NexusApi: Send + Sync {
    /// Registers (or re-registers) the PlatformUCS service of a contact center.
    async fn register_ucs(
        &self,
        api_key: &SecretString,
        contact_center_id: &str,
        ucs_url: &str,
    ) -> Result<()>;
    /// `false` when it was already gone.
    async fn delete_ucs(&self, api_key: &SecretString, contact_center_id: &str) -> Result<bool>;
    async fn create_tenant(
        &self,
        bearer: &SecretString,
        tenant: &TenantRequest,
    ) -> Result<ProvisionedTenant>;
    /// Assumed endpoint: `GET .../provisioning/tenants/{ccId}`.
    async fn get_tenant(
        &self,
        bearer: &SecretString,
        contact_center_id: &str,
    ) -> Result<Option<TenantInfo>>;
    /// Assumed endpoint: `PUT .../provisioning/tenants/{ccId}` with the create body.
    async fn update_tenant(&self, bearer: &SecretString, tenant: &TenantRequest) -> Result<()>;
    /// Assumed endpoint; `false` when it was already gone.
    async fn delete_tenant(&self, bearer: &SecretString, contact_center_id: &str) -> Result<bool>;
}

/// The reqwest implementation.
pub struct NexusClient {
    http: HttpClient,
    base: String,
}

impl NexusClient {
    pub fn new(http: HttpClient, nexus_url: &str) -> Self {
        Self {
            http,
            base: format!("{}/nexus/v3/provisioning", normal_url(nexus_url)),
        }
    }

    fn ucs_url(&self, contact_center_id: &str) -> String {
        format!(
            "{}/services/{}/PlatformUCS",
            self.base,
            urlencode(contact_center_id)
        )
    }

    fn tenant_url(&self, contact_center_id: &str) -> String {
        format!("{}/tenants/{}", self.base, urlencode(contact_center_id))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAnswer {
    data: Obj<CreateData>,
    #[serde(default)]
    operation_id: Option<String>,
}

#[derive(Deserialize)]
struct CreateData {
    #[serde(default)]
    xapikey: Option<String>,
}

#[derive(Deserialize)]
struct TenantAnswer {
    data: Obj<TenantInfo>,
}

fn gone_is_false(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl NexusApi for NexusClient {
    async fn register_ucs(
        &self,
        api_key: &SecretString,
        contact_center_id: &str,
        ucs_url: &str,
    ) -> Result<()> {
        let body = json!({"url": ucs_url, "secret": {}, "data": {}});
        let call = Call {
            system: System::Nexus,
            operation: "register_ucs",
            method: Method::POST,
            url: self.ucs_url(contact_center_id),
            build: Box::new(move |r| {
                r.header("x-api-key", api_key.expose())
                    .header("x-ccid", contact_center_id)
                    .json(&body)
            }),
            at_most_once: false,
            sensitive: vec![api_key.clone()],
        };
        self.http.send_unit(&call).await
    }

    async fn delete_ucs(&self, api_key: &SecretString, contact_center_id: &str) -> Result<bool> {
        let call = Call {
            system: System::Nexus,
            operation: "delete_ucs",
            method: Method::DELETE,
            url: self.ucs_url(contact_center_id),
            build: Box::new(move |r| {
                r.header("x-api-key", api_key.expose())
                    .header("x-ccid", contact_center_id)
            }),
            at_most_once: false,
            sensitive: vec![api_key.clone()],
        };
        gone_is_false(self.http.send_unit(&call).await)
    }

    async fn create_tenant(
        &self,
        bearer: &SecretString,
        tenant: &TenantRequest,
    ) -> Result<ProvisionedTenant> {
        let body = tenant.body();
        let call = Call {
            system: System::Nexus,
            operation: "create_tenant",
            method: Method::POST,
            url: format!("{}/tenants", self.base),
            build: Box::new(move |r| r.bearer_auth(bearer.expose()).json(&body)),
            at_most_once: true,
            sensitive: vec![bearer.clone(), tenant.password.clone()],
        };
        let answer: CreateAnswer = self.http.send_json(&call).await?;
        match answer.data.0.xapikey {
            Some(key) if !key.is_empty() => Ok(ProvisionedTenant {
                api_key: SecretString::new(key),
                operation_id: answer.operation_id,
            }),
            _ => Err(UpstreamError::new(
                System::Nexus,
                "create_tenant",
                ErrorKind::InvalidAnswer,
                "the answer holds no data.xapikey",
            )),
        }
    }

    async fn get_tenant(
        &self,
        bearer: &SecretString,
        contact_center_id: &str,
    ) -> Result<Option<TenantInfo>> {
        let call = Call {
            system: System::Nexus,
            operation: "get_tenant",
            method: Method::GET,
            url: self.tenant_url(contact_center_id),
            build: Box::new(move |r| r.bearer_auth(bearer.expose())),
            at_most_once: false,
            sensitive: vec![bearer.clone()],
        };
        Ok(self
            .http
            .send_optional::<TenantAnswer>(&call)
            .await?
            .map(|a| a.data.0))
    }

    async fn update_tenant(&self, bearer: &SecretString, tenant: &TenantRequest) -> Result<()> {
        let body = tenant.body();
        let call = Call {
            system: System::Nexus,
            operation: "update_tenant",
            method: Method::PUT,
            url: self.tenant_url(&tenant.contact_center_id),
            build: Box::new(move |r| r.bearer_auth(bearer.expose()).json(&body)),
            at_most_once: false,
            sensitive: vec![bearer.clone(), tenant.password.clone()],
        };
        self.http.send_unit(&call).await
    }

    async fn delete_tenant(&self, bearer: &SecretString, contact_center_id: &str) -> Result<bool> {
        let call = Call {
            system: System::Nexus,
            operation: "delete_tenant",
            method: Method::DELETE,
            url: self.tenant_url(contact_center_id),
            build: Box::new(move |r| r.bearer_auth(bearer.expose())),
            at_most_once: false,
            sensitive: vec![bearer.clone()],
        };
        gone_is_false(self.http.send_unit(&call).await)
    }
}
