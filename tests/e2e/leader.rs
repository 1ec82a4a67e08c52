//! Two `dc-operator run` replicas on the real Lease API: only the holder reconciles, and after
//! a SIGKILL of the holder the other takes over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::harness::{LEASE_DURATION, Scenario, Scope, cluster, wait_for};
use crate::resources::{apply_environment, apply_secrets, apply_tenant};

const LEASE: &str = "digital-channels-operator";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Whether a replica's /metrics shows any reconcile at all.
fn reconciled(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|l| l.starts_with("dc_operator_reconcile_total{"))
}

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_the_other_takes_over_after_a_kill() {
    let Some(client) = cluster("two_replicas").await else {
        return;
    };
    let mut s = Scenario::new(client.clone(), "leader", Scope::Namespaces).await;
    let leases: Api<Lease> = Api::namespaced(client, &s.op_ns);
    s.start_operator("replica-a");
    wait_for(
        "replica-a to hold the Lease",
        Duration::from_secs(30),
        || s.context(),
        || async { (holder(&leases).await.as_deref() == Some("replica-a")).then_some(()) },
    )
    .await;
    s.start_operator("replica-b");
    apply_secrets(&s).await;
    apply_environment(&s, "prod", "Retain").await;
    apply_tenant(&s, "t100", "prod", "t100", "Retain").await;
    s.wait_tenant_ready("t100").await;

    assert!(
        reconciled(&s.operators[0].metrics().await),
        "the holder reconciles"
    );
    let standby = s.operators[1].metrics().await;
    assert!(
        !standby.is_empty(),
        "replica-b serves /metrics while it waits"
    );
    assert!(
        !reconciled(&standby),
        "the standby reconciles nothing:\n{standby}"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    // SIGKILL: no release of the Lease; replica-b must wait for it to expire.
    s.operators[0].kill();
    let killed = Instant::now();
    wait_for(
        "replica-b to take the Lease",
        LEASE_DURATION * 2,
        || s.context(),
        || async { (holder(&leases).await.as_deref() == Some("replica-b")).then_some(()) },
    )
    .await;
    let takeover = killed.elapsed();
    println!(
        "e2e two_replicas: replica-b took the Lease {takeover:?} after SIGKILL of the holder \
         (lease duration {LEASE_DURATION:?})"
    );
    // The expiry is counted from the holder's last renewal as replica-b saw it, and replica-b
    // looks again every retry period: the takeover can exceed the lease duration by at most
    // one retry period.
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD,
        "takeover took {takeover:?}"
    );

    // The new leader reconciles: a new tenant becomes Ready.
    apply_tenant(&s, "t200", "prod", "t200", "Retain").await;
    s.wait_tenant_ready("t200").await;
    assert!(reconciled(&s.operators[1].metrics().await));
    s.finish().await;
}

/// How often a standby replica looks at the Lease (`LeaseTiming::default`).
const RETRY_PERIOD: Duration = Duration::from_secs(2);
