//! An environment at its edges, with `dc-operator run` against the real API server: deleted
//! while its first client create is held in flight, then provisioned again and edited (the
//! API server refuses another GWS; another spelling of the same one adds no nex_gapis row).

use digital_channels_operator::api::DigitalChannelsEnvironment;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::{READY_TIMEOUT, Scenario, Scope, USER_MANAGER, cluster, wait_for};
use crate::resources::{apply_environment, apply_secrets};

/// The `url` of every `nex_gapis` row in the scenario's database.
async fn gapi_urls(s: &Scenario) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&s.sim.database_url)
        .await
        .expect("database");
    let rows: Vec<(String,)> = sqlx::query_as("SELECT url FROM nex_gapis ORDER BY url")
        .fetch_all(&pool)
        .await
        .expect("nex_gapis");
    pool.close().await;
    rows.into_iter().map(|(u,)| u).collect()
}

async fn hold_next(s: &Scenario, operation: &str, delay_ms: u64) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sim/faults", s.sim.url))
        .json(&json!({"operation": operation, "mode": "delay", "delay_ms": delay_ms}))
        .send()
        .await
        .expect("simulator");
    assert!(resp.status().is_success(), "{}", resp.status());
}

fn clients(state: &serde_json::Value) -> usize {
    state["clients"].as_object().map_or(0, |m| m.len())
}

#[tokio::test]
async fn an_environment_deleted_mid_create_cleans_up_and_its_identity_holds() {
    let Some(client) = cluster("environment_edges").await else {
        return;
    };
    let mut s = Scenario::new(client, "env-edges", Scope::Namespaces).await;
    apply_secrets(&s).await;
    s.start_operator("replica-a");

    // Deleted while the client create is in flight: the finalizer is already there, so
    // the environment waits for its cleanup, which deletes what the create made.
    hold_next(&s, "auth.create_client", 3000).await;
    apply_environment(&s, "prod", "Delete").await;
    wait_for(
        "the client create to be in flight",
        READY_TIMEOUT,
        || s.context(),
        || async { (s.sim.calls("auth.create_client").await == 1).then_some(()) },
    )
    .await;
    s.api::<DigitalChannelsEnvironment>()
        .delete("prod", &DeleteParams::default())
        .await
        .expect("delete environment");
    wait_for(
        "the client create to go through",
        READY_TIMEOUT,
        || s.context(),
        || async {
            let state = s.sim.state().await;
            (state["creates"]["auth.create_client"].as_u64() == Some(1)).then_some(())
        },
    )
    .await;
    s.wait_gone::<DigitalChannelsEnvironment>("prod", READY_TIMEOUT)
        .await;
    let state = s.sim.state().await;
    assert_eq!(clients(&state), 0, "the client is left: {state}");
    assert!(gapi_urls(&s).await.is_empty(), "a nex_gapis row is left");

    // Provisioned again: its identity is fixed, another spelling is not another GWS.
    apply_environment(&s, "prod", "Retain").await;
    s.wait_environment_ready("prod").await;
    let rows = gapi_urls(&s).await;
    assert_eq!(rows, [s.sim.url.clone()]);
    let edit = |gws_url: String| {
        json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsEnvironment",
            "metadata": {"name": "prod"},
            "spec": {
                "authUrl": s.sim.url, "gwsUrl": gws_url, "nexusUrl": s.sim.url,
                "opsCredentialsSecret": {"name": "gws-ops"},
                "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
                "deletionPolicy": "Retain",
            },
        })
    };
    let refused = s
        .api::<DigitalChannelsEnvironment>()
        .patch(
            "prod",
            &PatchParams::apply(USER_MANAGER).force(),
            &Patch::Apply(edit(format!("{}/other", s.sim.url))),
        )
        .await
        .expect_err("another GWS is refused");
    assert!(
        refused.to_string().contains("gwsUrl cannot change"),
        "{refused}"
    );
    let respelt: DigitalChannelsEnvironment = s.apply(edit(format!("{}/", s.sim.url))).await;
    let generation = respelt.metadata.generation;
    s.wait_until(
        "prod",
        "the respelt gwsUrl observed and Ready",
        READY_TIMEOUT,
        |e: &DigitalChannelsEnvironment| {
            e.status.as_ref().is_some_and(|st| {
                st.observed_generation == generation
                    && crate::harness::is_true(&st.conditions, "Ready")
            })
        },
    )
    .await;
    assert_eq!(gapi_urls(&s).await, rows, "no second nex_gapis row");
    assert_eq!(
        s.sim.calls("auth.create_client").await,
        2,
        "no second client"
    );
    s.finish().await;
}
