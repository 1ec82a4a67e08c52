//! A connector that hands out the same four fakes whatever the URLs, sharing one call log.

use std::sync::Arc;

use super::{CallLog, FakeEnvironment, FakeGwsAuth, FakeNexus, FakeNexusDb, Script};
use crate::runbook::Connector;
use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::{EnvironmentApi, GwsAuthApi, NexusApi, NexusDb, System};

/// The four fakes, wired as the real services are: Nexus trusts GWS Auth's tokens and
/// writes its key rows into the database. Its own script can refuse to build a client
/// (operations `connect_gws_auth`, `connect_environment`, `connect_nexus`, `connect_nexus_db`).
pub struct FakeConnector {
    /// Every call of every fake, in order.
    pub log: CallLog,
    pub script: Script,
    pub auth: Arc<FakeGwsAuth>,
    pub environment: Arc<FakeEnvironment>,
    pub nexus: Arc<FakeNexus>,
    pub db: Arc<FakeNexusDb>,
}

impl Default for FakeConnector {
    fn default() -> Self {
        let log = CallLog::default();
        let auth = Arc::new(FakeGwsAuth::new(log.clone()));
        let db = Arc::new(FakeNexusDb::new(log.clone()));
        Self {
            environment: Arc::new(FakeEnvironment::new(log.clone())),
            nexus: Arc::new(FakeNexus::new(log.clone(), auth.clone(), db.clone())),
            auth,
            db,
            log,
            script: Script::default(),
        }
    }
}

impl FakeConnector {
    fn connect<T>(&self, operation: &'static str, system: System, client: T) -> Result<T> {
        // Building a client is not a call upstream: it is scripted, not logged.
        match self.script.take(operation)? {
            None => Ok(client),
            Some(e) => Err(e),
        }
        .map_err(|mut e| {
            e.system = system;
            e
        })
    }
}

impl Connector for FakeConnector {
    fn gws_auth(&self, _: &str, _: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>> {
        let auth: Arc<dyn GwsAuthApi> = self.auth.clone();
        self.connect("connect_gws_auth", System::GwsAuth, auth)
    }

    fn environment(&self, _: &str, _: Option<&[u8]>) -> Result<Arc<dyn EnvironmentApi>> {
        let environment: Arc<dyn EnvironmentApi> = self.environment.clone();
        self.connect("connect_environment", System::Environment, environment)
    }

    fn nexus(&self, _: &str, _: Option<&[u8]>) -> Result<Arc<dyn NexusApi>> {
        let nexus: Arc<dyn NexusApi> = self.nexus.clone();
        self.connect("connect_nexus", System::Nexus, nexus)
    }

    fn nexus_db(&self, _: &SecretString) -> Result<Arc<dyn NexusDb>> {
        let db: Arc<dyn NexusDb> = self.db.clone();
        self.connect("connect_nexus_db", System::NexusDb, db)
    }
}
