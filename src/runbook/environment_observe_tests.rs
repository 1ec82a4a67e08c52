//! The environment steps under `managementPolicy: Observe`, on the in-memory fakes: in
//! sync, drifted and missing, with the fakes' call log proving that nothing was written
//! upstream and no client secret generated; then the switch to Manage, which makes exactly
//! the writes the observation announced.

use std::sync::Arc;

use super::*;
use crate::fakes::samples::{self, CLIENT_SECRET, GWS_URL, announced_writes};
use crate::fakes::{FakeConnector, FakeSecretStore};
use crate::upstream::gws_auth::REQUIRED_GRANT_TYPES;

const CLIENT: &str = "nexus_client";
const SECRET: &str = "prod-nexus-client";

/// What is upstream before the observation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Estate {
    /// As the operator (`provision`) left it.
    Provisioned,
    /// As a runbook by hand leaves it: a client with a description of its own, holding the
    /// secret the user put into the Secret, and its `nex_gapis` row.
    ByHand,
    /// Nothing: no client, no row.
    Nothing,
    /// Made by the operator, then changed behind it: another redirect URI, a grant type
    /// dropped, another secret in GWS Auth and in the row.
    Drifted,
}

struct World {
    upstream: Arc<FakeConnector>,
    runbook: Runbook,
    store: FakeSecretStore,
    env: DigitalChannelsEnvironment,
}

impl World {
    fn new(estate: Estate) -> Self {
        let upstream = samples::connector(estate == Estate::Provisioned);
        let hand_made = OAuthClient {
            client_id: CLIENT.into(),
            description: Some("Digital Channels (by hand)".into()),
            authorized_grant_types: REQUIRED_GRANT_TYPES.map(String::from).to_vec(),
            redirect_uris: vec![samples::NEXUS_URL.into()],
            ..OAuthClient::default()
        };
        match estate {
            Estate::ByHand => upstream.auth.put_client(hand_made, CLIENT_SECRET),
            Estate::Drifted => {
                let changed = OAuthClient {
                    description: Some(ClientManager::Provision.description()),
                    authorized_grant_types: vec!["password".into()],
                    redirect_uris: vec!["https://elsewhere.example.com".into()],
                    ..hand_made
                };
                upstream.auth.put_client(changed, "changed-in-gws");
            }
            Estate::Provisioned | Estate::Nothing => {}
        }
        let row_secret = match estate {
            Estate::Provisioned | Estate::ByHand => Some(CLIENT_SECRET),
            Estate::Drifted => Some("changed-in-the-row"),
            Estate::Nothing => None,
        };
        if let Some(secret) = row_secret {
            upstream.db.put_gapi(GWS_URL, CLIENT, secret);
        }
        let mut env = samples::environment();
        env.spec.management_policy = ManagementPolicy::Observe;
        Self {
            runbook: samples::runbook(&upstream),
            upstream,
            // The user supplies the client's secret: Observe generates none.
            store: samples::store(true),
            env,
        }
    }

    async fn run(&self) -> EnvironmentRun {
        run_environment(&self.runbook, &self.env, &self.store).await
    }

    fn manage(&mut self) {
        self.env.spec.management_policy = ManagementPolicy::Manage;
    }

    fn writes(&self) -> Vec<&'static str> {
        let mut writes = self.upstream.log.writes();
        writes.sort_unstable();
        writes
    }
}

/// Each step's outcome in words ("already right", "drifted", ...), or its failure's reason.
fn outcomes(run: &EnvironmentRun) -> Vec<(Step, String)> {
    let words = |r: &Result<Outcome, StepError>| match r {
        Ok(o) => o.as_str().to_string(),
        Err(e) => e.reason.to_string(),
    };
    let steps = run.report.steps.iter();
    steps.map(|s| (s.step, words(&s.result))).collect()
}

fn said(run: &EnvironmentRun, step: Step) -> String {
    match run.report.outcome_of(step) {
        Some(Ok(o)) => o.observed_difference().unwrap_or_default().to_string(),
        Some(Err(e)) => e.message.clone(),
        None => String::new(),
    }
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one table
async fn each_step_observed_says_in_sync_drifted_or_missing_and_writes_nothing() {
    use Step::*;
    // (estate, ClientRegistered, ClientVerified, GapiRegistered, words said)
    let table = [
        (
            Estate::Provisioned,
            "already right",
            "verified",
            "already right",
            vec![],
        ),
        (
            Estate::ByHand,
            "drifted",
            "verified",
            "already right",
            vec![(
                ClientRegistered,
                "description \"Digital Channels (by hand)\" -> \"managed by dc-operator provision\"",
            )],
        ),
        (
            Estate::Nothing,
            "missing",
            "missing",
            "missing",
            vec![
                (ClientRegistered, "Manage would create it"),
                (GapiRegistered, "Manage would insert it"),
            ],
        ),
        (
            Estate::Drifted,
            "drifted",
            "drifted",
            "drifted",
            vec![
                (
                    ClientRegistered,
                    "redirectURIs [https://elsewhere.example.com] -> [https://elsewhere.example.com, https://nexus.example.com]",
                ),
                (
                    ClientRegistered,
                    "authorizedGrantTypes lacks [refresh_token, client_credentials, authorization_code]",
                ),
                (ClientVerified, "Manage would set the client's secret"),
                (GapiRegistered, "Manage would update it"),
            ],
        ),
    ];
    for (estate, registered, verified, gapi, words) in table {
        let world = World::new(estate);
        let run = world.run().await;
        let expected = vec![
            (Credentials, "already right".to_string()),
            (ClientSecret, "already right".to_string()),
            (ClientRegistered, registered.to_string()),
            (ClientVerified, verified.to_string()),
            (GapiRegistered, gapi.to_string()),
        ];
        assert_eq!(outcomes(&run), expected, "{estate:?}");
        for (step, text) in words {
            assert!(
                said(&run, step).contains(text),
                "{estate:?} {step}: {}",
                said(&run, step)
            );
        }
        for step in [ClientRegistered, ClientVerified, GapiRegistered] {
            let text = said(&run, step);
            for secret in [CLIENT_SECRET, "changed-in-gws", "changed-in-the-row"] {
                assert!(
                    !text.contains(secret),
                    "{estate:?} {step} shows a secret: {text}"
                );
            }
        }
        assert_eq!(run.report.in_sync(), estate == Estate::Provisioned);
        assert!(
            world.upstream.log.writes().is_empty(),
            "{estate:?}: {:?}",
            world.upstream.log.writes()
        );
        assert_eq!(
            run.client_ours, None,
            "{estate:?}: observed, never recorded as ours"
        );
        assert!(!run.gapi_changed());
    }
}

#[tokio::test]
async fn an_absent_client_secret_is_missing_and_never_generated() {
    let mut world = World::new(Estate::ByHand);
    world.store = samples::store(false);
    let run = world.run().await;
    assert_eq!(
        samples::failure(&run.report),
        Some((Step::ClientSecret, Reason::Missing, false))
    );
    assert!(
        said(&run, Step::ClientSecret)
            .contains("Create the Secret with the client's current secret")
    );
    assert_eq!(
        world.store.get(SECRET, "client-secret"),
        None,
        "not generated"
    );
    assert!(
        world.upstream.log.calls().is_empty(),
        "nothing asked upstream"
    );
}

/// A client whose description names another manager, or made by hand and refusing the
/// secret of the Secret: Manage would refuse to touch it, and Observe says the same.
#[tokio::test]
async fn a_client_manage_would_refuse_is_refused_alike_and_untouched() {
    for (description, secret, reason) in [
        (
            "managed by dc-operator: DigitalChannelsEnvironment dc/other",
            CLIENT_SECRET,
            Reason::ClientManagedElsewhere,
        ),
        (
            "Digital Channels (by hand)",
            "another-secret",
            Reason::ClientExists,
        ),
    ] {
        let world = World::new(Estate::Nothing);
        let client = OAuthClient {
            client_id: CLIENT.into(),
            description: Some(description.into()),
            ..OAuthClient::default()
        };
        world.upstream.auth.put_client(client, secret);
        let run = world.run().await;
        assert_eq!(samples::failure(&run.report).map(|f| f.1), Some(reason));
        assert!(world.upstream.log.writes().is_empty());
    }
}

#[tokio::test]
async fn switching_to_manage_makes_exactly_the_writes_observe_announced() {
    for (estate, expected) in [
        (Estate::Provisioned, vec![]),
        // The one write of an adoption: the description that marks the client as managed.
        (Estate::ByHand, vec!["update_client"]),
        (Estate::Nothing, vec!["create_client", "insert_gapi"]),
        (
            Estate::Drifted,
            vec!["update_client", "update_client", "update_gapi_secret"],
        ),
    ] {
        let mut world = World::new(estate);
        let observed = world.run().await;
        let announced = announced_writes(&observed.report);
        assert_eq!(announced, expected, "{estate:?}");
        assert!(world.upstream.log.writes().is_empty(), "{estate:?}");
        world.manage();
        let run = world.run().await;
        assert!(run.report.succeeded(), "{estate:?}: {:?}", outcomes(&run));
        assert_eq!(world.writes(), announced, "{estate:?}");
        // And now all is in sync: a second Manage pass writes nothing.
        world.upstream.log.clear();
        world.run().await;
        assert!(world.upstream.log.writes().is_empty(), "{estate:?}");
    }
}
