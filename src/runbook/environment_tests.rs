//! Every branch of the environment steps, on the in-memory fakes: each test asserts on the
//! report (outcomes, reasons) and on the fakes' call log (which writes happened, how many).

use std::sync::Arc;

use super::*;
use crate::fakes::samples::{self, CLIENT_SECRET, GWS_URL};
use crate::fakes::{FakeConnector, FakeSecretStore, error};
use crate::upstream::{System, UpstreamError};

const CLIENT: &str = "nexus_client";

struct World {
    upstream: Arc<FakeConnector>,
    runbook: Runbook,
    store: FakeSecretStore,
    env: DigitalChannelsEnvironment,
}

impl World {
    /// The sample environment; with `made`, its client and Secrets exist already.
    fn new(made: bool) -> Self {
        let upstream = samples::connector(made);
        Self {
            runbook: samples::runbook(&upstream),
            upstream,
            store: samples::store(made),
            env: samples::environment(),
        }
    }

    async fn run(&self) -> EnvironmentRun {
        run_environment(&self.runbook, &self.env, &self.store).await
    }

    async fn run_as(&self, management: &Management) -> EnvironmentRun {
        run_environment_managed(&self.runbook, &self.env, &self.store, management).await
    }

    fn secret(&self) -> SecretString {
        SecretString::new(
            self.store
                .get("prod-nexus-client", "client-secret")
                .unwrap(),
        )
    }

    fn put_client(&self, description: Option<&str>, secret: &str) {
        let client = OAuthClient {
            client_id: CLIENT.into(),
            description: description.map(String::from),
            ..OAuthClient::default()
        };
        self.upstream.auth.put_client(client, secret);
    }
}

fn outcome(run: &EnvironmentRun, step: Step) -> Option<Result<Outcome, Reason>> {
    let result = run.report.outcome_of(step)?;
    Some(result.clone().map_err(|e| e.reason))
}

fn detail(run: &EnvironmentRun, step: Step) -> String {
    let found = run.report.steps.iter().find(|s| s.step == step);
    found.map(|s| s.detail.clone()).unwrap_or_default()
}

fn fail(system: System, operation: &'static str, kind: ErrorKind) -> UpstreamError {
    error(system, operation, kind)
}

fn operator(name: &str) -> ClientManager {
    ClientManager::Operator {
        namespace: "dc".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn a_first_run_generates_the_secret_creates_the_client_and_inserts_the_row() {
    let world = World::new(false);
    let run = world.run().await;
    for (step, expected) in [
        (Step::Credentials, Outcome::AlreadyRight),
        (Step::ClientSecret, Outcome::Created),
        (Step::ClientRegistered, Outcome::Created),
        (Step::ClientVerified, Outcome::Verified),
        (Step::GapiRegistered, Outcome::Created),
    ] {
        assert_eq!(outcome(&run, step), Some(Ok(expected)), "{step}");
    }
    assert_eq!(run.client_ours, Some(true));
    assert!(run.gapi_changed());
    assert_eq!(
        world.upstream.log.writes(),
        ["create_client", "insert_gapi"]
    );
    let secret = world.secret();
    assert_eq!(secret.expose().len(), 43, "32 random bytes");
    assert_eq!(
        world.upstream.auth.client_secret(CLIENT),
        Some(secret.clone())
    );
    let rows = world.upstream.db.gapis();
    assert_eq!((rows.len(), rows[0].url.as_str()), (1, GWS_URL));
    assert_eq!(rows[0].client_secret, secret);
    let made = world.upstream.auth.client(CLIENT).unwrap();
    assert_eq!(made.redirect_uris, [samples::NEXUS_URL]);
    assert_eq!(
        made.description,
        Some(ClientManager::Provision.description())
    );
}

#[tokio::test]
async fn a_second_run_writes_nothing() {
    let world = World::new(false);
    world.run().await;
    world.upstream.log.clear();
    let run = world.run().await;
    for step in [
        Step::ClientSecret,
        Step::ClientRegistered,
        Step::GapiRegistered,
    ] {
        assert_eq!(
            outcome(&run, step),
            Some(Ok(Outcome::AlreadyRight)),
            "{step}"
        );
    }
    assert_eq!(
        outcome(&run, Step::ClientVerified),
        Some(Ok(Outcome::Verified))
    );
    assert!(world.upstream.log.writes().is_empty());
    assert!(!run.gapi_changed());
}

#[tokio::test]
async fn a_drifted_client_is_fixed_and_others_uris_kept() {
    let world = World::new(false);
    world.run().await;
    let mut drifted = world.upstream.auth.client(CLIENT).unwrap();
    drifted.redirect_uris = vec!["https://other.example.com".into()];
    drifted.authorized_grant_types = vec!["password".into()];
    world
        .upstream
        .auth
        .put_client(drifted, world.secret().expose());
    world.upstream.log.clear();
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert!(detail(&run, Step::ClientRegistered).contains("authorizedGrantTypes, redirectURIs"));
    assert_eq!(world.upstream.log.writes(), ["update_client"]);
    let fixed = world.upstream.auth.client(CLIENT).unwrap();
    assert_eq!(
        fixed.redirect_uris,
        ["https://other.example.com", samples::NEXUS_URL]
    );
}

#[tokio::test]
async fn a_hand_made_client_holding_our_secret_is_adopted() {
    let world = World::new(true);
    world.put_client(Some("made by hand"), CLIENT_SECRET);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert!(detail(&run, Step::ClientRegistered).contains("adopted"));
    assert_eq!(run.client_ours, Some(true));
    assert_eq!(world.upstream.log.count("update_client"), 1);
    let description = world.upstream.auth.client(CLIENT).unwrap().description;
    assert_eq!(description, Some(ClientManager::Provision.description()));
}

#[tokio::test]
async fn a_hand_made_client_with_another_secret_is_left_alone() {
    let world = World::new(true);
    world.put_client(None, "someone-elses");
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Err(Reason::ClientExists))
    );
    assert_eq!(run.client_ours, Some(false));
    assert!(world.upstream.log.writes().is_empty());
    assert_eq!(outcome(&run, Step::ClientVerified), None);
    let secret = world.upstream.auth.client_secret(CLIENT).unwrap();
    assert_eq!(secret.expose(), "someone-elses");
}

#[tokio::test]
async fn another_managers_client_is_left_alone() {
    let world = World::new(true);
    world.put_client(Some(&operator("staging").description()), CLIENT_SECRET);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Err(Reason::ClientManagedElsewhere))
    );
    assert!(
        world
            .upstream
            .log
            .calls()
            .iter()
            .all(|c| c.operation == "get_client"),
        "not even a token: {:?}",
        world.upstream.log.operations()
    );
    assert_eq!(run.client_ours, Some(false));
}

#[tokio::test]
async fn a_take_over_rewrites_the_description_and_sets_our_secret() {
    let world = World::new(true);
    world.put_client(Some(&operator("staging").description()), "staging-secret");
    let management = Management {
        manager: operator("prod"),
        take_over: true,
    };
    let run = world.run_as(&management).await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert!(detail(&run, Step::ClientRegistered).contains("taken over"));
    assert_eq!(
        outcome(&run, Step::ClientVerified),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(
        world.upstream.log.count("update_client"),
        2,
        "fields, then the secret"
    );
    let auth = &world.upstream.auth;
    assert_eq!(auth.client_secret(CLIENT).unwrap().expose(), CLIENT_SECRET);
    assert_eq!(
        auth.client(CLIENT).unwrap().description,
        Some(operator("prod").description())
    );
}

#[tokio::test]
async fn a_secret_rotated_in_the_secret_is_set_on_the_client_and_the_row() {
    let world = World::new(false);
    world.run().await;
    world
        .store
        .put("prod-nexus-client", &[("client-secret", "rotated")]);
    world.upstream.log.clear();
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientVerified),
        Some(Ok(Outcome::Updated))
    );
    assert_eq!(
        outcome(&run, Step::GapiRegistered),
        Some(Ok(Outcome::Updated))
    );
    assert!(run.gapi_changed(), "Nexus must restart");
    assert_eq!(
        world.upstream.log.writes(),
        ["update_client", "update_gapi_secret"]
    );
    assert_eq!(
        world.upstream.auth.client_secret(CLIENT).unwrap().expose(),
        "rotated"
    );
    assert_eq!(
        world.upstream.db.gapis()[0].client_secret.expose(),
        "rotated"
    );
    assert_eq!(
        world.upstream.log.count("token"),
        2,
        "refused, then verified"
    );
}

#[tokio::test]
async fn a_secret_gws_refuses_even_after_it_was_set_is_said_so() {
    let world = World::new(true);
    let refused = fail(System::GwsAuth, "token", ErrorKind::Unauthorized);
    world.upstream.auth.script.fail_always("token", refused);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientVerified),
        Some(Err(Reason::Unauthorized))
    );
    let Some(Err(e)) = run.report.outcome_of(Step::ClientVerified) else {
        unreachable!()
    };
    assert!(e.message.contains("even after it was set again"));
    assert_eq!(outcome(&run, Step::GapiRegistered), None);
    assert_eq!(world.upstream.log.count("insert_gapi"), 0);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_may_be_ours() {
    let world = World::new(false);
    let lost = fail(System::GwsAuth, "create_client", ErrorKind::Transient);
    world.upstream.auth.script.lose_next("create_client", lost);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Err(Reason::UpstreamUnavailable))
    );
    assert_eq!(run.client_ours, Some(true), "a cleanup must look for it");
    assert!(world.upstream.auth.client(CLIENT).is_some());

    world.upstream.log.clear();
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Ok(Outcome::AlreadyRight))
    );
    assert_eq!(world.upstream.log.count("create_client"), 0);
}

#[tokio::test]
async fn a_refused_create_is_surely_not_ours() {
    let world = World::new(false);
    let refused = fail(System::GwsAuth, "create_client", ErrorKind::Rejected);
    world
        .upstream
        .auth
        .script
        .fail_next("create_client", refused);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientRegistered),
        Some(Err(Reason::UpstreamRejected))
    );
    assert_eq!(run.client_ours, Some(false));
}

struct Journal(Result<(), String>, std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl CreateJournal for Journal {
    async fn before_create(&self, client_id: &str) -> Result<(), String> {
        self.1.lock().unwrap().push(client_id.to_string());
        self.0.clone()
    }
}

#[tokio::test]
async fn a_create_is_journaled_before_it_leaves_and_not_sent_when_that_fails() {
    for (journaled, creates) in [(Ok(()), 1), (Err("status write refused".to_string()), 0)] {
        let world = World::new(false);
        let journal = Journal(journaled.clone(), Default::default());
        let management = Management::default();
        let run = run_environment_journaled(
            &world.runbook,
            &world.env,
            &world.store,
            &management,
            Some(&journal),
        )
        .await;
        assert_eq!(*journal.1.lock().unwrap(), [CLIENT], "{journaled:?}");
        assert_eq!(
            world.upstream.log.count("create_client"),
            creates,
            "{journaled:?}"
        );
        let expected = match creates {
            1 => Ok(Outcome::Created),
            _ => Err(Reason::UpstreamUnavailable),
        };
        assert_eq!(outcome(&run, Step::ClientRegistered), Some(expected));
    }
}

#[tokio::test]
async fn wrong_ops_credentials_are_unauthorized_with_a_hint() {
    let world = World::new(true);
    world
        .store
        .put("gws-ops", &[("username", "ops"), ("password", "wrong")]);
    let run = world.run().await;
    let Some(Err(e)) = run.report.outcome_of(Step::ClientRegistered) else {
        panic!("{:?}", run.report)
    };
    assert_eq!(e.reason, Reason::Unauthorized);
    assert!(e.message.contains("Check the ops user in Secret gws-ops"));
    assert!(!e.message.contains("wrong"), "no secret in messages");
    assert!(world.upstream.log.writes().is_empty());
}

#[tokio::test]
async fn a_missing_ops_secret_stops_before_any_call() {
    let world = World::new(true);
    world.store.remove("gws-ops");
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::Credentials),
        Some(Err(Reason::SecretNotFound))
    );
    assert!(world.upstream.log.calls().is_empty());
}

#[tokio::test]
async fn a_row_with_another_spelling_of_the_url_is_this_row() {
    for (stored_secret, expected, writes) in [
        (CLIENT_SECRET, Outcome::AlreadyRight, vec![]),
        ("old-secret", Outcome::Updated, vec!["update_gapi_secret"]),
    ] {
        let world = World::new(true);
        let respelt = "HTTPS://GWS.example.com/";
        world.upstream.db.put_gapi(respelt, CLIENT, stored_secret);
        let run = world.run().await;
        assert_eq!(
            outcome(&run, Step::GapiRegistered),
            Some(Ok(expected.clone()))
        );
        assert_eq!(world.upstream.log.writes(), writes);
        let rows = world.upstream.db.gapis();
        assert_eq!(rows.len(), 1, "never a second row beside it");
        assert_eq!(
            (rows[0].url.as_str(), rows[0].client_secret.expose()),
            (respelt, CLIENT_SECRET)
        );
    }
}

#[tokio::test]
async fn rows_of_another_client_or_gws_are_not_touched() {
    let world = World::new(true);
    world.upstream.db.put_gapi(GWS_URL, "other_client", "x");
    world
        .upstream
        .db
        .put_gapi("https://other-gws.example.com", CLIENT, "y");
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::GapiRegistered),
        Some(Ok(Outcome::Created))
    );
    assert_eq!(world.upstream.log.writes(), ["insert_gapi"]);
    assert_eq!(world.upstream.db.gapis().len(), 3);
}

#[tokio::test]
async fn a_database_without_nexus_tables_is_retried() {
    let world = World::new(true);
    let missing = UpstreamError::new(
        System::NexusDb,
        "find_gapis",
        ErrorKind::Rejected,
        "relation \"nex_gapis\" does not exist [SQLSTATE 42P01]",
    );
    world.upstream.db.script.fail_next("find_gapis", missing);
    let run = world.run().await;
    assert_eq!(
        samples::failure(&run.report),
        Some((Step::GapiRegistered, Reason::UpstreamRejected, true))
    );
    assert_eq!(world.upstream.log.count("insert_gapi"), 0);
}

#[tokio::test]
async fn a_database_url_that_cannot_be_used_is_the_secrets_fault() {
    let world = World::new(true);
    let refused = fail(System::NexusDb, "connect", ErrorKind::Rejected);
    world.upstream.script.fail_next("connect_nexus_db", refused);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::GapiRegistered),
        Some(Err(Reason::InvalidSecret))
    );
    let Some(Err(e)) = run.report.outcome_of(Step::GapiRegistered) else {
        unreachable!()
    };
    assert!(e.message.contains("Secret nexus-db key url"));
}

#[tokio::test]
async fn deletion_removes_the_client_and_every_spelling_of_the_row() {
    let world = World::new(false);
    world.run().await;
    world
        .upstream
        .db
        .put_gapi("https://gws.example.com/", CLIENT, "old");
    world.upstream.db.put_gapi(GWS_URL, "other_client", "x");
    let resolved = read_environment(&world.env, &world.store).await.unwrap();
    world.upstream.log.clear();
    delete_environment(&world.runbook, &resolved).await.unwrap();
    assert_eq!(
        world.upstream.log.writes(),
        ["delete_client", "delete_gapis", "delete_gapis"]
    );
    assert!(world.upstream.auth.client(CLIENT).is_none());
    let rows = world.upstream.db.gapis();
    assert_eq!(
        (rows.len(), rows[0].client_id.as_str()),
        (1, "other_client")
    );
}

#[tokio::test]
async fn deletion_leaves_a_client_taken_over_since_with_its_row() {
    let world = World::new(true);
    world.put_client(Some(&operator("staging").description()), CLIENT_SECRET);
    world.upstream.db.put_gapi(GWS_URL, CLIENT, CLIENT_SECRET);
    let resolved = read_environment(&world.env, &world.store).await.unwrap();
    let left = delete_environment_managed(&world.runbook, &resolved, &operator("prod")).await;
    assert_eq!(left, Ok(Some(operator("staging").description())));
    assert!(world.upstream.log.writes().is_empty());
    assert_eq!(world.upstream.db.gapis().len(), 1);
}

#[tokio::test]
async fn deletion_of_what_is_already_gone_is_done() {
    let world = World::new(true);
    world.upstream.auth.script.heal();
    let resolved = read_environment(&world.env, &world.store).await.unwrap();
    world.upstream.auth.put_client(OAuthClient::default(), "");
    let left = delete_environment(&world.runbook, &resolved).await;
    assert_eq!(left, Ok(()));
    assert_eq!(world.upstream.log.writes(), ["delete_client"]);
    assert!(world.upstream.auth.client(CLIENT).is_none());
}

#[tokio::test]
async fn a_client_secret_in_an_empty_key_is_not_replaced() {
    let world = World::new(true);
    world
        .store
        .put("prod-nexus-client", &[("client-secret", "")]);
    let run = world.run().await;
    assert_eq!(
        outcome(&run, Step::ClientSecret),
        Some(Err(Reason::SecretKeyMissing))
    );
    assert!(world.upstream.log.calls().is_empty());
    assert_eq!(
        world
            .store
            .get("prod-nexus-client", "client-secret")
            .as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn a_tenant_reads_the_environment_without_generating_anything() {
    let world = World::new(false);
    let read = read_environment(&world.env, &world.store).await;
    assert_eq!(
        read.map(|_| ()).map_err(|e| e.reason),
        Err(Reason::SecretNotFound)
    );
    assert!(world.store.writes().is_empty());
}
