//! The operator for real (both controllers, watches, the Secret index, status writes,
//! finalizers) against the in-memory API server, the simulator and a real PostgreSQL: what
//! the controller suites stand on.

use std::sync::Arc;
use std::time::Duration;

use super::fake_apiserver::FakeApiServer;
use super::{Sim, environment, runbook, tenant};
use digital_channels_operator::api::conditions::{Condition, ConditionStatus, find};
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::controller::{Context, ControllerConfig, run_scope};
use digital_channels_operator::simulator::SimulatorConfig;
use k8s_openapi::api::core::v1::Secret;
use tokio_util::sync::CancellationToken;

pub const NS: &str = "dc";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Harness {
    pub api: FakeApiServer,
    pub sim: Sim,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    /// The controllers' settings, kept for [`Harness::restart_operator`].
    pub controller: ControllerConfig,
    /// The running operator's context (replaced by a restart).
    pub ctx: Arc<Context>,
}

/// The controllers' settings of [`Harness::start`]: fast retries, no resync.
pub fn test_controller_config() -> ControllerConfig {
    ControllerConfig {
        // Long enough that only watches, never the resync, drive these tests.
        resync_interval: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        rollout_timeout: Duration::from_secs(60),
        pod_name: None,
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(SimulatorConfig::default()).await
    }

    /// A new operator process on the same API server: new Context and Runbook, so no
    /// cache, token or pending key survives.
    pub fn spawn_operator(api: &FakeApiServer) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        Self::spawn_operator_with(api, test_controller_config())
    }

    /// [`Harness::spawn_operator`] with other controller settings.
    pub fn spawn_operator_with(
        api: &FakeApiServer,
        controller: ControllerConfig,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let (_, stop, task) = Self::spawn_operator_ctx(api, controller);
        (stop, task)
    }

    /// [`Harness::spawn_operator_with`], giving the operator's context too.
    pub fn spawn_operator_ctx(
        api: &FakeApiServer,
        controller: ControllerConfig,
    ) -> (Arc<Context>, CancellationToken, tokio::task::JoinHandle<()>) {
        let ctx = Arc::new(Context::new(api.client(), runbook(), controller));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_scope(
            ctx.clone(),
            Some(NS.to_string()),
            4,
            stop.clone(),
        ));
        (ctx, stop, task)
    }

    /// Kills the operator (no graceful end of its passes) and starts a new one.
    pub async fn restart_operator(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        let (ctx, stop, task) = Self::spawn_operator_ctx(&self.api, self.controller.clone());
        self.ctx = ctx;
        self.stop = stop;
        self.task = task;
    }

    pub async fn start_with(config: SimulatorConfig) -> Self {
        let sim = Sim::start_with(config).await;
        Self::start_custom(sim, test_controller_config()).await
    }

    /// The operator with these controller settings against a simulator the caller started
    /// (on a database server of its own, say), with the standard Secrets; `nexus-db` holds
    /// the simulator's database URL.
    pub async fn start_custom(sim: Sim, controller: ControllerConfig) -> Self {
        let api = FakeApiServer::start().await;
        let (ctx, stop, task) = Self::spawn_operator_ctx(&api, controller.clone());
        let h = Self {
            api,
            sim,
            stop,
            task,
            controller,
            ctx,
        };
        h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
        h.secret("nexus-db", &[("url", &h.sim.db.url)]);
        h.secret(
            "t100-user",
            &[("username", "nexus"), ("password", "nexus_password")],
        );
        h
    }

    pub fn secret(&self, name: &str, pairs: &[(&str, &str)]) {
        self.api.apply_as(&super::secret_manifest(NS, name, pairs));
    }

    pub fn env(&self, edit: impl FnOnce(&mut DigitalChannelsEnvironment)) {
        let mut env = environment(&self.sim.url());
        env.metadata.uid = None;
        edit(&mut env);
        self.api.apply_as(&env);
    }

    pub fn tenant(&self, edit: impl FnOnce(&mut DigitalChannelsTenant)) {
        let mut t = tenant("t100", "t100", true);
        t.metadata.uid = None;
        edit(&mut t);
        self.api.apply_as(&t);
    }

    pub fn get_tenant(&self) -> Option<DigitalChannelsTenant> {
        self.api.get_as::<DigitalChannelsTenant>(NS, "t100")
    }

    pub fn get_env(&self) -> Option<DigitalChannelsEnvironment> {
        self.api.get_as::<DigitalChannelsEnvironment>(NS, "prod")
    }

    /// Waits until the tenant's condition has this status (and reason, if given).
    pub async fn tenant_condition(
        &self,
        type_: &str,
        status: ConditionStatus,
        reason: Option<&str>,
    ) -> DigitalChannelsTenant {
        let found = self
            .api
            .wait_for(WAIT, |api| {
                let t = api.get_as::<DigitalChannelsTenant>(NS, "t100")?;
                let c = find(&t.status.as_ref()?.conditions, type_)?;
                (c.status == status && reason.is_none_or(|r| c.reason == r)).then_some(t)
            })
            .await;
        found.unwrap_or_else(|| {
            panic!(
                "tenant never had {type_}={status:?} {reason:?}; it has {:#?}",
                self.get_tenant()
            )
        })
    }

    pub async fn env_condition(
        &self,
        type_: &str,
        status: ConditionStatus,
        reason: Option<&str>,
    ) -> DigitalChannelsEnvironment {
        let found = self
            .api
            .wait_for(WAIT, |api| {
                let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
                let c = find(&e.status.as_ref()?.conditions, type_)?;
                (c.status == status && reason.is_none_or(|r| c.reason == r)).then_some(e)
            })
            .await;
        found.unwrap_or_else(|| {
            panic!(
                "environment never had {type_}={status:?} {reason:?}; it has {:#?}",
                self.get_env()
            )
        })
    }

    pub async fn both_ready(&self) -> DigitalChannelsTenant {
        self.env_condition("Ready", ConditionStatus::True, None)
            .await;
        self.tenant_condition("Ready", ConditionStatus::True, None)
            .await
    }

    pub fn output_key(&self) -> Option<String> {
        let s = self.api.get_as::<Secret>(NS, "t100-digital-channels")?;
        let data = s.data?;
        Some(String::from_utf8(data.get("xapikey")?.0.clone()).unwrap())
    }

    /// Waits until the passes triggered by earlier writes are over: 500 ms without a write.
    pub async fn settle(&self) {
        for _ in 0..40 {
            self.api.clear_writes();
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.api.writes().is_empty() {
                return;
            }
        }
        panic!(
            "the controllers never stopped writing: {:#?}",
            self.api.writes()
        );
    }

    /// Like `settle`, but keeps the writes recorded so far for the test to read.
    pub async fn settle_from_here(&self) {
        for _ in 0..40 {
            let seen = self.api.writes().len();
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.api.writes().len() == seen {
                return;
            }
        }
        panic!("the controllers never stopped writing");
    }

    /// The operator's writes since the last `clear_writes` (the test's own are not recorded).
    pub fn writes_since_apply(&self) -> Vec<super::fake_apiserver::WriteRecord> {
        self.api.writes()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub fn conditions(t: &DigitalChannelsTenant) -> Vec<Condition> {
    t.status.clone().unwrap_or_default().conditions
}
