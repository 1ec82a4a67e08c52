//! An environment's lifecycle at its edges, with the controllers running for real against
//! the in-memory API server, the simulator and a real PostgreSQL: deleted while its first
//! create is in flight, deleted having made nothing, meeting a client it did not make.

mod common;

use std::time::Duration;

use common::operator::{Harness, NS, WAIT};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{DeletionPolicy, DigitalChannelsEnvironment};
use digital_channels_operator::secret::Credentials;
use digital_channels_operator::upstream::gws_auth::ClientRegistration;

/// A client made by hand in GWS Auth, with a secret the operator does not hold.
async fn hand_made_client(h: &Harness) {
    let auth = common::runbook()
        .connector
        .gws_auth(&h.sim.url(), None)
        .expect("client");
    let ops = Credentials {
        username: "ops".into(),
        password: "ops".into(),
    };
    auth.create_client(
        &ops,
        &ClientRegistration {
            client_id: "nexus_client".into(),
            secret: "hand-made-secret".into(),
            description: "made by hand".into(),
            redirect_uri: "https://nexus.example.com".into(),
            previous_redirect_uri: None,
            access_token_expiration_timeout: 43200,
            refresh_token_expiration_timeout: 2592000,
        },
    )
    .await
    .expect("client created by hand");
}

#[tokio::test]
async fn deleted_while_its_client_create_is_in_flight_it_still_cleans_up() {
    let h = Harness::start().await;
    h.sim
        .handle
        .faults()
        .delay_next("auth.create_client", 1, Duration::from_millis(1500));
    h.env(|e| e.spec.deletion_policy = DeletionPolicy::Delete);
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().calls("auth.create_client") == 1).then_some(())
        })
        .await
        .expect("the create is in flight");
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");

    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().creates("auth.create_client") == 1).then_some(())
        })
        .await
        .expect("the create went through");
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("the environment is gone");
    let cleaned = h
        .api
        .wait_for(WAIT, |_| {
            h.sim.handle.snapshot().clients.is_empty().then_some(())
        })
        .await;
    assert!(
        cleaned.is_some(),
        "the client made by the create in flight is left: {:?}",
        h.sim.handle.snapshot().clients.keys()
    );
    assert!(
        h.sim.handle.gapis_rows().await.unwrap().is_empty(),
        "no nex_gapis row left"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_client_it_did_not_make_is_neither_taken_over_nor_deleted() {
    let h = Harness::start().await;
    hand_made_client(&h).await;
    h.env(|e| e.spec.deletion_policy = DeletionPolicy::Delete);
    let env = h
        .env_condition(
            "ClientRegistered",
            ConditionStatus::False,
            Some("ClientExists"),
        )
        .await;
    let status = env.status.clone().unwrap();
    let registered = find(&status.conditions, "ClientRegistered").unwrap();
    assert!(
        registered
            .message
            .contains("digitalchannels.dev/take-over-client"),
        "{}",
        registered.message
    );
    let ready = find(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(status.managed_client_id, None);
    h.settle().await;
    let state = h.sim.handle.snapshot();
    assert_eq!(state.updates("auth.update_client"), 0, "nothing written");
    assert!(state.clients["nexus_client"].secret_matches("hand-made-secret"));

    let calls_before = state.calls("auth.get_client") + state.calls("auth.token");
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("the environment is gone");
    let state = h.sim.handle.snapshot();
    assert_eq!(state.calls("auth.delete_client"), 0, "no delete was sent");
    assert_eq!(
        state.calls("auth.get_client") + state.calls("auth.token"),
        calls_before,
        "the cleanup of what made nothing calls nothing"
    );
    assert!(
        state.clients.contains_key("nexus_client"),
        "the client stays"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_take_over_annotation_adopts_a_hand_made_client_and_records_it() {
    let h = Harness::start().await;
    hand_made_client(&h).await;
    h.env(|_| {});
    h.env_condition(
        "ClientRegistered",
        ConditionStatus::False,
        Some("ClientExists"),
    )
    .await;
    h.env(|e| {
        e.metadata.annotations = Some(
            [(
                "digitalchannels.dev/take-over-client".to_string(),
                "true".to_string(),
            )]
            .into(),
        );
    });
    let env = h.env_condition("Ready", ConditionStatus::True, None).await;
    assert_eq!(
        env.status.unwrap().managed_client_id.as_deref(),
        Some("nexus_client")
    );
    let client = h.sim.handle.snapshot().clients["nexus_client"].clone();
    assert!(!client.secret_matches("hand-made-secret"), "our secret now");
    assert_eq!(
        client.description,
        "managed by dc-operator: DigitalChannelsEnvironment dc/prod"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_typo_in_the_client_secret_name_does_not_replace_the_clients_secret() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let updates = h.sim.handle.snapshot().updates("auth.update_client");

    h.env(|e| {
        e.spec.client.secret = Some(digital_channels_operator::api::SecretKeyRef {
            name: "prod-nexus-cleint".into(),
            key: "client-secret".into(),
        })
    });
    let env = h
        .env_condition(
            "ClientRegistered",
            ConditionStatus::False,
            Some("SecretNotFound"),
        )
        .await;
    let message = find(&env.status.unwrap().conditions, "ClientRegistered")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("prod-nexus-cleint") && message.contains("prod-nexus-client"),
        "{message}"
    );
    h.settle().await;
    assert_eq!(
        h.sim.handle.snapshot().updates("auth.update_client"),
        updates,
        "the client's secret is not replaced"
    );
    assert!(
        h.api
            .get_as::<k8s_openapi::api::core::v1::Secret>(NS, "prod-nexus-cleint")
            .is_none(),
        "nothing generated"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_crash_between_the_client_create_and_the_status_write_still_cleans_up() {
    let mut h = Harness::start().await;
    // The create takes effect, then its answer never comes: the process dies waiting.
    h.sim
        .handle
        .faults()
        .timeout_after_effect_next("auth.create_client", 1);
    h.env(|e| e.spec.deletion_policy = DeletionPolicy::Delete);
    h.api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().creates("auth.create_client") == 1).then_some(())
        })
        .await
        .expect("the create took effect");
    h.task.abort();
    let _ = (&mut h.task).await;

    // Deleted while no operator runs: the next process's first pass is the cleanup.
    h.api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    let (stop, task) = Harness::spawn_operator(&h.api);
    h.stop = stop;
    h.task = task;
    h.api
        .wait_for(WAIT, |_| h.get_env().is_none().then_some(()))
        .await
        .expect("the environment is gone");
    assert!(
        h.sim.handle.snapshot().clients.is_empty(),
        "the client the crashed process made is left"
    );
    h.stop().await;
}
