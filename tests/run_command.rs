//! `dc-operator run` as a process: flags, KUBECONFIG, the CRD check, /healthz, /readyz,
//! /metrics, the leader Lease, reconciling, and a graceful stop on SIGTERM. Against the
//! in-memory API server, so no cluster is needed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::fake_apiserver::{FakeApiServer, ResourceKey, Verb};
use common::{Sim, environment};
use digital_channels_operator::api::DigitalChannelsEnvironment;
use digital_channels_operator::controller::leader::{LEASE_NAME, LeaderElector, LeaseTiming};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;

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
            "--pod-name",
            "replica-1",
        ])
        .env("KUBECONFIG", api.write_kubeconfig(dir.path()))
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
    // --pod-name (env POD_NAME in a pod) names this replica in the Lease and in its Events.
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("replica-1")
    );

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
    let events_of = ResourceKey::new("events.k8s.io", "v1", "events");
    let events = api
        .wait_for(Duration::from_secs(10), |a| {
            let events = a.objects(&events_of, Some("dc"));
            (!events.is_empty()).then_some(events)
        })
        .await
        .expect("the Ready transition publishes an Event");
    for event in &events {
        assert_eq!(event["reportingInstance"], "replica-1", "{event}");
    }

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
    let config = api.write_kubeconfig(dir.path());
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
        stderr.contains(
            "the CRDs are not installed: dc-operator crds | kubectl apply --server-side -f -"
        ),
        "{stderr}"
    );
}

/// Short enough for a test; the same proportions as the defaults (15 s, 10 s, 2 s).
fn fast_timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1200),
        retry_period: Duration::from_millis(200),
    }
}

/// Rewrites the Lease's renewTime, as a holder whose clock is off by `skew` would write it.
fn set_renew_time(api: &FakeApiServer, skew: jiff::SignedDuration) {
    let mut lease = api.get_as::<Lease>("dc-system", LEASE_NAME).unwrap();
    lease.spec.as_mut().unwrap().renew_time = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now() + skew),
    );
    api.insert(
        &common::fake_apiserver::ResourceKey::of::<Lease>(),
        serde_json::to_value(&lease).unwrap(),
    );
}

#[tokio::test]
async fn only_one_replica_holds_the_lease_whatever_the_holders_clock_says() {
    let api = FakeApiServer::start().await;
    let elector =
        |id: &str| LeaderElector::new(api.client(), "dc-system", id.into(), fast_timing());
    let (a, b) = (elector("a"), elector("b"));
    assert!(a.try_acquire().await.unwrap());
    assert!(
        !b.try_acquire().await.unwrap(),
        "b must not take a live lease"
    );
    assert!(a.try_acquire().await.unwrap(), "a renews");

    // The holder's clock is an hour behind: its renewTime looks long expired, but the record
    // just changed, so by b's own clock the lease is live.
    set_renew_time(&api, jiff::SignedDuration::from_hours(-1));
    assert!(
        !b.try_acquire().await.unwrap(),
        "clock skew must not expire a live lease"
    );
    // An hour ahead: looks valid for an hour, yet expires a lease duration after b saw it last
    // change.
    set_renew_time(&api, jiff::SignedDuration::from_hours(1));
    assert!(!b.try_acquire().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !b.try_acquire().await.unwrap(),
        "not before the lease duration"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        b.try_acquire().await.unwrap(),
        "expired by b's clock: b takes over"
    );
    assert!(!a.try_acquire().await.unwrap(), "a lost it");
    let spec = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn the_holder_gives_up_at_the_renew_deadline_when_the_api_server_hangs() {
    // An API server that accepts connections and never answers, as a throttled or partitioned
    // one looks to the client (which would otherwise retry for minutes).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let timing = fast_timing();
    let elector = LeaderElector::new(client, "dc-system", "a".into(), timing);
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), elector.keep_leadership())
        .await
        .expect("keep_leadership must return at the renew deadline, not wait for the client");
    let took = started.elapsed();
    assert!(
        took >= timing.renew_deadline && took < timing.renew_deadline + timing.retry_period * 3,
        "gave up after {took:?}"
    );
    hung.abort();
}

#[tokio::test]
async fn a_replica_that_loses_the_lease_exits_at_once() {
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args([
            "run",
            "--namespace",
            "dc",
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("KUBECONFIG", api.write_kubeconfig(dir.path()))
        .env("DC_LEADER_ELECTION_NAMESPACE", "dc-system")
        .env("POD_NAME", "replica-a")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    api.wait_for(Duration::from_secs(20), |a| {
        a.get_as::<Lease>("dc-system", LEASE_NAME).filter(|l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("replica-a")
        })
    })
    .await
    .expect("replica-a takes the Lease");

    // Another replica holds it now (as after a partition): replica-a must stop at its next
    // renewal (every 2 s), not finish what it was doing.
    let mut lease = api.get_as::<Lease>("dc-system", LEASE_NAME).unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("replica-b".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    api.insert(
        &common::fake_apiserver::ResourceKey::of::<Lease>(),
        serde_json::to_value(&lease).unwrap(),
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after losing the Lease");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status.code(),
        Some(1),
        "exits non-zero so Kubernetes restarts it"
    );
    let holder = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("replica-b"),
        "the new holder keeps it"
    );
}

/// Text logs written to a pipe or a file carry no terminal colours, and say values in words
/// (`namespaces=dc`), not as Rust `Debug` dumps (`[Some("dc")]`).
#[tokio::test]
async fn text_logs_to_a_pipe_are_plain_and_readable() {
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args(["run", "--namespace", "dc", "--leader-election", "false"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .env("KUBECONFIG", api.write_kubeconfig(dir.path()))
        .env("DC_LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            let done = line.contains("controllers starting");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    });
    for _ in 0..100 {
        if reader.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = reader.join().unwrap();
    let starting = logs
        .lines()
        .find(|l| l.contains("controllers starting"))
        .unwrap_or_else(|| panic!("no start line in:\n{logs}"));
    assert!(!logs.contains('\u{1b}'), "ANSI colours in a pipe:\n{logs}");
    assert!(starting.contains("namespaces=dc"), "{starting}");
    assert!(!starting.contains("Some("), "{starting}");
}

/// The README's first command: `dc-operator demo` provisions twice, the second time
/// changing nothing, and says that its output directory goes with it.
#[test]
fn demo_provisions_twice_and_says_where_its_output_went() {
    let output = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("== Second run"), "{stdout}");
    assert!(
        stdout.contains("is removed when the demo exits"),
        "{stdout}"
    );
}

/// `simulate --database-url URL` creates the database URL names when it is absent, as the
/// flag's help says, and serves on it.
#[tokio::test]
async fn simulate_creates_the_database_its_url_names() {
    use digital_channels_operator::local_postgres::LocalPostgres;
    digital_channels_operator::upstream::http::install_crypto_provider();
    let server = tokio::task::spawn_blocking(LocalPostgres::find_or_start)
        .await
        .unwrap()
        .unwrap();
    let database = format!("dct_sim_{}", rand::random::<u32>());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args(["simulate", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &server.url_for(&database)])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut state = None;
    for _ in 0..100 {
        state = get(&format!("http://127.0.0.1:{port}/_sim/state")).await;
        if state.is_some() || child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let _ = server.drop_database(&database).await;
    assert_eq!(
        state.map(|s| s.0),
        Some(200),
        "simulate did not serve:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `demo` with a `DATABASE_URL` that names a database uses that server but a database of its
/// own, and says so and why: it never writes into a database it did not create (the URL may
/// name a real Nexus database).
#[tokio::test]
async fn demo_says_why_it_does_not_use_the_database_named_in_database_url() {
    use digital_channels_operator::local_postgres::LocalPostgres;
    let server = tokio::task::spawn_blocking(LocalPostgres::find_or_start)
        .await
        .unwrap()
        .unwrap();
    let named = format!("dct_named_{}", rand::random::<u32>());
    let output = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .arg("demo")
        .env("DATABASE_URL", server.url_for(&named))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed:\n{stdout}");
    let said = stdout
        .lines()
        .find(|l| l.contains(&named))
        .unwrap_or_else(|| panic!("no word of {named}:\n{stdout}"));
    assert!(
        said.contains("not the database")
            && said.contains("never writes into a database it did not create"),
        "{said}"
    );
    // Nothing was created under that name.
    let connected =
        <sqlx::PgConnection as sqlx::Connection>::connect(&server.url_for(&named)).await;
    assert!(connected.is_err(), "the demo created {named}");
}

/// `provision` with a Secret the manifests reference but the files do not hold (or without
/// the key named) is an input error, as an invalid spec is: exit 2 before any call, naming
/// each Secret, its purpose and the field that references it, and no namespace (there is no
/// cluster to create it in).
#[test]
fn provision_refuses_missing_secrets_as_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/simulator");
    // gws-ops without its password; nexus-db and t100-nexus-user absent.
    std::fs::write(
        dir.path().join("ops.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: gws-ops}\nstringData: {username: ops}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .arg("provision")
        .arg("-f")
        .arg(examples.join("20-environment.yaml"))
        .arg("-f")
        .arg(examples.join("30-tenant.yaml"))
        .args(["-f", "ops.yaml", "--output-dir", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for said in [
        "Secret gws-ops (GWS ops credentials, spec.opsCredentialsSecret of DigitalChannelsEnvironment prod) has no key password",
        "Secret nexus-db (Nexus database URL, spec.database.urlSecret of DigitalChannelsEnvironment prod) is not in the files",
        "Secret t100-nexus-user (tenant user, spec.credentialsSecret of DigitalChannelsTenant t100) is not in the files",
    ] {
        assert!(stderr.contains(said), "no {said:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("namespace"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).is_empty(),
        "steps ran"
    );
}
