//! The runbook end to end: real reqwest and sqlx clients against the simulator over
//! loopback, with a real PostgreSQL database.

mod common;

use common::{Sim, environment, runbook, sample_store, tenant};
use digital_channels_operator::runbook::environment::run_environment;
use digital_channels_operator::runbook::report::{Outcome, Reason, Step};
use digital_channels_operator::runbook::tenant::{self, delete_tenant, keys, run_tenant};
use digital_channels_operator::runbook::{RunReport, Runbook};
use digital_channels_operator::secret::SecretString;

fn outcome(report: &RunReport, step: Step) -> Outcome {
    match report.outcome_of(step) {
        Some(Ok(o)) => o.clone(),
        other => panic!("{step}: {other:?}\n{report:#?}"),
    }
}

fn assert_holds(report: &RunReport) {
    assert!(report.succeeded(), "a step failed: {:#?}", report.failure());
}

/// Everything a person would see of a report: step names, outcomes, messages, details.
fn printed(report: &RunReport) -> String {
    let mut out = Vec::new();
    digital_channels_operator::cli::provision::print_report(report, &mut out);
    String::from_utf8(out).unwrap()
}

async fn provision_all(rb: &Runbook, sim: &Sim, store: &common::MemoryStore) -> Vec<RunReport> {
    let env = environment(&sim.url());
    let env_run = run_environment(rb, &env, store).await;
    assert_holds(&env_run.report);
    let resolved = env_run.resolved.expect("resolved environment");
    let mut reports = vec![env_run.report];
    for t in [tenant("t100", "t100", true), tenant("t200", "t200", false)] {
        let run = run_tenant(rb, &t, &resolved, store).await;
        assert_holds(&run.report);
        reports.push(run.report);
    }
    reports
}

#[tokio::test]
async fn second_run_changes_nothing() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let first = provision_all(&runbook(), &sim, &store).await;
    assert_eq!(outcome(&first[0], Step::ClientRegistered), Outcome::Created);
    assert_eq!(outcome(&first[0], Step::GapiRegistered), Outcome::Created);
    assert_eq!(
        outcome(&first[1], Step::TenantProvisioned),
        Outcome::Created
    );
    assert_eq!(outcome(&first[1], Step::UcsRegistered), Outcome::Created);

    // A new process: no token cache, state only in the store and upstream.
    let second = provision_all(&runbook(), &sim, &store).await;
    for report in &second {
        assert!(
            !report.changed_anything(),
            "second run changed something:\n{}",
            printed(report)
        );
    }
    assert_eq!(
        outcome(&second[1], Step::TenantProvisioned),
        Outcome::AlreadyRight
    );

    let state = sim.handle.snapshot();
    assert_eq!(state.creates("auth.create_client"), 1);
    assert_eq!(state.updates("auth.update_client"), 0);
    assert_eq!(
        state.creates("environment.upsert_setting"),
        2,
        "one chatservice-uri per contact center"
    );
    assert_eq!(state.updates("environment.upsert_setting"), 0);
    assert_eq!(state.creates("nexus.create_tenant"), 2);
    assert_eq!(state.calls("nexus.create_tenant"), 2);
    assert_eq!(state.creates("nexus.register_ucs"), 1);
    assert_eq!(state.calls("nexus.register_ucs"), 1);
    assert_eq!(sim.handle.gapis_rows().await.unwrap().len(), 1);

    // The output Secret holds the contract's keys; the key is the one Nexus stored.
    let key = store
        .get("t100-digital-channels", keys::API_KEY)
        .expect("xapikey written");
    let stored: Vec<_> = sim.handle.apikey_rows().await.unwrap();
    assert!(stored.iter().any(|r| r.name == "t100" && r.id == key));
    assert_eq!(
        store
            .get("t100-digital-channels", keys::CONTACT_CENTER_ID)
            .as_deref(),
        Some(digital_channels_operator::simulator::DEMO_CC_T100)
    );
    assert_eq!(
        store
            .get("t100-digital-channels", keys::TENANT_NAME)
            .as_deref(),
        Some("t100")
    );
    assert_eq!(
        store.get("t100-digital-channels", keys::NEXUS_URL),
        Some(sim.url())
    );
}

#[tokio::test]
async fn a_token_is_reused_within_a_process() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let issued = sim.handle.snapshot().tokens_issued;
    let second = provision_all(&rb, &sim, &store).await;
    assert_eq!(outcome(&second[1], Step::TenantToken), Outcome::Reused);
    // Only the client verification asks for a token again: it must prove the secret.
    assert_eq!(sim.handle.snapshot().tokens_issued, issued + 1);
}

#[tokio::test]
async fn a_transient_failure_at_each_step_still_ends_provisioned() {
    let operations = [
        "auth.get_client",
        "auth.create_client",
        "auth.token",
        "environment.list_contact_centers",
        "environment.list_settings",
        "environment.upsert_setting",
        "nexus.register_ucs",
        "nexus.get_tenant",
        "nexus.create_tenant",
    ];
    for op in operations {
        let sim = Sim::start().await;
        let store = sample_store(&sim.db.url);
        sim.handle.faults().fail_next(op, 1, 503);
        provision_all(&runbook(), &sim, &store).await;
        let state = sim.handle.snapshot();
        assert!(state.calls(op) >= 2, "{op} was not retried");
        assert_eq!(state.creates("nexus.create_tenant"), 2, "{op}");
        assert_eq!(state.creates("auth.create_client"), 1, "{op}");
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    sim.handle
        .faults()
        .timeout_next("environment.list_settings", 1);
    provision_all(&runbook(), &sim, &store).await;
    assert!(sim.handle.snapshot().calls("environment.list_settings") >= 3);
}

#[tokio::test]
async fn a_wrong_ops_password_names_the_step_and_cause_without_secrets() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    store.put(
        "gws-ops",
        &[("username", "ops"), ("password", "wrong-password-123")],
    );
    let run = run_environment(&runbook(), &environment(&sim.url()), &store).await;
    let (step, error) = run.report.failure().expect("fails");
    assert_eq!(step.step, Step::ClientRegistered);
    assert_eq!(error.reason, Reason::Unauthorized);
    assert!(!error.transient);
    assert!(
        error.message.contains("GWS Auth") && error.message.contains("gws-ops"),
        "{}",
        error.message
    );
    assert_no_secrets(&printed(&run.report), &store);
    // A permanent failure is not retried inside the call.
    assert_eq!(sim.handle.snapshot().calls("auth.get_client"), 1);
}

#[tokio::test]
async fn a_wrong_tenant_password_names_the_step_and_cause_without_secrets() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    store.put(
        "t100-user",
        &[("username", "nexus"), ("password", "not-the-password-456")],
    );
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let run = run_tenant(
        &rb,
        &tenant("t100", "t100", false),
        &env_run.resolved.unwrap(),
        &store,
    )
    .await;
    let (step, error) = run.report.failure().expect("fails");
    assert_eq!(step.step, Step::TenantToken);
    assert_eq!(error.reason, Reason::Unauthorized);
    assert!(error.message.contains("t100-user"), "{}", error.message);
    assert_no_secrets(&printed(&run.report), &store);
    assert_eq!(sim.handle.snapshot().calls("nexus.create_tenant"), 0);
}

#[tokio::test]
async fn an_unknown_contact_center_is_a_clear_error() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.unwrap();

    let mut by_id = tenant("t100", "t100", false);
    by_id.spec.contact_center_domain = None;
    by_id.spec.contact_center_id = Some("00000000-0000-4000-8000-000000000000".into());
    let run = run_tenant(&rb, &by_id, &resolved, &store).await;
    let (step, error) = run.report.failure().expect("fails");
    assert_eq!(
        (step.step, error.reason),
        (Step::ContactCenterResolved, Reason::ContactCenterNotFound)
    );
    assert!(
        error
            .message
            .contains(digital_channels_operator::simulator::DEMO_CC_T100),
        "{}",
        error.message
    );

    let mut ambiguous = tenant("t100", "t100", false);
    ambiguous.spec.contact_center_domain = None;
    let run = run_tenant(&rb, &ambiguous, &resolved, &store).await;
    assert_eq!(
        run.report.failure().unwrap().1.reason,
        Reason::AmbiguousContactCenter
    );
    assert_no_secrets(&printed(&run.report), &store);
}

#[tokio::test]
async fn a_missing_secret_is_reported_not_crashed() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    store.remove("nexus-db");
    let run = run_environment(&runbook(), &environment(&sim.url()), &store).await;
    let (step, error) = run.report.failure().expect("fails");
    assert_eq!(
        (step.step, error.reason),
        (Step::GapiRegistered, Reason::SecretNotFound)
    );
    store.put("nexus-db", &[("wrong-key", "x")]);
    let run = run_environment(&runbook(), &environment(&sim.url()), &store).await;
    assert_eq!(
        run.report.failure().unwrap().1.reason,
        Reason::SecretKeyMissing
    );
    assert_eq!(
        sim.handle.snapshot().calls("auth.get_client"),
        0,
        "no call before the Secrets are there"
    );
}

#[tokio::test]
async fn a_lost_answer_recovers_the_key_from_nex_apikeys() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let key = store.get("t100-digital-channels", keys::API_KEY).unwrap();

    // The create's answer never got recorded: the output is gone.
    store.remove("t100-digital-channels");
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let run = run_tenant(
        &rb,
        &tenant("t100", "t100", true),
        &env_run.resolved.unwrap(),
        &store,
    )
    .await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::TenantProvisioned),
        Outcome::Recovered
    );
    assert_eq!(store.get("t100-digital-channels", keys::API_KEY), Some(key));
    assert_eq!(
        sim.handle.snapshot().creates("nexus.create_tenant"),
        2,
        "nothing provisioned twice"
    );
}

#[tokio::test]
async fn two_tenants_with_the_same_name_keep_their_own_keys() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let env = env_run.resolved.expect("resolved");
    // Two contact centers, one tenant name: Nexus keeps one nex_apikeys row named "shared"
    // for each tenant id.
    let named_shared = |name: &str, domain: &str| {
        let mut t = tenant(name, domain, false);
        t.spec.tenant_name = "shared".to_string();
        t.spec.credentials_secret.name = format!("{domain}-user");
        t
    };
    let (a, b) = (named_shared("a", "t100"), named_shared("b", "t200"));
    assert_holds(&run_tenant(&rb, &a, &env, &store).await.report);
    assert_holds(&run_tenant(&rb, &b, &env, &store).await.report);
    let key_a = store.get("a-digital-channels", keys::API_KEY).unwrap();
    let key_b = store.get("b-digital-channels", keys::API_KEY).unwrap();
    assert_ne!(key_a, key_b);
    for _ in 0..2 {
        for t in [&a, &b] {
            assert_holds(&run_tenant(&rb, t, &env, &store).await.report);
        }
    }
    assert_eq!(
        store.get("a-digital-channels", keys::API_KEY),
        Some(key_a.clone())
    );
    assert_eq!(
        store.get("b-digital-channels", keys::API_KEY),
        Some(key_b.clone()),
        "b must never be handed a's key"
    );

    // Lost answers: each recovers its own key, by contact center.
    for (t, output, key) in [
        (&a, "a-digital-channels", &key_a),
        (&b, "b-digital-channels", &key_b),
    ] {
        store.remove(output);
        let run = run_tenant(&rb, t, &env, &store).await;
        assert_eq!(
            outcome(&run.report, Step::TenantProvisioned),
            Outcome::Recovered
        );
        assert_eq!(store.get(output, keys::API_KEY).as_ref(), Some(key));
    }
}

#[tokio::test]
async fn a_recorded_key_is_never_replaced_and_ambiguous_rows_are_refused() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let key = store.get("t100-digital-channels", keys::API_KEY).unwrap();
    let env = run_environment(&rb, &environment(&sim.url()), &store)
        .await
        .resolved
        .expect("resolved");
    let t100 = tenant("t100", "t100", true);

    // A second row for the same tenant id and name: recovery cannot choose, and says so.
    sqlx::query("INSERT INTO nex_apikeys (id, name, tenantid) VALUES ($1, 't100', $2)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(digital_channels_operator::simulator::DEMO_CC_T100)
        .execute(&sim.db.pool)
        .await
        .unwrap();
    store.remove("t100-digital-channels");
    let run = run_tenant(&rb, &t100, &env, &store).await;
    let (step, failure) = run.report.failure().expect("refused");
    assert_eq!(step.step, Step::TenantProvisioned);
    assert_eq!(failure.reason, Reason::Conflict);
    assert!(failure.message.contains("2 rows"), "{}", failure.message);
    assert_eq!(
        store.get("t100-digital-channels", keys::API_KEY),
        None,
        "nothing written"
    );

    // The recorded key is kept, whatever nex_apikeys holds.
    store.put("t100-digital-channels", &[(keys::API_KEY, key.as_str())]);
    let run = run_tenant(&rb, &t100, &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(store.get("t100-digital-channels", keys::API_KEY), Some(key));
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_looked_for_not_sent_again() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let calls = |op: &str| sim.handle.snapshot().calls(op);

    // The client is created but its answer never arrives.
    sim.handle
        .faults()
        .lose_answer_next("auth.create_client", 1, 504);
    let run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let (step, e) = run.report.failure().expect("the answer was lost");
    assert_eq!(step.step, Step::ClientRegistered);
    assert!(e.transient, "{e:?}");
    assert_eq!(calls("auth.create_client"), 1, "not sent twice blindly");
    let run = run_environment(&rb, &environment(&sim.url()), &store).await;
    assert_holds(&run.report);
    assert_eq!(calls("auth.create_client"), 1, "the next pass found it");
    let env = run.resolved.expect("resolved");

    // The same for the tenant: the next pass finds it and recovers its key.
    sim.handle
        .faults()
        .lose_answer_next("nexus.create_tenant", 1, 504);
    let t100 = tenant("t100", "t100", false);
    let run = run_tenant(&rb, &t100, &env, &store).await;
    let (step, e) = run.report.failure().expect("the answer was lost");
    assert_eq!(step.step, Step::TenantProvisioned);
    assert!(e.transient, "{e:?}");
    assert_eq!(calls("nexus.create_tenant"), 1, "not sent twice blindly");
    let run = run_tenant(&rb, &t100, &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::TenantProvisioned),
        Outcome::Recovered
    );
    assert_eq!(calls("nexus.create_tenant"), 1);
    assert_eq!(
        store.get("t100-digital-channels", keys::API_KEY),
        Some(t100_row_key(&sim).await)
    );

    // A tenant GET answered 404 (the route is assumed: a new process has never seen it
    // answer) does not mean absent while Nexus's table holds the tenant's key: no second
    // create.
    sim.handle.faults().fail_next("nexus.get_tenant", 1, 404);
    let rb = runbook();
    let run = run_tenant(&rb, &t100, &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(calls("nexus.create_tenant"), 1);
}

#[tokio::test]
async fn a_rotated_client_secret_updates_the_client_and_the_row() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    store.put(
        "prod-nexus-client",
        &[("client-secret", "a-new-client-secret-of-enough-length")],
    );
    let run = run_environment(&rb, &environment(&sim.url()), &store).await;
    assert_holds(&run.report);
    assert_eq!(outcome(&run.report, Step::ClientVerified), Outcome::Updated);
    assert_eq!(outcome(&run.report, Step::GapiRegistered), Outcome::Updated);
    assert!(run.gapi_changed());
    let state = sim.handle.snapshot();
    assert!(state.clients["nexus_client"].secret_matches("a-new-client-secret-of-enough-length"));
    let rows = sim.handle.gapis_rows().await.unwrap();
    assert_eq!(rows.len(), 1);

    // The tenants see no password change in it: no tenant update in Nexus.
    let updates = sim.handle.snapshot().calls("nexus.update_tenant");
    let resolved = run.resolved.expect("resolved");
    for t in [tenant("t100", "t100", true), tenant("t200", "t200", false)] {
        let run = run_tenant(&rb, &t, &resolved, &store).await;
        assert_holds(&run.report);
        assert_eq!(
            outcome(&run.report, Step::TenantProvisioned),
            Outcome::AlreadyRight
        );
    }
    assert_eq!(
        sim.handle.snapshot().calls("nexus.update_tenant"),
        updates,
        "a client secret rotation is not a tenant password change"
    );
}

#[tokio::test]
async fn an_already_registered_ucs_service_counts_as_registered() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env = run_environment(&rb, &environment(&sim.url()), &store)
        .await
        .resolved
        .expect("resolved");
    // Nexus answers the PlatformUCS POST with 409, "Resource already exists".
    sim.handle.faults().fail_next("nexus.register_ucs", 1, 409);
    let run = run_tenant(&rb, &tenant("t100", "t100", true), &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::UcsRegistered),
        Outcome::AlreadyRight
    );
}

#[tokio::test]
async fn a_rotated_tenant_password_updates_the_tenant_not_recreates_it() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let key = store.get("t100-digital-channels", keys::API_KEY).unwrap();
    // The user's password changed in GWS and in the Secret.
    sim.handle.set_tenant_user_password(
        digital_channels_operator::simulator::DEMO_CC_T100,
        "nexus",
        "rotated-pw-789",
    );
    store.put(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated-pw-789")],
    );
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let run = run_tenant(
        &rb,
        &tenant("t100", "t100", true),
        &env_run.resolved.unwrap(),
        &store,
    )
    .await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::TenantProvisioned),
        Outcome::Updated
    );
    assert_eq!(
        store.get("t100-digital-channels", keys::API_KEY),
        Some(key),
        "the key stays"
    );
    let state = sim.handle.snapshot();
    assert_eq!(state.updates("nexus.update_tenant"), 1);
    assert_eq!(state.creates("nexus.create_tenant"), 2);
}

#[tokio::test]
async fn deleting_a_tenant_removes_it_and_its_ucs_service_and_tolerates_gone() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.unwrap();
    let t = tenant("t100", "t100", true);
    let cc = digital_channels_operator::simulator::DEMO_CC_T100;
    let record = tenant::CreatedRecord {
        contact_center_id: Some(cc.to_string()),
        tenant: true,
        ucs: true,
    };
    let deleted = delete_tenant(&rb, &t, &resolved, &store, &record)
        .await
        .expect("deleted");
    assert_eq!(
        (deleted.tenant, deleted.ucs),
        (tenant::Removal::Deleted, tenant::Removal::Deleted)
    );
    let state = sim.handle.snapshot();
    assert!(!state.tenants.contains_key(cc));
    assert!(!state.ucs_services.contains_key(cc));
    // Already gone counts as done.
    delete_tenant(&rb, &t, &resolved, &store, &record)
        .await
        .expect("already gone is fine");
}

#[tokio::test]
async fn deleting_an_environment_removes_the_client_and_the_row() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.unwrap();
    digital_channels_operator::runbook::environment::delete_environment(&rb, &resolved)
        .await
        .expect("deleted");
    assert!(sim.handle.snapshot().clients.is_empty());
    assert!(sim.handle.gapis_rows().await.unwrap().is_empty());
    digital_channels_operator::runbook::environment::delete_environment(&rb, &resolved)
        .await
        .expect("already gone is fine");
}

fn assert_no_secrets(text: &str, store: &common::MemoryStore) {
    for value in store.all_values() {
        // Short non-secret values (usernames like "ops") are not secrets.
        if value.len() >= 8 {
            assert!(
                !text.contains(&value),
                "a secret value leaked into:\n{text}"
            );
        }
    }
}

/// Crash matrix, upstream writes: each write takes effect and its answer is lost, as when
/// the process dies right after it and before recording anything. A new process (a new
/// Runbook: no token, no pending key) then converges with exactly one of each effect and
/// the tenant's own key.
#[tokio::test]
async fn crash_matrix_each_upstream_write_lost_then_a_new_process_converges() {
    for op in [
        "auth.create_client",
        "environment.upsert_setting",
        "nexus.register_ucs",
        "nexus.create_tenant",
    ] {
        let sim = Sim::start().await;
        let store = sample_store(&sim.db.url);
        sim.handle.faults().lose_answer_next(op, 1, 504);
        let first = runbook();
        let env = run_environment(&first, &environment(&sim.url()), &store).await;
        if let Some(resolved) = env.resolved.as_ref().filter(|_| env.report.succeeded()) {
            let _ = run_tenant(&first, &tenant("t100", "t100", true), resolved, &store).await;
        }
        if op.contains("create") {
            // A create is never repeated blindly; the upserts may be, harmlessly.
            assert_eq!(sim.handle.snapshot().calls(op), 1, "{op}: sent once");
        }

        // The process died: a new one, with only what was stored.
        let second = runbook();
        let env = run_environment(&second, &environment(&sim.url()), &store).await;
        assert_holds(&env.report);
        let run = run_tenant(
            &second,
            &tenant("t100", "t100", true),
            &env.resolved.unwrap(),
            &store,
        )
        .await;
        assert_holds(&run.report);
        assert_exactly_once(&sim, &store, op, 1).await;
    }
}

/// Crash matrix, database writes: the nex_gapis row was inserted, or its secret updated
/// after a rotation, and nothing else recorded; a new process changes nothing more.
#[tokio::test]
async fn crash_matrix_nex_gapis_written_then_a_new_process_converges() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    provision_all(&runbook(), &sim, &store).await;
    // Rotation: the process updated the row, then died before anything else.
    let rotated = "a-rotated-secret-written-to-the-row-only";
    sqlx::query("UPDATE nex_gapis SET clientsecret = $1")
        .bind(rotated)
        .execute(&sim.db.pool)
        .await
        .unwrap();
    store.put("prod-nexus-client", &[("client-secret", rotated)]);
    let run = run_environment(&runbook(), &environment(&sim.url()), &store).await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::GapiRegistered),
        Outcome::AlreadyRight
    );
    assert_eq!(sim.handle.gapis_rows().await.unwrap().len(), 1);
    assert!(sim.handle.snapshot().clients["nexus_client"].secret_matches(rotated));
    assert_exactly_once(&sim, &store, "nex_gapis", 2).await;
}

/// One client, row and UCS service (t100's), one setting per tenant, each of `tenants`
/// Nexus tenants created once, and t100 holding its own key.
async fn assert_exactly_once(sim: &Sim, store: &common::MemoryStore, case: &str, tenants: usize) {
    let state = sim.handle.snapshot();
    assert_eq!(state.clients.len(), 1, "{case}: one client");
    assert_eq!(
        state.tenants.len(),
        tenants,
        "{case}: each Nexus tenant once"
    );
    assert_eq!(state.ucs_services.len(), 1, "{case}: one UCS service");
    assert_eq!(
        state.creates("nexus.create_tenant"),
        tenants as u64,
        "{case}: created once"
    );
    assert_eq!(
        state.creates("auth.create_client"),
        1,
        "{case}: created once"
    );
    assert_eq!(
        sim.handle.gapis_rows().await.unwrap().len(),
        1,
        "{case}: one row"
    );
    let settings = &state.settings[digital_channels_operator::simulator::DEMO_CC_T100];
    assert!(
        settings.contains_key("chatservice-uri"),
        "{case}: the setting"
    );
    assert_eq!(
        state.creates("environment.upsert_setting"),
        tenants as u64,
        "{case}: one setting created per tenant"
    );
    assert_eq!(
        store.get("t100-digital-channels", keys::API_KEY),
        Some(t100_row_key(sim).await),
        "{case}: the tenant's own key"
    );
}

/// A tenant provisioned by a version that keyed the credentials fingerprint with the client
/// secret: after the upgrade its unchanged password must not look rotated.
#[tokio::test]
async fn an_upgrade_does_not_look_like_a_password_change() {
    use base64::Engine;
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let client_secret = store.get("prod-nexus-client", "client-secret").unwrap();
    let legacy = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, client_secret.as_bytes());
        let tag = ring::hmac::sign(&key, b"nexus\0nexus_password");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
    };
    store
        .secrets
        .lock()
        .unwrap()
        .get_mut("t100-digital-channels")
        .unwrap()
        .annotations
        .insert(
            tenant::annotations::CREDENTIALS_FINGERPRINT.to_string(),
            legacy,
        );
    let env = run_environment(&rb, &environment(&sim.url()), &store)
        .await
        .resolved
        .unwrap();
    let run = run_tenant(&rb, &tenant("t100", "t100", true), &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::TenantProvisioned),
        Outcome::AlreadyRight
    );
    assert_eq!(sim.handle.snapshot().calls("nexus.update_tenant"), 0);
}

/// An administrator rotated the tenant's key in Nexus and put the same new key in the
/// output Secret: both agree, so it is taken (and recorded), not refused.
#[tokio::test]
async fn a_key_rotated_in_nexus_and_in_the_secret_alike_is_taken() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    provision_all(&rb, &sim, &store).await;
    let env = run_environment(&rb, &environment(&sim.url()), &store)
        .await
        .resolved
        .unwrap();
    let mut t100 = tenant("t100", "t100", true);
    let old = store.get("t100-digital-channels", keys::API_KEY).unwrap();
    t100.status = Some(digital_channels_operator::api::TenantStatus {
        api_key_digest: Some(tenant::api_key_digest(&SecretString::new(old.clone()))),
        ..Default::default()
    });
    let rotated = uuid::Uuid::new_v4().to_string();
    sqlx::query("UPDATE nex_apikeys SET id = $1 WHERE id = $2")
        .bind(&rotated)
        .bind(&old)
        .execute(&sim.db.pool)
        .await
        .unwrap();
    store
        .secrets
        .lock()
        .unwrap()
        .get_mut("t100-digital-channels")
        .unwrap()
        .data
        .insert(
            keys::API_KEY.to_string(),
            SecretString::new(rotated.clone()),
        );
    let run = run_tenant(&rb, &t100, &env, &store).await;
    assert_holds(&run.report);
    assert_eq!(
        outcome(&run.report, Step::TenantProvisioned),
        Outcome::Recovered
    );
    assert_eq!(
        run.api_key_digest,
        Some(tenant::api_key_digest(&SecretString::new(rotated.clone())))
    );
    assert_eq!(
        store.get("t100-digital-channels", keys::API_KEY),
        Some(rotated)
    );
}

/// The key of t100's own row in nex_apikeys, as Nexus holds it.
async fn t100_row_key(sim: &Sim) -> String {
    sim.handle
        .apikey_rows()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "t100")
        .expect("t100's row")
        .id
}

/// Tenants of one environment provisioned at the same time share one contact-center list:
/// it is the environment's, not the tenant's.
#[tokio::test]
async fn tenants_run_together_share_one_contact_center_list() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    assert_holds(&env_run.report);
    let resolved = env_run.resolved.expect("resolved environment");
    let before = sim.handle.snapshot();
    let (t100, t200) = (tenant("t100", "t100", true), tenant("t200", "t200", false));
    let (a, b) = tokio::join!(
        run_tenant(&rb, &t100, &resolved, &store),
        run_tenant(&rb, &t200, &resolved, &store)
    );
    assert_holds(&a.report);
    assert_holds(&b.report);
    let after = sim.handle.snapshot();
    let op = "environment.list_contact_centers";
    assert_eq!(after.calls(op) - before.calls(op), 1, "one list for both");
}

/// Provisioning makes each call once (at most 7 for a tenant with PlatformUCS), and a drift
/// pass only reads: the settings and the tenant, the token reused, nothing written.
#[tokio::test]
async fn provisioning_calls_each_operation_once_and_a_drift_pass_only_reads() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.expect("resolved environment");
    let t = tenant("t100", "t100", true);
    let total = |s: &digital_channels_operator::simulator::StateView| s.calls.values().sum::<u64>();

    let before = sim.handle.snapshot();
    assert_holds(&run_tenant(&rb, &t, &resolved, &store).await.report);
    let provisioned = sim.handle.snapshot();
    assert_eq!(
        total(&provisioned) - total(&before),
        7,
        "{:?}",
        provisioned.calls
    );

    let drift = run_tenant(&rb, &t, &resolved, &store).await;
    assert!(!drift.report.changed_anything());
    let after = sim.handle.snapshot();
    let reads: Vec<_> = after
        .calls
        .iter()
        .filter(|(op, n)| provisioned.calls(op) != **n)
        .map(|(op, n)| (op.clone(), n - provisioned.calls(op)))
        .collect();
    // The contact-center list is the environment's, shared by its tenants: not counted here.
    let shared = "environment.list_contact_centers";
    let own =
        total(&after) - total(&provisioned) - (after.calls(shared) - provisioned.calls(shared));
    assert!(
        own <= 2,
        "a drift pass makes at most 2 reads per tenant: {reads:?}"
    );
    assert!(
        after.calls(shared) - provisioned.calls(shared) <= 1,
        "{reads:?}"
    );
}

/// The chatservice-uri setting and the Nexus tenant do not depend on each other: a failing
/// setting does not hold back the tenant and its key, which reach the output Secret at once.
#[tokio::test]
async fn a_failing_setting_does_not_hold_back_the_tenant_and_its_key() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.expect("resolved environment");
    sim.handle
        .faults()
        .fail_next("environment.upsert_setting", 10, 500);
    let t = tenant("t100", "t100", true);
    let first = run_tenant(&rb, &t, &resolved, &store).await;
    assert!(matches!(
        first.report.outcome_of(Step::ChatServiceRegistered),
        Some(Err(_))
    ));
    assert_eq!(
        outcome(&first.report, Step::TenantProvisioned),
        Outcome::Created
    );
    assert_eq!(
        outcome(&first.report, Step::UcsRegistered),
        Outcome::Created
    );
    assert_eq!(outcome(&first.report, Step::OutputSecret), Outcome::Created);
    assert!(store.get("t100-digital-channels", keys::API_KEY).is_some());

    sim.handle.faults().clear();
    let second = run_tenant(&rb, &t, &resolved, &store).await;
    assert_holds(&second.report);
    assert_eq!(
        outcome(&second.report, Step::ChatServiceRegistered),
        Outcome::Created
    );
    assert_eq!(sim.handle.snapshot().creates("nexus.create_tenant"), 1);
}

/// A cached tenant token that Nexus rejects (GWS Auth restarted, the token revoked) is
/// dropped, and the call is tried once more with a fresh one: no waiting for a restart.
#[tokio::test]
async fn a_rejected_cached_token_is_dropped_and_the_call_retried_once() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let env_run = run_environment(&rb, &environment(&sim.url()), &store).await;
    let resolved = env_run.resolved.expect("resolved environment");
    let t = tenant("t100", "t100", true);
    assert_holds(&run_tenant(&rb, &t, &resolved, &store).await.report);
    let issued = sim.handle.snapshot().tokens_issued;

    sim.handle.faults().fail_next("nexus.get_tenant", 1, 401);
    let run = run_tenant(&rb, &t, &resolved, &store).await;
    assert_holds(&run.report);
    assert_eq!(
        sim.handle.snapshot().tokens_issued,
        issued + 1,
        "one fresh token"
    );

    // A fresh token that is rejected is not retried: the user's rights are the problem.
    sim.handle.faults().fail_next("nexus.get_tenant", 2, 401);
    let t2 = tenant("t200", "t200", false);
    let run = run_tenant(&rb, &t2, &resolved, &store).await;
    assert_eq!(
        run.report.failure().map(|(s, e)| (s.step, e.reason)),
        Some((Step::TenantProvisioned, Reason::Unauthorized))
    );
}
