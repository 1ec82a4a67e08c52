//! Faults of the Kubernetes API server, with both controllers running against the in-memory
//! API server and the simulator: 409, 429 and 5xx answers to status, Secret, finalizer and
//! event writes (refused, or done with the answer lost), and watches that drop or come back
//! after the history was compacted. What must hold: every resource ends Ready with every
//! external effect exactly once, no update is lost, and nothing loops hot.

mod common;

use std::time::{Duration, Instant};

use common::fake_apiserver::{FakeApiServer, Verb, WriteRecord};
use common::operator::{Harness, NS, WAIT};
use digital_channels_operator::api::conditions::ConditionStatus;
use digital_channels_operator::api::{DeletionPolicy, DigitalChannelsTenant};
use digital_channels_operator::simulator::DEMO_CC_T100;
use k8s_openapi::api::core::v1::Secret;

const ENVS: &str = "digitalchannelsenvironments";
const TENANTS: &str = "digitalchannelstenants";

/// The answers injected: conflict, throttled (with `Retry-After: 1`), server errors.
const CODES: [u16; 4] = [409, 429, 500, 503];

/// External effects so far: successful creates and updates in GWS and Nexus, and rows.
#[derive(Debug, PartialEq, Eq)]
struct Effects {
    clients: u64,
    client_updates: u64,
    settings: u64,
    ucs: u64,
    tenants: u64,
    tenant_updates: u64,
    gapi_rows: usize,
    api_keys: usize,
}

async fn effects(h: &Harness) -> Effects {
    let s = h.sim.handle.snapshot();
    Effects {
        clients: s.creates("auth.create_client"),
        client_updates: s.updates("auth.update_client"),
        settings: s.creates("environment.upsert_setting") + s.updates("environment.upsert_setting"),
        ucs: s.creates("nexus.register_ucs") + s.updates("nexus.register_ucs"),
        tenants: s.creates("nexus.create_tenant"),
        tenant_updates: s.updates("nexus.update_tenant"),
        gapi_rows: h.sim.handle.gapis_rows().await.unwrap().len(),
        api_keys: h.sim.handle.apikey_rows().await.unwrap().len(),
    }
}

/// What one fault-free provisioning of the sample environment and tenant does.
const ONCE: Effects = Effects {
    clients: 1,
    client_updates: 0,
    settings: 1,
    ucs: 1,
    tenants: 1,
    tenant_updates: 0,
    gapi_rows: 1,
    // The tenant's own key and its -Designer and -iWD keys.
    api_keys: 3,
};

fn answered(writes: &[WriteRecord], resource: &str, sub: Option<&str>, code: u16) -> usize {
    writes
        .iter()
        .filter(|w| w.resource == resource && w.subresource.as_deref() == sub && w.status == code)
        .count()
}

/// Provisions the sample with `faults` queued on the API server, checks that it ends Ready
/// with every effect once and the API key in its Secret, and that nothing writes after.
/// Returns the operator's writes up to Ready.
async fn provision_through(
    label: &str,
    faults: impl FnOnce(&FakeApiServer),
) -> (Harness, Vec<WriteRecord>) {
    let h = Harness::start().await;
    faults(&h.api);
    let started = Instant::now();
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    let took = started.elapsed();
    assert_eq!(
        h.api.pending_write_faults(),
        0,
        "{label}: every fault was met"
    );
    let writes = h.api.writes();
    h.settle().await;
    assert_eq!(effects(&h).await, ONCE, "{label}: each effect once");
    let key = h.output_key().expect("output Secret");
    let rows = h.sim.handle.apikey_rows().await.unwrap();
    assert!(
        rows.iter().any(|r| r.id == key),
        "{label}: the key Nexus made"
    );
    // The client secret GWS holds is the one in the Secret: no second one was generated.
    let secret = h.api.get_as::<Secret>(NS, "prod-nexus-client").unwrap();
    let secret = String::from_utf8(secret.data.unwrap()["client-secret"].0.clone()).unwrap();
    assert!(
        h.sim.handle.snapshot().clients["nexus_client"].secret_matches(&secret),
        "{label}: GWS holds the stored client secret"
    );
    let tenant = h.get_tenant().unwrap();
    assert_eq!(
        tenant.status.as_ref().unwrap().observed_generation,
        tenant.metadata.generation
    );
    assert_eq!(
        tenant.metadata.finalizers.clone().unwrap_or_default(),
        ["digitalchannels.dev/cleanup"],
        "{label}"
    );
    eprintln!("figure: {label}: Ready after {took:?}");
    (h, writes)
}

#[tokio::test]
async fn status_writes_answered_409_429_5xx_are_retried_without_a_duplicate_effect() {
    for code in CODES {
        let label = format!("status writes answered {code}");
        let (h, writes) = provision_through(&label, |api| {
            api.fail_writes(ENVS, Some("status"), 3, code);
            api.fail_writes(TENANTS, Some("status"), 3, code);
        })
        .await;
        assert_eq!(
            answered(&writes, TENANTS, Some("status"), code),
            3,
            "{label}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn secret_writes_answered_409_429_5xx_are_retried_without_a_duplicate_effect() {
    for code in CODES {
        // The generated client secret and fingerprint key (creates), the output Secret (apply).
        let label = format!("Secret writes answered {code}");
        let (h, writes) = provision_through(&label, |api| {
            if code == 409 {
                // What a real server answers 409 to a create for: it exists already, made by
                // someone else meanwhile (here: by the very request whose answer says so).
                api.lose_write_answers("secrets", None, 3, code)
            } else {
                api.fail_writes("secrets", None, 4, code)
            }
        })
        .await;
        // A 409 is no failure to retry: the existing Secret is read and used.
        let expected = if code == 409 { 3 } else { 4 };
        assert_eq!(
            answered(&writes, "secrets", None, code),
            expected,
            "{label}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn finalizer_writes_answered_409_429_5xx_are_retried_without_a_duplicate_effect() {
    for code in CODES {
        let label = format!("finalizer writes answered {code}");
        let (h, writes) = provision_through(&label, |api| {
            api.fail_writes(ENVS, None, 2, code);
            api.fail_writes(TENANTS, None, 2, code);
        })
        .await;
        assert_eq!(answered(&writes, TENANTS, None, code), 2, "{label}");

        // Deleting: the cleanup holds, then the finalizer's removal is refused.
        h.tenant(|t| t.spec.deletion_policy = DeletionPolicy::Delete);
        h.settle().await;
        h.api.fail_writes(TENANTS, None, 3, code);
        h.api.delete_as::<DigitalChannelsTenant>(NS, "t100");
        h.api
            .wait_for(WAIT, |_| h.get_tenant().is_none().then_some(()))
            .await
            .unwrap_or_else(|| panic!("{label}: tenant never gone: {:#?}", h.get_tenant()));
        let s = h.sim.handle.snapshot();
        assert!(!s.tenants.contains_key(DEMO_CC_T100), "{label}");
        assert_eq!(s.deletes("nexus.delete_tenant"), 1, "{label}: deleted once");
        assert_eq!(h.api.pending_write_faults(), 0);
        h.stop().await;
    }
}

#[tokio::test]
async fn writes_done_but_answered_500_are_recognised_not_repeated() {
    // Each write happens, yet the operator hears 500: the generated client secret, the output
    // Secret, the finalizers, the status.
    let label = "writes done, answers lost";
    let (h, writes) = provision_through(label, |api| {
        api.lose_write_answers("secrets", None, 3, 500);
        api.lose_write_answers(ENVS, None, 1, 500);
        api.lose_write_answers(TENANTS, None, 1, 500);
        api.lose_write_answers(ENVS, Some("status"), 1, 500);
        api.lose_write_answers(TENANTS, Some("status"), 1, 500);
    })
    .await;
    let generated: Vec<_> = writes
        .into_iter()
        .filter(|w| w.resource == "secrets" && w.verb == Verb::Create && w.changed)
        .filter_map(|w| Some(w.body?.pointer("/metadata/name")?.as_str()?.to_owned()))
        .collect();
    assert_eq!(
        generated,
        ["prod-nexus-client", "prod-fingerprint-key"],
        "each generated Secret created once"
    );
    h.stop().await;
}

#[tokio::test]
async fn event_writes_that_fail_do_not_hold_anything_up() {
    // The environment's and the tenant's Ready events.
    let (h, _) = provision_through("events answered 500", |api| {
        api.fail_writes("events", None, 2, 500);
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_status_write_that_keeps_failing_retries_on_the_backoff_not_in_a_hot_loop() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.settle().await;
    h.api.fail_writes(TENANTS, Some("status"), 1000, 500);
    h.tenant(|_| {});
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let attempts = answered(&h.api.writes(), TENANTS, Some("status"), 500);
    // Backoff 100 ms doubling to 1 s (jitter ±20 %): 0, 0.1, 0.3, 0.7, 1.5, 2.5, 3.5, 4.5 s.
    eprintln!("figure: a status write refused for {window:?}: {attempts} attempts");
    assert!(
        (4..=10).contains(&attempts),
        "{attempts} status writes in {window:?}"
    );
    let s = h.sim.handle.snapshot();
    assert_eq!(
        s.creates("nexus.create_tenant"),
        1,
        "one tenant, whatever the retries"
    );
    // Every pass looks the tenant up again: one GET per attempt, no more.
    assert!(s.calls("nexus.get_tenant") <= attempts as u64 + 2);
    h.stop().await;
}

#[tokio::test]
async fn dropped_watches_lose_no_update_and_reconnect_without_a_loop() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    let before = effects(&h).await;
    let watches = h.api.watch_requests();

    // The watches drop, and changes come while they are down or just back: a rotated tenant
    // password (a Secret change) and a new UCS URL (a spec change).
    h.api.drop_watches();
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "rotated-pw-2291");
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated-pw-2291")],
    );
    h.api.drop_watches();
    h.tenant(|t| t.spec.ucs.as_mut().unwrap().url = "https://ucs2.example.com".into());
    h.api.drop_watches();

    let seen = h
        .api
        .wait_for(WAIT, |_| {
            let s = h.sim.handle.snapshot();
            let ucs = s.ucs_services.get(DEMO_CC_T100).cloned();
            let pushed = s.tenants[DEMO_CC_T100].token_matches("rotated-pw-2291");
            (pushed && ucs.as_deref() == Some("https://ucs2.example.com")).then_some(())
        })
        .await;
    assert!(
        seen.is_some(),
        "an update was lost: {:#?}",
        h.sim.handle.snapshot()
    );
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    h.settle().await;
    let t = h.get_tenant().unwrap();
    assert_eq!(
        t.status.unwrap().observed_generation,
        t.metadata.generation,
        "the spec change was acted on"
    );
    let after = effects(&h).await;
    assert_eq!(after.tenants, before.tenants, "no second tenant");
    assert_eq!(after.clients, before.clients);
    // At least the one update; exactly one is what
    // `a_pass_on_a_stale_cache_repeats_no_external_update` asks (ignored: a known defect).
    assert!(
        after.tenant_updates > before.tenant_updates,
        "the rotation reached Nexus"
    );
    // Each watcher reconnects once per drop: both kinds, each controller's second watch, and
    // the Secret metadata watch (5), three drops.
    let reconnects = h.api.watch_requests() - watches;
    eprintln!("figure: three watch drops: {reconnects} watch requests");
    assert!(reconnects <= 3 * 5 + 5, "{reconnects} watch requests");
    h.stop().await;
}

#[tokio::test]
async fn watches_that_fail_then_come_back_compacted_relist_without_a_duplicate_effect() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    let before = effects(&h).await;
    let (watches, requests) = (h.api.watch_requests(), h.api.requests());

    // The API server goes away and comes back with its history compacted: every resume is
    // refused for a while (429, 500), then answered 410 Gone: the watchers must list again.
    for plural in [ENVS, TENANTS, "secrets"] {
        for code in [429, 500, 500] {
            h.api.fail_next(Verb::Watch, plural, code);
        }
    }
    h.api.drop_watches();
    h.api.compact_history();
    // A change during the outage: only the re-list can show it.
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "nexus_password2")],
    );
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "nexus_password2");
    let seen = h
        .api
        .wait_for(WAIT, |_| {
            h.sim.handle.snapshot().tenants[DEMO_CC_T100]
                .token_matches("nexus_password2")
                .then_some(())
        })
        .await;
    assert!(
        seen.is_some(),
        "the change made while watches were down was lost"
    );
    h.settle().await;
    let after = effects(&h).await;
    assert_eq!(after.tenants, before.tenants);
    assert_eq!(after.clients, before.clients);
    assert_eq!(after.gapi_rows, before.gapi_rows);
    // See `a_pass_on_a_stale_cache_repeats_no_external_update` for exactly one.
    assert!(after.tenant_updates > before.tenant_updates);
    let reconnects = h.api.watch_requests() - watches;
    let all = h.api.requests() - requests;
    eprintln!("figure: outage + compaction: {reconnects} watch requests, {all} requests in all");
    assert!(reconnects <= 40, "{reconnects} watch requests");
    assert!(all <= 200, "{all} requests");

    // Quiet afterwards: nothing polls. The watches' own reconnection backoff may still be
    // running out (kube-runtime waits longer after each failure), so the test waits for a
    // quiet 2 s, within a minute, rather than demanding it at once.
    let mut quiet = false;
    for _ in 0..30 {
        let before = h.api.requests();
        tokio::time::sleep(Duration::from_secs(2)).await;
        if h.api.requests() == before {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "requests never stopped while nothing changes");
    h.stop().await;
}

/// Every upstream call the simulator has answered so far.
fn upstream_calls(h: &Harness) -> u64 {
    h.sim.handle.snapshot().calls.values().sum()
}

/// A watch that comes back after its history was compacted lists everything again: every
/// Secret, environment and tenant arrives as if new. Nothing changed, so nothing may reach
/// an upstream: a relist is the API server's event, not the estate's.
#[tokio::test]
async fn a_relist_with_no_change_makes_no_upstream_call() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    let calls = upstream_calls(&h);
    let lists = |h: &Harness| {
        [ENVS, TENANTS, "secrets"].map(|plural| h.api.requests_of(Verb::List, plural))
    };
    let listed = lists(&h);

    h.api.drop_watches();
    h.api.compact_history();
    // Every watcher (both kinds, each controller's second watch, the Secrets) lists again.
    let relisted = h
        .api
        .wait_for(WAIT, |_| {
            let now = lists(&h);
            (0..3).all(|i| now[i] > listed[i]).then_some(())
        })
        .await;
    assert!(relisted.is_some(), "the watches never came back");
    h.settle().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let made = upstream_calls(&h) - calls;
    assert_eq!(
        made,
        0,
        "a relist with no change made {made} upstream calls: {:?}",
        h.sim.handle.snapshot().calls
    );
    h.stop().await;
}

/// Known defect (src/runbook/tenant/steps.rs, `recorded`; not fixed here): a pass that runs on
/// a cached tenant whose status lags the operator's own last status write (its watch is down
/// or behind) takes the credentials fingerprint from that stale status rather than from the
/// output Secret it has just read, sees a rotation that was already pushed, and updates the
/// Nexus tenant again. Seen in `watches_that_fail_then_come_back_compacted_...` about one run
/// in six; made certain here by keeping the tenant watch down.
#[tokio::test]
async fn a_pass_on_a_stale_cache_repeats_no_external_update() {
    let h = Harness::start().await;
    h.env(|_| {});
    h.tenant(|_| {});
    h.both_ready().await;
    h.settle().await;
    // The tenants' watches go down and stay down for a while (backoff 0.8 s doubling).
    for _ in 0..8 {
        h.api.fail_next(Verb::Watch, TENANTS, 500);
    }
    h.api.drop_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;

    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "rotated-pw-7310");
    h.secret(
        "t100-user",
        &[("username", "nexus"), ("password", "rotated-pw-7310")],
    );
    let pushed = h
        .api
        .wait_for(WAIT, |_| {
            (h.sim.handle.snapshot().updates("nexus.update_tenant") == 1).then_some(())
        })
        .await;
    assert!(pushed.is_some(), "the rotation reached Nexus");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another pass, while the cached tenant still shows the status before the rotation.
    h.secret(
        "t100-user",
        &[
            ("username", "nexus"),
            ("password", "rotated-pw-7310"),
            ("note", "touched"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.sim.handle.snapshot().updates("nexus.update_tenant"),
        1,
        "the tenant was updated again for a rotation already pushed"
    );
    h.stop().await;
}

/// Known defect (src/controller/secrets.rs, `create_generated`; not fixed here): a 409 to the
/// create of a generated Secret is taken to mean that someone else created it, and the Secret
/// is read back; when it is not there (deleted meanwhile, or the 409 came from elsewhere, as
/// here), the environment reports `SecretNotFound`, a reason whose fix is awaited from the
/// cluster, and waits for the resync (10 min by default) instead of generating it again.
#[tokio::test]
async fn a_conflict_on_creating_a_generated_secret_that_is_absent_is_retried() {
    let (h, _) = provision_through("a 409 to the client secret's create", |api| {
        api.fail_writes("secrets", None, 1, 409)
    })
    .await;
    h.stop().await;
}
