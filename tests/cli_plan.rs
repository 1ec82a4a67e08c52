//! `dc-operator plan` and `import` against the simulator and a real PostgreSQL database:
//! what a pass would change, shown field by field, while nothing is written anywhere (no
//! write request reaches the simulator, no row changes, no file appears); the exit codes of
//! terraform's `-detailed-exitcode`; and `import` of an estate enabled by hand, whose
//! manifests, observed, find every key.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::by_hand::{HAND_DESCRIPTION, HAND_SECRET, HandPlace, HandTenant, enable_by_hand};
use common::{MemoryStore, Sim, environment, http_config, sample_store, tenant};
use digital_channels_operator::api::{DigitalChannelsTenant, ManagementPolicy};
use digital_channels_operator::cli::import;
use digital_channels_operator::cli::manifests::{Bundle, SecretManifest, secret_manifest};
use digital_channels_operator::cli::plan::{self, Plan, PlanFormat};
use digital_channels_operator::runbook::{Connector, RealConnector};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200, RequestRecord};

/// The sample environment `prod` and its tenants t100 (with PlatformUCS) and t200, their
/// Secrets, and the output directory `provision` keeps its Secrets in.
struct Estate {
    sim: Sim,
    store: MemoryStore,
    tenants: Vec<DigitalChannelsTenant>,
    out: tempfile::TempDir,
}

impl Estate {
    async fn new() -> Self {
        Self::on(Sim::start().await)
    }

    fn on(sim: Sim) -> Self {
        let store = sample_store(&sim.db.url);
        Self {
            tenants: vec![tenant("t100", "t100", true), tenant("t200", "t200", false)],
            sim,
            store,
            out: tempfile::tempdir().unwrap(),
        }
    }

    /// As a team leaves it after the runbook by hand, the client's secret supplied.
    async fn enabled_by_hand() -> (Self, Vec<String>) {
        Self::by_hand_on(Sim::start().await).await
    }

    async fn by_hand_on(sim: Sim) -> (Self, Vec<String>) {
        let estate = Self::on(sim);
        let url = estate.sim.url();
        let place = HandPlace {
            base_url: &url,
            gws_url: &format!("{url}/gws"),
            database_url: &estate.sim.db.url,
        };
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
        let keys = enable_by_hand(&common::runbook(), &place, &tenants).await;
        estate
            .store
            .put("prod-nexus-client", &[("client-secret", HAND_SECRET)]);
        let keys = keys.iter().map(|k| k.expose().to_string()).collect();
        (estate, keys)
    }

    fn upstream(&self) -> Arc<dyn Connector> {
        Arc::new(RealConnector::new(http_config()))
    }

    /// The environment, the tenants and their Secrets as manifests, under `policy`.
    fn bundle(&self, policy: ManagementPolicy) -> Bundle {
        let mut bundle = Bundle::default();
        let mut env = environment(&self.sim.url());
        env.spec.management_policy = policy;
        bundle.environments.push(env);
        for t in &self.tenants {
            let mut t = t.clone();
            t.spec.management_policy = policy;
            bundle.tenants.push(t);
        }
        let secrets = self.store.secrets.lock().unwrap().clone();
        bundle.secrets = secrets
            .into_iter()
            .map(|(name, record)| SecretManifest {
                name,
                data: record.data,
                annotations: record.annotations,
            })
            .collect();
        bundle
    }

    async fn plan(&self, policy: ManagementPolicy) -> Plan {
        let bundle = self.bundle(policy);
        plan::plan_bundle(self.upstream(), &bundle, self.out.path(), false)
            .await
            .expect("plans")
    }

    /// `provision` itself, as a person would run it.
    async fn provision(&self) {
        let mut out = Vec::new();
        let bundle = self.bundle(ManagementPolicy::Manage);
        let summary = digital_channels_operator::cli::provision::provision(
            &common::runbook(),
            &bundle,
            self.out.path(),
            &mut out,
        )
        .await
        .unwrap();
        assert!(summary.all_hold, "{}", String::from_utf8_lossy(&out));
    }

    /// The requests that write (a token grant is a look), as `METHOD path`, since `from`.
    fn writes_since(&self, from: usize) -> Vec<String> {
        let requests: Vec<RequestRecord> = self.sim.handle.requests();
        requests[from..]
            .iter()
            .filter(|r| r.method != "GET" && r.path != "/auth/v3/oauth/token")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn requests(&self) -> usize {
        self.sim.handle.requests().len()
    }

    /// Both Nexus tables as they are, and every file of the output directory: none may change.
    async fn everything(&self) -> String {
        let gapis = self.sim.handle.gapis_rows().await.unwrap();
        let keys = self.sim.handle.apikey_rows().await.unwrap();
        let gapis: Vec<_> = gapis
            .iter()
            .map(|r| (&r.url, &r.clientid, &r.clientsecret, &r.created))
            .collect();
        let keys: Vec<_> = keys.iter().map(|r| (&r.id, &r.name, &r.tenantid)).collect();
        format!("{gapis:?} {keys:?} {:?}", files(self.out.path()))
    }

    /// The plan as a person reads it, the simulator's address as `SIM`.
    fn text(&self, plan: &Plan) -> String {
        let mut out = Vec::new();
        plan::print(plan, PlanFormat::Text, &mut out);
        String::from_utf8(out)
            .unwrap()
            .replace(&self.sim.url(), "SIM")
    }
}

/// Every file under `dir` with its content.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

/// Each change as `symbol object`, in order.
fn changes(plan: &Plan) -> Vec<String> {
    plan.resources
        .iter()
        .flat_map(|r| {
            r.changes
                .iter()
                .map(move |c| format!("{} {} {}", r.name, c.action.symbol(), c.object))
        })
        .collect()
}

/// Plans, checking that nothing was written anywhere: no write request, no row, no file.
async fn plan_writing_nothing(estate: &Estate, policy: ManagementPolicy) -> Plan {
    let (from, before) = (estate.requests(), estate.everything().await);
    let plan = estate.plan(policy).await;
    assert_eq!(
        estate.writes_since(from),
        Vec::<String>::new(),
        "a write request"
    );
    assert_eq!(estate.everything().await, before, "a row or a file changed");
    plan
}

#[tokio::test]
async fn a_clean_slate_is_everything_to_create_and_nothing_is_written() {
    let estate = Estate::new().await;
    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    let cc = |n| [DEMO_CC_T100, DEMO_CC_T200][n];
    assert_eq!(
        changes(&plan),
        [
            "prod + OAuth client nexus_client".to_string(),
            "prod + nex_gapis row".to_string(),
            "prod + Secret prod-nexus-client".to_string(),
            "prod + Secret prod-fingerprint-key".to_string(),
            format!("t100 + setting chatservice-uri of contact center {}", cc(0)),
            format!("t100 + Nexus tenant t100 at contact center {}", cc(0)),
            "t100 + Secret t100-digital-channels".to_string(),
            format!("t100 + PlatformUCS service of contact center {}", cc(0)),
            format!("t200 + setting chatservice-uri of contact center {}", cc(1)),
            format!("t200 + Nexus tenant t200 at contact center {}", cc(1)),
            "t200 + Secret t200-digital-channels".to_string(),
        ]
    );
    assert_eq!(plan.exit_code(), 2);
    assert!(!plan.has_errors(), "{}", estate.text(&plan));
    assert!(files(estate.out.path()).is_empty(), "no file written");
}

#[tokio::test]
async fn after_provision_nothing_would_change() {
    let estate = Estate::new().await;
    estate.provision().await;
    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    assert_eq!(plan.exit_code(), 0);
    assert_eq!(estate.text(&plan), HEALTHY);
}

const HEALTHY: &str = "\
dc-operator plan: what a pass would do; nothing was written.
Changes are marked: + create, ~ update, - delete.

DigitalChannelsEnvironment dc/prod (Manage): no changes

DigitalChannelsTenant dc/t100 (Manage): no changes
  ! DesignerEnv is a manual step in Agent Setup; annotate the tenant with digitalchannels.dev/designer-env-configured=\"true\" once done

DigitalChannelsTenant dc/t200 (Manage): no changes
  ! DesignerEnv is a manual step in Agent Setup; annotate the tenant with digitalchannels.dev/designer-env-configured=\"true\" once done

No changes: a pass would change nothing.
";

#[tokio::test]
async fn a_drift_is_exactly_that_update() {
    let estate = Estate::new().await;
    estate.provision().await;
    // By hand: nex_gapis holds another secret, t200's chatservice-uri points elsewhere.
    sqlx::query("UPDATE nex_gapis SET clientsecret = 'changed-by-hand'")
        .execute(&estate.sim.db.pool)
        .await
        .unwrap();
    let ops = digital_channels_operator::secret::Credentials {
        username: "ops".into(),
        password: "ops".into(),
    };
    let api = estate
        .upstream()
        .environment(&estate.sim.url(), None)
        .unwrap();
    let elsewhere = digital_channels_operator::upstream::environment::Setting {
        name: "chatservice-uri".into(),
        location: "/".into(),
        value: serde_json::json!("https://old-nexus.example.com"),
        shared: false,
    };
    api.upsert_setting(&ops, DEMO_CC_T200, &elsewhere)
        .await
        .unwrap();

    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    assert_eq!(
        changes(&plan),
        [
            "prod ~ nex_gapis row".to_string(),
            format!("t200 ~ setting chatservice-uri of contact center {DEMO_CC_T200}"),
        ]
    );
    assert_eq!(plan.exit_code(), 2);
    let text = estate.text(&plan);
    assert!(!text.contains("changed-by-hand"), "no secret value shown");
    assert_eq!(text, DRIFTED);
}

const DRIFTED: &str = "\
dc-operator plan: what a pass would do; nothing was written.
Changes are marked: + create, ~ update, - delete.

DigitalChannelsEnvironment dc/prod (Manage)
  # the row for url SIM/gws and clientid nexus_client holds another secret than Secret prod-nexus-client
  ~ nex_gapis row (Nexus database)
      clientsecret: (secret) differs
  ! Nexus reads nex_gapis only when it starts: restart it once the row has changed (with spec.nexusDeployment the operator does)

DigitalChannelsTenant dc/t100 (Manage): no changes
  ! DesignerEnv is a manual step in Agent Setup; annotate the tenant with digitalchannels.dev/designer-env-configured=\"true\" once done

DigitalChannelsTenant dc/t200 (Manage)
  # it does not point at the environment's nexusUrl
  ~ setting chatservice-uri of contact center 9c1f5d2a-3b7e-4c8d-a6f0-2e4b8d9c7a15 (GWS Environment API)
      value: \"https://old-nexus.example.com\" → \"SIM\"
  ! DesignerEnv is a manual step in Agent Setup; annotate the tenant with digitalchannels.dev/designer-env-configured=\"true\" once done

Plan: 0 to create, 2 to update, 0 to delete.
";

#[tokio::test]
async fn an_estate_enabled_by_hand_shows_the_description_update_and_platform_ucs() {
    let (estate, keys) = Estate::enabled_by_hand().await;
    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    assert_eq!(
        changes(&plan),
        [
            "prod ~ OAuth client nexus_client".to_string(),
            "prod + Secret prod-fingerprint-key".to_string(),
            format!("t100 + PlatformUCS service of contact center {DEMO_CC_T100}"),
            "t100 + Secret t100-digital-channels".to_string(),
            "t200 + Secret t200-digital-channels".to_string(),
        ],
        "nothing upstream is created: the client is adopted, each tenant's key found"
    );
    let client = &plan.resources[0].changes[0];
    let description = format!("{:?}", HAND_DESCRIPTION);
    let field = &client.fields[0];
    assert_eq!(
        (
            field.name.as_str(),
            field.from.as_deref(),
            field.to.as_deref()
        ),
        (
            "description",
            Some(description.as_str()),
            Some("\"managed by dc-operator provision\"")
        )
    );
    assert_eq!(client.fields.len(), 1, "{:?}", client.fields);
    assert_eq!(plan.exit_code(), 2);
    let text = estate.text(&plan);
    assert!(!text.contains(HAND_SECRET));
    for key in &keys {
        assert!(!text.contains(key.as_str()), "a key shown");
    }

    // Observed, a pass writes the output Secrets (Kubernetes's) and nothing upstream: the
    // client's description and PlatformUCS are what switching to Manage would write.
    let observed = plan_writing_nothing(&estate, ManagementPolicy::Observe).await;
    let (pass, switch) = observed.counts();
    assert_eq!((pass.create, pass.update, pass.delete), (3, 0, 0));
    assert_eq!((switch.create, switch.update, switch.delete), (1, 1, 0));
}

#[tokio::test]
async fn json_says_the_same_and_never_a_secret_value() {
    let (estate, keys) = Estate::enabled_by_hand().await;
    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    let mut out = Vec::new();
    assert_eq!(plan::print(&plan, PlanFormat::Json, &mut out), 2);
    let text = String::from_utf8(out).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["exitCode"], 2);
    assert_eq!(
        json["summary"],
        serde_json::json!({"create": 4, "update": 1, "delete": 0})
    );
    let client = &json["resources"][0]["changes"][0];
    assert_eq!(client["action"], "update");
    assert_eq!(client["fields"][0]["name"], "description");
    assert_eq!(json["resources"][1]["managementPolicy"], "Manage");
    // The values that are secrets (the ops user's "ops" is also a word of the plan).
    let secrets = [HAND_SECRET, "nexus_password", &estate.sim.db.url];
    for value in secrets
        .iter()
        .copied()
        .chain(keys.iter().map(String::as_str))
    {
        assert!(!text.contains(value), "a secret value in the JSON");
    }
}

/// A tenant being deleted shows what its cleanup would delete, found by the cleanup code
/// against upstreams that record the deletes: nothing is deleted.
#[tokio::test]
async fn a_deletion_shows_what_its_cleanup_would_delete() {
    let mut estate = Estate::new().await;
    estate.provision().await;
    for t in &mut estate.tenants {
        t.spec.deletion_policy = digital_channels_operator::api::DeletionPolicy::Delete;
        t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
    }
    // t100's status records what it made; t200 has none, so it is found by its name.
    estate.tenants[0].status = Some(digital_channels_operator::api::TenantStatus {
        contact_center_id: Some(DEMO_CC_T100.into()),
        operation_id: Some("op".into()),
        ucs_url: Some("https://ucs.example.com".into()),
        ..Default::default()
    });
    let plan = plan_writing_nothing(&estate, ManagementPolicy::Manage).await;
    assert_eq!(
        changes(&plan),
        [
            format!("t100 - PlatformUCS service of contact center {DEMO_CC_T100}"),
            format!("t100 - Nexus tenant at contact center {DEMO_CC_T100}"),
            format!("t200 - Nexus tenant at contact center {DEMO_CC_T200}"),
        ]
    );
    assert_eq!(plan.exit_code(), 2);
    let state = estate.sim.handle.snapshot();
    assert_eq!(
        state.creates("nexus.create_tenant"),
        2,
        "both tenants still there"
    );

    // Observed, a deletion deletes nothing upstream, whatever deletionPolicy says.
    let observed = plan_writing_nothing(&estate, ManagementPolicy::Observe).await;
    assert_eq!(changes(&observed), Vec::<String>::new());
    assert!(observed.resources[1].notes[0].contains("Observe deletes nothing upstream"));
}

/// The tenant user the runbook by hand used at every contact center.
fn put_tenant_user(store: &MemoryStore, name: &str) {
    store.put(
        name,
        &[("username", "nexus"), ("password", "nexus_password")],
    );
}

/// Imported manifests, applied with Observe (here through `provision`, which reads the
/// policy from them as the controller does), find every key; nothing is written upstream.
#[tokio::test]
async fn import_of_an_estate_enabled_by_hand_yields_manifests_that_find_every_key() {
    let (estate, keys) = Estate::enabled_by_hand().await;
    put_tenant_user(&estate.store, "nexus-user");
    let env = environment(&estate.sim.url());
    let (from, before) = (estate.requests(), estate.everything().await);
    let decision = import::import(
        estate.upstream(),
        &env,
        &estate.store,
        &[],
        Some("nexus-user"),
    )
    .await
    .expect("reads");
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    assert_eq!(estate.everything().await, before);
    assert_eq!(decision.undecided, Vec::<String>::new());
    let text = import::text(&env, &decision);
    assert!(
        text.contains("# Before applying, create Secret t100-nexus-user"),
        "{text}"
    );

    // A person creates the user Secrets the manifests name, then applies them.
    let mut bundle = Bundle::default();
    bundle.add_yaml(&text, "import").expect("valid manifests");
    let imported: Vec<(String, Option<String>, String, ManagementPolicy)> = bundle
        .tenants
        .iter()
        .map(|t| {
            let s = &t.spec;
            let name = t.metadata.name.clone().unwrap();
            (
                name,
                s.contact_center_id.clone(),
                s.tenant_name.clone(),
                s.management_policy,
            )
        })
        .collect();
    let observe = ManagementPolicy::Observe;
    assert_eq!(
        imported,
        [
            (
                "t100".into(),
                Some(DEMO_CC_T100.into()),
                "t100".into(),
                observe
            ),
            (
                "t200".into(),
                Some(DEMO_CC_T200.into()),
                "t200".into(),
                observe
            ),
        ]
    );
    put_tenant_user(&estate.store, "t100-nexus-user");
    put_tenant_user(&estate.store, "t200-nexus-user");
    let mut applied = estate.bundle(observe);
    applied.tenants = bundle.tenants;
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let from = estate.requests();
    let summary = digital_channels_operator::cli::provision::provision(
        &common::runbook(),
        &applied,
        dir.path(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    for (t, key) in summary.tenants.iter().zip(&keys) {
        let mut written = Bundle::default();
        written.add_file(&t.output_file).unwrap();
        let data = &written.secrets[0].data;
        let said = String::from_utf8_lossy(&out);
        assert_eq!(data["xapikey"].expose(), key, "{}: {said}", t.name);
    }
}

/// What import cannot decide it says, and writes only what is certain.
#[tokio::test]
async fn import_says_what_it_could_not_decide() {
    use digital_channels_operator::simulator::{Seed, SimulatorConfig, generated_contact_center};
    let config = SimulatorConfig {
        seed: Seed::with_contact_centers(1),
        ..SimulatorConfig::default()
    };
    let (estate, _) = Estate::by_hand_on(Sim::start_with(config).await).await;
    // A key row left at a contact center that has no Nexus tenant, and one of a contact
    // center GWS does not list.
    let cc0 = generated_contact_center(0);
    for (id, name, cc) in [
        ("k-orphan", "orphan", cc0.as_str()),
        ("k-gone", "gone", "00000000-0000-4000-8000-0000000000ff"),
    ] {
        sqlx::query("INSERT INTO nex_apikeys (id, name, tenantid) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(cc)
            .execute(&estate.sim.db.pool)
            .await
            .unwrap();
    }
    put_tenant_user(&estate.store, "nexus-user");
    let env = environment(&estate.sim.url());
    let decision = import::import(
        estate.upstream(),
        &env,
        &estate.store,
        &[],
        Some("nexus-user"),
    )
    .await
    .unwrap();
    let names: Vec<&str> = decision
        .tenants
        .iter()
        .map(|t| t.tenant_name.as_str())
        .collect();
    assert_eq!(names, ["t100", "t200"]);
    assert_eq!(decision.undecided.len(), 2, "{:?}", decision.undecided);
    assert!(decision.undecided[0].contains(&format!("contact center {cc0} has key rows")));
    assert!(decision.undecided[1].contains("which the Environment API does not list"));
    let text = import::text(&env, &decision);
    assert!(text.starts_with("# Could not decide: "), "{text}");

    // Without a tenant user, nex_apikeys alone decides, and the manifests say so; the
    // orphan row then looks like a tenant's, which is why the Nexus read is worth having.
    let decision = import::import(estate.upstream(), &env, &estate.store, &[], None)
        .await
        .unwrap();
    let names: Vec<&str> = decision
        .tenants
        .iter()
        .map(|t| t.tenant_name.as_str())
        .collect();
    assert_eq!(names, ["orphan", "t100", "t200"]);
    assert!(decision.tenants[1].remarks[0].contains("no --tenant-user-secret given"));
}

/// The manifests as files: the environment, the tenants and every Secret of the store.
fn write_manifests(estate: &Estate, dir: &Path, with_tenants: bool) -> std::path::PathBuf {
    let bundle = estate.bundle(ManagementPolicy::Manage);
    let mut docs = vec![serde_yaml_ng::to_string(&bundle.environments[0]).unwrap()];
    if with_tenants {
        docs.extend(
            bundle
                .tenants
                .iter()
                .map(|t| serde_yaml_ng::to_string(t).unwrap()),
        );
    }
    for s in &bundle.secrets {
        docs.push(secret_manifest(
            &s.name,
            Some("dc"),
            &s.data,
            &s.annotations,
        ));
    }
    let path = dir.join(if with_tenants {
        "estate.yaml"
    } else {
        "environment.yaml"
    });
    std::fs::write(&path, docs.join("---\n")).unwrap();
    path
}

/// `dc-operator ARGS`: exit code and stdout.
fn dc_operator(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// The simulator serves on the test's runtime while the command runs: two threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_exit_codes_and_provision_dry_run_is_plan() {
    let estate = Estate::new().await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = write_manifests(&estate, dir.path(), true);
    let (manifests, out) = (manifests.to_str().unwrap(), dir.path().join("out"));
    let out = out.to_str().unwrap();
    let plan_f = ["plan", "-f", manifests, "--output-dir", out];
    let from = estate.requests();

    let (code, planned, _) = dc_operator(&plan_f);
    assert_eq!(code, 2, "changes pending: {planned}");
    assert!(
        planned.ends_with("Plan: 11 to create, 0 to update, 0 to delete.\n"),
        "{planned}"
    );
    let dry = [
        "provision",
        "--dry-run",
        "-f",
        manifests,
        "--output-dir",
        out,
    ];
    let (code, dry_run, _) = dc_operator(&dry);
    assert_eq!(
        (code, dry_run),
        (2, planned),
        "provision --dry-run is plan -f"
    );
    assert_eq!(estate.writes_since(from), Vec::<String>::new());
    assert!(!Path::new(out).exists(), "no output written");

    let (code, said, _) = dc_operator(&["provision", "-f", manifests, "--output-dir", out]);
    assert_eq!(code, 0, "{said}");
    let (code, planned, _) = dc_operator(&plan_f);
    assert_eq!(code, 0, "nothing to change: {planned}");
    let (code, json, _) = dc_operator(&[&plan_f[..], &["-o", "json"]].concat());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((code, json["exitCode"].as_i64()), (0, Some(0)));

    // An error of any kind is 1: here the ops user's Secret is missing.
    estate.store.remove("gws-ops");
    let broken = write_manifests(&estate, dir.path(), true);
    let (code, planned, _) =
        dc_operator(&["plan", "-f", broken.to_str().unwrap(), "--output-dir", out]);
    assert_eq!(code, 1, "{planned}");
    assert!(
        planned.contains("✗ Credentials: SecretNotFound: Secret gws-ops"),
        "{planned}"
    );
    let (code, _, said) = dc_operator(&["plan", "-f", "/no/such/file.yaml"]);
    assert_eq!(code, 1, "{said}");
    // A usage error is an error too, not "changes pending".
    let (code, _, said) = dc_operator(&["plan", "-f", manifests, "-n", "dc"]);
    assert_eq!(code, 1, "{said}");
    let (code, _, _) = dc_operator(&["plan", "--help"]);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_import_writes_manifests_and_says_what_it_left_out() {
    let (estate, _) = Estate::enabled_by_hand().await;
    put_tenant_user(&estate.store, "nexus-user");
    let dir = tempfile::tempdir().unwrap();
    let env_only = write_manifests(&estate, dir.path(), false);
    let args = [
        "import",
        "-f",
        env_only.to_str().unwrap(),
        "--tenant-user-secret",
        "nexus-user",
    ];
    let (code, yaml, said) = dc_operator(&args);
    assert_eq!(code, 0, "{said}");
    let mut bundle = Bundle::default();
    bundle.add_yaml(&yaml, "stdout").unwrap();
    assert_eq!(bundle.tenants.len(), 2);

    // With the tenants' manifests beside, they exist already: left out, and said.
    let estate_file = write_manifests(&estate, dir.path(), true);
    let into = dir.path().join("imported");
    let args = [
        "import",
        "-f",
        estate_file.to_str().unwrap(),
        "--tenant-user-secret",
        "nexus-user",
        "--output-dir",
        into.to_str().unwrap(),
    ];
    let (code, _, said) = dc_operator(&args);
    assert_eq!(code, 0, "{said}");
    assert_eq!(said.matches("DigitalChannelsTenant t").count(), 2, "{said}");
    assert!(files(&into).is_empty());
    let (code, _, said) = dc_operator(&["import", "-f", "/no/such/file.yaml"]);
    assert_eq!(code, 2, "an input error: {said}");
}

/// import's read of `nex_apikeys`, on PostgreSQL: names and contact centers, never a key;
/// a table without the `tenantid` column gives names alone.
#[tokio::test]
async fn the_key_rows_are_listed_without_their_keys_with_or_without_tenantid() {
    use digital_channels_operator::upstream::NexusDb;
    use digital_channels_operator::upstream::nexus_db::{ApiKeyName, PgNexusDb};
    for with_column in [true, false] {
        let db = common::TestDb::new().await;
        let table = match with_column {
            true => {
                "CREATE TABLE nex_apikeys (id text PRIMARY KEY, name text NOT NULL, tenantid text)"
            }
            false => "CREATE TABLE nex_apikeys (id text PRIMARY KEY, name text NOT NULL)",
        };
        sqlx::query(table).execute(&db.pool).await.unwrap();
        for (id, name) in [("secret-key-1", "t100"), ("secret-key-2", "t100-Designer")] {
            let insert = match with_column {
                true => "INSERT INTO nex_apikeys (id, name, tenantid) VALUES ($1, $2, 'cc-1')",
                false => "INSERT INTO nex_apikeys (id, name) VALUES ($1, $2)",
            };
            sqlx::query(insert)
                .bind(id)
                .bind(name)
                .execute(&db.pool)
                .await
                .unwrap();
        }
        let rows = PgNexusDb::from_pool(db.pool.clone())
            .list_api_key_names()
            .await
            .unwrap();
        let cc = with_column.then(|| "cc-1".to_string());
        let row = |name: &str| ApiKeyName {
            name: name.into(),
            tenant_id: cc.clone(),
        };
        assert_eq!(
            rows,
            [row("t100"), row("t100-Designer")],
            "tenantid column: {with_column}"
        );
        assert!(!format!("{rows:?}").contains("secret-key"));
    }
}
