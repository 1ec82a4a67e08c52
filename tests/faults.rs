//! Upstream faults and load (issue 9, items 1 and 7), against the simulator over loopback with
//! the real reqwest and sqlx clients and a real PostgreSQL:
//!
//! - the client's `Retry-After` handling, both forms of RFC 9110 (delay-seconds, HTTP-date);
//! - the fault matrix: every external operation × every fault kind, each case on a fresh
//!   simulator database, the fault on the operation's first calls, the runbook run pass after
//!   pass (as a controller would) until it holds: Ready, and every effect exactly once;
//! - the controllers (both, for real, on the in-memory API server) through an outage: the
//!   calls stay within the backoff bound, `Retry-After` is obeyed, and Ready follows the end
//!   of the outage within one backoff;
//! - load: 500 tenants on one environment, 10 % of all calls failing at random.
//!
//! Long scenarios read their figures from the environment, so that CI runs them short:
//! `DC_FAULTS_OUTAGE_SECS` (default 6), `DC_FAULTS_INITIAL_BACKOFF_MS` (100),
//! `DC_FAULTS_MAX_BACKOFF_MS` (1000), `DC_FAULTS_LOAD_TENANTS` (500). Run with
//! `-- --nocapture` to see the figures measured; `DC_FAULTS_LOG` (a tracing filter) shows
//! what the controllers did. The `#[ignore]`d tests at the end reproduce defects found on
//! the way (`-- --ignored` runs them; they fail until those are fixed).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::operator::{Harness, NS, WAIT};
use common::{MemoryStore, Sim, environment, http_config, sample_store, tenant};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{
    DigitalChannelsEnvironment, DigitalChannelsTenant, TenantStatus,
};
use digital_channels_operator::controller::{ControllerConfig, KIND_ENVIRONMENT, KIND_TENANT};
use digital_channels_operator::runbook::environment::{
    ResolvedEnvironment, delete_environment, run_environment,
};
use digital_channels_operator::runbook::tenant::{CreatedRecord, delete_tenant, keys, run_tenant};
use digital_channels_operator::runbook::{RealConnector, RunReport, Runbook, StepError};
use digital_channels_operator::secret::{Credentials, SecretString};
use digital_channels_operator::simulator::{
    DEMO_CC_T100, OPERATIONS, RetryAfter, Seed, SimulatorConfig, StateView,
};
use digital_channels_operator::upstream::http::{HttpConfig, RetryPolicy};
use digital_channels_operator::upstream::{EnvironmentApi, EnvironmentClient, HttpClient};
use futures::StreamExt as _;

fn ops() -> Credentials {
    Credentials {
        username: "ops".into(),
        password: SecretString::new("ops"),
    }
}

fn client(config: &HttpConfig) -> HttpClient {
    digital_channels_operator::upstream::http::install_crypto_provider();
    HttpClient::new(config).expect("HTTP client")
}

/// The gaps between consecutive requests of `op`, as the simulator saw them come.
fn gaps(sim: &Sim, op: &str) -> Vec<Duration> {
    sim.handle
        .snapshot()
        .call_times(op)
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Retry-After in the HTTP client

const LIST: &str = "environment.list_contact_centers";

/// A `Retry-After` within `max_retry_after` is waited out inside the call, in either form:
/// no request of the operation comes sooner than it asked.
#[tokio::test]
async fn the_client_waits_out_retry_after_in_both_forms() {
    let sim = Sim::start().await;
    let config = HttpConfig {
        retry: RetryPolicy {
            max_retry_after: Duration::from_secs(5),
            ..common::fast_retry()
        },
        ..http_config()
    };
    let env = EnvironmentClient::new(client(&config), &sim.url());
    let faults = sim.handle.faults();
    // Seconds, then a date 3 s ahead (whole seconds: a delay between 2 and 3 s).
    faults.fail_next_with(LIST, 1, 503, RetryAfter::Seconds(2));
    faults.fail_next_with(LIST, 1, 429, RetryAfter::HttpDateIn(3));
    env.list_contact_centers(&ops())
        .await
        .expect("third try answers");
    let gaps = gaps(&sim, LIST);
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(
        gaps[0] >= Duration::from_secs(2),
        "Retry-After: 2 gave {gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_secs(2),
        "Retry-After: <a date 3 s ahead> gave {gaps:?}"
    );
}

/// A `Retry-After` longer than `max_retry_after` ends the call at once and is handed up,
/// in either form, for the caller (the controller) to requeue after it.
#[tokio::test]
async fn a_long_retry_after_is_handed_up_in_both_forms() {
    let sim = Sim::start().await;
    let env = EnvironmentClient::new(client(&http_config()), &sim.url());
    for (retry_after, lowest) in [
        (RetryAfter::Seconds(30), 30),
        (RetryAfter::HttpDateIn(30), 28),
    ] {
        sim.handle
            .faults()
            .fail_next_with(LIST, 1, 503, retry_after);
        let calls = sim.handle.snapshot().calls(LIST);
        let error = env.list_contact_centers(&ops()).await.unwrap_err();
        assert!(error.is_transient());
        let after = error.retry_after.expect("Retry-After handed up");
        assert!(
            (Duration::from_secs(lowest)..=Duration::from_secs(30)).contains(&after),
            "{retry_after:?} gave {after:?}"
        );
        assert_eq!(sim.handle.snapshot().calls(LIST), calls + 1, "no retry");
    }
    // Without Retry-After: the client's own backoff, and nothing handed up.
    sim.handle
        .faults()
        .fail_next_with(LIST, 4, 503, RetryAfter::Absent);
    let error = env.list_contact_centers(&ops()).await.unwrap_err();
    assert_eq!(error.retry_after, None);
}

// ---------------------------------------------------------------------------------------------
// The simulator's network faults, as the client sees them

/// A reset connection and a closed port are transient failures of the client; the closed
/// port is a connect failure (so that even a create may be sent again), and the simulator
/// serves again on the same port once it listens again.
#[tokio::test]
async fn reset_and_refused_connections_are_transient_and_the_port_comes_back() {
    let sim = Sim::start().await;
    let no_retry = HttpConfig {
        retry: RetryPolicy::none(),
        ..http_config()
    };
    let env = EnvironmentClient::new(client(&no_retry), &sim.url());
    env.list_contact_centers(&ops()).await.expect("answers");

    sim.handle.faults().reset_next(LIST, 1);
    let reset = env.list_contact_centers(&ops()).await.unwrap_err();
    assert!(reset.is_transient(), "{reset}");
    assert_eq!(reset.status, None, "no answer: {reset}");
    assert!(!reset.detail.starts_with("cannot connect"), "{reset}");

    sim.handle.stop_listening().await;
    let started = Instant::now();
    let refused = env.list_contact_centers(&ops()).await.unwrap_err();
    assert!(refused.is_transient(), "{refused}");
    assert!(refused.detail.starts_with("cannot connect"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    let seen = sim.handle.snapshot().calls(LIST);
    sim.handle.start_listening().await;
    env.list_contact_centers(&ops())
        .await
        .expect("answers again");
    assert_eq!(sim.handle.snapshot().calls(LIST), seen + 1);

    // The fault form: the request that meets it is reset, the port closed for a while.
    sim.handle
        .faults()
        .refuse_next(LIST, 1, Duration::from_millis(500));
    let first = env.list_contact_centers(&ops()).await.unwrap_err();
    assert_eq!(first.status, None, "{first}");
    let second = env.list_contact_centers(&ops()).await.unwrap_err();
    assert!(second.detail.starts_with("cannot connect"), "{second}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    env.list_contact_centers(&ops())
        .await
        .expect("answers again");
}

// ---------------------------------------------------------------------------------------------
// The fault matrix: every operation × every fault kind, at the runbook

/// Every external operation, by the simulator's name; a token grant by its fault target.
const MATRIX_OPERATIONS: &[&str] = &[
    "environment.list_contact_centers",
    "auth.get_client",
    "auth.create_client",
    "auth.update_client",
    "auth.delete_client",
    "auth.token.client_credentials",
    "auth.token.password",
    "environment.list_settings",
    "environment.upsert_setting",
    "nexus.register_ucs",
    "nexus.delete_ucs",
    "nexus.get_tenant",
    "nexus.create_tenant",
    "nexus.update_tenant",
    "nexus.delete_tenant",
];

/// One kind of upstream fault.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An error answer, with this `Retry-After`.
    Status(u16, RetryAfter),
    /// No answer within the request timeout; the request had no effect.
    Hang,
    /// The request took effect, its answer comes after the request timeout.
    HangAfterEffect,
    /// The connection is reset without an answer; the request had no effect.
    Reset,
    /// The request took effect, then the connection is reset without an answer.
    ResetAfterEffect,
    /// The upstream goes down as the request arrives: that connection reset, the port
    /// closed (connections refused) for [`REFUSED_FOR`].
    Refused,
}

impl Kind {
    /// The shortest wait the upstream asked for between a faulted call and the next.
    fn asked_wait(self) -> Option<Duration> {
        match self {
            // `Seconds(1)` is 1 s; `HttpDateIn(2)` between 1 and 2 s (whole-second dates).
            Kind::Status(_, RetryAfter::Seconds(n)) => Some(Duration::from_secs(n)),
            Kind::Status(_, RetryAfter::HttpDateIn(n)) => Some(Duration::from_secs(n - 1)),
            _ => None,
        }
    }

    /// Whether the faulted request took effect although the client saw a failure.
    fn took_effect(self) -> bool {
        matches!(self, Kind::HangAfterEffect | Kind::ResetAfterEffect)
    }
}

/// How many calls of the operation a case faults, at most.
const FAULTED_CALLS: u32 = 2;
/// The request timeout of the matrix; a hang is longer. Not shorter: on two cores shared
/// with builds, an answer now and then takes over a second, and a timeout nobody injected
/// makes the client send an idempotent write again, which the exactly-once check counts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the port stays closed in a `Refused` case: longer than the client's own retries
/// (4 attempts, 10 to 50 ms apart), so that the runbook pass fails and a later one succeeds.
const REFUSED_FOR: Duration = Duration::from_millis(400);
/// Cases at once over all the matrix tests: each holds a database and a few connections of
/// the shared PostgreSQL server.
static MATRIX_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(12);

/// How many calls of the operation a case faults: [`FAULTED_CALLS`]; one for a fault after
/// the effect (a create is looked for before it is sent again, so a second fault of the
/// create would never hit); one hang or `Retry-After` (each costs a request timeout or the
/// wait asked for); one outage for `Refused`.
fn faulted_calls(kind: Kind) -> u32 {
    match kind {
        Kind::Hang | Kind::HangAfterEffect | Kind::ResetAfterEffect | Kind::Refused => 1,
        Kind::Status(_, RetryAfter::Seconds(_) | RetryAfter::HttpDateIn(_)) => 1,
        _ => FAULTED_CALLS,
    }
}

fn inject(faults: &digital_channels_operator::simulator::Faults, op: &str, kind: Kind) {
    let n = faulted_calls(kind);
    match kind {
        Kind::Status(status, retry_after) => faults.fail_next_with(op, n, status, retry_after),
        Kind::Hang => faults.timeout_next(op, n),
        Kind::HangAfterEffect => faults.timeout_after_effect_next(op, n),
        Kind::Reset => faults.reset_next(op, n),
        Kind::ResetAfterEffect => faults.reset_after_effect_next(op, n),
        Kind::Refused => faults.refuse_next(op, n, REFUSED_FOR),
    }
}

/// Short timeouts, the client's own retries fast, `Retry-After` up to 2 s waited out inside
/// the call (longer ones go to the pass loop).
fn matrix_config() -> HttpConfig {
    HttpConfig {
        timeout: REQUEST_TIMEOUT,
        connect_timeout: REQUEST_TIMEOUT,
        retry: common::fast_retry(),
        ..HttpConfig::default()
    }
}

fn runbook_with(config: HttpConfig) -> Runbook {
    digital_channels_operator::upstream::http::install_crypto_provider();
    Runbook::new(Arc::new(RealConnector::new(config)))
}

/// How the pass loop waits after a transient failure, as the controllers do (scaled down):
/// exponential from 50 ms to 400 ms, or the `Retry-After` handed up if longer.
const PASS_BACKOFF: Duration = Duration::from_millis(50);
const PASS_BACKOFF_MAX: Duration = Duration::from_millis(400);
const MAX_PASSES: u32 = 40;

/// Runs `pass` until it succeeds, waiting as a controller would after a transient failure;
/// a permanent failure, or no success within [`MAX_PASSES`], fails the case. Returns the
/// value and the passes it took.
async fn until_done<T>(
    what: &str,
    mut pass: impl AsyncFnMut() -> Result<T, StepError>,
) -> (T, u32) {
    let mut wait = PASS_BACKOFF;
    for n in 1..=MAX_PASSES {
        match pass().await {
            Ok(value) => return (value, n),
            Err(e) if e.transient => {
                tokio::time::sleep(wait.max(e.retry_after.unwrap_or_default())).await;
                wait = (wait * 2).min(PASS_BACKOFF_MAX);
            }
            Err(e) => panic!("{what}: a permanent failure on pass {n}: {e}"),
        }
    }
    panic!("{what}: still failing after {MAX_PASSES} passes");
}

fn report_result(report: &RunReport) -> Result<(), StepError> {
    match report.failure() {
        Some((_, e)) => Err(e.clone()),
        None => Ok(()),
    }
}

async fn environment_ready(
    what: &str,
    rb: &Runbook,
    sim: &Sim,
    store: &MemoryStore,
) -> (ResolvedEnvironment, u32) {
    let env = environment(&sim.url());
    until_done(&format!("{what}: environment"), async || {
        let run = run_environment(rb, &env, store).await;
        report_result(&run.report).map(|()| run.resolved.expect("resolved when it holds"))
    })
    .await
}

/// Passes of the tenant until it holds. What a pass learnt goes into the tenant's status
/// between passes, as the tenant controller keeps it (a value found replaces the one
/// recorded, none keeps it): the PlatformUCS URL registered, the key's digest, the
/// credentials' fingerprint, the contact center.
async fn tenant_ready(
    what: &str,
    rb: &Runbook,
    t: &mut DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &MemoryStore,
) -> u32 {
    let what = format!("{what}: tenant {}", t.spec.tenant_name);
    until_done(&what, async || {
        let run = run_tenant(rb, t, env, store).await;
        let previous = t.status.take().unwrap_or_default();
        t.status = Some(TenantStatus {
            contact_center_id: run.contact_center_id.or(previous.contact_center_id.clone()),
            output_secret_name: Some(run.output_secret_name),
            operation_id: run.operation_id.or(previous.operation_id.clone()),
            api_key_digest: run.api_key_digest.or(previous.api_key_digest.clone()),
            ucs_url: run.ucs_url.or(previous.ucs_url.clone()),
            credentials_fingerprint: run
                .credentials_fingerprint
                .or(previous.credentials_fingerprint.clone()),
            ..previous
        });
        report_result(&run.report)
    })
    .await
    .1
}

/// What an operation's case runs after its fault is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Environment and tenant (with PlatformUCS) from nothing.
    Provision,
    /// Provisioned; then the client secret is rotated in its Secret.
    RotateClientSecret,
    /// Provisioned; then the tenant user's password is rotated in GWS and in its Secret.
    RotateTenantPassword,
    /// Provisioned; then the tenant and the environment are deleted (`deletionPolicy: Delete`).
    Delete,
}

fn scenario(op: &str) -> Scenario {
    match op {
        "auth.update_client" => Scenario::RotateClientSecret,
        "nexus.update_tenant" => Scenario::RotateTenantPassword,
        "auth.delete_client" | "nexus.delete_ucs" | "nexus.delete_tenant" => Scenario::Delete,
        _ => Scenario::Provision,
    }
}

/// The effects a scenario must have, once each: (operation, tally) pairs; every other
/// tally of every operation stays as it was.
fn expected_effects(scenario: Scenario) -> &'static [(&'static str, Tally)] {
    match scenario {
        Scenario::Provision => &[
            ("auth.create_client", Tally::Create),
            ("environment.upsert_setting", Tally::Create),
            ("nexus.register_ucs", Tally::Create),
            ("nexus.create_tenant", Tally::Create),
        ],
        Scenario::RotateClientSecret => &[("auth.update_client", Tally::Update)],
        Scenario::RotateTenantPassword => &[("nexus.update_tenant", Tally::Update)],
        Scenario::Delete => &[
            ("nexus.delete_ucs", Tally::Delete),
            ("nexus.delete_tenant", Tally::Delete),
            ("auth.delete_client", Tally::Delete),
        ],
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tally {
    Create,
    Update,
    Delete,
}

impl Tally {
    fn of(self, view: &StateView, op: &str) -> u64 {
        match self {
            Tally::Create => view.creates(op),
            Tally::Update => view.updates(op),
            Tally::Delete => view.deletes(op),
        }
    }
}

/// The writes that are idempotent (the same body twice is the same state), which the client
/// sends again after a failure whose effect is unknown; a create is never sent blindly again.
const IDEMPOTENT_WRITES: &[&str] = &[
    "auth.update_client",
    "environment.upsert_setting",
    "nexus.register_ucs",
    "nexus.update_tenant",
];

const ROTATED: &str = "a-rotated-secret-for-the-fault-matrix";

/// What one case measured.
#[derive(Debug)]
struct CaseFigures {
    passes: u32,
    calls: u64,
    took: Duration,
}

/// One case: a fresh simulator and database, the scenario's starting point, the fault on the
/// operation's first calls, then passes until everything holds. Asserts Ready, the fault
/// consumed, each effect exactly once and nothing else written, and `Retry-After` obeyed.
async fn matrix_case(op: &'static str, kind: Kind) -> CaseFigures {
    let _slot = MATRIX_SLOTS.acquire().await.expect("slots stay open");
    let case = format!("{op} × {kind:?}");
    let sim = Sim::start().await;
    let store = sample_store(&sim.db.url);
    let rb = runbook_with(matrix_config());
    let mut t = tenant("t100", "t100", true);
    let scenario = scenario(op);

    let mut provisioned = None;
    if scenario != Scenario::Provision {
        let (env, _) = environment_ready(&case, &rb, &sim, &store).await;
        tenant_ready(&case, &rb, &mut t, &env, &store).await;
        provisioned = Some(env);
    }
    match scenario {
        Scenario::RotateClientSecret => {
            store.put("prod-nexus-client", &[("client-secret", ROTATED)]);
        }
        Scenario::RotateTenantPassword => {
            sim.handle
                .set_tenant_user_password(DEMO_CC_T100, "nexus", ROTATED);
            store.put("t100-user", &[("username", "nexus"), ("password", ROTATED)]);
        }
        _ => {}
    }
    let key_before = store.get("t100-digital-channels", keys::API_KEY);
    let before = sim.handle.snapshot();
    let started = Instant::now();
    inject(sim.handle.faults(), op, kind);

    let passes = match scenario {
        Scenario::Provision | Scenario::RotateTenantPassword => {
            let (env, env_passes) = environment_ready(&case, &rb, &sim, &store).await;
            env_passes + tenant_ready(&case, &rb, &mut t, &env, &store).await
        }
        Scenario::RotateClientSecret => environment_ready(&case, &rb, &sim, &store).await.1,
        Scenario::Delete => {
            let env = provisioned.expect("provisioned first");
            let record = CreatedRecord {
                contact_center_id: Some(DEMO_CC_T100.to_string()),
                tenant: true,
                ucs: t.spec.ucs.is_some(),
            };
            let (_, tenant_passes) = until_done(&format!("{case}: delete tenant"), async || {
                delete_tenant(&rb, &t, &env, &store, &record).await
            })
            .await;
            let (_, env_passes) = until_done(&format!("{case}: delete environment"), async || {
                delete_environment(&rb, &env).await
            })
            .await;
            tenant_passes + env_passes
        }
    };
    let took = started.elapsed();
    let after = sim.handle.snapshot();
    assert_eq!(
        sim.handle.faults().remaining(op),
        0,
        "{case}: the fault never hit"
    );

    // Exactly once: the scenario's effects once each, no other write at all; except that an
    // idempotent write whose answer was lost is sent again (the same body, the same state).
    let expected = expected_effects(scenario);
    for name in OPERATIONS {
        for tally in [Tally::Create, Tally::Update, Tally::Delete] {
            let done = tally.of(&after, name) - tally.of(&before, name);
            let wanted = u64::from(expected.contains(&(*name, tally)));
            let resent = kind.took_effect()
                && tally == Tally::Update
                && *name == op
                && IDEMPOTENT_WRITES.contains(name);
            if resent {
                assert!(
                    (wanted..=wanted + 1).contains(&done),
                    "{case}: {name} {tally:?} {done}; calls: {:?}",
                    call_deltas(&before, &after)
                );
                continue;
            }
            assert_eq!(
                done,
                wanted,
                "{case}: {name} {tally:?}; calls: {:?}",
                call_deltas(&before, &after)
            );
        }
    }
    let rows = sim.handle.gapis_rows().await.expect("nex_gapis");
    match scenario {
        Scenario::Delete => {
            assert!(after.clients.is_empty(), "{case}: the client is gone");
            assert!(after.tenants.is_empty(), "{case}: the tenant is gone");
            assert!(
                after.ucs_services.is_empty(),
                "{case}: the UCS service is gone"
            );
            assert!(rows.is_empty(), "{case}: the nex_gapis row is gone");
        }
        _ => {
            assert_eq!(after.clients.len(), 1, "{case}: one client");
            assert_eq!(after.tenants.len(), 1, "{case}: one tenant");
            assert_eq!(after.ucs_services.len(), 1, "{case}: one UCS service");
            assert_eq!(rows.len(), 1, "{case}: one nex_gapis row");
            let key = store.get("t100-digital-channels", keys::API_KEY);
            let own = sim
                .handle
                .apikey_rows()
                .await
                .expect("nex_apikeys")
                .into_iter()
                .find(|r| r.name == "t100")
                .map(|r| r.id);
            assert_eq!(
                key, own,
                "{case}: the output Secret holds the tenant's own key"
            );
            if scenario != Scenario::Provision {
                assert_eq!(key, key_before, "{case}: the key never changes");
            }
        }
    }
    match scenario {
        Scenario::RotateClientSecret => {
            assert!(
                after.clients["nexus_client"].secret_matches(ROTATED),
                "{case}: GWS Auth holds the rotated secret"
            );
            assert_eq!(
                rows[0].clientsecret.as_deref(),
                Some(ROTATED),
                "{case}: nex_gapis holds the rotated secret"
            );
        }
        Scenario::RotateTenantPassword => assert!(
            after.tenants[DEMO_CC_T100].token_matches(ROTATED),
            "{case}: Nexus holds the rotated password"
        ),
        _ => {}
    }

    // Retry-After obeyed: no call of the operation sooner than asked after a faulted one.
    if let Some(asked) = kind.asked_wait() {
        let times: Vec<Instant> = after
            .call_times(op)
            .iter()
            .copied()
            .filter(|t| *t >= started)
            .collect();
        for (i, pair) in times
            .windows(2)
            .take(faulted_calls(kind) as usize)
            .enumerate()
        {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= asked,
                "{case}: call {} came {gap:?} after faulted call {i}, Retry-After asked {asked:?}",
                i + 1
            );
        }
    }
    let calls = after.calls.values().sum::<u64>() - before.calls.values().sum::<u64>();
    // Dropping the database blocks: not on the thread the other cases run on.
    let _ = tokio::task::spawn_blocking(move || drop(sim)).await;
    CaseFigures {
        passes,
        calls,
        took,
    }
}

/// Runs every operation's case of one kind at once (within [`MATRIX_SLOTS`]); fails with
/// the list of the cases that failed.
async fn run_matrix(kind: Kind) {
    let started = Instant::now();
    // Caught one by one, so that one failing case does not hide the others.
    // DC_FAULTS_MATRIX_ONLY=op,op narrows the matrix to some operations, to look at a case.
    let only = std::env::var("DC_FAULTS_MATRIX_ONLY").unwrap_or_default();
    let cases = MATRIX_OPERATIONS
        .iter()
        .filter(|op| only.is_empty() || only.split(',').any(|o| o == **op))
        .map(|op| async move {
            let case = std::panic::AssertUnwindSafe(matrix_case(op, kind));
            (*op, futures::FutureExt::catch_unwind(case).await)
        });
    let mut failed = Vec::new();
    let mut figures = Vec::new();
    for (op, result) in futures::future::join_all(cases).await {
        match result {
            Ok(f) => figures.push((op, f)),
            Err(panic) => failed.push(format!("{op}: {}", panic_message(&panic))),
        }
    }
    let slowest = figures
        .iter()
        .map(|(_, f)| f.took)
        .max()
        .unwrap_or_default();
    let passes: u32 = figures.iter().map(|(_, f)| f.passes).sum();
    let calls: u64 = figures.iter().map(|(_, f)| f.calls).sum();
    println!(
        "matrix {kind:?}: {} cases in {:?}, {passes} passes, {calls} calls, slowest case {slowest:?}",
        figures.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{kind:?}: failed cases:\n{}",
        failed.join("\n")
    );
}

/// The calls of each operation between two snapshots, those that changed.
fn call_deltas(before: &StateView, after: &StateView) -> Vec<(String, u64)> {
    after
        .calls
        .iter()
        .map(|(op, n)| (op.clone(), n - before.calls(op)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

macro_rules! matrix {
    ($($name:ident => $kind:expr,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                run_matrix($kind).await;
            }
        )*
    };
}

matrix! {
    matrix_500 => Kind::Status(500, RetryAfter::Absent),
    matrix_503_without_retry_after => Kind::Status(503, RetryAfter::Absent),
    matrix_503_retry_after_seconds => Kind::Status(503, RetryAfter::Seconds(1)),
    matrix_503_retry_after_http_date => Kind::Status(503, RetryAfter::HttpDateIn(2)),
    matrix_429_without_retry_after => Kind::Status(429, RetryAfter::Absent),
    matrix_429_retry_after_seconds => Kind::Status(429, RetryAfter::Seconds(1)),
    matrix_429_retry_after_http_date => Kind::Status(429, RetryAfter::HttpDateIn(2)),
    matrix_hang_past_the_request_timeout => Kind::Hang,
    matrix_hang_after_the_effect => Kind::HangAfterEffect,
    matrix_connection_reset => Kind::Reset,
    matrix_connection_reset_after_the_effect => Kind::ResetAfterEffect,
    matrix_connection_refused => Kind::Refused,
}

// ---------------------------------------------------------------------------------------------
// The controllers through an outage
//
// Backoff bound. A resource whose passes fail transiently waits, after its k-th failure in a
// row, min(b·2^k, m) × a jitter of 0.8 to 1.2 (`Context::backoff`: initial backoff b, cap m).
// During an outage of T, its passes start at t₀ = 0 and tₖ₊₁ ≥ tₖ + 0.8·min(b·2^k, m), so at
// most `pass_bound(T, b, m)` of them start within T, and in closed form
//     passes ≤ 1 + ⌈log₂(m/b)⌉ + ⌈T / (0.8·m)⌉
// (the ramp, then one pass per capped wait). Each pass makes at most `attempts` requests of
// the operation that fails (the client's own retries), and a pass stops at its first failed
// step, so requests per operation ≤ attempts × passes.

/// The figures of an outage test: from the environment, short by default (see the top).
struct OutageSettings {
    outage: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

fn env_duration(name: &str, default: Duration, unit: fn(u64) -> Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(unit)
        .unwrap_or(default)
}

fn outage_settings() -> OutageSettings {
    OutageSettings {
        outage: env_duration(
            "DC_FAULTS_OUTAGE_SECS",
            Duration::from_secs(6),
            Duration::from_secs,
        ),
        initial_backoff: env_duration(
            "DC_FAULTS_INITIAL_BACKOFF_MS",
            Duration::from_millis(100),
            Duration::from_millis,
        ),
        max_backoff: env_duration(
            "DC_FAULTS_MAX_BACKOFF_MS",
            Duration::from_millis(1000),
            Duration::from_millis,
        ),
    }
}

fn controller_config(initial_backoff: Duration, max_backoff: Duration) -> ControllerConfig {
    ControllerConfig {
        // Only watches and backoff drive these tests, never the drift check.
        resync_interval: Duration::from_secs(3600),
        initial_backoff,
        max_backoff,
        rollout_timeout: Duration::from_secs(60),
        pod_name: None,
    }
}

/// The lowest jitter of `Context::backoff`.
const LOWEST_JITTER: f64 = 0.8;

/// The most passes that can start within `window` of failures (see the bound above).
fn pass_bound(window: Duration, initial: Duration, max: Duration) -> u64 {
    let mut passes = 1;
    let mut elapsed = Duration::ZERO;
    let mut k = 0u32;
    loop {
        let wait = initial
            .saturating_mul(2u32.saturating_pow(k))
            .min(max)
            .mul_f64(LOWEST_JITTER);
        elapsed += wait;
        if elapsed > window {
            return passes;
        }
        passes += 1;
        k += 1;
    }
}

/// 1 + ⌈log₂(m/b)⌉ + ⌈T / (0.8·m)⌉.
fn pass_bound_closed_form(window: Duration, initial: Duration, max: Duration) -> u64 {
    let ramp = (max.as_secs_f64() / initial.as_secs_f64())
        .log2()
        .ceil()
        .max(0.0);
    let capped = (window.as_secs_f64() / (LOWEST_JITTER * max.as_secs_f64())).ceil();
    1 + ramp as u64 + capped as u64
}

/// The client's attempts per call in the controller tests (`common::fast_retry`).
const CLIENT_ATTEMPTS: u64 = 4;

/// The controller tests count passes in the process-wide metrics: one at a time.
static CONTROLLER_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Passes of `kind` so far, whatever their result, from the process-wide metrics.
fn passes_of(kind: &str) -> u64 {
    let kind = format!("kind=\"{kind}\"");
    digital_channels_operator::telemetry::metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("dc_operator_reconcile_total{") && l.contains(&kind))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Requests of each operation that came between `from` and `to`.
fn calls_between(view: &StateView, from: Instant, to: Instant) -> Vec<(String, u64)> {
    OPERATIONS
        .iter()
        .map(|op| {
            let n = view
                .call_times(op)
                .iter()
                .filter(|t| (from..=to).contains(*t))
                .count() as u64;
            (op.to_string(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Every operation answers 503 without `Retry-After` (a gateway before a service down).
    Unavailable,
    /// The port is closed: every connection is refused.
    Refused,
}

async fn start_outage(sim: &Sim, outage: Outage, ops: &[&str]) {
    match outage {
        Outage::Unavailable => {
            for op in ops {
                sim.handle
                    .faults()
                    .fail_fraction_with(op, 1.0, 503, RetryAfter::Absent);
            }
        }
        Outage::Refused => sim.handle.stop_listening().await,
    }
}

async fn end_outage(sim: &Sim, outage: Outage) {
    match outage {
        Outage::Unavailable => sim.handle.faults().clear(),
        Outage::Refused => sim.handle.start_listening().await,
    }
}

/// The upstream is down when the environment and its tenant are created, for the whole
/// outage: the environment's passes stay within the bound, its tenant (waiting for it) makes
/// no call at all, and both are Ready within one capped backoff after the upstream is back,
/// with every effect once.
async fn outage_at_provisioning(outage: Outage) {
    let s = outage_settings();
    let h = controllers_started(&s).await;
    start_outage(&h.sim, outage, OPERATIONS).await;
    let passes_before = passes_of(KIND_ENVIRONMENT);
    let tenant_passes_before = passes_of(KIND_TENANT);
    let started = Instant::now();
    h.env(|_| {});
    h.tenant(|_| {});
    tokio::time::sleep(s.outage).await;
    end_outage(&h.sim, outage).await;
    let ended = Instant::now();
    let passes = passes_of(KIND_ENVIRONMENT) - passes_before;
    let tenant_passes = passes_of(KIND_TENANT) - tenant_passes_before;
    ready_within(&h, "prod", "t100", after_outage(&s)).await;
    let to_ready = ended.elapsed();

    let bound = pass_bound(ended - started, s.initial_backoff, s.max_backoff);
    let closed = pass_bound_closed_form(ended - started, s.initial_backoff, s.max_backoff);
    assert!(bound <= closed);
    let calls = calls_between(&h.sim.handle.snapshot(), started, ended);
    let total: u64 = calls.iter().map(|(_, n)| n).sum();
    // Refused requests reach no simulator: the passes come from the metrics (the only
    // controllers running then are these). Else from the requests: each failed pass makes
    // exactly `CLIENT_ATTEMPTS` of them, all of the client lookup.
    let passes = match outage {
        Outage::Refused => passes,
        Outage::Unavailable => total.div_ceil(CLIENT_ATTEMPTS),
    };
    println!(
        "outage {outage:?} at provisioning, {:?} (b {:?}, m {:?}): environment passes {passes} \
         (bound {bound}, closed form {closed}), requests seen {calls:?}, both Ready {to_ready:?} \
         after it ended",
        ended - started,
        s.initial_backoff,
        s.max_backoff
    );
    assert!(passes >= 2, "the environment was retried: {passes}");
    assert!(
        passes <= bound,
        "{passes} environment passes in {:?}; the backoff allows {bound}",
        ended - started
    );
    match outage {
        Outage::Refused => assert!(
            tenant_passes <= passes,
            "the waiting tenant passed {tenant_passes} times, its environment {passes}"
        ),
        Outage::Unavailable => {
            assert!(
                total <= CLIENT_ATTEMPTS * bound,
                "{total} requests during the outage, more than {CLIENT_ATTEMPTS} × {bound}"
            );
            // A pass stops at its first step; the tenant, waiting, made no request at all.
            assert!(
                calls.iter().all(|(op, _)| op == "auth.get_client"),
                "{calls:?}"
            );
        }
    }
    let allowed = after_outage(&s);
    assert!(
        to_ready <= allowed,
        "Ready {to_ready:?} after the outage, more than {allowed:?}"
    );
    assert_controller_effects_once(&h, 1).await;
    h.stop().await;
}

/// The controllers of `h`, once both have listed their kinds. Until then a pass can sleep
/// 30 s in `Caches::ready` (see `caches_ready_is_woken_although_a_runner_waits_on_the_same_store`),
/// which would blur what these tests measure: a tenant of an environment that does not exist
/// waits (`WaitingForEnvironment`) without a call anywhere, and its pass means the tenant
/// controller has listed; the environment controller's first pass then finds both caches
/// ready.
async fn controllers_started(s: &OutageSettings) -> Harness {
    let h = Harness::start_custom(
        Sim::start().await,
        controller_config(s.initial_backoff, s.max_backoff),
    )
    .await;
    let mut t = tenant("warmup", "warmup", false);
    t.metadata.uid = None;
    t.spec.environment_ref.name = "absent".to_string();
    h.api.apply_as(&t);
    let waiting = h
        .api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, "warmup")?;
            let ready = find(&t.status?.conditions, "Ready")?.clone();
            (ready.reason == "WaitingForEnvironment").then_some(())
        })
        .await;
    assert!(waiting.is_some(), "the tenant controller never started");
    h
}

/// How long Ready may take after an outage: the next pass comes within one capped backoff
/// (jitter 1.2), then the passes of the environment and the tenant and their writes.
fn after_outage(s: &OutageSettings) -> Duration {
    s.max_backoff.mul_f64(1.2) + Duration::from_secs(5)
}

/// Waits (at most `within`) until the environment and the tenant are both Ready.
async fn ready_within(h: &Harness, env: &str, tenant: &str, within: Duration) {
    let ready = |c: &[digital_channels_operator::api::conditions::Condition]| {
        find(c, "Ready").is_some_and(|r| r.status == ConditionStatus::True)
    };
    let both = h
        .api
        .wait_for(within, |api| {
            let e = api.get_as::<DigitalChannelsEnvironment>(NS, env)?;
            let t = api.get_as::<DigitalChannelsTenant>(NS, tenant)?;
            (ready(&e.status?.conditions) && ready(&t.status?.conditions)).then_some(())
        })
        .await;
    assert!(
        both.is_some(),
        "{env} and {tenant} not both Ready within {within:?}: {:#?} {:#?}",
        h.get_env().and_then(|e| e.status),
        h.get_tenant().and_then(|t| t.status)
    );
}

/// One client, one row, and per tenant one setting, one Nexus tenant, one UCS service.
async fn assert_controller_effects_once(h: &Harness, tenants: u64) {
    let view = h.sim.handle.snapshot();
    assert_eq!(view.creates("auth.create_client"), 1);
    assert_eq!(view.clients.len(), 1);
    assert_eq!(view.creates("nexus.create_tenant"), tenants);
    assert_eq!(view.tenants.len() as u64, tenants);
    assert_eq!(view.creates("nexus.register_ucs"), tenants);
    assert_eq!(view.updates("nexus.register_ucs"), 0);
    assert_eq!(view.creates("environment.upsert_setting"), tenants);
    assert_eq!(view.updates("environment.upsert_setting"), 0);
    assert_eq!(view.updates("auth.update_client"), 0);
    assert_eq!(view.updates("nexus.update_tenant"), 0);
    assert_eq!(h.sim.handle.gapis_rows().await.expect("rows").len(), 1);
    let key = h.output_key().expect("the output Secret holds the key");
    assert!(
        h.sim
            .handle
            .apikey_rows()
            .await
            .expect("rows")
            .iter()
            .any(|r| r.id == key && r.name == "t100"),
        "the tenant's own key"
    );
}

/// Item 1 through the controllers: outages within the backoff bound, `Retry-After` obeyed,
/// Ready soon after. The scenarios share one test, so that none waits for another on a test
/// thread: the refused outage counts the environment's passes in the process-wide metrics,
/// so its controllers run alone; the others count requests at their own simulators, and run
/// together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_through_outages_and_retry_after() {
    // DC_FAULTS_LOG=debug (a tracing filter) shows what the controllers did.
    if std::env::var_os("DC_FAULTS_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("DC_FAULTS_LOG"))
            .with_test_writer()
            .try_init();
    }
    let _alone = CONTROLLER_TESTS.lock().await;
    outage_at_provisioning(Outage::Refused).await;
    tokio::join!(
        outage_at_provisioning(Outage::Unavailable),
        nexus_outage_while_a_tenant_provisions(),
        retry_after_through_the_controllers(),
    );
}

/// The environment is Ready; Nexus is down (503, no `Retry-After`) while a tenant is created:
/// the tenant's passes, and its Nexus requests, stay within the bound; Ready follows within
/// one capped backoff, the tenant created once.
async fn nexus_outage_while_a_tenant_provisions() {
    let s = outage_settings();
    let h = controllers_started(&s).await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    let nexus: Vec<&str> = OPERATIONS
        .iter()
        .copied()
        .filter(|op| op.starts_with("nexus."))
        .collect();
    start_outage(&h.sim, Outage::Unavailable, &nexus).await;
    let started = Instant::now();
    h.tenant(|_| {});
    tokio::time::sleep(s.outage).await;
    end_outage(&h.sim, Outage::Unavailable).await;
    let ended = Instant::now();
    ready_within(&h, "prod", "t100", after_outage(&s)).await;
    let to_ready = ended.elapsed();

    let bound = pass_bound(ended - started, s.initial_backoff, s.max_backoff);
    let calls = calls_between(&h.sim.handle.snapshot(), started, ended);
    // Each failed pass asks Nexus for the tenant `CLIENT_ATTEMPTS` times.
    let passes = calls
        .iter()
        .find(|(op, _)| op == "nexus.get_tenant")
        .map_or(0, |(_, n)| n.div_ceil(CLIENT_ATTEMPTS));
    println!(
        "Nexus outage at tenant provisioning, {:?}: tenant passes {passes} (bound {bound}), \
         requests seen {calls:?}, Ready {to_ready:?} after it ended",
        ended - started
    );
    assert!(passes >= 2, "the tenant was retried: {passes}");
    assert!(
        passes <= bound,
        "{passes} tenant passes; the backoff allows {bound}"
    );
    for (op, n) in calls.iter().filter(|(op, _)| op.starts_with("nexus.")) {
        assert!(
            *n <= CLIENT_ATTEMPTS * bound,
            "{n} requests of {op}, more than {CLIENT_ATTEMPTS} × {bound}"
        );
    }
    let allowed = after_outage(&s);
    assert!(to_ready <= allowed, "Ready {to_ready:?} after the outage");
    assert_controller_effects_once(&h, 1).await;
    h.stop().await;
}

/// `Retry-After` through the whole stack: one within the client's `max_retry_after` (2 s in
/// the harness) is waited out inside the call; a longer one, in either form, ends the pass
/// and the controller requeues the resource after it. No request of the operation comes
/// sooner than asked.
async fn retry_after_through_the_controllers() {
    // The cap above the Retry-After asked: the backoff alone would retry within 0.1 s.
    let h = controllers_started(&OutageSettings {
        outage: Duration::ZERO,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
    })
    .await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    // No pass of the environment after this one (its generated Secret's watch event makes
    // one more): a change of the environment starts its tenants' passes at once, inside a
    // Retry-After (see `a_retry_after_is_obeyed_when_the_environment_changes_meanwhile`).
    h.settle().await;
    let op = "nexus.get_tenant";
    let asked = [
        (RetryAfter::Seconds(2), Duration::from_secs(2)),
        (RetryAfter::Seconds(3), Duration::from_secs(3)),
        // A date 3 s ahead, in whole seconds: between 2 and 3 s.
        (RetryAfter::HttpDateIn(3), Duration::from_secs(2)),
    ];
    for (retry_after, _) in asked {
        h.sim
            .handle
            .faults()
            .fail_next_with(op, 1, 503, retry_after);
    }
    let started = Instant::now();
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let times: Vec<Instant> = h.sim.handle.snapshot().call_times(op).to_vec();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "Retry-After through the controllers: gaps {gaps:?}, Ready after {:?}",
        started.elapsed()
    );
    assert!(gaps.len() >= asked.len(), "{gaps:?}");
    for (gap, (retry_after, lowest)) in gaps.iter().zip(asked) {
        assert!(
            *gap >= lowest,
            "{retry_after:?}: the next request came after {gap:?}"
        );
    }
    assert_controller_effects_once(&h, 1).await;
    h.stop().await;
}

/// A `Retry-After` longer than `--max-backoff` is cut to it: the controller asks again
/// sooner than the upstream said. `Context::backoff` takes `after.min(max_backoff)`.
#[tokio::test]
async fn a_retry_after_longer_than_the_max_backoff_is_obeyed() {
    let _one_at_a_time = CONTROLLER_TESTS.lock().await;
    let h = controllers_started(&OutageSettings {
        outage: Duration::ZERO,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    })
    .await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    let op = "nexus.get_tenant";
    // Over the client's max_retry_after (2 s): handed up to the controller.
    h.sim
        .handle
        .faults()
        .fail_next_with(op, 1, 503, RetryAfter::Seconds(4));
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let times: Vec<Instant> = h.sim.handle.snapshot().call_times(op).to_vec();
    let gap = times[1] - times[0];
    h.stop().await;
    assert!(
        gap >= Duration::from_secs(4),
        "Retry-After: 4 with --max-backoff 1s: asked again after {gap:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Load: 500 tenants on one environment, 10 % of all calls failing

/// Tenants provisioned at once in the load test.
const LOAD_CONCURRENCY: usize = 32;
/// The fraction of every operation's calls that fail in the load test.
const LOAD_FAILURES: f64 = 0.10;
/// The status a failing call of `op` answers, without `Retry-After`: 500 for the creates (its
/// effect unknown, a create is not sent again in the call: the next pass looks first), else
/// 503, 429 and 500 by turns (retried inside the call).
fn load_status(i: usize, op: &str) -> u16 {
    if op.contains(".create_") {
        500
    } else {
        [503, 429, 500][i % 3]
    }
}
/// The most calls the faulty run may make, as a factor of the fault-free run.
const LOAD_FACTOR: f64 = 1.5;

fn load_tenants() -> usize {
    std::env::var("DC_FAULTS_LOAD_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

struct LoadFigures {
    calls: u64,
    passes: u64,
    took: Duration,
}

/// One environment and `n` tenants (each with PlatformUCS) on a fresh simulator, `fraction`
/// of every operation's calls failing; each tenant run pass after pass until it holds, as the
/// tenant controller would. Asserts every tenant provisioned with exactly one of each effect.
async fn load_run(n: usize, fraction: f64) -> LoadFigures {
    let sim = Sim::start_with(SimulatorConfig {
        seed: Seed::with_contact_centers(n),
        ..SimulatorConfig::default()
    })
    .await;
    let store = sample_store(&sim.db.url);
    for i in 0..n {
        store.put(
            &format!("cc{i}-user"),
            &[("username", "nexus"), ("password", "nexus_password")],
        );
    }
    if fraction > 0.0 {
        for (i, op) in OPERATIONS.iter().enumerate() {
            sim.handle.faults().fail_fraction_with(
                op,
                fraction,
                load_status(i, op),
                RetryAfter::Absent,
            );
        }
    }
    let rb = runbook_with(matrix_config());
    let started = Instant::now();
    let what = format!("load {n} × {fraction}");
    let (env, env_passes) = environment_ready(&what, &rb, &sim, &store).await;
    let (env, rb, store, what) = (&env, &rb, &store, &what);
    let passes: Vec<u32> = futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("cc{i}");
            let mut t = tenant(&name, &name, true);
            tenant_ready(what, rb, &mut t, env, store).await
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    sim.handle.faults().clear();

    let view = sim.handle.snapshot();
    let n64 = n as u64;
    assert_eq!(view.creates("auth.create_client"), 1, "{what}");
    assert_eq!(
        sim.handle.gapis_rows().await.expect("rows").len(),
        1,
        "{what}"
    );
    for op in [
        "nexus.create_tenant",
        "nexus.register_ucs",
        "environment.upsert_setting",
    ] {
        assert_eq!(view.creates(op), n64, "{what}: {op} once per tenant");
    }
    for op in OPERATIONS {
        assert_eq!(view.updates(op), 0, "{what}: {op} updated");
        assert_eq!(view.deletes(op), 0, "{what}: {op} deleted");
    }
    assert_eq!(view.tenants.len(), n, "{what}");
    assert_eq!(view.ucs_services.len(), n, "{what}");
    // Every tenant's output Secret holds that tenant's own key.
    let keys: std::collections::HashMap<String, String> = sim
        .handle
        .apikey_rows()
        .await
        .expect("rows")
        .into_iter()
        .map(|r| (r.name, r.id))
        .collect();
    for i in 0..n {
        let name = format!("cc{i}");
        assert_eq!(
            store
                .get(&format!("{name}-digital-channels"), keys::API_KEY)
                .as_ref(),
            keys.get(&name),
            "{what}: {name}'s own key"
        );
    }
    let figures = LoadFigures {
        calls: view.calls.values().sum(),
        passes: u64::from(env_passes) + passes.iter().map(|p| u64::from(*p)).sum::<u64>(),
        took,
    };
    let _ = tokio::task::spawn_blocking(move || drop(sim)).await;
    figures
}

/// Item 7: all Ready, every effect exactly once, and the calls within [`LOAD_FACTOR`] of the
/// same run without faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_500_tenants_with_10_percent_of_calls_failing() {
    let n = load_tenants();
    let clean = load_run(n, 0.0).await;
    let faulty = load_run(n, LOAD_FAILURES).await;
    let factor = faulty.calls as f64 / clean.calls as f64;
    println!(
        "load, {n} tenants: fault-free {} calls, {} passes, {:?}; {:.0} % failing: {} calls, \
         {} passes, {:?}; factor {factor:.3}",
        clean.calls,
        clean.passes,
        clean.took,
        LOAD_FAILURES * 100.0,
        faulty.calls,
        faulty.passes,
        faulty.took
    );
    assert_eq!(clean.passes, n as u64 + 1, "without faults, one pass each");
    assert!(
        factor <= LOAD_FACTOR,
        "{} calls with faults, {} without: factor {factor:.3} > {LOAD_FACTOR}",
        faulty.calls,
        clean.calls
    );
}

// ---------------------------------------------------------------------------------------------
// Found on the way

/// `Caches::ready` (src/controller/identity.rs), which every pass awaits before anything
/// else, waited on the reflector stores with `Store::wait_until_ready`, while the controllers'
/// own runners wait on the same stores (it now reads a flag the watch sets). kube-runtime's store readiness is a oneshot behind a
/// mutex that keeps one waker: of two tasks waiting at once, only the last to poll is woken.
/// So a pass that starts before the other kind's store has listed can sleep until the
/// 30 s timeout of `Caches::ready` (seen in `controllers_through_outages_and_retry_after`:
/// an environment's first pass 30 s late, one run in five).
#[tokio::test]
async fn caches_ready_is_woken_although_a_runner_waits_on_the_same_store() {
    use digital_channels_operator::controller::identity::Caches;
    use kube::runtime::watcher::Event;
    let (store, mut writer) = kube::runtime::reflector::store::<DigitalChannelsTenant>();
    let caches = Caches::default();
    // What the controllers' watch sets when its initial list is done (controller::cached).
    let synced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    caches.register_tenants(store.clone(), synced.clone());
    // A pass waits for the caches, then the tenant controller's runner for its store.
    let pass = tokio::spawn(async move { caches.ready(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let runner = tokio::spawn(async move { store.wait_until_ready().await.is_ok() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The initial list completes.
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitDone);
    synced.store(true, std::sync::atomic::Ordering::Release);
    let listed = Instant::now();
    assert!(
        runner.await.expect("runner"),
        "the runner sees the store ready"
    );
    let ready = pass.await.expect("pass");
    assert!(
        ready && listed.elapsed() < Duration::from_secs(1),
        "the pass saw the caches ready: {ready}, after {:?}",
        listed.elapsed()
    );
}

/// `POST /_sim/faults` sets the new faults too, for `dc-operator simulate` and tests that
/// cannot hold the simulator's handle.
#[tokio::test]
async fn the_admin_surface_sets_the_new_faults() {
    let sim = Sim::start().await;
    digital_channels_operator::upstream::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let admin = |body: serde_json::Value| {
        let request = http.post(format!("{}/_sim/faults", sim.url())).json(&body);
        async move {
            request
                .send()
                .await
                .expect("admin answers")
                .status()
                .as_u16()
        }
    };
    let list = || {
        http.get(format!("{}/environment/v3/contact-centers", sim.url()))
            .basic_auth("ops", Some("ops"))
            .send()
    };
    let op = "environment.list_contact_centers";

    let set = serde_json::json!({"operation": op, "mode": "fail", "status": 503, "retry_after": {"http_date": 30}});
    assert_eq!(admin(set).await, 200);
    let answer = list().await.expect("answer");
    let date = answer.headers()["retry-after"].to_str().unwrap().to_owned();
    let wait = digital_channels_operator::upstream::http::parse_retry_after(
        &date,
        std::time::SystemTime::now(),
    )
    .expect("an HTTP-date");
    assert!(wait > Duration::from_secs(25), "{date}: {wait:?}");

    let set =
        serde_json::json!({"operation": op, "mode": "fail", "status": 429, "retry_after": "none"});
    assert_eq!(admin(set).await, 200);
    let answer = list().await.expect("answer");
    assert_eq!(answer.status().as_u16(), 429);
    assert!(answer.headers().get("retry-after").is_none());

    assert_eq!(
        admin(serde_json::json!({"operation": op, "mode": "reset"})).await,
        200
    );
    assert!(list().await.is_err(), "reset without an answer");
    let set = serde_json::json!({"operation": op, "mode": "refuse", "down_ms": 300});
    assert_eq!(admin(set).await, 200);
    assert!(list().await.is_err(), "reset as the port closes");
    assert!(list().await.is_err(), "refused while closed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(list().await.expect("back").status().as_u16(), 200);

    // A grant of the token endpoint is a target of its own; typos are refused.
    let set =
        serde_json::json!({"operation": "auth.token.password", "mode": "timeout_after_effect"});
    assert_eq!(admin(set).await, 200);
    assert_eq!(sim.handle.faults().remaining("auth.token.password"), 1);
    for bad in [
        serde_json::json!({"operation": "auth.token.passwd", "mode": "reset"}),
        serde_json::json!({"operation": op, "mode": "fail", "retry_after": {"minutes": 1}}),
        serde_json::json!({"operation": op, "mode": "refuse", "down_ms": 3_600_000}),
    ] {
        assert_eq!(admin(bad.clone()).await, 400, "{bad}");
    }
}

/// A pass that a watch starts (any change of the tenant's environment: a label, a status
/// write) comes at once, inside the `Retry-After` the upstream asked for: the tenant
/// controller maps every change of an environment to its tenants, and the controllers keep
/// no "not before" per resource, only the requeue of the failed pass.
#[tokio::test]
#[ignore = "defect in src/controller: a watch-triggered pass (here an environment label) ignores the Retry-After of the tenant's last failure"]
async fn a_retry_after_is_obeyed_when_the_environment_changes_meanwhile() {
    let _one_at_a_time = CONTROLLER_TESTS.lock().await;
    let h = controllers_started(&OutageSettings {
        outage: Duration::ZERO,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
    })
    .await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    let op = "nexus.get_tenant";
    // Over the client's max_retry_after (2 s): handed up, the tenant requeued after 5 s.
    h.sim
        .handle
        .faults()
        .fail_next_with(op, 1, 503, RetryAfter::Seconds(5));
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::False, Some("UpstreamUnavailable"))
        .await;
    h.env(|e| {
        e.metadata.labels = Some([("team".to_string(), "digital".to_string())].into());
    });
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    let times: Vec<Instant> = h.sim.handle.snapshot().call_times(op).to_vec();
    let gap = times[1] - times[0];
    h.stop().await;
    assert!(
        gap >= Duration::from_secs(5),
        "Retry-After: 5, then a label on the environment: asked again after {gap:?}"
    );
}
