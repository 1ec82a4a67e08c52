//! `managementPolicy: Observe` end to end on the runbook: real reqwest and sqlx clients
//! against the simulator over loopback and a real PostgreSQL database. Observed, no write
//! request reaches the simulator (a token grant is a look) and no row of `nex_gapis` or
//! `nex_apikeys` changes; the keys of tenants enabled by hand reach their output Secrets;
//! the switch to Manage makes exactly the writes the conditions announced, none when in sync.

mod common;

use common::by_hand::{HAND_DESCRIPTION, HAND_SECRET, HandPlace, HandTenant, enable_by_hand};
use common::{MemoryStore, Sim, environment, runbook, sample_store, tenant};
use digital_channels_operator::api::conditions::{Condition, ConditionStatus};
use digital_channels_operator::api::{DigitalChannelsTenant, ManagementPolicy, TenantStatus};
use digital_channels_operator::controller::conditions::{
    ConditionRule, ENVIRONMENT_RULES, TENANT_RULES, ready, step_conditions,
};
use digital_channels_operator::runbook::environment::run_environment;
use digital_channels_operator::runbook::tenant::{keys, run_tenant};
use digital_channels_operator::runbook::{RunReport, Runbook};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200, RequestRecord};

/// The sample environment and its tenants t100 (with PlatformUCS) and t200, with the status
/// each pass records, as the controllers keep it.
struct Estate {
    sim: Sim,
    rb: Runbook,
    store: MemoryStore,
    tenants: Vec<DigitalChannelsTenant>,
}

/// One pass over the estate: the environment's report, then each tenant's.
struct Pass {
    environment: RunReport,
    tenants: Vec<RunReport>,
}

impl Estate {
    async fn new() -> Self {
        let sim = Sim::start().await;
        let store = sample_store(&sim.db.url);
        Self {
            rb: runbook(),
            tenants: vec![tenant("t100", "t100", true), tenant("t200", "t200", false)],
            sim,
            store,
        }
    }

    /// As a team leaves it after the runbook by hand; the user puts the client's secret in
    /// the Secret the environment names, as the adoption procedure says.
    async fn enabled_by_hand() -> (Self, Vec<String>) {
        let estate = Self::new().await;
        let tenants = [
            HandTenant {
                name: "t100",
                contact_center_id: DEMO_CC_T100,
                ucs: true,
            },
            HandTenant {
                name: "t200",
                contact_center_id: DEMO_CC_T200,
                ucs: false,
            },
        ];
        let url = estate.sim.url();
        let place = HandPlace {
            base_url: &url,
            gws_url: &format!("{url}/gws"),
            database_url: &estate.sim.db.url,
        };
        let keys = enable_by_hand(&estate.rb, &place, &tenants).await;
        let supplied = [("client-secret", HAND_SECRET)];
        estate.store.put("prod-nexus-client", &supplied);
        let keys = keys.iter().map(|k| k.expose().to_string()).collect();
        (estate, keys)
    }

    /// A pass under `policy` (a new process: no token cache), each tenant's status recorded.
    async fn pass(&mut self, policy: ManagementPolicy) -> Pass {
        let rb = runbook();
        let mut env = environment(&self.sim.url());
        env.spec.management_policy = policy;
        let env_run = run_environment(&rb, &env, &self.store).await;
        assert!(env_run.report.succeeded(), "{:#?}", env_run.report);
        let resolved = env_run.resolved.expect("the environment resolves");
        let mut tenants = Vec::new();
        for t in &mut self.tenants {
            t.spec.management_policy = policy;
            let run = run_tenant(&rb, t, &resolved, &self.store).await;
            assert!(run.report.succeeded(), "{:#?}", run.report);
            let was = t.status.take().unwrap_or_default();
            t.status = Some(TenantStatus {
                contact_center_id: run.contact_center_id.clone().or(was.contact_center_id),
                api_key_digest: run.api_key_digest.clone().or(was.api_key_digest),
                ucs_url: run.ucs_url.clone().or(was.ucs_url),
                credentials_fingerprint: run
                    .credentials_fingerprint
                    .clone()
                    .or(was.credentials_fingerprint),
                operation_id: run.operation_id.clone().or(was.operation_id),
                ..TenantStatus::default()
            });
            tenants.push(run.report);
        }
        Pass {
            environment: env_run.report,
            tenants,
        }
    }

    /// The requests that write (a token grant is a look), as `METHOD path`, since `from`.
    fn writes_since(&self, from: usize) -> Vec<String> {
        let requests: Vec<RequestRecord> = self.sim.handle.requests();
        let mut writes: Vec<String> = requests[from..]
            .iter()
            .filter(|r| r.method != "GET" && r.path != "/auth/v3/oauth/token")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        writes.sort();
        writes
    }

    fn requests(&self) -> usize {
        self.sim.handle.requests().len()
    }

    /// Both Nexus tables as they are, to compare: no row may change under Observe.
    async fn rows(&self) -> String {
        let gapis = self.sim.handle.gapis_rows().await.unwrap();
        let keys = self.sim.handle.apikey_rows().await.unwrap();
        let gapis: Vec<_> = gapis
            .iter()
            .map(|r| (&r.url, &r.clientid, &r.clientsecret, &r.created))
            .collect();
        let keys: Vec<_> = keys.iter().map(|r| (&r.id, &r.name, &r.tenantid)).collect();
        format!("{gapis:?} {keys:?}")
    }
}

/// Each condition as `Type=Status/Reason`, and Ready, for a report.
fn conditions(rules: &[ConditionRule], report: &RunReport) -> (Vec<String>, Condition) {
    let conditions = step_conditions(rules, report, &[]);
    let said = conditions
        .iter()
        .map(|c| format!("{}={:?}/{}", c.type_, c.status, c.reason))
        .collect();
    (said, ready(&conditions, ""))
}

#[tokio::test]
async fn an_estate_enabled_by_hand_is_observed_without_a_write_and_every_key_is_found() {
    let (mut estate, keys) = Estate::enabled_by_hand().await;
    let (from, rows) = (estate.requests(), estate.rows().await);

    let pass = estate.pass(ManagementPolicy::Observe).await;
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    assert_eq!(estate.rows().await, rows, "a row changed");

    // The environment: the client differs in its description only (the mark Manage sets),
    // and GWS Auth holds the secret the user supplied.
    let (env, env_ready) = conditions(ENVIRONMENT_RULES, &pass.environment);
    assert_eq!(
        env,
        [
            "ClientRegistered=False/Drifted",
            "ClientVerified=True/InSync",
            "GapiRegistered=True/InSync"
        ]
    );
    assert!(
        env_ready.message.contains(HAND_DESCRIPTION),
        "{}",
        env_ready.message
    );
    assert!(!env_ready.message.contains(HAND_SECRET));

    // Each tenant: in sync, PlatformUCS not observable (and not holding Ready back), its key
    // found and in its output Secret with where it belongs.
    for (i, (report, cc)) in pass
        .tenants
        .iter()
        .zip([DEMO_CC_T100, DEMO_CC_T200])
        .enumerate()
    {
        let (said, ready) = conditions(TENANT_RULES, report);
        let ucs = if i == 0 {
            "UcsRegistered=Unknown/NotObservable"
        } else {
            "UcsRegistered=Unknown/Pending"
        };
        assert_eq!(
            said,
            [
                "ContactCenterResolved=True/InSync",
                "ChatServiceRegistered=True/InSync",
                ucs,
                "TenantProvisioned=True/InSync"
            ],
            "tenant {i}"
        );
        let secret = format!("{}-digital-channels", ["t100", "t200"][i]);
        assert_eq!(
            estate.store.get(&secret, keys::API_KEY),
            Some(keys[i].clone())
        );
        assert_eq!(
            estate
                .store
                .get(&secret, keys::CONTACT_CENTER_ID)
                .as_deref(),
            Some(cc)
        );
        assert_eq!(
            estate.store.get(&secret, keys::NEXUS_URL),
            Some(estate.sim.url())
        );
        if i == 0 {
            assert_eq!(
                (ready.status, ready.reason.as_str()),
                (ConditionStatus::True, "InSync")
            );
        }
    }
}

#[tokio::test]
async fn taking_over_an_estate_enabled_by_hand_writes_only_what_was_announced() {
    let (mut estate, keys) = Estate::enabled_by_hand().await;
    estate.pass(ManagementPolicy::Observe).await;
    let (from, rows) = (estate.requests(), estate.rows().await);

    estate.pass(ManagementPolicy::Manage).await;
    // Announced: the client's description (ClientRegistered Drifted) and PlatformUCS,
    // which Observe could not see (UcsRegistered NotObservable). Nothing created.
    assert_eq!(
        estate.writes_since(from),
        [
            format!("POST /nexus/v3/provisioning/services/{DEMO_CC_T100}/PlatformUCS"),
            "PUT /auth/v3/ops/clients/nexus_client".to_string(),
        ]
    );
    assert_eq!(estate.rows().await, rows, "no row changed");
    assert_eq!(
        estate.store.get("t100-digital-channels", keys::API_KEY),
        Some(keys[0].clone())
    );
    let state = estate.sim.handle.snapshot();
    assert_eq!(
        state.creates("nexus.create_tenant"),
        2,
        "the two made by hand"
    );

    // Managed now, and in sync: another pass writes nothing.
    let from = estate.requests();
    estate.pass(ManagementPolicy::Manage).await;
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
}

#[tokio::test]
async fn observe_then_manage_in_sync_writes_nothing_and_drift_exactly_what_was_announced() {
    let mut estate = Estate::new().await;
    estate.pass(ManagementPolicy::Manage).await;

    // In sync: neither the observation nor the switch back writes anything.
    let (from, rows) = (estate.requests(), estate.rows().await);
    let observed = estate.pass(ManagementPolicy::Observe).await;
    assert!(observed.environment.in_sync() && observed.tenants.iter().all(RunReport::in_sync));
    estate.pass(ManagementPolicy::Manage).await;
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    assert_eq!(estate.rows().await, rows);

    // Drift by hand: t200's chatservice-uri points elsewhere, nex_gapis holds another secret.
    let rb = &estate.rb;
    let ops = digital_channels_operator::secret::Credentials {
        username: "ops".into(),
        password: "ops".into(),
    };
    let environment_api = rb.connector.environment(&estate.sim.url(), None).unwrap();
    let elsewhere = digital_channels_operator::upstream::environment::Setting {
        name: "chatservice-uri".into(),
        location: "/".into(),
        value: serde_json::json!("https://old-nexus.example.com"),
        shared: false,
    };
    environment_api
        .upsert_setting(&ops, DEMO_CC_T200, &elsewhere)
        .await
        .unwrap();
    sqlx::query("UPDATE nex_gapis SET clientsecret = 'changed-by-hand'")
        .execute(&estate.sim.db.pool)
        .await
        .unwrap();

    let (from, rows) = (estate.requests(), estate.rows().await);
    let observed = estate.pass(ManagementPolicy::Observe).await;
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    assert_eq!(estate.rows().await, rows);
    let (env, _) = conditions(ENVIRONMENT_RULES, &observed.environment);
    assert_eq!(env[2], "GapiRegistered=False/Drifted");
    let (t200, _) = conditions(TENANT_RULES, &observed.tenants[1]);
    assert_eq!(t200[1], "ChatServiceRegistered=False/Drifted");
    assert!(observed.tenants[0].in_sync());

    estate.pass(ManagementPolicy::Manage).await;
    assert_eq!(
        estate.writes_since(from),
        [format!(
            "POST /environment/v3/contact-centers/{DEMO_CC_T200}/settings"
        )]
    );
    let gapis = estate.sim.handle.gapis_rows().await.unwrap();
    let secret = estate.store.get("prod-nexus-client", "client-secret");
    assert_eq!(gapis[0].clientsecret, secret, "the row's secret set back");
}

/// `dc-operator provision` reads the field from its manifests: the same observation, the
/// keys into the output files, nothing written upstream, and an exit code that says a
/// difference was found.
#[tokio::test]
async fn provision_observes_an_estate_enabled_by_hand_from_its_manifests() {
    use digital_channels_operator::cli::manifests::{Bundle, SecretManifest};
    let (estate, keys) = Estate::enabled_by_hand().await;
    let (from, rows) = (estate.requests(), estate.rows().await);
    let mut bundle = Bundle::default();
    let mut env = environment(&estate.sim.url());
    env.spec.management_policy = ManagementPolicy::Observe;
    bundle.environments.push(env);
    for mut t in estate.tenants.clone() {
        t.spec.management_policy = ManagementPolicy::Observe;
        bundle.tenants.push(t);
    }
    let secrets = estate.store.secrets.lock().unwrap().clone();
    bundle.secrets = secrets
        .into_iter()
        .map(|(name, record)| SecretManifest {
            name,
            data: record.data,
            annotations: record.annotations,
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let summary = digital_channels_operator::cli::provision::provision(
        &runbook(),
        &bundle,
        dir.path(),
        &mut out,
    )
    .await
    .expect("runs");
    let printed = String::from_utf8(out).unwrap();
    assert_eq!(estate.writes_since(from), Vec::<String>::new(), "{printed}");
    assert_eq!(estate.rows().await, rows);
    assert!(
        !summary.all_hold,
        "the client's description differs: exit code 1"
    );
    assert_eq!(summary.changes, 2, "the two output Secrets, nothing else");
    assert!(printed.contains("≠ ClientRegistered"), "{printed}");
    assert!(printed.contains(HAND_DESCRIPTION), "{printed}");
    assert!(printed.contains("? UcsRegistered"), "{printed}");
    assert!(!printed.contains(HAND_SECRET));
    for (t, key) in summary.tenants.iter().zip(&keys) {
        let mut written = Bundle::default();
        written.add_file(&t.output_file).unwrap();
        let data = &written.secrets[0].data;
        assert_eq!(data[keys::API_KEY].expose(), key, "{}", t.name);
        assert!(!printed.contains(key.as_str()), "the key only masked");
    }
}
