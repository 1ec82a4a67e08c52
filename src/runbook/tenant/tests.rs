//! Every branch of the tenant steps, on the in-memory fakes: each test asserts on the report
//! (outcomes, reasons) and on the fakes' call log (which writes happened, how many).

use std::sync::Arc;

use super::*;
use crate::api::TenantStatus;
use crate::fakes::samples::{self, CONTACT_CENTER, NEXUS_URL, USER_PASSWORD};
use crate::fakes::{ApiKeyRow, FakeConnector, FakeSecretStore, error};
use crate::runbook::environment::read_environment;
use crate::runbook::report::{Outcome, Reason, Step};
use crate::upstream::environment::Setting;
use crate::upstream::{ErrorKind, System};

const OUTPUT: &str = "t100-digital-channels";
const UCS: &str = "https://ucs.example.com";

/// The sample world: the environment made, the client holding its secret. Shared with
/// `observe_tests`, which adds its own methods.
pub(super) struct World {
    pub(super) upstream: Arc<FakeConnector>,
    pub(super) runbook: Runbook,
    pub(super) store: FakeSecretStore,
    pub(super) env: ResolvedEnvironment,
}

impl World {
    pub(super) async fn new() -> Self {
        let upstream = samples::connector(true);
        let store = samples::store(true);
        let env = read_environment(&samples::environment(), &store)
            .await
            .expect("the sample environment reads");
        Self {
            runbook: samples::runbook(&upstream),
            upstream,
            store,
            env,
        }
    }

    async fn pass(&self, tenant: &DigitalChannelsTenant) -> TenantRun {
        run_tenant(&self.runbook, tenant, &self.env, &self.store).await
    }

    /// A pass, then the tenant as the controller leaves it: its status recorded.
    async fn provisioned(&self, mut tenant: DigitalChannelsTenant) -> DigitalChannelsTenant {
        let run = self.pass(&tenant).await;
        assert!(run.report.succeeded(), "{:?}", run.report);
        tenant.status = Some(status_of(&run));
        self.upstream.log.clear();
        tenant
    }

    fn key_in_secret(&self) -> Option<String> {
        self.store.get(OUTPUT, keys::API_KEY)
    }

    fn nexus_password(&self) -> Option<String> {
        self.upstream.nexus.tenant_password(CONTACT_CENTER)
    }

    /// Scripts a failure of a Nexus operation.
    fn nexus_fails(&self, operation: &'static str, kind: ErrorKind, times: Times) {
        let (script, e) = (
            &self.upstream.nexus.script,
            error(System::Nexus, operation, kind),
        );
        match times {
            Times::Next => script.fail_next(operation, e),
            Times::Always => script.fail_always(operation, e),
            Times::LoseNext => script.lose_next(operation, e),
        }
    }
}

/// How a scripted failure answers: the next call, every call, or the next call after it took
/// effect (a lost answer).
enum Times {
    Next,
    Always,
    LoseNext,
}

fn status_of(run: &TenantRun) -> TenantStatus {
    TenantStatus {
        contact_center_id: run.contact_center_id.clone(),
        operation_id: run.operation_id.clone(),
        api_key_digest: run.api_key_digest.clone(),
        ucs_url: run.ucs_url.clone(),
        credentials_fingerprint: run.credentials_fingerprint.clone(),
        ..TenantStatus::default()
    }
}

fn t100() -> DigitalChannelsTenant {
    samples::tenant("t100", None)
}

/// A step's outcome, or its failure's reason.
fn outcome(run: &TenantRun, step: Step) -> Option<Result<Outcome, Reason>> {
    let result = run.report.outcome_of(step)?;
    Some(result.clone().map_err(|e| e.reason))
}

/// Asserts each step's outcome, or its failure's reason.
fn assert_outcomes(run: &TenantRun, expected: &[(Step, Result<Outcome, Reason>)]) {
    for (step, result) in expected {
        assert_eq!(outcome(run, *step), Some(result.clone()), "{step}");
    }
}

fn message(run: &TenantRun, step: Step) -> String {
    match run.report.outcome_of(step) {
        Some(Err(e)) => e.message.clone(),
        other => panic!("{step} did not fail: {other:?}"),
    }
}

#[tokio::test]
async fn a_first_pass_creates_the_setting_and_the_tenant_and_keeps_the_key() {
    let world = World::new().await;
    let run = world.pass(&t100()).await;
    assert_outcomes(
        &run,
        &[
            (Step::ContactCenterResolved, Ok(Outcome::Verified)),
            (Step::ChatServiceRegistered, Ok(Outcome::Created)),
            (Step::TenantToken, Ok(Outcome::Obtained)),
            (Step::TenantProvisioned, Ok(Outcome::Created)),
            (Step::OutputSecret, Ok(Outcome::Created)),
            (Step::DesignerEnvConfigured, Ok(Outcome::ManualStepRequired)),
        ],
    );
    assert_eq!(outcome(&run, Step::UcsRegistered), None, "no spec.ucs");
    let log = &world.upstream.log;
    assert_eq!(log.count("create_tenant"), 1);
    assert_eq!(log.count("upsert_setting"), 1);
    assert_eq!(log.writes().len(), 2, "{:?}", log.writes());
    // The key Nexus answered is the one its table holds, and the one written.
    let rows = world.upstream.db.api_keys();
    assert_eq!(rows.len(), 1);
    assert_eq!(world.key_in_secret(), Some(rows[0].id.clone()));
    assert_eq!(run.contact_center_id.as_deref(), Some(CONTACT_CENTER));
    assert_eq!(world.nexus_password().as_deref(), Some(USER_PASSWORD));
    let setting = &world.upstream.environment.settings(CONTACT_CENTER)[0];
    assert_eq!(setting.value, serde_json::json!(NEXUS_URL));
    assert!(
        world.runbook.pending_keys.is_empty(),
        "written, so not pending"
    );
}

#[tokio::test]
async fn a_second_pass_writes_nothing_and_reuses_the_token() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let run = world.pass(&tenant).await;
    for (step, expected) in [
        (Step::ChatServiceRegistered, Outcome::AlreadyRight),
        (Step::TenantToken, Outcome::Reused),
        (Step::TenantProvisioned, Outcome::AlreadyRight),
        (Step::OutputSecret, Outcome::AlreadyRight),
    ] {
        assert_eq!(outcome(&run, step), Some(Ok(expected)), "{step}");
    }
    let log = &world.upstream.log;
    assert!(log.writes().is_empty(), "{:?}", log.writes());
    assert_eq!(log.count("token"), 0, "the cached token serves");
    assert!(!run.report.changed_anything());
}

#[tokio::test]
async fn after_a_restart_the_recorded_key_stands_without_a_create() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let key = world.key_in_secret();
    let restarted = samples::runbook(&world.upstream);
    let run = run_tenant(&restarted, &tenant, &world.env, &world.store).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantToken, Ok(Outcome::Obtained)),
            (Step::TenantProvisioned, Ok(Outcome::AlreadyRight)),
        ],
    );
    assert_eq!(world.upstream.log.count("create_tenant"), 0);
    assert_eq!(world.key_in_secret(), key);
}

#[tokio::test]
async fn a_lost_create_answer_is_recovered_from_nex_apikeys_not_created_twice() {
    let world = World::new().await;
    world.nexus_fails("create_tenant", ErrorKind::Transient, Times::LoseNext);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::UpstreamUnavailable))
    );
    assert_eq!(outcome(&run, Step::OutputSecret), None, "no key to write");
    assert!(
        world.upstream.nexus.tenant(CONTACT_CENTER).is_some(),
        "made all the same"
    );

    let run = world.pass(&t100()).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantProvisioned, Ok(Outcome::Recovered)),
            (Step::OutputSecret, Ok(Outcome::Created)),
        ],
    );
    assert_eq!(world.upstream.log.count("create_tenant"), 1, "never twice");
    assert_eq!(
        world.key_in_secret(),
        Some(world.upstream.db.api_keys()[0].id.clone())
    );
}

#[tokio::test]
async fn a_tenant_without_record_and_without_key_row_is_refused() {
    let world = World::new().await;
    world.nexus_fails("create_tenant", ErrorKind::Transient, Times::LoseNext);
    world.pass(&t100()).await;
    let row = world.upstream.db.api_keys()[0].id.clone();
    world.upstream.db.remove_api_key(&row);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::Conflict))
    );
    assert!(message(&run, Step::TenantProvisioned).contains("has no key named t100"));
    assert_eq!(world.upstream.log.count("create_tenant"), 1);
    assert_eq!(world.key_in_secret(), None);
}

#[tokio::test]
async fn several_key_rows_for_a_lost_answer_are_refused() {
    let world = World::new().await;
    world.nexus_fails("create_tenant", ErrorKind::Transient, Times::LoseNext);
    world.pass(&t100()).await;
    world.upstream.db.put_api_key(ApiKeyRow {
        id: "another-key".into(),
        name: "t100".into(),
        tenant_id: Some(CONTACT_CENTER.into()),
    });
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::Conflict))
    );
    assert!(message(&run, Step::TenantProvisioned).contains("2 rows"));
    assert!(
        world.store.writes().iter().all(|w| w != OUTPUT),
        "nothing chosen"
    );
}

#[tokio::test]
async fn a_key_row_of_another_contact_center_is_not_this_tenants() {
    let world = World::new().await;
    world.nexus_fails("create_tenant", ErrorKind::Transient, Times::LoseNext);
    world.pass(&t100()).await;
    world.upstream.db.put_api_key(ApiKeyRow {
        id: "t100-elsewhere".into(),
        name: "t100".into(),
        tenant_id: Some("cc-999".into()),
    });
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::Recovered))
    );
    assert_ne!(world.key_in_secret().as_deref(), Some("t100-elsewhere"));
}

/// An output Secret whose key was edited, with the recorded digest: the table's row that is
/// the recorded key wins; a Secret and table that agree on a new key are taken; a third key
/// is refused.
#[tokio::test]
async fn an_edited_key_is_restored_from_the_recorded_row() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let original = world.key_in_secret().unwrap();
    edit_key(&world, "edited-by-hand");
    let run = world.pass(&tenant).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantProvisioned, Ok(Outcome::Recovered)),
            (Step::OutputSecret, Ok(Outcome::Updated)),
        ],
    );
    assert_eq!(world.key_in_secret(), Some(original));
    assert_eq!(world.upstream.log.count("create_tenant"), 0);
}

#[tokio::test]
async fn a_key_rotated_in_the_secret_and_the_table_alike_is_taken() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let original = world.key_in_secret().unwrap();
    world.upstream.db.remove_api_key(&original);
    world.upstream.db.put_api_key(ApiKeyRow {
        id: "rotated".into(),
        name: "t100".into(),
        tenant_id: Some(CONTACT_CENTER.into()),
    });
    edit_key(&world, "rotated");
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::Recovered))
    );
    assert_eq!(world.key_in_secret().as_deref(), Some("rotated"));
    assert_eq!(run.api_key_digest, Some(api_key_digest(&"rotated".into())));
}

#[tokio::test]
async fn an_edited_key_that_the_table_contradicts_is_refused() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let original = world.key_in_secret().unwrap();
    world.upstream.db.remove_api_key(&original);
    world.upstream.db.put_api_key(ApiKeyRow {
        id: "third".into(),
        name: "t100".into(),
        tenant_id: Some(CONTACT_CENTER.into()),
    });
    edit_key(&world, "edited-by-hand");
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::Conflict))
    );
    assert!(message(&run, Step::TenantProvisioned).contains("will not choose"));
    assert_eq!(
        world.key_in_secret().as_deref(),
        Some("edited-by-hand"),
        "left as it is"
    );
    assert!(world.upstream.log.writes().is_empty());
}

fn edit_key(world: &World, key: &str) {
    let mut record = world.store.record(OUTPUT).unwrap();
    record.data.insert(keys::API_KEY.into(), key.into());
    world.store.put_record(OUTPUT, record);
}

/// The tenant user's password rotated in its Secret (and in GWS): the Nexus tenant is
/// updated with it, never re-created.
async fn rotate_password(world: &World) {
    world.store.put(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated")],
    );
    world
        .upstream
        .auth
        .put_user(CONTACT_CENTER, "nexus", "rotated");
}

#[tokio::test]
async fn a_rotated_password_updates_the_tenant() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    rotate_password(&world).await;
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantToken),
        Some(Ok(Outcome::Obtained)),
        "new password, new token"
    );
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(world.upstream.log.writes(), ["update_tenant"]);
    assert_eq!(world.nexus_password().as_deref(), Some("rotated"));
    assert_ne!(
        run.credentials_fingerprint,
        tenant.status.unwrap().credentials_fingerprint
    );
}

#[tokio::test]
async fn a_refused_update_says_so_and_keeps_the_tenant() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    rotate_password(&world).await;
    world.nexus_fails("update_tenant", ErrorKind::Rejected, Times::Always);
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::TenantUpdateUnsupported))
    );
    let log = &world.upstream.log;
    assert_eq!(
        (
            log.count("update_tenant"),
            log.count("delete_tenant"),
            log.count("create_tenant")
        ),
        (1, 0, 0)
    );
    assert_eq!(world.nexus_password().as_deref(), Some(USER_PASSWORD));
}

#[tokio::test]
async fn a_wrong_tenant_password_stops_the_token_chain_but_not_the_setting() {
    let world = World::new().await;
    world
        .store
        .put("t100-user", &[("username", "nexus"), ("password", "wrong")]);
    let run = world.pass(&t100()).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantToken, Err(Reason::UpstreamRejected)),
            (Step::ChatServiceRegistered, Ok(Outcome::Created)),
        ],
    );
    assert_eq!(outcome(&run, Step::TenantProvisioned), None);
    assert_eq!(world.upstream.log.writes(), ["upsert_setting"]);
}

#[tokio::test]
async fn a_missing_tenant_user_secret_is_said_at_the_token_step() {
    let world = World::new().await;
    world.store.remove("t100-user");
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantToken),
        Some(Err(Reason::SecretNotFound))
    );
    assert_eq!(world.upstream.log.count("token"), 0);
}

#[tokio::test]
async fn ucs_first_registration_is_created_and_recorded() {
    let world = World::new().await;
    let run = world.pass(&samples::tenant("t100", Some(UCS))).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Ok(Outcome::Created))
    );
    assert_eq!(world.upstream.log.count("register_ucs"), 1);
    assert_eq!(
        world.upstream.nexus.ucs(CONTACT_CENTER).as_deref(),
        Some(UCS)
    );
    assert_eq!(run.ucs_url.as_deref(), Some(UCS));
    let record = world.store.record(OUTPUT).unwrap();
    assert_eq!(
        record
            .annotations
            .get(annotations::UCS_URL)
            .map(String::as_str),
        Some(UCS)
    );
}

#[tokio::test]
async fn ucs_already_registered_is_not_posted_again() {
    let world = World::new().await;
    let tenant = world.provisioned(samples::tenant("t100", Some(UCS))).await;
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Ok(Outcome::AlreadyRight))
    );
    assert_eq!(world.upstream.log.count("register_ucs"), 0);
}

#[tokio::test]
async fn a_changed_ucs_url_is_registered_again() {
    let world = World::new().await;
    let tenant = world.provisioned(samples::tenant("t100", Some(UCS))).await;
    let mut moved = samples::tenant("t100", Some("https://ucs2.example.com"));
    moved.status = tenant.status;
    let run = world.pass(&moved).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(world.upstream.log.writes(), ["register_ucs"]);
    assert_eq!(
        world.upstream.nexus.ucs(CONTACT_CENTER).as_deref(),
        Some("https://ucs2.example.com")
    );
}

#[tokio::test]
async fn a_409_to_a_first_ucs_registration_counts_as_registered() {
    let world = World::new().await;
    world.nexus_fails("register_ucs", ErrorKind::Conflict, Times::Next);
    let run = world.pass(&samples::tenant("t100", Some(UCS))).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Ok(Outcome::AlreadyRight))
    );
    assert!(run.report.succeeded());
}

#[tokio::test]
async fn a_409_to_a_changed_ucs_url_is_an_error() {
    let world = World::new().await;
    let tenant = world.provisioned(samples::tenant("t100", Some(UCS))).await;
    let mut moved = samples::tenant("t100", Some("https://ucs2.example.com"));
    moved.status = tenant.status;
    world.nexus_fails("register_ucs", ErrorKind::Conflict, Times::Next);
    let run = world.pass(&moved).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Err(Reason::Conflict))
    );
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::AlreadyRight)),
        "the other branch holds"
    );
    assert_eq!(
        world.upstream.nexus.ucs(CONTACT_CENTER).as_deref(),
        Some(UCS)
    );
}

#[tokio::test]
async fn a_ucs_api_key_secret_is_sent_instead_of_the_token() {
    let world = World::new().await;
    let mut tenant = samples::tenant("t100", Some(UCS));
    let ucs = tenant.spec.ucs.as_mut().unwrap();
    ucs.api_key_secret = Some(crate::api::SecretKeyRef {
        name: "ucs-key".into(),
        key: "key".into(),
    });
    // Not a key Nexus knows: refused, which proves this key was the one sent.
    world.store.put("ucs-key", &[("key", "unknown-key")]);
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::UcsRegistered),
        Some(Err(Reason::Unauthorized))
    );
    assert!(message(&run, Step::UcsRegistered).contains("spec.ucs.apiKeySecret"));
    assert_eq!(world.upstream.nexus.ucs(CONTACT_CENTER), None);
}

#[tokio::test]
async fn a_chatservice_uri_that_differs_is_overwritten() {
    let world = World::new().await;
    let other = Setting {
        name: CHAT_SERVICE_SETTING.into(),
        location: "/".into(),
        value: serde_json::json!("https://old-nexus.example.com"),
        shared: false,
    };
    world
        .upstream
        .environment
        .put_setting(CONTACT_CENTER, other);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::ChatServiceRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(world.upstream.log.count("upsert_setting"), 1);
    let settings = world.upstream.environment.settings(CONTACT_CENTER);
    assert_eq!(settings.len(), 1, "overwritten by name");
    assert_eq!(settings[0].value, serde_json::json!(NEXUS_URL));
}

#[tokio::test]
async fn a_chatservice_uri_that_is_right_in_another_spelling_is_left() {
    let world = World::new().await;
    let same = Setting {
        name: CHAT_SERVICE_SETTING.into(),
        location: "/".into(),
        value: serde_json::json!(format!("{NEXUS_URL}/")),
        shared: true,
    };
    world.upstream.environment.put_setting(CONTACT_CENTER, same);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::ChatServiceRegistered),
        Some(Ok(Outcome::AlreadyRight))
    );
    assert_eq!(world.upstream.log.count("upsert_setting"), 0);
}

#[tokio::test]
async fn a_chatservice_uri_at_another_location_is_moved() {
    let world = World::new().await;
    let elsewhere = Setting {
        name: CHAT_SERVICE_SETTING.into(),
        location: "/other".into(),
        value: serde_json::json!(NEXUS_URL),
        shared: false,
    };
    world
        .upstream
        .environment
        .put_setting(CONTACT_CENTER, elsewhere);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::ChatServiceRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(
        world.upstream.environment.settings(CONTACT_CENTER)[0].location,
        "/"
    );
}

#[tokio::test]
async fn a_cached_token_gws_forgot_is_replaced_once() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    world.upstream.auth.forget_tokens();
    let run = world.pass(&tenant).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantToken, Ok(Outcome::Reused)),
            (Step::TenantProvisioned, Ok(Outcome::AlreadyRight)),
        ],
    );
    let log = &world.upstream.log;
    assert_eq!(
        log.count("get_tenant"),
        2,
        "refused, then again with a fresh token"
    );
    assert_eq!(log.count("token"), 1, "one fresh token");
    assert!(log.writes().is_empty());
}

#[tokio::test]
async fn a_fresh_token_that_nexus_refuses_is_not_retried() {
    let world = World::new().await;
    world.nexus_fails("get_tenant", ErrorKind::Unauthorized, Times::Always);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::Unauthorized))
    );
    assert!(message(&run, Step::TenantProvisioned).contains("tenant user's rights"));
    let log = &world.upstream.log;
    assert_eq!(
        (
            log.count("get_tenant"),
            log.count("token"),
            log.count("create_tenant")
        ),
        (1, 1, 0)
    );
}

struct Refuse(std::sync::Mutex<usize>);

#[async_trait::async_trait]
impl ClaimBeforeWrites for Refuse {
    async fn claim(&self, cc: &str, centers: &[ContactCenter]) -> Result<(), StepError> {
        *self.0.lock().unwrap() += 1;
        assert_eq!((cc, centers.len()), (CONTACT_CENTER, 1));
        Err(StepError::permanent(Reason::Conflict, "claimed by dc/t200"))
    }
}

#[tokio::test]
async fn a_refused_claim_stops_the_pass_before_any_write() {
    let world = World::new().await;
    let claim = Refuse(std::sync::Mutex::new(0));
    let run = run_tenant_claiming(&world.runbook, &t100(), &world.env, &world.store, &claim).await;
    assert_eq!(*claim.0.lock().unwrap(), 1);
    assert_eq!(
        outcome(&run, Step::ContactCenterResolved),
        Some(Err(Reason::Conflict))
    );
    assert_eq!(run.contact_center_id, None, "not this tenant's");
    assert_eq!(world.upstream.log.operations(), ["list_contact_centers"]);
    assert!(world.store.writes().is_empty());
}

#[tokio::test]
async fn an_output_secret_of_someone_else_stops_the_pass_before_any_call() {
    let world = World::new().await;
    world.store.mark_foreign(OUTPUT);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::OutputSecret),
        Some(Err(Reason::Conflict))
    );
    assert!(world.upstream.log.calls().is_empty());
}

#[tokio::test]
async fn a_key_whose_secret_write_failed_waits_and_is_written_next_pass() {
    let world = World::new().await;
    world.store.fail_writes(1);
    let run = world.pass(&t100()).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantProvisioned, Ok(Outcome::Created)),
            (Step::OutputSecret, Err(Reason::UpstreamUnavailable)),
        ],
    );
    assert_eq!(world.runbook.pending_keys.len(), 1, "the only copy, kept");

    let run = world.pass(&t100()).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantProvisioned, Ok(Outcome::AlreadyRight)),
            (Step::OutputSecret, Ok(Outcome::Created)),
        ],
    );
    assert_eq!(
        world.key_in_secret(),
        Some(world.upstream.db.api_keys()[0].id.clone())
    );
    assert!(world.runbook.pending_keys.is_empty());
    assert_eq!(world.upstream.log.count("create_tenant"), 1);
}

#[tokio::test]
async fn an_unknown_contact_center_stops_the_pass_before_any_write() {
    let world = World::new().await;
    let mut tenant = t100();
    tenant.spec.contact_center_domain = Some("t999".into());
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::ContactCenterResolved),
        Some(Err(Reason::ContactCenterNotFound))
    );
    assert!(world.upstream.log.writes().is_empty());
    assert_eq!(world.upstream.log.count("token"), 0);
}

#[tokio::test]
async fn an_unavailable_environment_api_is_transient_and_writes_nothing() {
    let world = World::new().await;
    let away = error(
        System::Environment,
        "list_contact_centers",
        ErrorKind::Transient,
    );
    world
        .upstream
        .environment
        .script
        .fail_next("list_contact_centers", away);
    let run = world.pass(&t100()).await;
    assert_eq!(
        samples::failure(&run.report),
        Some((
            Step::ContactCenterResolved,
            Reason::UpstreamUnavailable,
            true
        ))
    );
    assert!(world.upstream.log.writes().is_empty());
}

#[tokio::test]
async fn without_the_fingerprint_key_provisioning_waits_for_the_environment() {
    let world = World::new().await;
    let mut env = world.env.clone();
    env.fingerprint_key = None;
    let run = run_tenant(&world.runbook, &t100(), &env, &world.store).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::WaitingForEnvironment))
    );
    assert_eq!(world.upstream.log.count("create_tenant"), 0);
}

#[tokio::test]
async fn designer_env_acknowledged_by_annotation_holds() {
    let world = World::new().await;
    let mut tenant = t100();
    let annotations = [(
        crate::api::DESIGNER_ENV_ANNOTATION.to_string(),
        "true".to_string(),
    )];
    tenant.metadata.annotations = Some(annotations.into_iter().collect());
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::DesignerEnvConfigured),
        Some(Ok(Outcome::AlreadyRight))
    );
}

#[tokio::test]
async fn a_nexus_without_the_tenant_get_decides_by_the_key_row() {
    let world = World::new().await;
    world.upstream.nexus.without_tenant_get();
    let tenant = world.provisioned(t100()).await;
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::AlreadyRight))
    );
    let log = &world.upstream.log;
    assert_eq!(
        (log.count("find_api_keys"), log.count("create_tenant")),
        (1, 0)
    );
}

#[tokio::test]
async fn a_tenant_gone_from_a_nexus_that_answers_gets_is_said_missing() {
    let world = World::new().await;
    let first = world.provisioned(t100()).await;
    // This Nexus has answered a tenant GET (the second pass): its 404 now means gone.
    let tenant = world.provisioned(first).await;
    world.upstream.nexus.remove_tenant(CONTACT_CENTER);
    let run = world.pass(&tenant).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Err(Reason::TenantMissing))
    );
    assert_eq!(
        world.upstream.log.count("create_tenant"),
        0,
        "a new key would break consumers"
    );
}

#[tokio::test]
async fn a_refused_tenant_get_without_a_key_lets_the_create_decide() {
    let world = World::new().await;
    world.nexus_fails("get_tenant", ErrorKind::Rejected, Times::Always);
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::Created))
    );
    assert_eq!(world.upstream.log.count("create_tenant"), 1);
}

#[tokio::test]
async fn a_409_to_the_create_recovers_the_key_of_the_tenant_that_exists() {
    let world = World::new().await;
    world.pass(&t100()).await;
    // The output Secret and the pending key are lost (another operator's namespace, say).
    world.store.remove(OUTPUT);
    world.nexus_fails("get_tenant", ErrorKind::Rejected, Times::Always);
    world.upstream.log.clear();
    let run = world.pass(&t100()).await;
    assert_eq!(
        outcome(&run, Step::TenantProvisioned),
        Some(Ok(Outcome::Recovered))
    );
    assert_eq!(world.upstream.log.count("create_tenant"), 1, "answered 409");
    assert_eq!(world.upstream.db.api_keys().len(), 1);
}

// Cleanup.

fn record(cc: Option<&str>, tenant: bool, ucs: bool) -> CreatedRecord {
    CreatedRecord {
        contact_center_id: cc.map(String::from),
        tenant,
        ucs,
    }
}

async fn cleanup(
    world: &World,
    tenant: &DigitalChannelsTenant,
    record: &CreatedRecord,
) -> Result<Deleted, StepError> {
    delete_tenant(&world.runbook, tenant, &world.env, &world.store, record).await
}

#[tokio::test]
async fn cleanup_by_record_deletes_the_tenant_and_its_ucs() {
    let world = World::new().await;
    let tenant = world.provisioned(samples::tenant("t100", Some(UCS))).await;
    let deleted = cleanup(
        &world,
        &tenant,
        &CreatedRecord::of(tenant.status.as_ref().unwrap()),
    )
    .await;
    let expected = Deleted {
        tenant: Removal::Deleted,
        ucs: Removal::Deleted,
        contact_center_id: Some(CONTACT_CENTER.into()),
    };
    assert_eq!(deleted, Ok(expected));
    assert_eq!(world.upstream.log.writes(), ["delete_ucs", "delete_tenant"]);
    assert_eq!(
        world.upstream.log.count("get_tenant"),
        0,
        "the record proves it"
    );
    assert!(world.upstream.nexus.tenant(CONTACT_CENTER).is_none());
    assert!(world.upstream.nexus.ucs(CONTACT_CENTER).is_none());
}

#[tokio::test]
async fn cleanup_of_what_is_already_gone_is_done() {
    let world = World::new().await;
    let deleted = cleanup(&world, &t100(), &record(Some(CONTACT_CENTER), true, false)).await;
    assert_eq!(deleted.map(|d| d.tenant), Ok(Removal::AlreadyGone));
    assert_eq!(world.upstream.log.writes(), ["delete_tenant"]);
}

#[tokio::test]
async fn cleanup_without_record_deletes_a_tenant_bearing_this_name() {
    let world = World::new().await;
    world.pass(&t100()).await;
    world.upstream.log.clear();
    let deleted = cleanup(&world, &t100(), &CreatedRecord::default()).await;
    assert_eq!(
        deleted.map(|d| (d.tenant, d.ucs)),
        Ok((Removal::Deleted, Removal::Untouched))
    );
    assert_eq!(world.upstream.log.writes(), ["delete_tenant"]);
    assert_eq!(world.upstream.log.count("get_tenant"), 1);
}

#[tokio::test]
async fn cleanup_without_record_leaves_a_tenant_of_another_name() {
    let world = World::new().await;
    world.pass(&samples::tenant("other", None)).await;
    world.upstream.log.clear();
    let deleted = cleanup(&world, &t100(), &CreatedRecord::default()).await;
    assert_eq!(deleted.map(|d| d.tenant), Ok(Removal::Untouched));
    assert!(world.upstream.log.writes().is_empty());
    assert!(world.upstream.nexus.tenant(CONTACT_CENTER).is_some());
}

#[tokio::test]
async fn cleanup_without_record_and_a_refused_get_asks_nex_apikeys() {
    let world = World::new().await;
    world.pass(&t100()).await;
    world.upstream.log.clear();
    world.nexus_fails("get_tenant", ErrorKind::Rejected, Times::Always);
    let deleted = cleanup(&world, &t100(), &CreatedRecord::default()).await;
    assert_eq!(deleted.map(|d| d.tenant), Ok(Removal::Deleted));
    assert_eq!(world.upstream.log.count("find_api_keys"), 1);
    assert_eq!(world.upstream.log.writes(), ["delete_tenant"]);
}

#[tokio::test]
async fn cleanup_without_a_contact_center_deletes_nothing() {
    let world = World::new().await;
    let mut tenant = t100();
    tenant.spec.contact_center_domain = Some("t999".into());
    let deleted = cleanup(&world, &tenant, &CreatedRecord::default()).await;
    assert_eq!(deleted, Ok(Deleted::default()));
    assert_eq!(world.upstream.log.operations(), ["list_contact_centers"]);
}

#[test]
fn what_a_cleanup_deleted_is_said_without_more() {
    use Removal::{AlreadyGone as Gone, Deleted as Del, Untouched as No};
    let cc = Some("cc".to_string());
    for (tenant, ucs, words) in [
        (
            Del,
            Del,
            "Deleted the Nexus tenant cc and its PlatformUCS service.",
        ),
        (Del, No, "Deleted the Nexus tenant cc."),
        (
            Del,
            Gone,
            "Deleted the Nexus tenant cc; the PlatformUCS service of cc was already gone.",
        ),
        (No, Del, "Deleted the PlatformUCS service of cc."),
        (
            Gone,
            Del,
            "Deleted the PlatformUCS service of cc; the Nexus tenant cc was already gone.",
        ),
        (
            Gone,
            No,
            "Nothing deleted: the Nexus tenant cc was already gone.",
        ),
        (
            Gone,
            Gone,
            "Nothing deleted: the Nexus tenant cc and its PlatformUCS service were already gone.",
        ),
        (
            No,
            No,
            "Nothing to delete: this tenant never created a Nexus tenant.",
        ),
    ] {
        let deleted = Deleted {
            tenant,
            ucs,
            contact_center_id: cc.clone(),
        };
        assert_eq!(deleted.describe(), words, "{tenant:?} {ucs:?}");
    }
}

/// A PlatformUCS service gone before the cleanup is not said to be deleted (the walk: "and
/// its PlatformUCS service" of a tenant that had none left).
#[tokio::test]
async fn cleanup_says_only_what_it_deleted() {
    let world = World::new().await;
    let tenant = world.provisioned(samples::tenant("t100", Some(UCS))).await;
    world.upstream.nexus.remove_ucs(CONTACT_CENTER);
    let record = CreatedRecord::of(tenant.status.as_ref().unwrap());
    let deleted = cleanup(&world, &tenant, &record).await.unwrap();
    assert_eq!(
        (deleted.tenant, deleted.ucs),
        (Removal::Deleted, Removal::AlreadyGone)
    );
    assert!(!deleted.describe().contains("and its PlatformUCS"));
}

/// A cleanup after GWS Auth forgot the cached tenant token (a restart): the delete's 401
/// must not repeat for the token's whole lifetime (about 12 h). The refused cached token is
/// dropped and the cleanup tried once more with a fresh one, as a provisioning pass does.
#[tokio::test]
async fn cleanup_with_a_cached_token_gws_forgot_gets_a_fresh_one() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    world.upstream.auth.forget_tokens();
    let record = CreatedRecord::of(tenant.status.as_ref().unwrap());
    let deleted = cleanup(&world, &tenant, &record).await;
    assert_eq!(
        deleted.as_ref().map(|d| d.tenant).map_err(|e| e.reason),
        Ok(Removal::Deleted),
        "{:?}",
        world.upstream.log.operations()
    );
    assert!(world.upstream.nexus.tenant(CONTACT_CENTER).is_none());
}

#[tokio::test]
async fn a_deleted_output_secret_is_restored_from_the_recorded_row() {
    let world = World::new().await;
    let tenant = world.provisioned(t100()).await;
    let key = world.key_in_secret();
    world.store.remove(OUTPUT);
    let run = world.pass(&tenant).await;
    assert_outcomes(
        &run,
        &[
            (Step::TenantProvisioned, Ok(Outcome::Recovered)),
            (Step::OutputSecret, Ok(Outcome::Created)),
        ],
    );
    assert_eq!(world.key_in_secret(), key);
    assert!(world.upstream.log.writes().is_empty(), "nothing upstream");
}

/// PlatformUCS registered, the Nexus create failed: the recorded registration is deleted
/// though no Nexus tenant is, and the event says so.
#[tokio::test]
async fn cleanup_deletes_a_recorded_ucs_without_a_nexus_tenant() {
    let world = World::new().await;
    let tenant = samples::tenant("t100", Some(UCS));
    world.nexus_fails("create_tenant", ErrorKind::Rejected, Times::Always);
    world.pass(&tenant).await;
    assert!(
        world.upstream.nexus.ucs(CONTACT_CENTER).is_some(),
        "registered"
    );
    assert!(
        world.upstream.nexus.tenant(CONTACT_CENTER).is_none(),
        "not created"
    );
    let deleted = cleanup(&world, &tenant, &record(Some(CONTACT_CENTER), false, true)).await;
    let expected = Deleted {
        tenant: Removal::Untouched,
        ucs: Removal::Deleted,
        contact_center_id: Some(CONTACT_CENTER.into()),
    };
    assert_eq!(deleted, Ok(expected));
    assert!(world.upstream.nexus.ucs(CONTACT_CENTER).is_none());
}
