//! Without `spec.nexusDeployment`, a changed `nex_gapis` row is said (a condition and an
//! event) until the user says Nexus was restarted. Tried: the row changed after a rotation
//! and nothing said so.

mod common;

use common::operator::{Harness, NS, WAIT};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::api::conditions::{ConditionStatus, find};

const ANNOTATION: &str = "digitalchannels.dev/nexus-restarted-for";

/// The row name the condition's message asks to acknowledge.
fn row_named(env: &DigitalChannelsEnvironment) -> String {
    let c = find(
        &env.status.as_ref().expect("status").conditions,
        "NexusRestarted",
    )
    .expect("the restart is said");
    let at = c
        .message
        .find(&format!("{ANNOTATION}="))
        .expect("the command")
        + ANNOTATION.len()
        + 1;
    c.message[at..at + 12].to_string()
}

fn restart_events(h: &Harness) -> usize {
    h.api
        .writes()
        .iter()
        .filter(|w| w.resource == "events")
        .filter(|w| {
            w.body
                .as_ref()
                .is_some_and(|b| b["reason"] == "NexusRestartRequired")
        })
        .count()
}

/// Waits until NexusRestarted is gone from the environment's status.
async fn acknowledged(h: &Harness) {
    let gone = h
        .api
        .wait_for(WAIT, |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, "prod")?;
            find(&e.status?.conditions, "NexusRestarted")
                .is_none()
                .then_some(())
        })
        .await;
    assert!(gone.is_some(), "{:#?}", h.get_env().and_then(|e| e.status));
}

#[tokio::test]
async fn a_changed_row_asks_for_a_restart_until_acknowledged() {
    let h = Harness::start().await;
    h.env(|_| {});
    let env = h
        .env_condition(
            "NexusRestarted",
            ConditionStatus::False,
            Some("ManualStepRequired"),
        )
        .await;
    let ready = find(&env.status.as_ref().unwrap().conditions, "Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::True, "not part of Ready");
    let first = row_named(&env);
    h.settle_from_here().await;
    assert_eq!(restart_events(&h), 1, "one event for the row");

    // An acknowledgement for another row does not count; for this one it does.
    h.env(|e| {
        e.metadata.annotations = Some([(ANNOTATION.to_string(), "000000000000".to_string())].into())
    });
    h.settle().await;
    assert_eq!(row_named(&h.get_env().unwrap()), first);
    h.env(|e| e.metadata.annotations = Some([(ANNOTATION.to_string(), first.clone())].into()));
    acknowledged(&h).await;

    // A rotated client secret changes the row: said again, for the new row.
    h.api.clear_writes();
    h.secret(
        "prod-nexus-client",
        &[("client-secret", "a-rotated-client-secret-of-enough-length")],
    );
    let env = h
        .env_condition(
            "NexusRestarted",
            ConditionStatus::False,
            Some("ManualStepRequired"),
        )
        .await;
    assert_ne!(row_named(&env), first);
    h.settle_from_here().await;
    assert_eq!(restart_events(&h), 1);
    h.stop().await;
}
