//! Issue 15, defect 7, as a process: two `dc-operator run` replicas, the leader frozen
//! (SIGSTOP) past its Lease with tenant creates in flight against a slowed simulator, the
//! other replica taking over, then the leader resumed (SIGCONT). The simulator records which
//! process sent each request and when it arrived, and a proxy in front of the API server
//! does the same for the leader's Kubernetes requests: nothing from the frozen leader but
//! its Lease requests may arrive after the other replica took the Lease.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::fake_apiserver::FakeApiServer;
use common::{Sim, environment, recording_proxy, tenant};
use digital_channels_operator::controller::leader::LEASE_NAME;
use digital_channels_operator::simulator::{Seed, SimulatorConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;

const TENANTS: usize = 12;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubeconfig(dir: &std::path::Path, name: &str, server: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
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

fn replica(api_url: &str, dir: &std::path::Path, name: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args(["run", "--namespace", "dc", "--concurrency", "16"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .env("KUBECONFIG", kubeconfig(dir, name, api_url))
        .env("DC_LEADER_ELECTION_NAMESPACE", "dc-system")
        .env("POD_NAME", name)
        .env("DC_LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let signal = format!("-{signal}");
    let status =
        tokio::task::spawn_blocking(move || Command::new("kill").args([&signal, &pid]).status())
            .await
            .unwrap()
            .unwrap();
    assert!(status.success());
}

fn secret(name: &str, pairs: &[(&str, &str)]) -> Secret {
    common::secret_manifest("dc", name, pairs)
}

async fn wait_for_holder(api: &FakeApiServer, holder: &str, timeout: Duration) -> bool {
    api.wait_for(timeout, |a| {
        a.get_as::<Lease>("dc-system", LEASE_NAME)
            .filter(|l| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder))
    })
    .await
    .is_some()
}

/// Kills the replicas however the test ends.
struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_sends_nothing_once_resumed() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let api = FakeApiServer::start().await;
    let sim = Sim::start_with(SimulatorConfig {
        seed: Seed::with_contact_centers(TENANTS),
        // Slowed: every operation takes this long, so creates are in flight when frozen.
        latency: Duration::from_millis(300),
        ..SimulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();

    // replica-a reaches the API server through a proxy that records its requests.
    let (proxy, kube_requests_of_a) = recording_proxy(api.url().replace("http://", "")).await;
    let mut replicas = Replicas(vec![replica(
        &format!("http://{proxy}"),
        dir.path(),
        "replica-a",
    )]);
    assert!(
        wait_for_holder(&api, "replica-a", Duration::from_secs(20)).await,
        "replica-a takes the Lease"
    );
    replicas
        .0
        .push(replica(&api.url(), dir.path(), "replica-b"));

    api.apply_as(&secret(
        "gws-ops",
        &[("username", "ops"), ("password", "ops")],
    ));
    api.apply_as(&secret("nexus-db", &[("url", &sim.db.url)]));
    let mut env = environment(&sim.url());
    env.metadata.uid = None;
    api.apply_as(&env);
    for i in 0..TENANTS {
        let name = format!("cc{i}");
        api.apply_as(&secret(
            &format!("{name}-user"),
            &[("username", "nexus"), ("password", "nexus_password")],
        ));
        let mut t = tenant(&name, &name, true);
        t.metadata.uid = None;
        api.apply_as(&t);
    }

    // Freeze the leader once its tenant creates are under way.
    let from_a = |sim: &Sim| {
        sim.handle
            .requests()
            .into_iter()
            .filter(|r| r.instance.as_deref() == Some("replica-a"))
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !from_a(&sim)
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with("/provisioning/tenants"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-a never created a tenant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    signal(&replicas.0[0], "STOP").await;

    // The standby takes over once the frozen leader's Lease has expired by its clock.
    assert!(
        wait_for_holder(&api, "replica-b", Duration::from_secs(40)).await,
        "replica-b takes the Lease"
    );
    let taken = SystemTime::now();
    // Answers to the frozen leader's requests are waiting for it now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&replicas.0[0], "CONT").await;

    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = replicas.0[0].try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica-a still running 10 s after it was resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1), "the resumed leader exits");

    let late: Vec<_> = from_a(&sim).into_iter().filter(|r| r.at > taken).collect();
    let late_kube: Vec<_> = kube_requests_of_a
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, line)| *at > taken && !line.contains("/leases"))
        .cloned()
        .collect();
    let log = std::fs::read_to_string(dir.path().join("replica-a.log")).unwrap_or_default();
    assert!(
        late.is_empty() && late_kube.is_empty(),
        "requests from replica-a after replica-b took the Lease: upstream {late:#?}, \
         Kubernetes {late_kube:#?}\nreplica-a's log:\n{log}"
    );
    assert!(
        !kube_requests_of_a.lock().unwrap().is_empty(),
        "the proxy saw replica-a's requests"
    );
    assert!(
        log.contains("lost the leader lease"),
        "replica-a says why it stopped:\n{log}"
    );
    // The new leader carries on: it sends requests of its own.
    assert!(
        sim.handle
            .requests()
            .iter()
            .any(|r| r.instance.as_deref() == Some("replica-b") && r.at > taken),
        "replica-b works after taking over"
    );
}
