//! What an environment run may write upstream: one `nex_gapis` row and one redirect URI per
//! service whatever the spelling of its URL, and an OAuth client only when it is this
//! manager's (made by it, recorded, or adopted on proof or on request). Real reqwest and sqlx
//! clients against the simulator and a real PostgreSQL.

mod common;

use common::{MemoryStore, Sim, environment, runbook, sample_store};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::cli::manifests::SecretManifest;
use digital_channels_operator::runbook::environment::{
    ClientManager, Management, delete_environment_managed, read_environment, run_environment,
    run_environment_managed,
};
use digital_channels_operator::runbook::report::{Outcome, Reason, Step};
use digital_channels_operator::runbook::{RunReport, Runbook};
use digital_channels_operator::secret::Credentials;
use digital_channels_operator::upstream::gws_auth::ClientRegistration;

fn outcome(report: &RunReport, step: Step) -> Outcome {
    match report.outcome_of(step) {
        Some(Ok(o)) => o.clone(),
        other => panic!("{step}: {other:?}\n{report:#?}"),
    }
}

fn failure(report: &RunReport, step: Step) -> (Reason, String) {
    match report.outcome_of(step) {
        Some(Err(e)) => (e.reason, e.message.clone()),
        other => panic!("{step} did not fail: {other:?}\n{report:#?}"),
    }
}

fn with_gws_url(sim: &Sim, gws_url: &str) -> DigitalChannelsEnvironment {
    let mut env = environment(&sim.url());
    env.spec.gws_url = gws_url.to_string();
    env
}

fn operator(name: &str) -> Management {
    Management {
        manager: ClientManager::Operator {
            namespace: "dc".into(),
            name: name.into(),
        },
        take_over: false,
    }
}

/// A client made by hand in GWS Auth, with its own secret and description.
async fn hand_made_client(rb: &Runbook, sim: &Sim, secret: &str, description: &str) {
    let auth = rb.connector.gws_auth(&sim.url(), None).expect("client");
    let ops = Credentials {
        username: "ops".into(),
        password: "ops".into(),
    };
    auth.create_client(
        &ops,
        &ClientRegistration {
            client_id: "nexus_client".into(),
            secret: secret.into(),
            description: description.into(),
            redirect_uri: "https://nexus.example.com".into(),
            previous_redirect_uri: None,
            access_token_expiration_timeout: 43200,
            refresh_token_expiration_timeout: 2592000,
        },
    )
    .await
    .expect("client created by hand");
}

fn client_writes(sim: &Sim) -> (u64, u64) {
    let state = sim.handle.snapshot();
    (
        state.creates("auth.create_client"),
        state.updates("auth.update_client"),
    )
}

#[tokio::test]
async fn another_spelling_of_the_gws_url_finds_the_row_instead_of_adding_one() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    // gwsUrl is only written (nex_gapis, backendurl), never called: any host will do.
    let plain = "https://gws.example.com/gws";
    let first = run_environment(&rb, &with_gws_url(&sim, plain), &store).await;
    assert_eq!(
        outcome(&first.report, Step::GapiRegistered),
        Outcome::Created
    );

    for spelling in [
        "https://gws.example.com/gws/",
        "https://gws.example.com/gws//",
        "https://GWS.Example.com/gws",
        "https://gws.example.com:443/gws/",
    ] {
        let run = run_environment(&rb, &with_gws_url(&sim, spelling), &store).await;
        assert_eq!(
            outcome(&run.report, Step::GapiRegistered),
            Outcome::AlreadyRight,
            "{spelling}"
        );
        assert!(!run.report.changed_anything(), "{spelling}: {run:#?}");
    }
    let rows = sim.handle.gapis_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "one row: {rows:?}");
    assert_eq!(rows[0].url, plain);
}

#[tokio::test]
async fn a_row_written_with_a_trailing_slash_is_matched_kept_as_it_is_and_deleted() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    let plain = format!("{}/gws", sim.url());
    // Written by hand (or by an older version that stored the spec as it was spelt).
    sqlx::query(
        "INSERT INTO nex_gapis (url, clientid, apikey, clientsecret, created) \
         VALUES ($1, 'nexus_client', 'NA', 'old-secret', now())",
    )
    .bind(format!("{plain}/"))
    .execute(&sim.db.pool)
    .await
    .unwrap();

    let run = run_environment(&rb, &with_gws_url(&sim, &plain), &store).await;
    assert_eq!(
        outcome(&run.report, Step::GapiRegistered),
        Outcome::Updated,
        "its secret set, no row added"
    );
    let rows = sim.handle.gapis_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].url, format!("{plain}/"), "the stored URL is kept");
    let again = run_environment(&rb, &with_gws_url(&sim, &plain), &store).await;
    assert!(!again.report.changed_anything(), "{again:#?}");

    let resolved = again.resolved.expect("resolved");
    digital_channels_operator::runbook::environment::delete_environment(&rb, &resolved)
        .await
        .expect("deleted");
    assert!(sim.handle.gapis_rows().await.unwrap().is_empty());
}

#[tokio::test]
async fn values_written_upstream_are_in_normal_form() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let mut env = with_gws_url(&sim, &format!("{}/gws/", sim.url()));
    env.spec.nexus_url = "https://Nexus.Example.com:443/".into();
    let run = run_environment(&runbook(), &env, &store).await;
    assert_eq!(
        outcome(&run.report, Step::ClientRegistered),
        Outcome::Created
    );
    let rows = sim.handle.gapis_rows().await.unwrap();
    assert_eq!(rows[0].url, format!("{}/gws", sim.url()));
    let client = sim.handle.snapshot().clients["nexus_client"].clone();
    assert_eq!(client.redirect_uris, ["https://nexus.example.com"]);
    assert_eq!(client.description, "managed by dc-operator provision");
}

#[tokio::test]
async fn a_hand_made_client_with_another_secret_is_left_alone_and_says_how_to_proceed() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    hand_made_client(&rb, &sim, "hand-made-secret", "made by hand").await;
    let env = environment(&sim.url());

    for (management, how) in [
        (operator("prod"), "digitalchannels.dev/take-over-client"),
        (Management::default(), "--take-over"),
    ] {
        let run = run_environment_managed(&rb, &env, &store, &management).await;
        let (reason, message) = failure(&run.report, Step::ClientRegistered);
        assert_eq!(reason, Reason::ClientExists, "{message}");
        assert!(message.contains("Secret prod-nexus-client"), "{message}");
        assert!(message.contains(how), "{message}");
        assert!(!message.contains("hand-made-secret"), "{message}");
        assert_eq!(run.client_ours, Some(false));
    }
    assert_eq!(
        client_writes(&sim),
        (1, 0),
        "no write after the hand-made create"
    );
    let client = sim.handle.snapshot().clients["nexus_client"].clone();
    assert!(
        client.secret_matches("hand-made-secret"),
        "its secret is kept"
    );
    assert!(sim.handle.gapis_rows().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_hand_made_client_holding_our_secret_is_adopted_without_a_secret_write() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    store.put(
        "prod-nexus-client",
        &[("client-secret", "hand-made-secret")],
    );
    let rb = runbook();
    hand_made_client(&rb, &sim, "hand-made-secret", "made by hand").await;

    let run =
        run_environment_managed(&rb, &environment(&sim.url()), &store, &operator("prod")).await;
    assert!(run.report.succeeded(), "{:#?}", run.report);
    assert_eq!(run.client_ours, Some(true));
    assert_eq!(
        outcome(&run.report, Step::ClientVerified),
        Outcome::Verified,
        "the secret was right: not set again"
    );
    let client = sim.handle.snapshot().clients["nexus_client"].clone();
    assert!(client.secret_matches("hand-made-secret"));
    assert_eq!(
        client.description,
        "managed by dc-operator: DigitalChannelsEnvironment dc/prod"
    );
}

#[tokio::test]
async fn taking_over_a_hand_made_client_sets_our_secret_when_asked() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    hand_made_client(&rb, &sim, "hand-made-secret", "made by hand").await;
    let management = Management {
        take_over: true,
        ..operator("prod")
    };
    let run = run_environment_managed(&rb, &environment(&sim.url()), &store, &management).await;
    assert!(run.report.succeeded(), "{:#?}", run.report);
    assert_eq!(outcome(&run.report, Step::ClientVerified), Outcome::Updated);
    let ours = store.get("prod-nexus-client", "client-secret").unwrap();
    assert!(sim.handle.snapshot().clients["nexus_client"].secret_matches(&ours));
}

/// Provision's manifests: the environment, its Secrets (the client secret included).
fn manifests(sim: &Sim, client_secret: &str) -> digital_channels_operator::cli::manifests::Bundle {
    let mut bundle = digital_channels_operator::cli::manifests::Bundle::default();
    bundle.environments.push(environment(&sim.url()));
    let store: MemoryStore = sample_store(&sim.db.url);
    store.put("prod-nexus-client", &[("client-secret", client_secret)]);
    bundle.secrets = secrets_of(&store);
    bundle
}

fn secrets_of(store: &MemoryStore) -> Vec<SecretManifest> {
    store
        .secrets
        .lock()
        .unwrap()
        .iter()
        .map(|(name, record)| SecretManifest {
            name: name.clone(),
            data: record.data.clone(),
            annotations: Default::default(),
        })
        .collect()
}

#[tokio::test]
async fn provision_refuses_a_client_the_operator_manages_unless_told_to_take_it_over() {
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook();
    // The operator made the client for dc/prod.
    let made =
        run_environment_managed(&rb, &environment(&sim.url()), &store, &operator("prod")).await;
    assert!(made.report.succeeded(), "{:#?}", made.report);
    let operators_secret = store.get("prod-nexus-client", "client-secret").unwrap();
    let before = (
        client_writes(&sim),
        sim.handle.gapis_rows().await.unwrap().len(),
    );

    let dir = tempfile::tempdir().unwrap();
    let bundle = manifests(&sim, "provisions-own-secret");
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
    assert!(!summary.all_hold, "not every step holds: exit code 1");
    assert!(printed.contains("ClientManagedElsewhere"), "{printed}");
    assert!(
        printed.contains("managed by dc-operator: DigitalChannelsEnvironment dc/prod"),
        "says what it found: {printed}"
    );
    assert!(printed.contains("--take-over"), "{printed}");
    assert_eq!(
        (
            client_writes(&sim),
            sim.handle.gapis_rows().await.unwrap().len()
        ),
        before,
        "nothing written upstream"
    );
    let client = sim.handle.snapshot().clients["nexus_client"].clone();
    assert!(client.secret_matches(&operators_secret));

    let mut out = Vec::new();
    let summary = digital_channels_operator::cli::provision::provision_as(
        &runbook(),
        &bundle,
        dir.path(),
        true,
        &mut out,
    )
    .await
    .expect("runs");
    let printed = String::from_utf8(out).unwrap();
    assert!(summary.all_hold, "{printed}");
    let client = sim.handle.snapshot().clients["nexus_client"].clone();
    assert!(client.secret_matches("provisions-own-secret"));
    assert_eq!(client.description, "managed by dc-operator provision");

    // And now the operator meets a client provision manages: it refuses in turn.
    let back =
        run_environment_managed(&rb, &environment(&sim.url()), &store, &operator("prod")).await;
    let (reason, message) = failure(&back.report, Step::ClientRegistered);
    assert_eq!(reason, Reason::ClientManagedElsewhere);
    assert!(
        message.contains("managed by dc-operator provision"),
        "{message}"
    );
    assert!(
        message.contains("digitalchannels.dev/take-over-client"),
        "{message}"
    );
    assert_eq!(back.client_ours, Some(false));

    // Nor does the operator's cleanup delete it (or its row) with deletionPolicy Delete.
    let resolved = read_environment(&environment(&sim.url()), &store)
        .await
        .expect("resolved");
    let left = delete_environment_managed(&rb, &resolved, &operator("prod").manager)
        .await
        .expect("cleanup");
    assert_eq!(left.as_deref(), Some("managed by dc-operator provision"));
    assert!(sim.handle.snapshot().clients.contains_key("nexus_client"));
    assert_eq!(sim.handle.gapis_rows().await.unwrap().len(), 1);
    assert_eq!(sim.handle.snapshot().calls("auth.delete_client"), 0);
}
