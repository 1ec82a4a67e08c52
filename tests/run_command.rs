//! `dc-operator run` as a process: flags, KUBECONFIG, the CRD check, /healthz, /readyz,
//! /metrics, the leader Lease, reconciling, and a graceful stop on SIGTERM. Against the
//! in-memory API server, so no cluster is needed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::fake_apiserver::{FakeApiServer, Verb};
use common::{Sim, environment};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::controller::leader::{LEASE_NAME, LeaderElector};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{server}\"}}\n\
             contexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    Some((response.status().as_u16(), response.text().await.ok()?))
}

#[tokio::test]
async fn run_serves_probes_and_metrics_takes_the_lease_reconciles_and_stops_on_sigterm() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let api = FakeApiServer::start().await;
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args([
            "run",
            "--namespace",
            "dc",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", kubeconfig(dir.path(), &api.url()))
        .env("DC_LEADER_ELECTION_NAMESPACE", "dc-system")
        .env("DC_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the logs as they come: a full pipe would block the process.
    let mut stderr = child.stderr.take().unwrap();
    let logs_reader = std::thread::spawn(move || {
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut logs).unwrap();
        logs
    });

    let base = format!("http://127.0.0.1:{port}");
    let mut readyz = None;
    for _ in 0..100 {
        readyz = get(&format!("{base}/readyz")).await;
        if readyz.as_ref().is_some_and(|(code, _)| *code == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(readyz.map(|r| r.0), Some(200));
    assert_eq!(
        get(&format!("{base}/healthz")).await.map(|r| r.0),
        Some(200)
    );

    let lease = api
        .wait_for(Duration::from_secs(20), |a| {
            a.get_as::<Lease>("dc-system", LEASE_NAME)
        })
        .await
        .expect("the leader Lease is taken");
    assert!(lease.spec.unwrap().holder_identity.is_some());

    // It reconciles: an environment becomes Ready.
    let secret = |name: &str, pairs: &[(&str, &str)]| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("dc".into()),
            ..Default::default()
        },
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        ),
        ..Default::default()
    };
    api.apply_as(&secret(
        "gws-ops",
        &[("username", "ops"), ("password", "ops")],
    ));
    api.apply_as(&secret("nexus-db", &[("url", &sim.db.url)]));
    let mut env = environment(&sim.url());
    env.metadata.uid = None;
    api.apply_as(&env);
    api.wait_for(Duration::from_secs(30), |a| {
        let e = a.get_as::<DigitalChannelsEnvironment>("dc", "prod")?;
        e.status?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.reason == "Provisioned")
            .cloned()
    })
    .await
    .expect("environment Ready");

    // The pass that wrote Ready records its metrics as it returns: give it a moment.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = get(&format!("{base}/metrics")).await.unwrap().1;
        if metrics.contains("dc_operator_reconcile_total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in [
        "dc_operator_reconcile_total",
        "dc_operator_reconcile_duration_seconds",
        "dc_operator_external_requests_total",
        "dc_operator_external_request_duration_seconds",
        "dc_operator_time_to_ready_seconds",
        "dc_operator_resources",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(metrics.contains(r#"system="gws-auth""#), "{metrics}");

    // SIGTERM: a graceful stop with exit code 0.
    let pid = child.id().to_string();
    tokio::task::spawn_blocking(move || Command::new("kill").args(["-TERM", &pid]).status())
        .await
        .unwrap()
        .unwrap();
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("dc-operator run did not stop within 10 s of SIGTERM")
    });
    let logs = logs_reader.join().unwrap();
    let released = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        released.holder_identity, None,
        "the Lease is released on SIGTERM"
    );
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
    // JSON logs, and no secret in them.
    assert!(logs.lines().any(|l| l.starts_with('{')), "{logs}");
    // A reconcile's lines name the resource.
    let status_line = logs
        .lines()
        .find(|l| l.contains("status updated"))
        .expect("a status update is logged");
    assert!(
        status_line.contains(r#""resource":"prod""#) && status_line.contains(r#""namespace":"dc""#),
        "{status_line}"
    );
    assert!(
        !logs.contains(&sim.db.url),
        "the database URL leaked into the logs"
    );
}

#[tokio::test]
async fn run_exits_with_a_clear_message_when_the_crds_are_missing() {
    let api = FakeApiServer::start().await;
    api.fail_next(Verb::List, "digitalchannelsenvironments", 404);
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &api.url());
    // Blocking here would stall the fake API server, which runs on this test's runtime.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dc-operator"))
            .args([
                "run",
                "--metrics-addr",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .env("KUBECONFIG", config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the CRDs are not installed: kubectl apply -f crds/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn only_one_replica_holds_the_lease() {
    let api = FakeApiServer::start().await;
    let a = LeaderElector::new(
        api.client(),
        "dc-system",
        "a".into(),
        Duration::from_secs(15),
    );
    let b = LeaderElector::new(
        api.client(),
        "dc-system",
        "b".into(),
        Duration::from_secs(15),
    );
    assert!(a.try_acquire().await.unwrap());
    assert!(
        !b.try_acquire().await.unwrap(),
        "b must not take a live lease"
    );
    assert!(a.try_acquire().await.unwrap(), "a renews");

    // The holder stops renewing: once the lease expires, b takes over.
    let mut lease = api.get_as::<Lease>("dc-system", LEASE_NAME).unwrap();
    let stale = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    lease.spec.as_mut().unwrap().renew_time = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(stale),
    );
    api.insert(
        &common::fake_apiserver::ResourceKey::of::<Lease>(),
        serde_json::to_value(&lease).unwrap(),
    );
    assert!(b.try_acquire().await.unwrap());
    assert!(!a.try_acquire().await.unwrap(), "a lost it");
    let spec = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
