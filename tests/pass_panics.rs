//! A panic inside one pass is that resource's failure, not the process's end (issue 15,
//! defect 5): the other resources become Ready, the panicking one is retried on its
//! backoff, counted as an error and shown in a Warning event without the panic's text.
//! The operator runs for real against the in-memory API server and the simulator; only the
//! Nexus client of one contact center panics.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::fake_apiserver::{FakeApiServer, ResourceKey};
use common::operator::{Harness, NS, test_controller_config};
use common::{Sim, http_config, tenant};
use digital_channels_operator::api::DigitalChannelsTenant;
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::controller::{Context, run_scope};
use digital_channels_operator::runbook::{Connector, RealConnector, Runbook};
use digital_channels_operator::secret::SecretString;
use digital_channels_operator::simulator::DEMO_CC_T200;
use digital_channels_operator::telemetry::metrics::{KindResult, metrics};
use digital_channels_operator::upstream::error::Result;
use digital_channels_operator::upstream::nexus::{ProvisionedTenant, TenantInfo, TenantRequest};
use digital_channels_operator::upstream::{
    EnvironmentApi, GwsAuthApi, NexusApi, NexusDb, UpstreamError,
};
use tokio_util::sync::CancellationToken;

/// Text of the panic: it must reach no event, status or metric.
const PANIC_TEXT: &str = "boom: s3cr3t-in-a-panic";

/// Whether the Nexus client panics for `DEMO_CC_T200`, and how many times it did.
#[derive(Default)]
struct Trap {
    armed: AtomicBool,
    sprung: AtomicU32,
}

impl Trap {
    fn check(&self, contact_center_id: &str) {
        if contact_center_id == DEMO_CC_T200 && self.armed.load(Ordering::SeqCst) {
            self.sprung.fetch_add(1, Ordering::SeqCst);
            panic!("{PANIC_TEXT}");
        }
    }
}

/// The real connector, whose Nexus client panics on the trapped contact center.
struct TrappedConnector {
    real: RealConnector,
    trap: Arc<Trap>,
}

impl Connector for TrappedConnector {
    fn gws_auth(&self, url: &str, ca: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>> {
        self.real.gws_auth(url, ca)
    }
    fn environment(&self, url: &str, ca: Option<&[u8]>) -> Result<Arc<dyn EnvironmentApi>> {
        self.real.environment(url, ca)
    }
    fn nexus(&self, url: &str, ca: Option<&[u8]>) -> Result<Arc<dyn NexusApi>> {
        Ok(Arc::new(TrappedNexus {
            real: self.real.nexus(url, ca)?,
            trap: self.trap.clone(),
        }))
    }
    fn nexus_db(&self, url: &SecretString) -> Result<Arc<dyn NexusDb>> {
        self.real.nexus_db(url)
    }
}

struct TrappedNexus {
    real: Arc<dyn NexusApi>,
    trap: Arc<Trap>,
}

#[async_trait]
impl NexusApi for TrappedNexus {
    async fn register_ucs(&self, key: &SecretString, cc: &str, url: &str) -> Result<()> {
        self.trap.check(cc);
        self.real.register_ucs(key, cc, url).await
    }
    async fn delete_ucs(&self, key: &SecretString, cc: &str) -> Result<bool> {
        self.trap.check(cc);
        self.real.delete_ucs(key, cc).await
    }
    async fn create_tenant(
        &self,
        bearer: &SecretString,
        t: &TenantRequest,
    ) -> std::result::Result<ProvisionedTenant, UpstreamError> {
        self.trap.check(&t.contact_center_id);
        self.real.create_tenant(bearer, t).await
    }
    async fn get_tenant(&self, bearer: &SecretString, cc: &str) -> Result<Option<TenantInfo>> {
        self.trap.check(cc);
        self.real.get_tenant(bearer, cc).await
    }
    async fn update_tenant(&self, bearer: &SecretString, t: &TenantRequest) -> Result<()> {
        self.trap.check(&t.contact_center_id);
        self.real.update_tenant(bearer, t).await
    }
    async fn delete_tenant(&self, bearer: &SecretString, cc: &str) -> Result<bool> {
        self.trap.check(cc);
        self.real.delete_tenant(bearer, cc).await
    }
}

/// The standard harness, its operator built on the trapped connector.
async fn start(trap: Arc<Trap>) -> Harness {
    let sim = Sim::start().await;
    let api = FakeApiServer::start().await;
    let controller = test_controller_config();
    let connector = TrappedConnector {
        real: RealConnector::new(http_config()),
        trap,
    };
    let ctx = Arc::new(Context::new(
        api.client(),
        Runbook::new(Arc::new(connector)),
        controller.clone(),
    ));
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_scope(
        ctx.clone(),
        Some(NS.to_string()),
        4,
        stop.clone(),
    ));
    let h = Harness {
        api,
        sim,
        stop,
        task,
        controller,
        ctx,
    };
    h.secret("gws-ops", &[("username", "ops"), ("password", "ops")]);
    h.secret("nexus-db", &[("url", &h.sim.db.url)]);
    for user in ["t100-user", "t200-user"] {
        h.secret(
            user,
            &[("username", "nexus"), ("password", "nexus_password")],
        );
    }
    h
}

fn tenant_errors() -> u64 {
    metrics()
        .reconcile_total
        .get_or_create(&KindResult {
            kind: "DigitalChannelsTenant".to_string(),
            result: "error".to_string(),
        })
        .get()
}

fn events_of(h: &Harness, name: &str) -> Vec<serde_json::Value> {
    h.api
        .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS))
        .into_iter()
        .filter(|e| e.pointer("/regarding/name").and_then(|n| n.as_str()) == Some(name))
        .collect()
}

#[tokio::test]
async fn a_panicking_pass_fails_its_resource_and_the_others_become_ready() {
    let trap = Arc::new(Trap::default());
    trap.armed.store(true, Ordering::SeqCst);
    let errors_before = tenant_errors();
    let h = start(trap.clone()).await;
    h.env(|_| {});
    h.tenant(|_| {});
    let mut t200 = tenant("t200", "t200", false);
    t200.metadata.uid = None;
    h.api.apply_as(&t200);

    // The other tenant and the environment: Ready, in the same process.
    h.both_ready().await;
    let panicked = h
        .api
        .wait_for(common::operator::WAIT, |_| {
            (trap.sprung.load(Ordering::SeqCst) >= 2).then_some(())
        })
        .await;
    assert!(panicked.is_some(), "t200's pass never panicked twice");
    assert!(!h.task.is_finished(), "the controllers still run");

    // Retried on its backoff (100 ms doubling to 1 s, jittered): a few passes in 3 s, not a
    // hot loop and not given up.
    let before = trap.sprung.load(Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let passes = trap.sprung.load(Ordering::SeqCst) - before;
    assert!(
        (2..=20).contains(&passes),
        "{passes} passes of the panicking tenant in {:?}",
        started.elapsed()
    );
    // Counted as errors; shown in a Warning event that names no panic text.
    let panics = u64::from(trap.sprung.load(Ordering::SeqCst));
    assert!(
        tenant_errors() - errors_before >= panics,
        "each panic is an error"
    );
    let events = events_of(&h, "t200");
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("ReconcilePanicked"), "{text}");
    assert!(text.contains("Warning"), "{text}");
    assert!(text.contains("a panic at tests/pass_panics.rs:"), "{text}");
    let everything = serde_json::to_string(
        &h.api
            .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS)),
    )
    .unwrap()
        + &serde_json::to_string(&h.api.list_as::<DigitalChannelsTenant>(Some(NS))).unwrap();
    assert!(!everything.contains("s3cr3t-in-a-panic"), "{everything}");

    // Once the fault is gone, the next retry provisions it.
    trap.armed.store(false, Ordering::SeqCst);
    let ready = h
        .api
        .wait_for(common::operator::WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, "t200")?;
            let ready = find(&t.status.as_ref()?.conditions, "Ready")?;
            (ready.status == ConditionStatus::True).then_some(())
        })
        .await;
    assert!(
        ready.is_some(),
        "t200 never became Ready after the fault went"
    );
    h.stop().await;
}
