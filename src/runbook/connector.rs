//! Builds the clients for the URLs and credentials of a resource, and keeps them: a
//! controller reconciles the same environment again and again, and must not open a new
//! connection pool or TLS setup each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::http::HttpConfig;
use crate::upstream::{
    EnvironmentApi, EnvironmentClient, ErrorKind, GwsAuthApi, GwsAuthClient, HttpClient, NexusApi,
    NexusClient, NexusDb, PgNexusDb, System, UpstreamError,
};

/// Hands out a client per external system. Tests swap in fakes or point at the simulator.
pub trait Connector: Send + Sync {
    /// `ca_pem` is an extra CA bundle from the environment's `tls.caSecret`.
    fn gws_auth(&self, auth_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>>;
    fn environment(
        &self,
        environment_url: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Arc<dyn EnvironmentApi>>;
    fn nexus(&self, nexus_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn NexusApi>>;
    fn nexus_db(&self, database_url: &SecretString) -> Result<Arc<dyn NexusDb>>;
}

/// The real clients: reqwest and sqlx, cached by CA bundle and database URL.
pub struct RealConnector {
    config: HttpConfig,
    http: Mutex<HashMap<Option<Vec<u8>>, HttpClient>>,
    pools: Mutex<HashMap<String, Arc<PgNexusDb>>>,
}

impl RealConnector {
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
            http: Mutex::default(),
            pools: Mutex::default(),
        }
    }

    fn http(&self, system: System, ca_pem: Option<&[u8]>) -> Result<HttpClient> {
        let key = ca_pem.map(<[u8]>::to_vec);
        let mut cache = self.http.lock().expect("http cache lock");
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let mut config = self.config.clone();
        if let Some(pem) = ca_pem {
            // The environment's CA comes on top of the process-wide extra CA, if any.
            let mut bundle = config.ca_bundle_pem.take().unwrap_or_default();
            bundle.push(b'\n');
            bundle.extend_from_slice(pem);
            config.ca_bundle_pem = Some(bundle);
        }
        let client = HttpClient::new(&config).map_err(|message| {
            UpstreamError::new(system, "configure", ErrorKind::Rejected, message)
        })?;
        cache.insert(key, client.clone());
        Ok(client)
    }
}

impl Connector for RealConnector {
    fn gws_auth(&self, auth_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>> {
        Ok(Arc::new(GwsAuthClient::new(
            self.http(System::GwsAuth, ca_pem)?,
            auth_url,
        )))
    }

    fn environment(
        &self,
        environment_url: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Arc<dyn EnvironmentApi>> {
        Ok(Arc::new(EnvironmentClient::new(
            self.http(System::Environment, ca_pem)?,
            environment_url,
        )))
    }

    fn nexus(&self, nexus_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn NexusApi>> {
        Ok(Arc::new(NexusClient::new(
            self.http(System::Nexus, ca_pem)?,
            nexus_url,
        )))
    }

    fn nexus_db(&self, database_url: &SecretString) -> Result<Arc<dyn NexusDb>> {
        let mut pools = self.pools.lock().expect("pool cache lock");
        if let Some(db) = pools.get(database_url.expose()) {
            return Ok(db.clone());
        }
        let db = Arc::new(PgNexusDb::connect_lazy(database_url)?);
        pools.insert(database_url.expose().to_string(), db.clone());
        Ok(db)
    }
}
