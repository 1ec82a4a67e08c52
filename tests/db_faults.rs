//! Faults of the Nexus PostgreSQL database, with both controllers running (the in-memory API
//! server, the simulator): a server that refuses connections, one restarted mid-run, wrong
//! credentials, a database without the `nex_gapis` table, and a row edited or deleted by hand.
//! The operator is never restarted: its pool must recover by itself.
//!
//! The refused and restarted server is one of the test's own (`common/own_postgres.rs`), with
//! password authentication, so that stopping it disturbs no other test.

mod common;
#[path = "common/own_postgres.rs"]
mod own_postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::operator::{Harness, NS, test_controller_config};
use common::{Sim, TestDb};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::api::conditions::{Condition, ConditionStatus, find};
use digital_channels_operator::simulator::{Simulator, SimulatorConfig};
use k8s_openapi::api::core::v1::Secret;
use own_postgres::OwnPostgres;
use sqlx::postgres::PgPoolOptions;

const DB_PASSWORD: &str = "db-pw-Q8m2";

/// The simulator on a database of a PostgreSQL server of the test's own.
async fn sim_on_own_server() -> (Arc<OwnPostgres>, Sim) {
    let pg = tokio::task::spawn_blocking(|| OwnPostgres::start(DB_PASSWORD))
        .await
        .unwrap();
    // Dropping a TestDb drops its name on the shared server too: a name nobody else uses.
    let name = format!("dcown_{}", rand::random::<u64>() % 1_000_000_000_000);
    let url = pg.create_database(&name).await;
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .unwrap();
    let handle = Simulator::start(
        SimulatorConfig::default(),
        pool.clone(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    (
        Arc::new(pg),
        Sim {
            handle,
            db: TestDb { name, url, pool },
        },
    )
}

/// Runs a blocking `pg_ctl` off the runtime, which serves the API server and the simulator.
async fn pg_ctl(pg: &Arc<OwnPostgres>, action: fn(&OwnPostgres)) {
    let pg = pg.clone();
    tokio::task::spawn_blocking(move || action(&pg))
        .await
        .unwrap();
}

fn gapi_condition(env: &DigitalChannelsEnvironment) -> (ConditionStatus, String, String) {
    let c = find(
        &env.status.clone().unwrap_or_default().conditions,
        "GapiRegistered",
    )
    .cloned()
    .expect("GapiRegistered");
    (c.status, c.reason, c.message)
}

/// The `nex_gapis` rows as (url, clientid, clientsecret).
async fn gapi_rows(h: &Harness) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT url, clientid, clientsecret FROM nex_gapis ORDER BY url")
        .fetch_all(&h.sim.db.pool)
        .await
        .unwrap()
}

type Rows = [(String, String, Option<String>)];

/// Polls `nex_gapis` until `check` holds (at most 10 s): how long after `since` it did.
async fn wait_rows(h: &Harness, since: Instant, check: impl Fn(&Rows) -> bool) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(10) {
        // The test's own pool may meet a restarted server too: an error is another try.
        if let Ok(rows) = sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT url, clientid, clientsecret FROM nex_gapis",
        )
        .fetch_all(&h.sim.db.pool)
        .await
            && check(&rows)
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn client_secret(h: &Harness) -> String {
    let s = h.api.get_as::<Secret>(NS, "prod-nexus-client").unwrap();
    String::from_utf8(s.data.unwrap()["client-secret"].0.clone()).unwrap()
}

/// Status writes of the environment so far: one per pass that changed something.
fn env_status_writes(h: &Harness) -> usize {
    h.api
        .writes()
        .iter()
        .filter(|w| {
            w.resource == "digitalchannelsenvironments"
                && w.subresource.as_deref() == Some("status")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_is_retried_and_the_pool_recovers_when_it_is_back() {
    let (pg, sim) = sim_on_own_server().await;
    let h = Harness::start_custom(sim, test_controller_config()).await;
    pg_ctl(&pg, OwnPostgres::stop).await;

    let applied = Instant::now();
    h.env(|_| {});
    let env = h
        .env_condition(
            "GapiRegistered",
            ConditionStatus::False,
            Some("UpstreamUnavailable"),
        )
        .await;
    eprintln!(
        "figure: refused: the condition after {:?} (the pool's 10 s wait, then one direct try)",
        applied.elapsed()
    );
    let (_, _, message) = gapi_condition(&env);
    assert!(
        message.contains("Nexus database") && message.contains("Connection refused"),
        "{message}"
    );
    assert!(!message.contains(DB_PASSWORD), "{message}");
    let ready = find(&env.status.clone().unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.reason, "UpstreamUnavailable");

    // Down for a while: the passes are bounded (each waits for the pool, 10 s, then backs off).
    let calls_before = h.sim.handle.snapshot().calls("auth.token");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_during = h.sim.handle.snapshot().calls("auth.token") - calls_before;
    assert!(calls_during <= 2, "{calls_during} passes in 3 s while down");

    pg_ctl(&pg, OwnPostgres::start_again).await;
    let back = Instant::now();
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let recovered = back.elapsed();
    eprintln!("figure: refused -> back: Ready {recovered:?} after the server accepted again");
    assert!(
        recovered < Duration::from_secs(5),
        "recovered after {recovered:?}"
    );
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert_eq!(gapi_rows(&h).await.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_between_and_during_passes_is_survived_without_duplicates() {
    let (pg, sim) = sim_on_own_server().await;
    let h = Harness::start_custom(sim, test_controller_config()).await;
    h.env(|_| {});
    h.tenant(|_| {});
    // Restarts while the first passes run: the pool opens its first connections, the row
    // and the tenant's keys are written, the simulated Nexus reads nex_gapis.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        pg_ctl(&pg, OwnPostgres::restart).await;
    }
    h.both_ready().await;

    // Between passes: every pooled connection is dead when the next pass takes it.
    pg_ctl(&pg, OwnPostgres::restart).await;
    sqlx::query("DELETE FROM nex_gapis")
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    let back = Instant::now();
    h.env(|e| e.metadata.labels = Some([("pass".to_string(), "1".to_string())].into()));
    let recovered = wait_rows(&h, back, |rows| rows.len() == 1)
        .await
        .expect("row never restored after the restart");
    eprintln!("figure: restart between passes: the next pass wrote the row {recovered:?} after");
    assert!(
        recovered < Duration::from_secs(5),
        "recovered after {recovered:?}"
    );
    let env = h.env_condition("Ready", ConditionStatus::True, None).await;
    assert_eq!(gapi_condition(&env).0, ConditionStatus::True);
    let state = h.sim.handle.snapshot();
    assert_eq!(state.creates("nexus.create_tenant"), 1);
    assert_eq!(state.creates("auth.create_client"), 1);
    assert_eq!(gapi_rows(&h).await.len(), 1, "exactly one nex_gapis row");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_database_credentials_are_a_condition_without_the_password_and_no_loop() {
    let (pg, sim) = sim_on_own_server().await;
    let wrong_url = pg.url_with_password(&sim.db.name, "wrong-db-pw-5521");
    let h = Harness::start_custom(sim, test_controller_config()).await;
    h.secret("nexus-db", &[("url", &wrong_url)]);
    h.env(|_| {});
    let env = h
        .env_condition(
            "GapiRegistered",
            ConditionStatus::False,
            Some("Unauthorized"),
        )
        .await;
    let (_, _, message) = gapi_condition(&env);
    assert!(
        message.contains("password authentication failed")
            && message.contains(
                "(database URL from Secret dc/nexus-db key url). Check the database URL in that Secret"
            ),
        "{message}"
    );
    let status = serde_json::to_string(&env.status).unwrap();
    assert!(!status.contains("wrong-db-pw-5521") && !status.contains(DB_PASSWORD));

    // No hot loop: at most one pass per backoff (1 s here, jittered by -20 %; a password
    // may be fixed on the server, out of sight). Each retry writes status once, for its
    // nextRetryAt; no condition moves. The backoff reaches its cap first (0.1 + 0.2 + 0.4
    // + 0.8 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = env_status_writes(&h);
    let tokens = h.sim.handle.snapshot().calls("auth.token");
    let before = h.get_env().unwrap().status.unwrap().conditions;
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let passes = h.sim.handle.snapshot().calls("auth.token") - tokens;
    let bound = (window.as_secs_f64() / 0.8).floor() as u64 + 1;
    assert!(
        passes <= bound,
        "{passes} passes in {window:?}, bound {bound}"
    );
    let rewrites = (env_status_writes(&h) - writes) as u64;
    assert!(
        rewrites <= passes + 1,
        "{rewrites} status writes for {passes} passes: at most one a pass"
    );
    let after = h.get_env().unwrap().status.unwrap();
    assert!(
        after.next_retry_at.is_some(),
        "each retry says when the next is"
    );
    let transitions = |c: &[Condition]| {
        c.iter()
            .map(|c| (c.type_.clone(), c.last_transition_time.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        transitions(&after.conditions),
        transitions(&before),
        "no condition flips while it is retried"
    );

    let url = h.sim.db.url.clone();
    h.secret("nexus-db", &[("url", &url)]);
    h.env_condition("Ready", ConditionStatus::True, None).await;
    assert_eq!(gapi_rows(&h).await.len(), 1);
    drop(pg);
    h.stop().await;
}

/// The schema of `nex_gapis` as Nexus creates it (as the simulator does).
const NEX_GAPIS: &str = "CREATE TABLE nex_gapis (url text NOT NULL, clientid text NOT NULL, \
    apikey text, clientsecret text, created timestamptz DEFAULT now(), region text, \
    authinturl text, authexturl text)";

#[tokio::test]
async fn a_missing_nex_gapis_table_says_nexus_is_not_installed_and_is_waited_for() {
    let h = Harness::start().await;
    sqlx::query("DROP TABLE nex_gapis")
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    h.env(|_| {});
    let env = h
        .env_condition("GapiRegistered", ConditionStatus::False, None)
        .await;
    let (_, reason, message) = gapi_condition(&env);
    assert!(
        message.contains("nex_gapis")
            && message.contains("Nexus is not installed")
            && message.contains("not migrated"),
        "{reason}: {message}"
    );
    let ready = find(&env.status.clone().unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.status, ConditionStatus::False);

    // Nexus starts (and creates its tables): the environment goes on by itself, without a
    // change to the resource or a resync.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::raw_sql(NEX_GAPIS)
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    let created = Instant::now();
    h.env_condition("Ready", ConditionStatus::True, None).await;
    eprintln!(
        "figure: missing table created -> Ready after {:?}",
        created.elapsed()
    );
    assert_eq!(gapi_rows(&h).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_row_edited_or_deleted_by_hand_is_repaired_at_the_next_drift_check() {
    let sim = Sim::start().await;
    let mut config = test_controller_config();
    config.resync_interval = Duration::from_secs(2);
    let h = Harness::start_custom(sim, config).await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let secret = client_secret(&h);
    let rows = gapi_rows(&h).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2.as_deref(), Some(secret.as_str()));

    // Edited: the secret changed by hand.
    sqlx::query("UPDATE nex_gapis SET clientsecret = 'edited-by-hand'")
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    let repaired = wait_rows(&h, Instant::now(), |rows| {
        rows.len() == 1 && rows[0].2.as_deref() == Some(secret.as_str())
    })
    .await
    .expect("the edited row is repaired");
    eprintln!("figure: edited row repaired after {repaired:?} (resync 2 s)");
    // At the next drift check (every 2 s ± 10 %), before a second one could come (3.6 s).
    assert!(repaired <= Duration::from_millis(3500), "{repaired:?}");

    // Deleted by hand: inserted again, once.
    sqlx::query("DELETE FROM nex_gapis")
        .execute(&h.sim.db.pool)
        .await
        .unwrap();
    let restored = wait_rows(&h, Instant::now(), |rows| rows.len() == 1)
        .await
        .expect("the deleted row is inserted again");
    eprintln!("figure: deleted row restored after {restored:?} (resync 2 s)");
    assert!(restored <= Duration::from_millis(3500), "{restored:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = gapi_rows(&h).await;
    assert_eq!(rows.len(), 1, "no second row: {rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some(secret.as_str()));
    h.stop().await;
}
