//! The Nexus database as the runbook uses it: every error says which Secret holds the URL
//! (`Secret dc/nexus-db key url`), so that a person knows where to look; never the URL.

use std::sync::Arc;

use async_trait::async_trait;

use super::connector::Connector;
use super::environment::ResolvedEnvironment;
use super::report::{Reason, StepError};
use crate::secret::SecretString;
use crate::upstream::nexus_db::{ApiKeyName, GapiRow, NexusDb};
use crate::upstream::{ErrorKind, UpstreamError};

impl ResolvedEnvironment {
    /// The environment's Nexus database. A URL the pool refuses is the Secret's fault
    /// (`InvalidSecret`); any later error names the Secret too.
    pub fn nexus_db(
        &self,
        connector: &dyn Connector,
    ) -> std::result::Result<Arc<dyn NexusDb>, StepError> {
        let from = &self.database_url_from;
        match connector.nexus_db(&self.database_url) {
            Ok(inner) => Ok(Arc::new(Located {
                inner,
                from: from.clone(),
            })),
            // Making the pool connects nowhere: what it refuses is the URL in the Secret.
            Err(e) if e.kind == ErrorKind::Rejected => Err(StepError::permanent(
                Reason::InvalidSecret,
                format!("{from} (Nexus database URL): {}", e.detail),
            )),
            Err(e) => Err(StepError::from_upstream(&located(e, from), "")),
        }
    }
}

fn located(mut error: UpstreamError, from: &str) -> UpstreamError {
    error.detail = format!("{} (database URL from {from})", error.detail);
    error
}

/// A [`NexusDb`] whose errors name where its URL comes from.
struct Located {
    inner: Arc<dyn NexusDb>,
    from: String,
}

type Result<T> = std::result::Result<T, UpstreamError>;

impl Located {
    fn said<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| located(e, &self.from))
    }
}

#[async_trait]
impl NexusDb for Located {
    async fn find_gapis(&self, url: &str, client_id: &str) -> Result<Vec<GapiRow>> {
        self.said(self.inner.find_gapis(url, client_id).await)
    }

    async fn insert_gapi(&self, url: &str, client_id: &str, secret: &SecretString) -> Result<()> {
        self.said(self.inner.insert_gapi(url, client_id, secret).await)
    }

    async fn update_gapi_secret(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<u64> {
        self.said(self.inner.update_gapi_secret(url, client_id, secret).await)
    }

    async fn delete_gapis(&self, url: &str, client_id: &str) -> Result<u64> {
        self.said(self.inner.delete_gapis(url, client_id).await)
    }

    async fn find_api_keys(&self, tenant_id: &str, name: &str) -> Result<Vec<SecretString>> {
        self.said(self.inner.find_api_keys(tenant_id, name).await)
    }

    async fn list_api_key_names(&self) -> Result<Vec<ApiKeyName>> {
        self.said(self.inner.list_api_key_names().await)
    }
}
