//! The tenant steps under `managementPolicy: Observe`, on the in-memory fakes: every step in
//! sync, drifted and missing, with the fakes' call log proving that nothing was written
//! upstream; then the switch to Manage, which makes exactly the writes the observation
//! announced.

use super::*;
use crate::api::{ManagementPolicy, TenantStatus};
use crate::fakes::samples::{self, CONTACT_CENTER, NEXUS_URL, announced_writes};
use crate::runbook::report::{Outcome, Step};
use crate::upstream::environment::Setting;

const OUTPUT: &str = "t100-digital-channels";
const UCS: &str = "https://ucs.example.com";

use super::tests::World;

impl World {
    async fn observe_pass(
        &self,
        tenant: &DigitalChannelsTenant,
    ) -> (TenantRun, DigitalChannelsTenant) {
        let run = run_tenant(&self.runbook, tenant, &self.env, &self.store).await;
        let mut after = tenant.clone();
        after.status = Some(status_after(
            tenant.status.clone().unwrap_or_default(),
            &run,
        ));
        (run, after)
    }

    /// The estate as a runbook by hand leaves it: the setting, the Nexus tenant and its key
    /// row upstream (with PlatformUCS when `ucs`); nothing in the cluster records them.
    async fn enabled_by_hand(ucs: Option<&str>) -> Self {
        let world = Self::new().await;
        let (run, _) = world.observe_pass(&samples::tenant("t100", ucs)).await;
        assert!(run.report.succeeded(), "{:?}", run.report);
        world.store.remove(OUTPUT);
        world.upstream.log.clear();
        Self {
            runbook: samples::runbook(&world.upstream),
            ..world
        }
    }

    fn writes(&self) -> Vec<&'static str> {
        let mut writes = self.upstream.log.writes();
        writes.sort_unstable();
        writes
    }
}

/// The status a controller pass writes: what the run found, else what was recorded.
fn status_after(previous: TenantStatus, run: &TenantRun) -> TenantStatus {
    TenantStatus {
        contact_center_id: run.contact_center_id.clone().or(previous.contact_center_id),
        operation_id: run.operation_id.clone().or(previous.operation_id),
        api_key_digest: run.api_key_digest.clone().or(previous.api_key_digest),
        ucs_url: run.ucs_url.clone().or(previous.ucs_url),
        credentials_fingerprint: run
            .credentials_fingerprint
            .clone()
            .or(previous.credentials_fingerprint),
        ..TenantStatus::default()
    }
}

fn observed(mut tenant: DigitalChannelsTenant) -> DigitalChannelsTenant {
    tenant.spec.management_policy = ManagementPolicy::Observe;
    tenant
}

fn managed(mut tenant: DigitalChannelsTenant) -> DigitalChannelsTenant {
    tenant.spec.management_policy = ManagementPolicy::Manage;
    tenant
}

/// Each step's outcome, by its words ("already right", "drifted", ...), or its failure.
fn outcomes(run: &TenantRun) -> Vec<(Step, String)> {
    let words = |r: &Result<Outcome, _>| match r {
        Ok(o) => o.as_str().to_string(),
        Err(e) => format!("failed: {e}"),
    };
    let steps = run.report.steps.iter();
    steps.map(|s| (s.step, words(&s.result))).collect()
}

fn said(run: &TenantRun, step: Step) -> String {
    let result = run.report.outcome_of(step).cloned();
    let outcome = result.and_then(Result::ok);
    let said = outcome.as_ref().and_then(Outcome::observed_difference);
    said.unwrap_or_else(|| panic!("{step} observed no difference: {:?}", run.report))
        .to_string()
}

#[tokio::test]
async fn observed_in_sync_every_step_holds_and_nothing_is_written() {
    let world = World::new().await;
    let (_, tenant) = world
        .observe_pass(&samples::tenant("t100", Some(UCS)))
        .await;
    world.upstream.log.clear();
    let secret_writes = world.store.writes().len();

    let (run, _) = world.observe_pass(&observed(tenant)).await;
    assert!(run.report.in_sync(), "{:?}", outcomes(&run));
    assert_eq!(run.report.policy, ManagementPolicy::Observe);
    for step in [
        Step::ChatServiceRegistered,
        Step::UcsRegistered,
        Step::TenantProvisioned,
        Step::OutputSecret,
    ] {
        assert_eq!(
            run.report.outcome_of(step),
            Some(&Ok(Outcome::AlreadyRight)),
            "{step}"
        );
    }
    assert!(world.upstream.log.writes().is_empty());
    assert_eq!(
        world.store.writes().len(),
        secret_writes,
        "the Secret holds"
    );
}

#[tokio::test]
async fn observed_enabled_by_hand_the_key_is_found_and_written_to_the_secret_only() {
    for without_tenant_get in [false, true] {
        let world = World::enabled_by_hand(None).await;
        if without_tenant_get {
            // A Nexus without the (assumed) tenant GET: the key row alone tells.
            world.upstream.nexus.without_tenant_get();
        }
        let (run, _) = world
            .observe_pass(&observed(samples::tenant("t100", None)))
            .await;
        let case = format!("without tenant GET: {without_tenant_get}");
        assert!(run.report.in_sync(), "{case}: {:?}", outcomes(&run));
        assert_eq!(
            run.report.outcome_of(Step::TenantProvisioned),
            Some(&Ok(Outcome::Recovered)),
            "{case}"
        );
        let row = world.upstream.db.api_keys()[0].id.clone();
        assert_eq!(world.store.get(OUTPUT, keys::API_KEY), Some(row), "{case}");
        assert_eq!(
            world.store.get(OUTPUT, keys::CONTACT_CENTER_ID).as_deref(),
            Some(CONTACT_CENTER)
        );
        assert!(world.upstream.log.writes().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn observed_missing_says_what_manage_would_create_and_writes_nothing() {
    let world = World::new().await;
    let (run, _) = world
        .observe_pass(&observed(samples::tenant("t100", Some(UCS))))
        .await;
    let table = [
        (Step::ChatServiceRegistered, "missing", "would create it"),
        (
            Step::TenantProvisioned,
            "missing",
            "would create the tenant",
        ),
        (
            Step::UcsRegistered,
            "not observable",
            "will register it once",
        ),
    ];
    for (step, words, manage) in table {
        let found = outcomes(&run).into_iter().find(|(s, _)| *s == step);
        assert_eq!(found.map(|f| f.1).as_deref(), Some(words), "{step}");
        assert!(
            said(&run, step).contains(manage),
            "{step}: {}",
            said(&run, step)
        );
    }
    assert_eq!(run.report.outcome_of(Step::OutputSecret), None, "no key");
    assert!(world.upstream.log.writes().is_empty());
    assert!(
        world.store.record(OUTPUT).is_none(),
        "no Secret without a key"
    );
    assert!(world.upstream.nexus.ucs(CONTACT_CENTER).is_none());
}

/// The setting, the tenant user's credentials and the PlatformUCS URL, each changed since
/// the operator provisioned them: each is Drifted, with what differs, and nothing is written.
#[tokio::test]
async fn observed_drift_says_what_differs_and_writes_nothing() {
    let world = World::new().await;
    let (_, tenant) = world
        .observe_pass(&samples::tenant("t100", Some(UCS)))
        .await;
    world.upstream.environment.put_setting(
        CONTACT_CENTER,
        Setting {
            name: CHAT_SERVICE_SETTING.into(),
            location: "/".into(),
            value: serde_json::json!("https://old-nexus.example.com"),
            shared: false,
        },
    );
    world.store.put(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated")],
    );
    world
        .upstream
        .auth
        .put_user(CONTACT_CENTER, "nexus", "rotated");
    let mut tenant = observed(tenant);
    tenant.spec.ucs.as_mut().unwrap().url = "https://ucs2.example.com".into();
    world.upstream.log.clear();

    let (run, _) = world.observe_pass(&tenant).await;
    let table = [
        (Step::ChatServiceRegistered, "old-nexus.example.com"),
        (
            Step::TenantProvisioned,
            "credentials are not those recorded",
        ),
        (
            Step::UcsRegistered,
            "would register https://ucs2.example.com",
        ),
    ];
    for (step, words) in table {
        assert!(
            said(&run, step).contains(words),
            "{step}: {}",
            said(&run, step)
        );
        assert!(!said(&run, step).contains("rotated"), "no secret value");
    }
    assert_eq!(
        said(&run, Step::ChatServiceRegistered)
            .matches(NEXUS_URL)
            .count(),
        1
    );
    assert!(world.upstream.log.writes().is_empty());
    assert_eq!(
        world
            .upstream
            .nexus
            .tenant_password(CONTACT_CENTER)
            .as_deref(),
        Some(samples::USER_PASSWORD)
    );
    // The key is found all the same: the Secret holds it.
    assert!(world.store.get(OUTPUT, keys::API_KEY).is_some());
}

/// Observe, then Manage on what Observe recorded: in sync, no write; otherwise exactly
/// the writes the observation announced (and a second Observe pass still announces them).
#[tokio::test]
async fn switching_to_manage_makes_exactly_the_writes_observe_announced() {
    let cases: [(&str, Option<&str>); 4] = [
        ("provisioned, in sync", None),
        ("enabled by hand", None),
        ("nothing upstream", Some(UCS)),
        ("drifted", Some(UCS)),
    ];
    for (case, ucs) in cases {
        let world = match case {
            "enabled by hand" => World::enabled_by_hand(ucs).await,
            _ => World::new().await,
        };
        let mut tenant = samples::tenant("t100", ucs);
        if case == "provisioned, in sync" || case == "drifted" {
            tenant = world.observe_pass(&tenant).await.1;
        }
        if case == "drifted" {
            world.store.put(
                "t100-user",
                &[("username", "nexus"), ("password", "rotated")],
            );
            world
                .upstream
                .auth
                .put_user(CONTACT_CENTER, "nexus", "rotated");
        }
        world.upstream.log.clear();
        let (first, tenant) = world.observe_pass(&observed(tenant)).await;
        let (again, tenant) = world.observe_pass(&tenant).await;
        let announced = announced_writes(&first.report);
        assert_eq!(
            announced_writes(&again.report),
            announced,
            "{case}: still announced"
        );
        assert!(
            world.upstream.log.writes().is_empty(),
            "{case}: Observe wrote"
        );

        let (run, _) = world.observe_pass(&managed(tenant)).await;
        assert!(run.report.succeeded(), "{case}: {:?}", outcomes(&run));
        assert_eq!(world.writes(), announced, "{case}");
        let expected: &[&str] = match case {
            "nothing upstream" => &["create_tenant", "register_ucs", "upsert_setting"],
            "drifted" => &["update_tenant"],
            _ => &[],
        };
        assert_eq!(announced, expected, "{case}");
    }
}

#[tokio::test]
async fn an_observed_tenant_deletes_nothing_whatever_its_record() {
    let world = World::new().await;
    let (_, tenant) = world
        .observe_pass(&samples::tenant("t100", Some(UCS)))
        .await;
    let record = CreatedRecord::of(tenant.status.as_ref().unwrap());
    assert!(record.tenant && record.ucs);
    world.upstream.log.clear();
    let deleted = delete_tenant(
        &world.runbook,
        &observed(tenant),
        &world.env,
        &world.store,
        &record,
    )
    .await
    .unwrap();
    assert_eq!(deleted, Deleted::default());
    assert!(
        world.upstream.log.calls().is_empty(),
        "{:?}",
        world.upstream.log.calls()
    );
    assert!(world.upstream.nexus.tenant(CONTACT_CENTER).is_some());
}
