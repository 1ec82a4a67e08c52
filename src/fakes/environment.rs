//! The GWS Environment API in memory: contact centers and their settings.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{CallLog, Faked, Script, lock, unauthorized};
use crate::secret::Credentials;
use crate::upstream::environment::{ContactCenter, EnvironmentApi, Setting};
use crate::upstream::error::Result;
use crate::upstream::{ErrorKind, System, UpstreamError};

const SYSTEM: System = System::Environment;

#[derive(Default)]
struct State {
    centers: Vec<ContactCenter>,
    /// Contact center id (lower-cased) → its settings.
    settings: HashMap<String, Vec<Setting>>,
}

/// The Environment API, `ops:ops`, with no contact center.
pub struct FakeEnvironment {
    pub log: CallLog,
    pub script: Script,
    state: Mutex<State>,
}

impl Default for FakeEnvironment {
    fn default() -> Self {
        Self::new(CallLog::default())
    }
}

impl FakeEnvironment {
    pub fn new(log: CallLog) -> Self {
        Self {
            log,
            script: Script::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// A contact center with these domains.
    pub fn put_contact_center(&self, id: &str, domains: &[&str]) {
        lock(&self.state).centers.push(ContactCenter {
            id: id.to_string(),
            environment_id: Some("env-1".to_string()),
            domains: domains.iter().map(|d| d.to_string()).collect(),
        });
    }

    /// A setting made elsewhere (by hand, an older version).
    pub fn put_setting(&self, contact_center_id: &str, setting: Setting) {
        let mut state = lock(&self.state);
        let list = state
            .settings
            .entry(contact_center_id.to_ascii_lowercase())
            .or_default();
        list.retain(|s| s.name != setting.name);
        list.push(setting);
    }

    /// The settings of a contact center as GWS holds them.
    pub fn settings(&self, contact_center_id: &str) -> Vec<Setting> {
        let state = lock(&self.state);
        let key = contact_center_id.to_ascii_lowercase();
        state.settings.get(&key).cloned().unwrap_or_default()
    }

    fn check(&self, ops: &Credentials, operation: &'static str, cc: Option<&str>) -> Result<()> {
        if ops.username != "ops" || ops.password.expose() != "ops" {
            return Err(unauthorized(SYSTEM, operation, "Bad credentials"));
        }
        let known = |cc: &str| {
            let state = lock(&self.state);
            state.centers.iter().any(|c| c.id.eq_ignore_ascii_case(cc))
        };
        match cc {
            Some(cc) if !known(cc) => Err(UpstreamError::new(
                SYSTEM,
                operation,
                ErrorKind::NotFound,
                "no such contact center",
            )
            .with_status(404)),
            _ => Ok(()),
        }
    }
}

impl Faked for FakeEnvironment {
    fn books(&self) -> (&CallLog, &Script, System) {
        (&self.log, &self.script, SYSTEM)
    }
}

#[async_trait]
impl EnvironmentApi for FakeEnvironment {
    async fn list_contact_centers(&self, ops: &Credentials) -> Result<Vec<ContactCenter>> {
        const OP: &str = "list_contact_centers";
        self.run(OP, "", || {
            self.check(ops, OP, None)?;
            Ok(lock(&self.state).centers.clone())
        })
    }

    async fn list_settings(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
    ) -> Result<Vec<Setting>> {
        const OP: &str = "list_settings";
        self.run(OP, contact_center_id, || {
            self.check(ops, OP, Some(contact_center_id))?;
            Ok(self.settings(contact_center_id))
        })
    }

    /// Posting a name that exists overwrites it.
    async fn upsert_setting(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
        setting: &Setting,
    ) -> Result<()> {
        const OP: &str = "upsert_setting";
        self.run(OP, contact_center_id, || {
            self.check(ops, OP, Some(contact_center_id))?;
            self.put_setting(contact_center_id, setting.clone());
            Ok(())
        })
    }
}
